"""``numba``: the per-timestep loop compiled with ``@njit``.

Each step does the two matrix products with ``np.dot`` (Numba hands them to
the BLAS that SciPy ships) and the gate arithmetic in one fused loop over
(B, H), with no temporaries.  Functions are compiled once per signature and
cached on disk; :meth:`NumbaBackend.prepare` compiles them by running a
1-step, batch-1 problem, so compilation never falls inside a timing.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .base import Backend
from .stack import StackPrepared

# Integer codes: one compiled layer function serves every mode.
MODE_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}


@numba.njit(cache=True)
def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


@numba.njit(cache=True)
def _step(mode, gi, gh, b_ih, b_hh, h, c):
    """Gate arithmetic of one step in place: ``gi``/``gh`` are (B, G*H) products
    x W_ih^T and h W_hh^T; ``h``/``c`` (B, H) are overwritten with the new state."""
    batch, hidden = h.shape
    for b in range(batch):
        for j in range(hidden):
            if mode <= 1:
                v = gi[b, j] + b_ih[j] + gh[b, j] + b_hh[j]
                # relu written so that NaN propagates, as torch.relu does
                h[b, j] = math.tanh(v) if mode == 0 else (0.0 if v < 0.0 else v)
            elif mode == 2:
                i = _sigmoid(gi[b, j] + b_ih[j] + gh[b, j] + b_hh[j])
                k = hidden + j
                f = _sigmoid(gi[b, k] + b_ih[k] + gh[b, k] + b_hh[k])
                k += hidden
                g = math.tanh(gi[b, k] + b_ih[k] + gh[b, k] + b_hh[k])
                k += hidden
                o = _sigmoid(gi[b, k] + b_ih[k] + gh[b, k] + b_hh[k])
                c[b, j] = f * c[b, j] + i * g
                h[b, j] = o * math.tanh(c[b, j])
            else:
                r = _sigmoid(gi[b, j] + b_ih[j] + gh[b, j] + b_hh[j])
                k = hidden + j
                z = _sigmoid(gi[b, k] + b_ih[k] + gh[b, k] + b_hh[k])
                k += hidden
                n = math.tanh(gi[b, k] + b_ih[k] + r * (gh[b, k] + b_hh[k]))
                h[b, j] = (1.0 - z) * n + z * h[b, j]


@numba.njit(cache=True)
def _layer(mode, x, h0, c0, w_ih_t, w_hh_t, b_ih, b_hh, reverse):
    """One direction of one layer: x (T, B, I) C-contiguous, w_*_t = W^T (I or H, G*H)."""
    steps = x.shape[0]
    h = h0.copy()
    c = c0.copy()
    out = np.empty((steps, h.shape[0], h.shape[1]), h.dtype)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        gi = np.dot(x[t], w_ih_t)
        gh = np.dot(h, w_hh_t)
        _step(mode, gi, gh, b_ih, b_hh, h, c)
        out[t] = h
    return out, h, c


class NumbaPrepared(StackPrepared):
    def convert(self, params):
        w_ih, w_hh, b_ih, b_hh = params
        return np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T), b_ih, b_hh

    def layer(self, x, h0, c0, params, reverse):
        # c is carried for every mode so one signature serves all; only LSTM reads it
        c = h0 if c0 is None else c0
        out, h, c = _layer(MODE_CODES[self.spec.mode], np.ascontiguousarray(x), h0, c, *params, reverse)
        return out, h, (c if c0 is not None else None)


class NumbaBackend(Backend):
    name = "numba"

    def unavailable_reason(self):
        try:  # numba's np.dot calls the BLAS that scipy exposes
            import scipy.linalg.cython_blas  # noqa: F401
        except ImportError as exc:
            return f"numba's np.dot needs scipy: {exc}"
        return None

    def prepare(self, spec, weights):
        prepared = NumbaPrepared(spec, weights)
        # compile (or load from the disk cache) this dtype's signature now
        dt = spec.np_dtype
        one = np.zeros((1, 1, 1), dt)
        state = np.zeros((1, 1), dt)
        w = np.zeros((1, 1), dt)
        b = np.zeros(1, dt)
        _layer(0, one, state, state, w, w, b, b, False)
        return prepared
