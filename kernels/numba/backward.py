"""Backpropagation through time of one layer in one direction, from the gates its forward kept.

The forward (:mod:`kernels.numba.forward`) kept each step's gate activations and LSTM's c_t and
tanh(c_t) (:mod:`kernels.numba.layout`, "Keeping the gates"); the Elman cells' derivative reads the
output.  So the backward does no product over all steps before its walk: it walks the steps
backwards with one product per step for dh (two with a projection: dm = dh W_hr first), keeping
every step's gate gradients; the weight and input gradients are then one product each over all
steps (as cuDNN and haste accumulate them).  ``blas``: every product through the BLAS; ``fused``:
the products over all steps through the BLAS, the per-step ones as loops on blocks of rows;
``parallel``: no BLAS, blocks of rows over threads where numba has more than one.  A row that does
not run a step (variable-length batches, kernels.stack.Packing) gets zero gate gradients there,
and its dh and dc pass the step unchanged.

The sums over all T*B rows (the weight and bias gradients) are not one running float32 sum: its
error grows as sqrt(T*B) ulps, 1.2e-4 of the scale at T*B = 1.28e6 (numba#2855, #3702 are of that
kind), in loops and in MKL's GEMM alike.  They are taken in blocks of SUM_BLOCK rows, each summed
in the dtype and added into float64 (:func:`_product_tn`, :func:`_sum_rows`).
"""

from __future__ import annotations

import numba
import numpy as np

from .forward import BLAS, LANES, PARALLEL, PROJECT_ROWS, ROW_BLOCK, accumulate, accumulate_at, running, through_prange
from .lanes import lanes_backward
from .cells import gru_grads, lstm_grads, relu_grad, tanh_grad
from .jit import JIT, LSTM, RNN_RELU, RNN_TANH, mm, mm_tn

#: Rows per block of the sums over all T*B rows (:func:`_product_tn`, :func:`_sum_rows`): each
#: block is summed in the dtype (by the BLAS or by loops) and blocks are added in float64, so a
#: float32 sum errs by ~sqrt(SUM_BLOCK) ulps whatever T*B; the float64 additions cost one pass
#: over the result per block.
SUM_BLOCK = 2048


@numba.njit(inline="always", **JIT)
def _product_tn_loops(out, a, b):
    """``out = a^T @ b`` as loops, for ``a`` (K, M), ``b`` (K, N), ``out`` (M, N) C-contiguous, K
    small (below :data:`kernels.numba.forward.PROJECT_ROWS`): row by row of ``out``, the first
    row of ``b`` setting it and the others adding to it while it is in L1, so ``out`` is written
    once and never zeroed first (a weight gradient is megabytes: a pass over it per k, or one
    that only zeroes it, was most of a T = 1 backward's time); each element sums k in order."""
    if a.shape[0] == 0:
        out[:] = 0
        return
    depth, width = a.shape[0], b.shape[1]
    for m in range(a.shape[1]):
        a0m = a[0, m]
        for j in range(width):
            out[m, j] = a0m * b[0, j]
        k = 1
        while k + 4 <= depth:  # four rows of b per pass over the row of out: a quarter of its loads and stores
            a_0, a_1, a_2, a_3 = a[k, m], a[k + 1, m], a[k + 2, m], a[k + 3, m]
            for j in range(width):
                out[m, j] = out[m, j] + a_0 * b[k, j] + a_1 * b[k + 1, j] + a_2 * b[k + 2, j] + a_3 * b[k + 3, j]
            k += 4
        while k < depth:
            akm = a[k, m]
            for j in range(width):
                out[m, j] += akm * b[k, j]
            k += 1


@numba.njit(inline="always", **JIT)
def _sum_rows_into(out, a, k0, k1):
    """``out += a[k0:k1].sum(axis=0)``, row after row."""
    for k in range(k0, k1):
        for j in range(a.shape[1]):
            out[j] += a[k, j]


@numba.njit(**JIT)
def _sum_rows(a, out):
    """``out = a.sum(axis=0)`` for ``a`` (K, N) (K = T*B rows); beyond :data:`SUM_BLOCK` rows, in
    blocks of that many rows summed in the dtype, each added into a float64 total."""
    depth, width = a.shape
    out[:] = 0
    if depth <= SUM_BLOCK:
        _sum_rows_into(out, a, 0, depth)
        return
    total = np.zeros(width, np.float64)
    part = np.empty(width, a.dtype)
    for k0 in range(0, depth, SUM_BLOCK):
        part[:] = 0
        _sum_rows_into(part, a, k0, min(k0 + SUM_BLOCK, depth))
        for j in range(width):
            total[j] += part[j]
    for j in range(width):
        out[j] = total[j]


@numba.njit(**JIT)
def _product(fn, use_blas, a, b, out, beta):
    """``out = a @ b + beta * out`` (beta 0 or 1), through the BLAS or as loops."""
    if use_blas:
        mm(fn, a, b, out, beta)
    else:
        if beta == 0:
            out[:] = 0
        accumulate(out, a, b, a.shape[0])


@numba.njit(inline="always", **JIT)
def _product_tn_block(fn, use_blas, a, b, out):
    """``out = a^T @ b``, through the BLAS or as loops, in one sum."""
    if use_blas:
        mm_tn(fn, a, b, out)
    else:
        _product_tn_loops(out, a, b)


@numba.njit(**JIT)
def _product_tn(fn, use_blas, a, b, out):
    """``out = a^T @ b`` for ``a`` (K, M), ``b`` (K, N), through the BLAS or as loops; beyond
    :data:`SUM_BLOCK` rows, one product per block of rows, added into a float64 total (a BLAS too
    sums a tall product's K in one running sum: MKL's float32 dW_hh erred by 1.2e-4 of its scale at
    K = 1.28e6)."""
    depth = a.shape[0]
    if depth <= SUM_BLOCK:
        _product_tn_block(fn, use_blas, a, b, out)
        return
    total = np.zeros(out.shape, np.float64)
    for k0 in range(0, depth, SUM_BLOCK):
        k1 = min(k0 + SUM_BLOCK, depth)
        _product_tn_block(fn, use_blas, a[k0:k1], b[k0:k1], out)
        for m in range(out.shape[0]):
            for j in range(out.shape[1]):
                total[m, j] += out[m, j]
    for m in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[m, j] = total[m, j]


@numba.njit(inline="always", **JIT)
def _seed_rows(dh, d_out, off, dhp, t, r0, r1):
    """Rows ``r0:r1`` of step ``t`` (those that run it): ``d_out[t]`` (columns ``off:``) added to
    dh, the gradient of h_t carried from later steps; with a projection (``dhp`` not empty) dh
    kept in ``dhp[t]`` for the gradient of W_hr."""
    for b in range(r0, r1):
        for j in range(dh.shape[1]):
            dh[b, j] += d_out[t, b, off + j]
        if dhp.size:
            for j in range(dh.shape[1]):
                dhp[t, b, j] = dh[b, j]


@numba.njit(inline="always", **JIT)
def _idle_rows(dgx3, dgh3, dhp, t, r0, r1):
    """Rows ``r0:r1``, which do not run step ``t``: zero gate gradients (and zero dh for W_hr's)."""
    for b in range(r0, r1):
        dgx3[t, b] = 0
        dgh3[t, b] = 0
        if dhp.size:
            dhp[t, b] = 0


@numba.njit(inline="always", **JIT)
def _step_rows(mode, steps, t, reverse, active, r0, r1, g3, ghn, out, off, hprev, cs, tc, c0, dm, dh, dc, dgx3, dgh3):
    """Batch rows ``r0:r1`` of step ``t`` (rows that run it) backwards: from dm (the gradient of
    the cell's output at step t: dh + d_out[t], times W_hr with a projection, else the very array
    ``dh``) and dc, the gate gradients ``dgx3[t, b]`` (of the ``x W_ih^T + b_ih`` part) and
    ``dgh3[t, b]`` (of the ``h W_hh^T + b_hh`` part; the same array as ``dgx3`` except for GRU);
    ``dh[b]`` becomes the direct part of dh_{t-1} (the product with W_hh is added by the caller)
    and ``dc[b]`` becomes dc_{t-1}.  ``g3`` (T, B, G, H): the kept gates; c_{t-1} is
    ``cs[before, b]`` where the row ran the step before, else c0.  The derivatives of the PyTorch
    docs' equations, as in :mod:`kernels.numpy_backend`.

    The loop over rows is inside each branch of ``mode``, not around a call per row: an inlined
    call with array arguments costs an atomic increment and decrement of each array's count per
    call (:func:`kernels.numba.forward._update`)."""
    before = t + 1 if reverse else t - 1
    first = (t == steps - 1) if reverse else (t == 0)
    hidden = dc.shape[1]
    if mode == RNN_TANH:
        for b in range(r0, r1):
            for j in range(hidden):
                dgx3[t, b, 0, j] = tanh_grad(dm[b, j], out[t, b, off + j])
                dh[b, j] = 0
    elif mode == RNN_RELU:
        for b in range(r0, r1):
            for j in range(hidden):
                dgx3[t, b, 0, j] = relu_grad(dm[b, j], out[t, b, off + j])
                dh[b, j] = 0
    elif mode == LSTM:
        for b in range(r0, r1):
            started = (not first) and b < active[before]
            for j in range(hidden):
                cp = cs[before, b, j] if started else c0[b, j]
                dgx3[t, b, 0, j], dgx3[t, b, 1, j], dgx3[t, b, 2, j], dgx3[t, b, 3, j], dc[b, j] = lstm_grads(
                    dm[b, j], dc[b, j], g3[t, b, 0, j], g3[t, b, 1, j], g3[t, b, 2, j], g3[t, b, 3, j], cp,
                    tc[t, b, j])
            for j in range(dh.shape[1]):  # h_size wide: P with a projection (dm is then its own array)
                dh[b, j] = 0
    else:  # GRU
        for b in range(r0, r1):
            for j in range(hidden):
                da_r, da_z, da_n, dh[b, j] = gru_grads(dm[b, j], g3[t, b, 0, j], g3[t, b, 1, j], g3[t, b, 2, j],
                                                       ghn[t, b, j], hprev[t, b, j])
                dgx3[t, b, 0, j], dgx3[t, b, 1, j], dgx3[t, b, 2, j] = da_r, da_z, da_n
                dgh3[t, b, 0, j], dgh3[t, b, 1, j], dgh3[t, b, 2, j] = da_r, da_z, da_n * g3[t, b, 0, j]


@numba.njit(inline="always", **JIT)
def _backward_block(mode, g3, ghn, out, off, hprev, cs, tc, c0, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh, w_hr,
                    active, reverse, r0, r1):
    """Rows ``r0:r1`` through every step backwards with the per-step products dm = dh W_hr (with a
    projection) and dh += dgh_t W_hh as loops: no BLAS call, no allocation and no view per step."""
    steps, batch = dgh.shape[0], dgh.shape[1]
    dgh2 = dgh.reshape(steps * batch, dgh.shape[2])
    for s in range(steps):
        t = s if reverse else steps - 1 - s
        rows = running(active, t, r0, r1)
        _seed_rows(dh, d_out, off, dhp, t, r0, r0 + rows)
        if w_hr.size:
            _zero_dm(dm, r0, r0 + rows)
            accumulate_at(dm, r0, dh, r0, w_hr, rows)
        _step_rows(mode, steps, t, reverse, active, r0, r0 + rows, g3, ghn, out, off, hprev, cs, tc, c0, dm, dh, dc,
                   dgx3, dgh3)
        _idle_rows(dgx3, dgh3, dhp, t, r0 + rows, r1)
        accumulate_at(dh, r0, dgh2, t * batch + r0, w_hh, rows)


@numba.njit(inline="always", **JIT)
def _zero_dm(dm, r0, r1):
    for b in range(r0, r1):
        for j in range(dm.shape[1]):
            dm[b, j] = 0


@numba.njit(parallel=True, **JIT)
def _backward_parallel(mode, g3, ghn, out, off, hprev, cs, tc, c0, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh, w_hr,
                       active, reverse):
    """The ``parallel`` strategy's walk backwards: blocks of rows over threads; rows never interact
    until the sums over all steps, so the result is deterministic."""
    batch = dh.shape[0]
    for i in numba.prange((batch + ROW_BLOCK - 1) // ROW_BLOCK):
        r0, r1 = i * ROW_BLOCK, min((i + 1) * ROW_BLOCK, batch)
        _backward_block(mode, g3, ghn, out, off, hprev, cs, tc, c0, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh,
                        w_hr, active, reverse, r0, r1)


@numba.njit(**JIT)
def _previous_states(out, off, h0, active, reverse, hprev):
    """``hprev[t]`` = h_{t-1} of every step, in input-time order: the output of the step before,
    or h0 at the step where the row starts (the first, or its last valid one for the reverse
    direction)."""
    steps, batch, size = hprev.shape
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        before = t + 1 if reverse else t - 1
        for b in range(batch):
            if s > 0 and b < active[before]:
                for j in range(size):
                    hprev[t, b, j] = out[before, b, off + j]
            else:
                for j in range(size):
                    hprev[t, b, j] = h0[b, j]


@numba.njit(**JIT)
def layer_backward(strategy, mode, fn, threads, inp, h0, c0, out, off, w_ih, w_hh, w_hr, w_hh_t, w_hr_t, lanes, active,
                   reverse, gates, cs, tc, mk, ghn, d_out, d_off, dh, dc, dm, hprev, dgx, dgh, dhp, dx, dx_beta, dw_ih, dw_hh, db_ih, db_hh,
                   dw_hr):
    """BPTT of one layer, one direction, after its forward kept its gates (the module docstring).

    ``inp`` (T, B, I_l) the layer's input, ``h0`` (B, P), ``c0`` (B, H) (read by LSTM only);
    ``out`` (T, B, W): the layer's output, this direction's in columns ``off:off + P``; ``w_ih``
    (G*H, I_l), ``w_hh`` (G*H, P), ``w_hr`` (P, H) as stored (empty without a projection), ``w_hh_t``
    (P, G*H) and ``w_hr_t`` (H, P) transposed (for ``lanes``); ``lanes``: the ``lanes`` strategy's
    buffers (:func:`kernels.numba.driver._lanes`);
    ``gates``, ``cs``, ``tc``, ``mk``, ``ghn``: what the forward kept; ``d_out`` (T, B, W): the
    gradient of the layer's output, this direction's in columns ``d_off:``; ``dh`` (B, P) and ``dc``
    (B, H): the gradients of h_T and c_T on entry, of h0 and c0 on return; ``dm``, ``hprev``,
    ``dgx``, ``dgh`` (GRU; else ``dgx`` again), ``dhp``: scratch; ``dx`` (T, B, I_l) gets the
    input's gradient (added to it with ``dx_beta`` 1); the weight gradients in ``state_dict``
    shapes.  ``dw_hr`` (P, H) is left alone without a projection."""
    steps, batch = inp.shape[0], inp.shape[1]
    features = inp.shape[2]
    size, hidden = h0.shape[1], c0.shape[1]
    width = w_hh.shape[0]
    gates_n = width // hidden
    rows = steps * batch
    # the products over all steps through the BLAS, but for fewer than PROJECT_ROWS rows (T * B): a
    # BLAS's product of so few rows (a rank-1 weight gradient at T = B = 1) is a fraction of the loops' speed
    big = strategy != PARALLEL and rows >= PROJECT_ROWS
    projecting = w_hr.size > 0
    _previous_states(out, off, h0, active, reverse, hprev)
    g3 = gates.reshape(gates.shape[0], batch, gates_n if gates.size else 0, hidden)
    dgx3 = dgx.reshape(steps, batch, gates_n, hidden)
    dgh3 = dgh.reshape(steps, batch, gates_n, hidden)
    dmm = dm if projecting else dh
    if strategy == BLAS:
        for s in range(steps):
            t = s if reverse else steps - 1 - s
            n = active[t]
            _seed_rows(dh, d_out, d_off, dhp, t, 0, n)
            if projecting:
                mm(fn, dh[:n], w_hr, dmm[:n], 0)
            _step_rows(mode, steps, t, reverse, active, 0, n, g3, ghn, out, off, hprev, cs, tc, c0, dmm, dh, dc, dgx3,
                       dgh3)
            _idle_rows(dgx3, dgh3, dhp, t, n, batch)
            mm(fn, dgh[t, :n], w_hh, dh[:n], 1)
    elif strategy == LANES:
        _, ldg, ldgh, ldh, ldc, ldm = lanes
        lanes_backward(mode, threads, gates, ghn, out, off, hprev, cs, tc, c0, d_out, d_off, dh, dc, dgx3, dgh3, dhp,
                       w_hh_t, w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm)
    elif through_prange(strategy, threads, batch, steps, hidden):
        _backward_parallel(mode, g3, ghn, out, off, hprev, cs, tc, c0, d_out, dh, dmm, dc, dgx3, dgh, dgh3, dhp, w_hh,
                           w_hr, active, reverse)
    else:
        for r0 in range(0, batch, ROW_BLOCK):
            _backward_block(mode, g3, ghn, out, off, hprev, cs, tc, c0, d_out, dh, dmm, dc, dgx3, dgh, dgh3, dhp, w_hh,
                            w_hr, active, reverse, r0, min(r0 + ROW_BLOCK, batch))
    # the sums over all steps: one product each
    dgx2, dgh2 = dgx.reshape(rows, width), dgh.reshape(rows, width)
    _product(fn, big, dgx2, w_ih, dx.reshape(rows, features), dx_beta)
    _product_tn(fn, big, dgx2, inp.reshape(rows, features), dw_ih)
    _product_tn(fn, big, dgh2, hprev.reshape(rows, size), dw_hh)
    if projecting:
        _product_tn(fn, big, dhp.reshape(rows, size), mk.reshape(rows, hidden), dw_hr)
    _sum_rows(dgx2, db_ih)
    _sum_rows(dgh2, db_hh)
