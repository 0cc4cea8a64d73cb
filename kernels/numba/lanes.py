"""The ``lanes`` strategy: the batch in the vector lanes, forward and backward, as loops.

The batch-major strategies (:mod:`kernels.numba.forward`) run each batch row's G*H outputs as the
vector loop: 8 wide at H = 8, so a small cell uses a fraction of a 16-lane float32 vector and pays
a loop's overhead per row.  Here a step's work is batch-minor: the state ``lh`` (P, B), ``lc``
(H, B), the pre-activations ``la`` (G*H, B), and every inner loop runs over a block of batch
columns (64 of them: four AVX-512 vectors of float32), whatever H:

* forward, per step: ``la = b + W_ih x_t^T + W_hh h^T`` (:func:`kernels.numba.forward.accumulate_cols`
  with the weights as stored, (G*H, I) and (G*H, P), times the input and state transposed), the
  gates column by column, then with a projection ``h^T = W_hr m^T``;
* backward, per step: the gate gradients column by column into ``la`` (``lah`` for GRU's h part),
  then ``dh^T += W_hh^T dg^T`` with W_hh^T as stored for the batch-major forward, (P, G*H).

The products over all steps (the weight and input gradients) are the batch-major ones of
:mod:`kernels.numba.backward`, through the BLAS.

**What is batch-minor and what is not**: the layer's input and output, h0/c0, h_n/c_n, the
backward's ``hprev``, the gate gradients ``dgx``/``dgh`` and ``dhp``, and with a projection the
kept cell output ``mk`` keep the batch-major layouts every strategy shares (they meet the BLAS and
the layers above); a step transposes its slice of them on the way in or out.  The gates this
strategy's forward keeps for its own backward (``gates``, ``cs``, ``tc``, ``ghn``) are stored
batch-minor, (T, G*H, B) and (T, H, B) in the same buffers: only a ``lanes`` backward reads them,
and the backward recomputes a pair's gates with the same strategy.

Variable-length batches: rows are sorted by decreasing length, so step t runs columns
``:active[t]`` (:func:`_running_cols`); the other columns keep their state and output zeros.
Columns never interact: a block's result is the same whatever the blocking.
"""

from __future__ import annotations

import numba
import numpy as np

from .cells import gru_grads, gru_h, gru_n, lstm_gates, lstm_grads, relu, relu_grad, tanh_grad
from .forward import accumulate_cols
from .jit import GRU, JIT, LSTM, RNN_RELU, RNN_TANH, act_tanh, sigmoid

#: Batch columns per block: four AVX-512 vectors of float32, each row of a step's buffers 256 bytes.
LANE_BLOCK = 64


@numba.njit(inline="always", **JIT)
def _running_cols(active, t, c0, c1):
    """The end of the columns of block ``c0:c1`` that run step ``t`` (rows sorted by length)."""
    return min(max(active[t], c0), c1)


@numba.njit(inline="always", **JIT)
def _to_lanes(dst, src, c0, c1):
    """``dst[:, c0:c1] = src[c0:c1].T`` for ``src`` (B, N), ``dst`` (N, B)."""
    c0, c1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    for b in range(c0, c1):
        for j in range(dst.shape[0]):
            dst[j, b] = src[b, j]


@numba.njit(inline="always", **JIT)
def _from_lanes(dst, src, c0, c1):
    """``dst[c0:c1] = src[:, c0:c1].T`` for ``src`` (N, B), ``dst`` (B, N)."""
    c0, c1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    for b in range(c0, c1):
        for j in range(src.shape[0]):
            dst[b, j] = src[j, b]


@numba.njit(inline="always", **JIT)
def _zero_cols(a, c0, c1):
    c0, c1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    for j in range(a.shape[0]):
        for b in range(c0, c1):
            a[j, b] = 0


@numba.njit(inline="always", **JIT)
def _gates_lanes(mode, la3, lah3, cell, lc, c0, c1, keep, t, cs, tc, ghn):
    """Columns ``c0:c1`` of one step: ``la3`` (G, H, B) holds the pre-activations (GRU: of the x
    part, ``lah3`` the h part with b_hh) and becomes the gates' activations; ``cell`` (H, B) the
    cell's output, ``lc`` (H, B) LSTM's c; with ``keep``, c_t, tanh(c_t) and W_hn h + b_hn go to
    ``cs``, ``tc``, ``ghn`` (T, H, B)."""
    c0, c1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    hidden = lc.shape[0]
    if mode == RNN_TANH:
        for j in range(hidden):
            for b in range(c0, c1):
                cell[j, b] = act_tanh(la3[0, j, b])
    elif mode == RNN_RELU:
        for j in range(hidden):
            for b in range(c0, c1):
                cell[j, b] = relu(la3[0, j, b])
    elif mode == LSTM:
        for j in range(hidden):  # a scalar function per unit: a call with arrays costs their counts per call
            if keep:
                for b in range(c0, c1):
                    i, f, g, o, cj, tj = lstm_gates(la3[0, j, b], la3[1, j, b], la3[2, j, b], la3[3, j, b], lc[j, b])
                    la3[0, j, b], la3[1, j, b], la3[2, j, b], la3[3, j, b] = i, f, g, o
                    lc[j, b], cell[j, b], cs[t, j, b], tc[t, j, b] = cj, o * tj, cj, tj
            else:
                for b in range(c0, c1):
                    i, f, g, o, cj, tj = lstm_gates(la3[0, j, b], la3[1, j, b], la3[2, j, b], la3[3, j, b], lc[j, b])
                    la3[0, j, b], la3[1, j, b], la3[2, j, b], la3[3, j, b] = i, f, g, o
                    lc[j, b], cell[j, b] = cj, o * tj
    else:  # GRU: r, z, n
        for j in range(hidden):
            for b in range(c0, c1):
                r = sigmoid(la3[0, j, b] + lah3[0, j, b])
                z = sigmoid(la3[1, j, b] + lah3[1, j, b])
                n = gru_n(la3[2, j, b], r, lah3[2, j, b])
                la3[0, j, b], la3[1, j, b], la3[2, j, b] = r, z, n
                cell[j, b] = gru_h(n, z, cell[j, b])
            if keep:
                for b in range(c0, c1):
                    ghn[t, j, b] = lah3[2, j, b]


@numba.njit(inline="always", **JIT)
def _forward_block(mode, inp, h, c, w_ih, w_hh, bx, bh, w_hr, out, off, active, reverse, keep, gk, cs, tc, mk, ghn,
                   zero_h0, lx, la, lah, lh, lc, lm, c0, c1):
    """Batch columns ``c0:c1`` through every step (the module docstring).  ``inp`` (T, B, I_l),
    ``h`` (B, P) and ``c`` (B, H) the state, run in place; ``w_ih`` (G*H, I_l), ``w_hh`` (G*H, P),
    ``w_hr`` (P, H) as stored; ``out`` (T, B, W), this direction's columns from ``off``; with
    ``keep``, ``gk`` (T, G*H, B) gets the gates, ``mk`` (T, B, H) the cell's output."""
    steps, width, hidden = inp.shape[0], la.shape[0], lc.shape[0]
    size, features = lh.shape[0], inp.shape[2]
    gates = width // hidden
    la3, lah3 = la.reshape(gates, hidden, la.shape[1]), lah.reshape(lah.shape[0] // hidden, hidden, lah.shape[1])
    projecting = w_hr.size > 0
    cell = lm if projecting else lh
    lx = lx[:features]  # the buffer is as wide as the widest layer's input
    u0, u1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    _to_lanes(lh, h, c0, c1)
    _to_lanes(lc, c, c0, c1)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        n = _running_cols(active, t, c0, c1)
        un = np.uint64(n)
        for b in range(u0, un):
            for i in range(features):
                lx[i, b] = inp[t, b, i]
        for g in range(width):
            for b in range(u0, un):
                la[g, b] = bx[g]
        accumulate_cols(la, 0, w_ih, 0, lx, width, c0, n)
        if mode == GRU:  # h W_hh^T + b_hh on its own, for r * (W_hn h + b_hn)
            for g in range(width):
                for b in range(u0, un):
                    lah[g, b] = bh[g]
        if not (zero_h0 and s == 0):  # else h = 0 and W_hh finite: the product is exactly zero
            accumulate_cols(lah if mode == GRU else la, 0, w_hh, 0, lh, width, c0, n)
        _gates_lanes(mode, la3, lah3, cell, lc, c0, n, keep, t, cs, tc, ghn)
        if keep and gk.size:
            for g in range(width):
                for b in range(u0, un):
                    gk[t, g, b] = la[g, b]
        if projecting:
            for j in range(size):
                for b in range(u0, un):
                    lh[j, b] = 0
            accumulate_cols(lh, 0, w_hr, 0, lm, size, c0, n)
            if keep:
                for b in range(u0, u1):
                    for j in range(hidden):
                        mk[t, b, j] = lm[j, b] if b < un else 0
        for b in range(u0, u1):
            for j in range(size):
                out[t, b, off + j] = lh[j, b] if b < un else 0
    _from_lanes(h, lh, c0, c1)
    _from_lanes(c, lc, c0, c1)


@numba.njit(parallel=True, **JIT)
def _forward_parallel(mode, inp, h, c, w_ih, w_hh, bx, bh, w_hr, out, off, active, reverse, keep, gk, cs, tc, mk,
                      ghn, zero_h0, lx, la, lah, lh, lc, lm, block):
    """Blocks of ``block`` columns over numba's threads, each through every step."""
    batch = h.shape[0]
    for i in numba.prange((batch + block - 1) // block):
        c0 = i * block
        _forward_block(mode, inp, h, c, w_ih, w_hh, bx, bh, w_hr, out, off, active, reverse, keep, gk, cs, tc, mk,
                       ghn, zero_h0, lx, la, lah, lh, lc, lm, c0, min(c0 + block, batch))


@numba.njit(inline="always", **JIT)
def lane_block(batch, threads):
    """Columns per block: :data:`LANE_BLOCK`, or fewer (a multiple of 16) so that every thread
    gets a block."""
    if threads <= 1:
        return LANE_BLOCK
    per = (batch + threads - 1) // threads
    return max(16, min(LANE_BLOCK, (per + 15) // 16 * 16))


@numba.njit(**JIT)
def lanes_forward(mode, threads, inp, w_ih, w_hh, bx, bh, w_hr, h, c, out, off, active, reverse, keep, gates, cs, tc,
                  mk, ghn, zero_h0, lx, la, lah, lh, lc, lm):
    """One layer, one direction, forward (the module docstring); ``gates`` (T, B, G*H), ``cs``,
    ``tc``, ``ghn`` (T, B, H): the kept buffers, written batch-minor ((T, G, H, B), (T, H, B))."""
    batch, width = inp.shape[1], la.shape[0]
    gk = gates.reshape(gates.shape[0], width if gates.size else 0, batch)
    cs3 = cs.reshape(cs.shape[0], cs.shape[2], cs.shape[1])
    tc3 = tc.reshape(tc.shape[0], tc.shape[2], tc.shape[1])
    ghn3 = ghn.reshape(ghn.shape[0], ghn.shape[2], ghn.shape[1])
    block = lane_block(batch, threads)
    # through the parallel loop even on one thread and one block: numba compiles its body several
    # times faster than the same call outside it (LSTM T = 100, B = 64, H = 8: 1.2 us a step
    # against 6.3), which pays its launch (~1 us) back from T = 1
    _forward_parallel(mode, inp, h, c, w_ih, w_hh, bx, bh, w_hr, out, off, active, reverse, keep, gk, cs3, tc3, mk,
                      ghn3, zero_h0, lx, la, lah, lh, lc, lm, block)


@numba.njit(inline="always", **JIT)
def _backward_block(mode, g4, ghn, out, off, hprev, cs, tc, c0_, d_out, d_off, dh, dc, dgx3, dgh3, dhp, w_hh_t,
                    w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm, c0, c1):
    """Batch columns ``c0:c1`` through every step backwards (the module docstring): ``dh`` (B, P)
    and ``dc`` (B, H) from the gradients of h_T and c_T to those of h0 and c0; the gate gradients
    to ``dgx3``/``dgh3`` (T, B, G, H), batch-major for the products over all steps; ``w_hh_t``
    (P, G*H), ``w_hr_t`` (H, P)."""
    steps, hidden, size = dgx3.shape[0], ldc.shape[0], ldh.shape[0]
    width = ldg.shape[0]
    gates = width // hidden
    ldg3 = ldg.reshape(gates, hidden, ldg.shape[1])
    projecting = w_hr_t.size > 0
    dm = ldm if projecting else ldh
    u0, u1 = np.uint64(c0), np.uint64(c1)  # unsigned indexes: no negative-index check in the loops
    _to_lanes(ldh, dh, c0, c1)
    _to_lanes(ldc, dc, c0, c1)
    for s in range(steps):
        t = s if reverse else steps - 1 - s
        before = t + 1 if reverse else t - 1
        first = (t == steps - 1) if reverse else (t == 0)
        n = _running_cols(active, t, c0, c1)
        ended = c0 if first else _running_cols(active, before, c0, n)  # columns that ran the step before
        un, uended = np.uint64(n), np.uint64(ended)
        for j in range(size):
            for b in range(u0, un):
                ldh[j, b] += d_out[t, b, d_off + j]
        if dhp.size:
            for b in range(u0, u1):
                for j in range(size):
                    dhp[t, b, j] = ldh[j, b] if b < un else 0
        if projecting:
            _zero_cols(ldm, c0, n)
            accumulate_cols(ldm, 0, w_hr_t, 0, ldh, hidden, c0, n)
        if mode == RNN_TANH:
            for j in range(hidden):
                for b in range(u0, un):
                    ldg[j, b] = tanh_grad(dm[j, b], out[t, b, off + j])
        elif mode == RNN_RELU:
            for j in range(hidden):
                for b in range(u0, un):
                    ldg[j, b] = relu_grad(dm[j, b], out[t, b, off + j])
        elif mode == LSTM:
            for j in range(hidden):
                for b in range(u0, un):
                    cp = cs[before, j, b] if b < uended else c0_[b, j]
                    ldg3[0, j, b], ldg3[1, j, b], ldg3[2, j, b], ldg3[3, j, b], ldc[j, b] = lstm_grads(
                        dm[j, b], ldc[j, b], g4[t, 0, j, b], g4[t, 1, j, b], g4[t, 2, j, b], g4[t, 3, j, b], cp,
                        tc[t, j, b])
        else:  # GRU
            for j in range(hidden):
                for b in range(u0, un):
                    r = g4[t, 0, j, b]
                    da_r, da_z, da_n, ldh[j, b] = gru_grads(dm[j, b], r, g4[t, 1, j, b], g4[t, 2, j, b], ghn[t, j, b],
                                                            hprev[t, b, j])
                    ldg3[0, j, b], ldg3[1, j, b], ldg3[2, j, b] = da_r, da_z, da_n
                    ldgh[j, b], ldgh[hidden + j, b], ldgh[2 * hidden + j, b] = da_r, da_z, da_n * r
        if mode != GRU:  # GRU's dh_{t-1} direct part was written above
            _zero_cols(ldh, c0, n)
        for b in range(u0, u1):  # batch-major for the products over all steps; zero where idle
            for g in range(gates):
                for j in range(hidden):
                    dgx3[t, b, g, j] = ldg3[g, j, b] if b < un else 0
            if mode == GRU:
                for g in range(gates):
                    for j in range(hidden):
                        dgh3[t, b, g, j] = ldgh[g * hidden + j, b] if b < un else 0
        accumulate_cols(ldh, 0, w_hh_t, 0, ldgh if mode == GRU else ldg, size, c0, n)
    _from_lanes(dh, ldh, c0, c1)
    _from_lanes(dc, ldc, c0, c1)


@numba.njit(parallel=True, **JIT)
def _backward_parallel(mode, g4, ghn, out, off, hprev, cs, tc, c0_, d_out, d_off, dh, dc, dgx3, dgh3, dhp, w_hh_t,
                       w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm, block):
    batch = dh.shape[0]
    for i in numba.prange((batch + block - 1) // block):
        c0 = i * block
        _backward_block(mode, g4, ghn, out, off, hprev, cs, tc, c0_, d_out, d_off, dh, dc, dgx3, dgh3, dhp, w_hh_t,
                        w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm, c0, min(c0 + block, batch))


@numba.njit(**JIT)
def lanes_backward(mode, threads, gates, ghn, out, off, hprev, cs, tc, c0_, d_out, d_off, dh, dc, dgx3, dgh3, dhp,
                   w_hh_t, w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm):
    """The walk backwards of one layer, one direction, from the gates :func:`lanes_forward` kept
    (batch-minor); the arguments as :func:`kernels.numba.backward.layer_backward`'s."""
    batch, hidden = dh.shape[0], dc.shape[1]
    width = ldg.shape[0]
    g4 = gates.reshape(gates.shape[0], width // hidden if gates.size else 0, hidden, batch)
    cs3 = cs.reshape(cs.shape[0], cs.shape[2], cs.shape[1])
    tc3 = tc.reshape(tc.shape[0], tc.shape[2], tc.shape[1])
    ghn3 = ghn.reshape(ghn.shape[0], ghn.shape[2], ghn.shape[1])
    block = lane_block(batch, threads)
    # through the parallel loop even on one thread, as the forward
    _backward_parallel(mode, g4, ghn3, out, off, hprev, cs3, tc3, c0_, d_out, d_off, dh, dc, dgx3, dgh3, dhp, w_hh_t,
                       w_hr_t, active, reverse, ldg, ldgh, ldh, ldc, ldm, block)
