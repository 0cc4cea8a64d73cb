"""``numba``: the recurrence compiled with ``@njit``, with three strategies.

* ``blas``: first the input projection of all timesteps in one matrix
  product, ``x W_ih^T + b_ih (+ b_hh)`` over (T*B, I) -- the trick behind
  cuDNN's RNN speedups (Appleyard et al. 2016, "Optimizing performance of
  recurrent neural networks on GPUs") -- then per step only the recurrent
  product ``h W_hh^T`` by ``np.dot`` into a preallocated (B, G*H) buffer (the
  BLAS that SciPy ships) and one fused pass over the gates.  For large H and
  B, where the products are compute-bound.
* ``fused``: one batch row at a time through all timesteps, both products as
  loops over k with the inner loop over the G*H outputs (a contiguous row of
  W^T, no reduction in the inner loop, so LLVM vectorizes it without
  ``fastmath``), then the gates; no call, no allocation per step, and no BLAS
  at all: OpenBLAS's threads keep spinning after a call and would take the
  cores from the loop.  For small H, where a BLAS call costs more than the
  arithmetic.
* ``parallel``: ``fused`` with the batch rows spread over threads with
  ``prange``.  Rows of a batch never interact, so each thread runs its rows
  through all timesteps alone: no shared accumulator, the same order of
  operations on every run, bitwise-identical results.

:func:`choose_strategy` picks one per spec (the rule and the measurement
behind it are in its docstring); ``get_backend("numba:fused")`` forces one.

float32 activations use a rational approximation of tanh (Eigen's
``generic_fast_tanh_float``: max abs error 4e-7 on [-10, 10], measured against
float64 tanh) that is plain arithmetic and vectorizes; sigmoid(v) =
0.5 + 0.5*tanh(v/2).  float64 uses libm's tanh.  NaN propagates: the clamp
is written with comparisons that NaN fails.  Functions are compiled once per
signature and cached on disk; ``prepare`` compiles before any timing.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from .base import Backend
from .stack import StackPrepared

MODE_CODES = {"rnn_tanh": 0, "rnn_relu": 1, "lstm": 2, "gru": 3}
STRATEGIES = ("blas", "fused", "parallel")

_A = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_B = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_CLAMP = 7.90531110763549805
#: Only contraction into fused multiply-adds: no flag that assumes NaN or Inf away.
FASTMATH = {"contract"}


def act_tanh(v):
    """tanh in the precision of ``v``: the rational approximation for float32, libm for float64."""
    return math.tanh(v)


@overload(act_tanh, jit_options={"cache": True})
def _act_tanh(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        a = tuple(np.float32(c) for c in _A)
        b = tuple(np.float32(c) for c in _B)
        clamp = np.float32(_CLAMP)
        one = np.float32(1.0)

        def impl(v):  # Eigen's rational approximation, in float32 constants; NaN fails both tests
            # saturate exactly, as tanh does in float32 beyond the clamp (|error| < 3e-7 there), so
            # that sigmoid(-inf) is 0 and r * inf gives NaN where torch gives NaN
            if v > clamp:
                return one
            if v < -clamp:
                return -one
            v2 = v * v
            p = ((((((a[6] * v2 + a[5]) * v2 + a[4]) * v2 + a[3]) * v2 + a[2]) * v2 + a[1]) * v2 + a[0])
            q = (((b[3] * v2 + b[2]) * v2 + b[1]) * v2 + b[0])
            return v * p / q

        return impl
    return lambda v: math.tanh(v)


@numba.njit(cache=True, inline="always")
def _sigmoid(v):
    half = type(v)(0.5)
    return half + half * act_tanh(half * v)


@numba.njit(cache=True, inline="always", fastmath=FASTMATH)
def _gates(mode, xp, hh, h, c, b):
    """Row ``b``'s update in place.  ``xp`` = x W_ih^T + b_ih (+ b_hh except for
    GRU), ``hh`` = h W_hh^T (+ b_hh for GRU), both (G*H,); ``h``, ``c`` (B, H)."""
    hidden = h.shape[1]
    if mode == 0:
        for j in range(hidden):
            h[b, j] = act_tanh(xp[j] + hh[j])
    elif mode == 1:
        for j in range(hidden):
            v = xp[j] + hh[j]
            h[b, j] = 0.0 if v < 0.0 else v  # NaN stays NaN, as torch.relu
    elif mode == 2:
        for j in range(hidden):
            i = _sigmoid(xp[j] + hh[j])
            f = _sigmoid(xp[hidden + j] + hh[hidden + j])
            g = act_tanh(xp[2 * hidden + j] + hh[2 * hidden + j])
            o = _sigmoid(xp[3 * hidden + j] + hh[3 * hidden + j])
            c[b, j] = f * c[b, j] + i * g
            h[b, j] = o * act_tanh(c[b, j])
    else:
        for j in range(hidden):
            r = _sigmoid(xp[j] + hh[j])
            z = _sigmoid(xp[hidden + j] + hh[hidden + j])
            n = act_tanh(xp[2 * hidden + j] + r * hh[2 * hidden + j])
            h[b, j] = (1 - z) * n + z * h[b, j]


@numba.njit(cache=True)
def _project(x, w_ih_t, bias):
    """All timesteps' input projection in one product: (T, B, I) -> (T, B, G*H)."""
    steps, batch, features = x.shape
    xp = np.dot(x.reshape(steps * batch, features), w_ih_t)
    xp += bias
    return xp.reshape(steps, batch, w_ih_t.shape[1])


@numba.njit(cache=True, fastmath=FASTMATH)
def _layer_blas(mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    steps = x.shape[0]
    xp = _project(x, w_ih_t, bx)
    h, c = h0.copy(), c0.copy()
    hh = np.empty((h.shape[0], w_hh_t.shape[1]), h.dtype)
    out = np.empty((steps, h.shape[0], h.shape[1]), h.dtype)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        np.dot(h, w_hh_t, hh)
        for b in range(h.shape[0]):
            hh[b] += bh
            _gates(mode, xp[t, b], hh[b], h, c, b)
        out[t] = h
    return out, h, c


@numba.njit(cache=True, inline="always", fastmath=FASTMATH)
def _row(mode, x, b, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, ax, ah):
    """Batch row ``b`` through every timestep, both products as loops."""
    steps, features = x.shape[0], x.shape[2]
    hidden = h.shape[1]
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        for j in range(ax.shape[0]):  # explicit loops: slice assignment costs more than the work here
            ax[j] = bx[j]
            ah[j] = bh[j]
        for k in range(features):
            xk = x[t, b, k]
            for j in range(ax.shape[0]):
                ax[j] += xk * w_ih_t[k, j]
        for k in range(hidden):
            hk = h[b, k]
            for j in range(ah.shape[0]):
                ah[j] += hk * w_hh_t[k, j]
        _gates(mode, ax, ah, h, c, b)
        for j in range(hidden):
            out[t, b, j] = h[b, j]


@numba.njit(cache=True, fastmath=FASTMATH)
def _layer_fused(mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    h, c = h0.copy(), c0.copy()
    out = np.empty((x.shape[0], h.shape[0], h.shape[1]), h.dtype)
    for b in range(h.shape[0]):
        # fresh buffers per row, as in the parallel loop: LLVM then knows they alias nothing and vectorizes
        ax, ah = np.empty(bx.shape[0], h.dtype), np.empty(bx.shape[0], h.dtype)
        _row(mode, x, b, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, ax, ah)
    return out, h, c


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _layer_parallel(mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    h, c = h0.copy(), c0.copy()
    out = np.empty((x.shape[0], h.shape[0], h.shape[1]), h.dtype)
    for b in numba.prange(h.shape[0]):  # rows are independent: each runs all steps on one thread
        ax, ah = np.empty(bx.shape[0], h.dtype), np.empty(bx.shape[0], h.dtype)
        _row(mode, x, b, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, ax, ah)
    return out, h, c


LAYERS = {"blas": _layer_blas, "fused": _layer_fused, "parallel": _layer_parallel}


def choose_strategy(spec, batch: int) -> str:
    """The strategy for ``spec`` at batch size ``batch``.

    Rule, from ``python -m bench run --grid strategies`` on the 2-core
    reference machine (results/strategies.csv; README, "Numba strategies"):
    the fused loop wins while W_hh fits in L2 and a BLAS call's fixed cost
    dominates (H <= 64), parallel rows win there once B >= 8; from H = 256 the
    per-step GEMM wins.
    """
    if spec.hidden_size <= 64:
        return "parallel" if batch >= 8 else "fused"
    return "blas"


class NumbaPrepared(StackPrepared):
    def __init__(self, spec, weights, strategy):
        self.strategy = strategy
        super().__init__(spec, weights)

    def convert(self, params):
        w_ih, w_hh, b_ih, b_hh = params
        fold = self.spec.mode != "gru"  # GRU keeps b_hn inside r * (W_hn h + b_hn)
        bx = (b_ih + b_hh) if fold else b_ih
        bh = np.zeros_like(b_hh) if fold else b_hh
        return (np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T),
                np.ascontiguousarray(bx), np.ascontiguousarray(bh))

    def layer(self, x, h0, c0, params, reverse):
        batch = x.shape[1]
        strategy = self.strategy if self.strategy != "auto" else choose_strategy(self.spec, batch)
        c = np.ascontiguousarray(h0 if c0 is None else c0)  # carried for every mode, read by LSTM only
        out, h, c = LAYERS[strategy](MODE_CODES[self.spec.mode], np.ascontiguousarray(x),
                                     np.ascontiguousarray(h0), c, *params, reverse)
        return out, h, (c if c0 is not None else None)


class NumbaBackend(Backend):
    """``strategy``: ``"auto"`` (:func:`choose_strategy`) or one of :data:`STRATEGIES`."""

    def __init__(self, strategy: str = "auto"):
        if strategy not in ("auto", *STRATEGIES):
            raise ValueError(f"strategy: expected 'auto' or one of {list(STRATEGIES)}, got {strategy!r}")
        self.strategy = strategy
        self.name = "numba" if strategy == "auto" else f"numba:{strategy}"

    def unavailable_reason(self):
        try:  # numba's np.dot calls the BLAS that scipy exposes
            import scipy.linalg.cython_blas  # noqa: F401
        except ImportError as exc:
            return f"numba's np.dot needs scipy: {exc}"
        return None

    def prepare(self, spec, weights):
        prepared = NumbaPrepared(spec, weights, self.strategy)
        # compile (or load from the disk cache) this dtype's signatures now
        dt = spec.np_dtype
        x = np.zeros((1, 1, 1), dt)
        s = np.zeros((1, 1), dt)
        b = np.zeros(1, dt)
        for name in STRATEGIES if self.strategy == "auto" else (self.strategy,):
            LAYERS[name](0, x, s, s, s, s, b, b, False)
        return prepared
