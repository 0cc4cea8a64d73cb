"""The forward pass of one layer in one direction, three strategies, over buffers it is handed.

What each strategy does and when it is chosen is in :mod:`kernels.numba.backend`; the stack around
a layer (layers, directions, states) is :mod:`kernels.numba.driver`'s.  A layer reads its input
``inp`` (T, B, I_l), runs its state ``h`` (B, P) and ``c`` (B, H) in place from h0 to h_T, and
writes its output into columns ``off:off + P`` of ``out`` (T, B, W) -- the layer's output with both
directions side by side, so the directions are concatenated where they are written.  Variable-length
batches arrive sorted by length (:class:`kernels.stack.Packing`): step t runs the first ``active[t]``
rows, the others keep their state and output zeros.

Gates: the pre-activations of every step go to ``gates`` (T, B, G*H) where it is not empty (the
``forward_backward`` pass), else to ``proj``; the cell updates them in place into the activations
(LSTM i, f, g, o; GRU r, z, n), which the backward reads.  With ``keep`` the layer also stores, per
step, LSTM's c_t (``cs``) and tanh(c_t) (``tc``), GRU's W_hn h + b_hn (``ghn``), and with a
projection the cell's output ``o * tanh(c_t)`` (``mk``, zero where a row does not run)
(:mod:`kernels.numba.layout`, "Keeping the gates").

Each choice made for LLVM's vectorizer below was kept because it measured faster (docs/speed.md,
"Numba strategies").
"""

from __future__ import annotations

import numba
import numpy as np

from .cells import gru_h, gru_n, lstm_c, lstm_gates, relu
from .jit import GRU, JIT, LSTM, RNN_RELU, RNN_TANH, act_tanh, mm, mm_packed, mm_tiles, sigmoid

BLAS, FUSED, PARALLEL, LANES = 0, 1, 2, 3
#: Batch rows per block in ``fused`` and ``parallel``: a block's rows share each chunk of W^T
#: while it is in L1.
ROW_BLOCK = 4
#: Below this many rows (T * B) the input projection is loops, not a BLAS call: a BLAS's product of
#: so few rows is a matrix-vector product at a fraction of the loops' speed (OpenBLAS: 5-8 GFLOPS
#: for one row of 1024 by 4096, the loops ~50) plus the call's fixed cost.
PROJECT_ROWS = 16
#: From this much work per step (B * H) the rows' updates after each product of ``blas`` are spread
#: over threads, where the BLAS's threads leave the cores between calls (``Route.openmp``: MKL) and
#: numba has more than one; below it, starting the threads costs more than the rows.
PARALLEL_ROWS = 4096
#: From this many steps, below :data:`LONG_STEPS_HIDDEN` units, even one block of rows goes through the
#: parallel loop on one thread, where its body compiles to faster code than the plain loop's and the
#: launch (~1 us) is paid back: rnn_tanh, B = 1, H = 8, T = 1000 ran 134 ns per step in the plain loop,
#: 49 in the parallel one (docs/numba.md, forward and backward).  From H = 256 a step streams W_hh
#: from L2 or L3 and the plain loop measured as fast or faster.  :func:`through_prange`.
LONG_STEPS = 16
LONG_STEPS_HIDDEN = 256


@numba.njit(inline="always", **JIT)
def _update(mode, ax, ax3, ah3, r0, q0, h, c, b0, rows, keep, t, cs, tc, ghn):
    """Rows ``r0:r0 + rows`` of ``ax``, ``q0:`` of ``ah3``, batch rows ``b0:``: their state update in
    place, as in the PyTorch docs' equations for nn.RNN, nn.LSTM and nn.GRU.  ``ax`` (R, G*H) and
    ``ax3`` (R, G, H), two views of one buffer: the gate pre-activations, both products and both
    biases, except for GRU, where they hold x W_ih^T + b_ih and ``ah3`` (Q, G, H) holds
    h W_hh^T + b_hh (b_hn stays inside r * (...)).  ``ax`` becomes the gates' activations; ``h``
    (B, H) the cell's output, ``c``.  With ``keep``, step ``t``'s c_t, tanh(c_t) (LSTM) and
    W_hn h + b_hn (GRU) are stored.

    Written for LLVM's vectorizer and numba's reference counting: the loop over rows is inside
    each branch of ``mode``, not around a call per row (an inlined call with array arguments
    costs an atomic increment and decrement of each array's count per call, which numba does
    not prune across these branches; docs/numba.md has what that cost); a gate is indexed as
    ``ax3[r, gate, j]``, not ``ax[r, 2 * H + j]`` (numba's negative-index check would stay in
    the loop) and not through a view per gate."""
    hidden = h.shape[1]
    if mode == RNN_TANH:
        for i in range(rows):
            r, b = r0 + i, b0 + i
            for j in range(hidden):
                h[b, j] = act_tanh(ax[r, j])
    elif mode == RNN_RELU:
        for i in range(rows):
            r, b = r0 + i, b0 + i
            for j in range(hidden):
                h[b, j] = relu(ax[r, j])
    elif mode == LSTM:  # gates in PyTorch's order i, f, g, o
        for i in range(rows):
            r, b = r0 + i, b0 + i
            # all four activations in one loop over the 4H columns: sigmoid(v) = 0.5 * tanh(0.5 * v) + 0.5
            # and tanh(v) = 1 * tanh(1 * v) + 0 (exactly), chosen by column; one loop of 4H instead of
            # four of H keeps small H on the vector path (a loop of 8 runs scalar)
            for j in range(4 * hidden):
                v = ax[r, j]
                s = type(v)(1.0) if (j >= 2 * hidden) and (j < 3 * hidden) else type(v)(0.5)
                ax[r, j] = s * act_tanh(s * v) + (type(v)(1.0) - s)
            if keep:
                for j in range(hidden):
                    cj = lstm_c(ax3[r, 0, j], ax3[r, 1, j], ax3[r, 2, j], c[b, j])
                    c[b, j] = cj
                    tj = act_tanh(cj)
                    cs[t, b, j] = cj
                    tc[t, b, j] = tj
                    h[b, j] = ax3[r, 3, j] * tj
            else:
                for j in range(hidden):
                    cj = lstm_c(ax3[r, 0, j], ax3[r, 1, j], ax3[r, 2, j], c[b, j])
                    c[b, j] = cj
                    h[b, j] = ax3[r, 3, j] * act_tanh(cj)
    else:  # GRU: r, z, n
        for i in range(rows):
            r, q, b = r0 + i, q0 + i, b0 + i
            for j in range(hidden):
                ax3[r, 0, j] = sigmoid(ax3[r, 0, j] + ah3[q, 0, j])
            for j in range(hidden):
                ax3[r, 1, j] = sigmoid(ax3[r, 1, j] + ah3[q, 1, j])
            for j in range(hidden):
                n = gru_n(ax3[r, 2, j], ax3[r, 0, j], ah3[q, 2, j])
                ax3[r, 2, j] = n
                h[b, j] = gru_h(n, ax3[r, 1, j], h[b, j])
            if keep:
                for j in range(hidden):
                    ghn[t, b, j] = ah3[q, 2, j]


@numba.njit(inline="always", **JIT)
def accumulate_cols(acc, a0, v, v0, w, rows, c0, c1):
    """``acc[a0:a0 + rows, c0:c1] += v[v0:v0 + rows] @ w[:, c0:c1]`` for ``acc`` (R, N), ``v``
    (R', K), ``w`` (K, N) C-contiguous, rows given by offsets (no view made: views cost reference
    counting per step).

    k runs in chunks of 8 (then 4, then 1), in the order of the plain sum: each row of ``acc`` is
    loaded and stored once per 8 multiply-adds (the plain loop stores after every one and was
    store-bound; chunks of 4 loaded and stored it twice as often), and the rows of ``w`` stay in L1
    while every row of the block uses them.  The inner loop runs over columns ``c0:c1`` with no
    reduction, so it vectorizes without reassociation: the batch-major strategies take every
    column (G*H outputs), :mod:`kernels.numba.lanes` a block of batch columns."""
    depth = w.shape[0]
    c0, c1 = np.uint64(c0), np.uint64(c1)  # unsigned: numba then checks no negative index in the loop
    k = 0
    while k + 8 <= depth:
        for r in range(rows):
            a, i = a0 + r, v0 + r
            v_0, v_1, v_2, v_3 = v[i, k], v[i, k + 1], v[i, k + 2], v[i, k + 3]
            v_4, v_5, v_6, v_7 = v[i, k + 4], v[i, k + 5], v[i, k + 6], v[i, k + 7]
            for j in range(c0, c1):
                acc[a, j] = (acc[a, j] + v_0 * w[k, j] + v_1 * w[k + 1, j] + v_2 * w[k + 2, j] + v_3 * w[k + 3, j]
                             + v_4 * w[k + 4, j] + v_5 * w[k + 5, j] + v_6 * w[k + 6, j] + v_7 * w[k + 7, j])
        k += 8
    while k + 4 <= depth:
        for r in range(rows):
            a, i = a0 + r, v0 + r
            v_0, v_1, v_2, v_3 = v[i, k], v[i, k + 1], v[i, k + 2], v[i, k + 3]
            for j in range(c0, c1):
                acc[a, j] = acc[a, j] + v_0 * w[k, j] + v_1 * w[k + 1, j] + v_2 * w[k + 2, j] + v_3 * w[k + 3, j]
        k += 4
    while k < depth:
        for r in range(rows):
            a, vk = a0 + r, v[v0 + r, k]
            for j in range(c0, c1):
                acc[a, j] += vk * w[k, j]
        k += 1


@numba.njit(inline="always", **JIT)
def accumulate_at(acc, a0, v, v0, w, rows):
    """``acc[a0:a0 + rows] += v[v0:v0 + rows] @ w`` (:func:`accumulate_cols` over every column)."""
    accumulate_cols(acc, a0, v, v0, w, rows, 0, w.shape[1])


@numba.njit(inline="always", **JIT)
def accumulate(acc, v, w, rows):
    """``acc[:rows] += v[:rows] @ w`` (:func:`accumulate_at` from row 0)."""
    accumulate_at(acc, 0, v, 0, w, rows)


@numba.njit(inline="always", **JIT)
def running(active, t, r0, r1):
    """How many of batch rows ``r0:r1`` run step ``t``: rows are sorted by decreasing length, so
    they are the first ones of the block (kernels.stack.Packing)."""
    return min(max(active[t] - r0, 0), r1 - r0)


@numba.njit(inline="always", **JIT)
def through_prange(strategy, threads, batch, steps, hidden):
    """Whether the loop strategies (``fused``, ``parallel``; forward and backward) run their blocks
    of rows through the ``prange`` loop: over threads where ``parallel`` has more than one, and on
    one thread where there are several blocks, or from :data:`LONG_STEPS` steps below
    :data:`LONG_STEPS_HIDDEN` units (a step is little work).  numba compiles that loop's body to
    code several times faster than the same blocks in a plain loop (measured in docs/numba.md),
    which pays its launch (~1 us) back."""
    short_steps = steps >= LONG_STEPS and hidden < LONG_STEPS_HIDDEN
    return (strategy == PARALLEL and threads > 1) or (threads == 1 and (batch > ROW_BLOCK or short_steps))


@numba.njit(inline="always", **JIT)
def _emit(out, off, h, t, r0, r1, rows):
    """Step ``t``'s output of batch rows ``r0:r1`` into columns ``off:`` of ``out``: the state of
    the first ``rows`` of them (those still running), zero for the others."""
    for b in range(r0, r1):
        if b < r0 + rows:
            for j in range(h.shape[1]):
                out[t, b, off + j] = h[b, j]
        else:
            for j in range(h.shape[1]):
                out[t, b, off + j] = 0


@numba.njit(inline="always", **JIT)
def _zero_rows(a, r0, r1):
    for b in range(r0, r1):
        for j in range(a.shape[1]):
            a[b, j] = 0


#: From this H, ``blas``'s forward-only LSTM and GRU rows run :func:`_update_in_registers`; below
#: it :func:`_update` (a loop of 8 runs scalar, and its loop over G*H columns does not).
ONE_LOOP_HIDDEN = 16


@numba.njit(inline="always", **JIT)
def _update_in_registers(mode, ax3, ah3, h, c, b0, b1):
    """:func:`_update` of LSTM and GRU rows ``b0:b1`` that keep nothing (the forward pass): one loop
    over H with a unit's gates in registers, not stored back (the stores into ``ax3`` beside loads
    of its other gates kept such a loop from vectorizing, so :func:`_update` activates in a loop of
    its own first).  Its own function, not a branch of :func:`_update`: in the loop strategies'
    step (:func:`_block`) the branch alone slowed small steps (docs/numba.md, "What changed")."""
    hidden = h.shape[1]
    if mode == LSTM:
        for b in range(b0, b1):
            for j in range(hidden):
                _, _, _, o, cj, tj = lstm_gates(ax3[b, 0, j], ax3[b, 1, j], ax3[b, 2, j], ax3[b, 3, j], c[b, j])
                c[b, j] = cj
                h[b, j] = o * tj
    else:  # GRU
        for b in range(b0, b1):
            for j in range(hidden):
                rj = sigmoid(ax3[b, 0, j] + ah3[b, 0, j])
                zj = sigmoid(ax3[b, 1, j] + ah3[b, 1, j])
                n = gru_n(ax3[b, 2, j], rj, ah3[b, 2, j])
                h[b, j] = gru_h(n, zj, h[b, j])


@numba.njit(inline="always", **JIT)
def _finish_rows(mode, ax, ax4, hh, hh3, bx, bh, cell, c, t, b0, b1, keep, cs, tc, ghn):
    """Batch rows ``b0:b1`` of step ``t`` after the step's product: biases, gates, and the cell's
    new output in ``cell[b0:b1]``.  ``ax`` (B, G*H) and ``ax4`` (B, G, H): two views of the step's
    pre-activations."""
    for b in range(b0, b1):
        for j in range(bx.shape[0]):
            ax[b, j] += bx[j]
    if mode == GRU:
        for b in range(b0, b1):
            for j in range(bh.shape[0]):
                hh[b, j] += bh[j]
    if (mode == LSTM or mode == GRU) and not keep and c.shape[1] >= ONE_LOOP_HIDDEN:
        _update_in_registers(mode, ax4, hh3, cell, c, b0, b1)
    else:
        _update(mode, ax, ax4, hh3, b0, b0, cell, c, b0, b1 - b0, keep, t, cs, tc, ghn)


@numba.njit(parallel=True, **JIT)
def _finish_rows_parallel(mode, ax, ax4, hh, hh3, bx, bh, cell, c, t, rows, keep, cs, tc, ghn):
    """:func:`_finish_rows` over numba's threads in blocks of :data:`ROW_BLOCK` rows (one call per
    block, not per row: a call costs its arrays' reference counts); rows are independent, so the
    result is the serial one."""
    for i in numba.prange((rows + ROW_BLOCK - 1) // ROW_BLOCK):
        b0 = i * ROW_BLOCK
        _finish_rows(mode, ax, ax4, hh, hh3, bx, bh, cell, c, t, b0, min(b0 + ROW_BLOCK, rows), keep, cs, tc, ghn)


@numba.njit(**JIT)
def _layer_blas(mode, fn, fc, row_threads, threads, inp, w_ih_t, w_hh_t, bx, bh, w_hr_t, packed, tiles, h, c, m, out,
                off, active, reverse, ax_all, hh, keep, cs, tc, mk, ghn, zero_h0):
    """The ``blas`` strategy: the projection of :func:`project_steps` steps at a time in one
    product, then per step the recurrent product through the BLAS onto the step's pre-activations
    (beta = 1; GRU's into ``hh``), with W_hh^T packed where ``packed`` is not empty and the step
    runs the whole batch, else through its ``tiles`` where not empty
    (:func:`kernels.numba.jit.mm_tiles`), then the rows' gates.  With a projection the cell's
    output ``m`` (``mk[t]`` with ``keep``) is multiplied by W_hr^T into ``h`` after the rows'
    updates."""
    steps, batch = inp.shape[0], inp.shape[1]
    width, hidden = w_hh_t.shape[1], c.shape[1]
    gates = width // hidden
    chunk = project_steps(steps, batch, width, ax_all.itemsize)
    ax4_all = ax_all.reshape(steps, batch, gates, hidden)
    hh3 = hh.reshape(batch, gates, hidden)
    projecting = w_hr_t.size > 0
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        if s % chunk == 0:  # the next chunk's projection, just before its steps read it
            n = min(chunk, steps - s)
            t0 = steps - s - n if reverse else s
            _project(fn, inp[t0:t0 + n], w_ih_t, ax_all[t0:t0 + n])
        rows = active[t]
        ax, ax4 = ax_all[t], ax4_all[t]
        target = hh if mode == GRU else ax  # GRU: h W_hh^T + b_hh on its own, for r * (W_hn h + b_hn)
        beta = 0 if mode == GRU else 1  # else the product lands on this step's projection
        if zero_h0 and s == 0:  # h = 0 and W_hh finite: the product is exactly zero
            if mode == GRU:
                _zero_rows(hh, 0, rows)
        elif packed.size and rows == batch:
            mm_packed(fc, packed, h, target, beta)
        elif tiles.size:
            mm_tiles(fn, h[:rows], tiles, target[:rows], beta)
        else:
            mm(fn, h[:rows], w_hh_t, target[:rows], beta)
        cell = (mk[t] if keep else m) if projecting else h
        if row_threads and threads > 1 and rows * hidden >= PARALLEL_ROWS:
            _finish_rows_parallel(mode, ax, ax4, hh, hh3, bx, bh, cell, c, t, rows, keep, cs, tc, ghn)
        else:
            _finish_rows(mode, ax, ax4, hh, hh3, bx, bh, cell, c, t, 0, rows, keep, cs, tc, ghn)
        if projecting:
            mm(fn, cell[:rows], w_hr_t, h[:rows], 0)
            if keep:
                _zero_rows(cell, rows, batch)
        _emit(out, off, h, t, 0, batch, rows)


#: Bytes of pre-activations that ``blas`` projects at a time (:func:`project_steps`), where ...
PROJECT_BYTES = 1 << 20
#: ... they make products of at least this many rows (fewer run the BLAS below its speed:
#: docs/numba.md, "What changed", the input projection in chunks).
PROJECT_MIN_ROWS = 1024


@numba.njit(inline="always", **JIT)
def project_steps(steps, batch, width, itemsize):
    """How many steps' input projection ``blas`` computes in one product: as many as make
    :data:`PROJECT_BYTES` of pre-activations where those are at least :data:`PROJECT_MIN_ROWS`
    rows, so that a step reads its projection from cache, written shortly before, instead of from
    memory (all T steps at once are megabytes: 65 MB at T = 1000, B = 64, G*H = 256); else all
    ``steps`` at once, the fastest product (docs/numba.md, "What changed", the input projection in
    chunks)."""
    chunk = PROJECT_BYTES // max(1, batch * width * itemsize)
    return chunk if chunk * batch >= PROJECT_MIN_ROWS else max(1, steps)


@numba.njit(inline="always", **JIT)
def _project(fn, inp, w_ih_t, ax_all):
    """``ax_all[:T] = x W_ih^T`` (T, B, G*H) for the T steps of ``inp`` (T, B, I) at once, without
    the bias: one BLAS call, or loops below :data:`PROJECT_ROWS` rows."""
    rows = inp.shape[0] * inp.shape[1]
    x2, ax2 = inp.reshape(rows, inp.shape[2]), ax_all.reshape(ax_all.shape[0] * inp.shape[1], ax_all.shape[2])
    if rows >= PROJECT_ROWS:
        mm(fn, x2, w_ih_t, ax2[:rows], 0)
    else:
        ax2[:rows] = 0
        accumulate(ax2, x2, w_ih_t, rows)


@numba.njit(inline="always", **JIT)
def _block(mode, inp, projected, ax_all, per_step, ah_all, h, c, m, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, off, active,
           reverse, keep, cs, tc, mk, ghn, zero_h0, r0, r1):
    """Batch rows ``r0:r1`` through every timestep with the products as loops: no BLAS call, no
    allocation and no array view per step (a view costs reference counting).  A step's
    pre-activations of these rows are rows ``r0:r1`` of ``ax_all[t]`` (of ``ax_all[0]``, a
    scratch, unless ``per_step``), which hold x W_ih^T already where ``projected`` (the bias is
    added here), else are the product taken here, step by step; GRU's h W_hh^T + b_hh goes to rows
    ``r0:r1`` of ``ah_all``.  A step runs the block's rows that run it (:func:`running`); the
    cell's output goes to ``m`` (``mk[t]`` with ``keep``) with a projection, which is then
    multiplied by W_hr^T into ``h``, else to ``h`` itself.  Rows never interact: a row's result is
    the same whatever block it is in."""
    steps, batch, width = inp.shape[0], inp.shape[1], bx.shape[0]
    hidden = c.shape[1]
    gates = width // hidden
    ax2 = ax_all.reshape(ax_all.shape[0] * batch, width)
    ax3 = ax2.reshape(ax_all.shape[0] * batch, gates, hidden)
    ah3 = ah_all.reshape(batch, gates, hidden)
    x2 = inp.reshape(steps * batch, inp.shape[2])
    projecting = w_hr_t.size > 0
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        rows = running(active, t, r0, r1)
        a0 = (t if per_step else 0) * batch + r0  # the block's first row in ax2
        for r in range(rows):  # explicit loops: slice assignment costs more than the work here
            a = a0 + r
            if projected:
                for j in range(width):
                    ax2[a, j] += bx[j]
            else:
                for j in range(width):
                    ax2[a, j] = bx[j]
            if mode == GRU:
                for j in range(width):
                    ah_all[r0 + r, j] = bh[j]
        if not projected:
            accumulate_at(ax2, a0, x2, t * batch + r0, w_ih_t, rows)
        if not (zero_h0 and s == 0):  # else h = 0 and W_hh finite: the product is exactly zero
            if mode == GRU:
                accumulate_at(ah_all, r0, h, r0, w_hh_t, rows)
            else:
                accumulate_at(ax2, a0, h, r0, w_hh_t, rows)
        if projecting:
            cell = mk[t] if keep else m
            _update(mode, ax2, ax3, ah3, a0, r0, cell, c, r0, rows, keep, t, cs, tc, ghn)
            _zero_rows(h, r0, r0 + rows)
            accumulate_at(h, r0, cell, r0, w_hr_t, rows)
            if keep:
                _zero_rows(cell, r0 + rows, r1)
        else:
            _update(mode, ax2, ax3, ah3, a0, r0, h, c, r0, rows, keep, t, cs, tc, ghn)
        _emit(out, off, h, t, r0, r1, rows)


@numba.njit(parallel=True, **JIT)
def _blocks_parallel(mode, inp, projected, ax_all, per_step, ah_all, h, c, m, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, off,
                     active, reverse, keep, cs, tc, mk, ghn, zero_h0):
    """Blocks of rows over numba's threads: each block runs all steps on one thread."""
    batch = h.shape[0]
    for i in numba.prange((batch + ROW_BLOCK - 1) // ROW_BLOCK):
        r0 = i * ROW_BLOCK
        _block(mode, inp, projected, ax_all, per_step, ah_all, h, c, m, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, off,
               active, reverse, keep, cs, tc, mk, ghn, zero_h0, r0, min(r0 + ROW_BLOCK, batch))


@numba.njit(**JIT)
def layer_forward(strategy, mode, fn, fc, row_threads, threads, inp, w_ih_t, w_hh_t, bx, bh, w_hr_t, packed, tile_rows,
                  tile_cols, h, c, m, out, off, active, reverse, proj, hh, keep, gates, cs, tc, mk, ghn, zero_h0):
    """One layer, one direction (the module docstring).  ``strategy``: ``BLAS``, ``FUSED`` (the
    projection through the BLAS, then blocks of rows on one thread) or ``PARALLEL`` (no BLAS;
    blocks of rows over numba's threads where it has more than one); ``fn``/``fc``: the addresses
    of ``?gemm_`` and MKL's ``?gemm_compute_`` (0 where it cannot pack); ``packed``: W_hh^T for
    ``blas``'s per-step product, as MKL packed it, or, where ``tile_rows`` is not 0, cut into
    tiles of ``tile_rows`` by ``tile_cols`` (:func:`kernels.numba.layout.cut_tiles`), or empty;
    ``threads``: numba's thread count now; ``zero_h0``: h starts at 0 and W_hh is finite, so the first step's recurrent
    product is skipped (exactly zero)."""
    ax_all = gates if gates.size else proj
    if strategy == BLAS:
        k, n = w_hh_t.shape
        if tile_rows:  # the grid of kernels.numba.layout.tile_grid
            tiles = packed.reshape((-(-k // tile_rows), -(-n // tile_cols), tile_rows, tile_cols))
            packed = packed[:0]
        else:
            tiles = packed[:0].reshape((0, 0, 0, 0))
        _layer_blas(mode, fn, fc, row_threads, threads, inp, w_ih_t, w_hh_t, bx, bh, w_hr_t, packed, tiles, h, c, m,
                    out, off, active, reverse, ax_all, hh, keep, cs, tc, mk, ghn, zero_h0)
        return
    projected = strategy == FUSED
    batch = inp.shape[1]
    if projected:  # one BLAS call; the loops below then have half the work
        _project(fn, inp, w_ih_t, ax_all)
    per_step = projected or gates.size > 0
    if through_prange(strategy, threads, batch, inp.shape[0], c.shape[1]):
        _blocks_parallel(mode, inp, projected, ax_all, per_step, hh, h, c, m, w_ih_t, w_hh_t, bx, bh, w_hr_t, out,
                         off, active, reverse, keep, cs, tc, mk, ghn, zero_h0)
        return
    for r0 in range(0, batch, ROW_BLOCK):
        _block(mode, inp, projected, ax_all, per_step, hh, h, c, m, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, off, active,
               reverse, keep, cs, tc, mk, ghn, zero_h0, r0, min(r0 + ROW_BLOCK, batch))
