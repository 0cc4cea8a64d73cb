"""The scalar arithmetic of each cell, forward and backward, shared by every strategy.

Each function takes and returns scalars of one hidden unit of one batch row: the strategies differ
in how they lay out and loop over units and rows (batch-major rows of G*H, or :mod:`kernels.numba.lanes`'
batch-minor columns), never in the arithmetic, which lives here once.  The equations are the
PyTorch docs' for nn.LSTM and nn.GRU; their derivatives are those of :mod:`kernels.numpy_backend`.
All inline: compiled into each loop that calls them, where LLVM vectorizes them with it.
"""

from __future__ import annotations

import numba

from .jit import JIT, act_tanh, sigmoid


@numba.njit(inline="always", **JIT)
def lstm_c(i, f, g, c):
    """LSTM's c_t from its gates' activations and c_{t-1}."""
    return f * c + i * g


@numba.njit(inline="always", **JIT)
def lstm_gates(ai, af, ag, ao, c):
    """LSTM's unit from its four pre-activations and c_{t-1}: the gates' activations i, f, g, o,
    c_t and tanh(c_t) (the output is ``o * tanh(c_t)``)."""
    i, f, g, o = sigmoid(ai), sigmoid(af), act_tanh(ag), sigmoid(ao)
    ct = lstm_c(i, f, g, c)
    return i, f, g, o, ct, act_tanh(ct)


@numba.njit(inline="always", **JIT)
def gru_n(xn, r, hn):
    """GRU's candidate n from x W_in^T + b_in, r and W_hn h + b_hn."""
    return act_tanh(xn + r * hn)


@numba.njit(inline="always", **JIT)
def gru_h(n, z, h):
    """GRU's h_t = (1 - z) * n + z * h_{t-1}, as ATen's GRU cell writes it."""
    return n + z * (h - n)


@numba.njit(inline="always", **JIT)
def relu(v):
    """max(v, 0), with NaN staying NaN, as torch.relu."""
    return type(v)(0.0) if v < 0.0 else v


@numba.njit(inline="always", **JIT)
def tanh_grad(dh, h):
    """The gradient of a tanh cell's pre-activation from that of its output ``h``."""
    return dh * (type(h)(1.0) - h * h)


@numba.njit(inline="always", **JIT)
def relu_grad(dh, h):
    """The gradient of a relu cell's pre-activation (torch: 0 at 0)."""
    return dh if h > 0 else type(h)(0.0)


@numba.njit(inline="always", **JIT)
def lstm_grads(dh, dc, i, f, g, o, c_prev, tanh_c):
    """LSTM's step backwards: from the gradients ``dh`` of h_t and ``dc`` of c_t (from later steps),
    the gates' activations, c_{t-1} and tanh(c_t): the gradients of the four pre-activations and
    of c_{t-1}."""
    one = type(i)(1.0)
    dct = dc + dh * o * (one - tanh_c * tanh_c)
    return (dct * g * i * (one - i), dct * c_prev * f * (one - f), dct * i * (one - g * g),
            dh * tanh_c * o * (one - o), dct * f)


@numba.njit(inline="always", **JIT)
def gru_grads(dh, r, z, n, hn, h_prev):
    """GRU's step backwards: from the gradient ``dh`` of h_t, the gates' activations, W_hn h + b_hn
    and h_{t-1}: the gradients of the pre-activations r, z, n (of the x part; the h part's n is
    ``da_n * r``) and the direct part of dh_{t-1}."""
    one = type(r)(1.0)
    da_n = dh * (one - z) * (one - n * n)
    da_r = da_n * hn * r * (one - r)
    da_z = dh * (h_prev - n) * z * (one - z)
    return da_r, da_z, da_n, dh * z
