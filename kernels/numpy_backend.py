"""``numpy``: the textbook per-timestep loop, the baseline.

Each cell is the formula of the PyTorch documentation (``nn.RNN``,
``nn.LSTM``, ``nn.GRU``) written with NumPy arrays, one timestep at a time; no
tricks.  Run in float64 it is also the suite's reference (:mod:`kernels.reference`).

The backward pass is the textbook backpropagation through time of that loop:
each cell's forward returns, besides the new state, what its derivative
needs; its ``*_grad`` turns the gradient of the new state into the gradients
of the gate pre-activations, ``dgx`` (of the ``x W_ih^T + b_ih`` part) and
``dgh`` (of the ``h W_hh^T + b_hh`` part; equal to ``dgx`` except for GRU,
whose ``b_hn`` sits inside ``r * (...)``), and the direct part of the state's
gradient.  The layer then walks the steps backwards: ``dx_t = dgx W_ih``,
``dh_{t-1} = direct + dgh W_hh``, ``dW_ih += dgx^T x_t``, ``dW_hh += dgh^T h_{t-1}``.

LSTM with projections (``proj_size``): each step's ``m = o * tanh(c')`` becomes
``h' = m W_hr^T``; backwards, ``dW_hr += dh^T m`` and the cell sees ``dm = dh W_hr``.
Variable-length batches arrive sorted by length (:mod:`kernels.stack`): step t
runs on the first ``active[t]`` rows of the batch, the rest keep their state.
"""

from __future__ import annotations

import numpy as np

from .base import Backend
from .stack import StackPrepared


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def rnn_tanh_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh).  Returns ``(h', None, cache)``."""
    h = np.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
    return h, None, h


def rnn_tanh_grad(dh, dc, h):
    """tanh' = 1 - h'^2."""
    da = dh * (1 - h * h)
    return da, da, 0, None


def rnn_relu_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh).  Returns ``(h', None, cache)``."""
    h = np.maximum(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 0)
    return h, None, h


def rnn_relu_grad(dh, dc, h):
    """relu' = 1 where h' > 0, else 0 (torch's rule, also at 0)."""
    da = np.where(h > 0, dh, 0)
    return da, da, 0, None


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates i, f, g, o (row blocks of W in that order); c' = f*c + i*g; h' = o*tanh(c')."""
    i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
    i, f, g, o = sigmoid(i), sigmoid(f), np.tanh(g), sigmoid(o)
    c_new = f * c + i * g
    tanh_c = np.tanh(c_new)
    return o * tanh_c, c_new, (i, f, g, o, c, tanh_c)


def lstm_grad(dh, dc, cache):
    """dc += dh*o*tanh'(c'); then di = dc*g, df = dc*c, dg = dc*i, do = dh*tanh(c'), each times
    its activation's derivative (sigmoid' = s(1-s), tanh' = 1-t^2); dc_prev = dc*f."""
    i, f, g, o, c, tanh_c = cache
    dc = dc + dh * o * (1 - tanh_c * tanh_c)
    da = np.concatenate([dc * g * i * (1 - i), dc * c * f * (1 - f), dc * i * (1 - g * g),
                         dh * tanh_c * o * (1 - o)], axis=1)
    return da, da, 0, dc * f


def gru_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates r, z, n; n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); h' = (1-z)*n + z*h."""
    x_r, x_z, x_n = np.split(x @ w_ih.T + b_ih, 3, axis=1)
    h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None, (h, r, z, n, h_n)


def gru_grad(dh, dc, cache):
    """dn = dh*(1-z), dz = dh*(h-n), dh_prev gets dh*z directly; through n = tanh(a_n):
    d(x_n) = dn*(1-n^2), d(h_n) = that times r, dr = that times h_n."""
    h, r, z, n, h_n = cache
    da_n = dh * (1 - z) * (1 - n * n)
    da_r = da_n * h_n * r * (1 - r)
    da_z = dh * (h - n) * z * (1 - z)
    return (np.concatenate([da_r, da_z, da_n], axis=1), np.concatenate([da_r, da_z, da_n * r], axis=1),
            dh * z, None)


CELLS = {"rnn_tanh": rnn_tanh_cell, "rnn_relu": rnn_relu_cell, "lstm": lstm_cell, "gru": gru_cell}
GRADS = {"rnn_tanh": rnn_tanh_grad, "rnn_relu": rnn_relu_grad, "lstm": lstm_grad, "gru": gru_grad}


def _steps(timesteps: int, reverse: bool):
    """The order a direction visits the steps in."""
    return range(timesteps - 1, -1, -1) if reverse else range(timesteps)


def _with_rest(new, old, rows):
    """``new`` (the first ``rows`` rows' next state) followed by ``old``'s other rows, which keep theirs."""
    return new if rows == len(old) else np.concatenate([new, old[rows:]])


class NumpyPrepared(StackPrepared):
    def _loop(self, x, h, c, params, reverse, active, keep):
        cell = CELLS[self.spec.mode]
        w_hr = params[4]
        batch = x.shape[1]
        out = np.empty(x.shape[:2] + h.shape[1:], h.dtype)
        kept = [None] * x.shape[0] if keep else None
        # exp(-v) -> inf gives sigmoid 0, and inf - inf -> nan, as torch computes them, silently as torch does
        with np.errstate(over="ignore", invalid="ignore"):
            for t in _steps(x.shape[0], reverse):
                rows = batch if active is None else active[t]  # the rows still running: a prefix
                h_prev = h[:rows]
                m, c_new, cache = cell(x[t, :rows], h_prev, None if c is None else c[:rows], *params[:4])
                h_new = m if w_hr is None else m @ w_hr.T
                h = _with_rest(h_new, h, rows)
                c = None if c is None else _with_rest(c_new, c, rows)
                out[t, :rows] = h_new
                out[t, rows:] = 0
                if keep:
                    kept[t] = (h_prev, m, cache)
        return out, h, c, kept

    def layer(self, x, h, c, params, reverse, active):
        return self._loop(x, h, c, params, reverse, active, keep=False)[:3]

    def layer_train(self, x, h, c, params, reverse, active):
        out, h, c, kept = self._loop(x, h, c, params, reverse, active, keep=True)
        return out, h, c, (x, kept)

    def layer_backward(self, cache, d_out, d_h, d_c, params, reverse):
        x, kept = cache
        w_ih, w_hh, b_ih, b_hh, w_hr = params
        grad = GRADS[self.spec.mode]
        dx = np.zeros_like(x)
        dw_ih, dw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
        db_ih, db_hh = np.zeros_like(b_ih), np.zeros_like(b_hh)
        dw_hr = None if w_hr is None else np.zeros_like(w_hr)
        d_h = d_h.copy()
        d_c = None if d_c is None else d_c.copy()
        with np.errstate(over="ignore", invalid="ignore"):
            for t in reversed(_steps(x.shape[0], reverse)):
                h_prev, m, step_cache = kept[t]
                rows = len(h_prev)  # the rows that ran step t; the others' gradients pass it unchanged
                dh = d_h[:rows] + d_out[t, :rows]
                if w_hr is not None:
                    dw_hr += dh.T @ m
                    dh = dh @ w_hr
                dgx, dgh, direct, dc = grad(dh, None if d_c is None else d_c[:rows], step_cache)
                dx[t, :rows] = dgx @ w_ih
                dw_ih += dgx.T @ x[t, :rows]
                dw_hh += dgh.T @ h_prev
                db_ih += dgx.sum(axis=0)
                db_hh += dgh.sum(axis=0)
                d_h[:rows] = direct + dgh @ w_hh
                if d_c is not None:
                    d_c[:rows] = dc
        return dx, d_h, d_c, (dw_ih, dw_hh, db_ih, db_hh, dw_hr)


class NumpyBackend(Backend):
    name = "numpy"

    def passes(self):
        return ("forward", "forward_backward")

    def unavailable_for_lengths(self, spec):
        return None

    def prepare(self, spec, weights):
        return NumpyPrepared(spec, weights)
