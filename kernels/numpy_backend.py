"""``numpy``: the textbook per-timestep loop, the baseline.

Each cell is the formula of the PyTorch documentation (``nn.RNN``,
``nn.LSTM``, ``nn.GRU``) written with NumPy arrays, one timestep at a time; no
tricks.  Run in float64 it is also the suite's reference (:mod:`kernels.reference`).
"""

from __future__ import annotations

import numpy as np

from .base import Backend
from .stack import StackPrepared


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def rnn_tanh_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """h' = tanh(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return np.tanh(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh), None


def rnn_relu_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """h' = relu(x W_ih^T + b_ih + h W_hh^T + b_hh)."""
    return np.maximum(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 0), None


def lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates i, f, g, o (row blocks of W in that order); c' = f*c + i*g; h' = o*tanh(c')."""
    i, f, g, o = np.split(x @ w_ih.T + b_ih + h @ w_hh.T + b_hh, 4, axis=1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def gru_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    """Gates r, z, n; n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); h' = (1-z)*n + z*h."""
    x_r, x_z, x_n = np.split(x @ w_ih.T + b_ih, 3, axis=1)
    h_r, h_z, h_n = np.split(h @ w_hh.T + b_hh, 3, axis=1)
    r = sigmoid(x_r + h_r)
    z = sigmoid(x_z + h_z)
    n = np.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h, None


CELLS = {"rnn_tanh": rnn_tanh_cell, "rnn_relu": rnn_relu_cell, "lstm": lstm_cell, "gru": gru_cell}


class NumpyPrepared(StackPrepared):
    def layer(self, x, h, c, params, reverse):
        cell = CELLS[self.spec.mode]
        out = np.empty(x.shape[:2] + h.shape[1:], h.dtype)
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        # exp(-v) -> inf gives sigmoid 0, and inf - inf -> nan, as torch computes them, silently as torch does
        with np.errstate(over="ignore", invalid="ignore"):
            for t in steps:
                h, c = cell(x[t], h, c, *params)
                out[t] = h
        return out, h, c


class NumpyBackend(Backend):
    name = "numpy"

    def prepare(self, spec, weights):
        return NumpyPrepared(spec, weights)
