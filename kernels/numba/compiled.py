"""The numba backend's compiled kernels: one layer, one direction, three strategies.

What each strategy does and when it is chosen is in :mod:`kernels.numba.backend`;
this module holds only the ``@njit`` code and the argument record the kernels
take, so that importing the backend's name, variants and availability never
loads numba.  Every function is compiled once per signature and cached on
disk where numba finds a writable cache directory (:data:`DISK_CACHE_REASON`
says why not, and the kernels are then compiled in every process).

float32 activations use a rational approximation of tanh (Eigen's
``generic_fast_tanh_float``: max abs error 4e-7 on [-10, 10], measured against
float64 tanh; tests/test_numba_strategies.py holds it to that) that is plain
arithmetic and vectorizes; sigmoid(v) = 0.5 + 0.5*tanh(v/2).  float64 uses
libm's tanh.  NaN propagates: the clamp is written with comparisons that NaN
fails.

Each choice made for LLVM's vectorizer below was kept because it measured
faster; the figures are in the README ("Numba strategies").
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

#: The cell as the kernels' ``mode`` argument: compile-time constants inside the kernels.
RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3
MODE_CODES = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}


class BlasArgs(NamedTuple):
    """What a kernel needs of the BLAS (:mod:`kernels.numba.blas`), as one argument.

    ``gemm``: ``?gemm_``; ``compute``: ``?gemm_compute_``, or ``?gemm_`` where the BLAS cannot
    pack; ``packed``: W_hh^T as packed by :meth:`kernels.numba.blas.Route.pack`, or empty (then
    ``gemm`` is called); ``row_threads``: whether the rows' updates may be spread over numba's
    threads between BLAS calls (the BLAS's own threads leave the cores: ``Route.openmp``);
    ``chars`` (2,) uint8, ``dims`` (3,) int32, ``scalars`` (2,) of the dtype: scratch for the
    BLAS's by-pointer arguments, owned by the Python caller (arrays made inside a kernel would be
    freed by numba after their last use there -- before the BLAS reads them).
    """

    gemm: object
    compute: object
    packed: np.ndarray
    row_threads: bool
    chars: np.ndarray
    dims: np.ndarray
    scalars: np.ndarray


def _disk_cache_reason() -> str:
    """``""`` when numba can cache this module's functions on disk, else why not.

    numba looks for a writable directory in ``NUMBA_CACHE_DIR``, then ``__pycache__`` beside the
    source file, then the user-wide cache directory (numba docs, "Notes on Caching" and
    ``NUMBA_CACHE_DIR``); where none is writable, ``cache=True`` raises ``RuntimeError`` ("no
    locator available") when a function is decorated.  A function of this module decorated with
    it answers for all of them: the locators depend only on the source file."""

    def probe():
        pass

    try:
        numba.njit(cache=True)(probe)
    except RuntimeError:
        return "no writable cache directory for numba; set NUMBA_CACHE_DIR"
    return ""


#: ``""`` where the kernels are cached on disk, else why they are not (:func:`_disk_cache_reason`).
DISK_CACHE_REASON = _disk_cache_reason()
#: Whether the kernels are cached on disk; where not, every process compiles them again.
DISK_CACHE = not DISK_CACHE_REASON

_A = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_B = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_CLAMP = 7.90531110763549805
#: Only contraction into fused multiply-adds: no flag that assumes NaN or Inf away.
FASTMATH = {"contract"}


def act_tanh(v):
    """tanh in the precision of ``v``: the rational approximation for float32, libm for float64."""
    return math.tanh(v)


@overload(act_tanh, jit_options={"cache": DISK_CACHE, "error_model": "numpy"})
def _act_tanh(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        a = tuple(np.float32(c) for c in _A)
        b = tuple(np.float32(c) for c in _B)
        clamp = np.float32(_CLAMP)
        one = np.float32(1.0)

        def impl(v):  # Eigen's rational approximation, in float32 constants
            v2 = v * v
            p = ((((((a[6] * v2 + a[5]) * v2 + a[4]) * v2 + a[3]) * v2 + a[2]) * v2 + a[1]) * v2 + a[0])
            q = (((b[3] * v2 + b[2]) * v2 + b[1]) * v2 + b[0])
            r = v * p / q
            # saturate exactly, as tanh does in float32 beyond the clamp (|error| < 3e-7 there), so that
            # sigmoid(-inf) is 0 and r * inf gives NaN where torch does; NaN fails both tests and stays.
            # Selects, not branches: the loop around stays vectorizable.
            r = one if v > clamp else r
            return -one if v < -clamp else r

        return impl
    return lambda v: math.tanh(v)


#: Options of every kernel function.  ``error_model="numpy"``: a float division by zero gives inf or
#: NaN as in NumPy instead of a Python exception; the check for that exception is a branch in every
#: loop with a division, which kept the float32 tanh from vectorizing.
JIT = {"cache": DISK_CACHE, "fastmath": FASTMATH, "error_model": "numpy"}


@numba.njit(inline="always", **JIT)
def _sigmoid(v):
    half = type(v)(0.5)
    return half + half * act_tanh(half * v)


@numba.njit(inline="always", **JIT)
def _update(mode, ax, ax3, ah3, r, h, c, b):
    """Row ``r`` of a block, batch row ``b``: its state update in place, as in the PyTorch docs'
    equations for nn.RNN, nn.LSTM and nn.GRU.  ``ax`` (R, G*H) and ``ax3`` (R, G, H), two views of
    one buffer: the gate pre-activations, both products and both biases, except for GRU, where
    they hold x W_ih^T + b_ih and ``ah3`` (R, G, H) holds h W_hh^T + b_hh (b_hn stays inside
    r * (...)).  ``ax`` is overwritten; ``h``, ``c`` (B, H).

    Written for LLVM's vectorizer: a gate is indexed as ``ax3[r, gate, j]``, not
    ``ax[r, 2 * H + j]`` (numba's negative-index check would stay in the loop) and not through a
    view per gate (views made in one branch of ``mode`` cost reference counting on every step)."""
    hidden = h.shape[1]
    if mode == RNN_TANH:
        for j in range(hidden):
            h[b, j] = act_tanh(ax[r, j])
    elif mode == RNN_RELU:
        for j in range(hidden):
            v = ax[r, j]
            h[b, j] = type(v)(0.0) if v < 0.0 else v  # NaN stays NaN, as torch.relu
    elif mode == LSTM:  # gates in PyTorch's order i, f, g, o
        # all four activations in one loop over the 4H columns: sigmoid(v) = 0.5 * tanh(0.5 * v) + 0.5
        # and tanh(v) = 1 * tanh(1 * v) + 0 (exactly), chosen by column; one loop of 4H instead of four
        # of H keeps small H on the vector path (a loop of 8 runs scalar)
        for j in range(4 * hidden):
            v = ax[r, j]
            s = type(v)(1.0) if (j >= 2 * hidden) and (j < 3 * hidden) else type(v)(0.5)
            ax[r, j] = s * act_tanh(s * v) + (type(v)(1.0) - s)
        for j in range(hidden):
            cj = ax3[r, 1, j] * c[b, j] + ax3[r, 0, j] * ax3[r, 2, j]
            c[b, j] = cj
            h[b, j] = ax3[r, 3, j] * act_tanh(cj)
    else:  # GRU: r, z, n
        for j in range(hidden):
            ax3[r, 0, j] = _sigmoid(ax3[r, 0, j] + ah3[r, 0, j])
        for j in range(hidden):
            ax3[r, 1, j] = _sigmoid(ax3[r, 1, j] + ah3[r, 1, j])
        for j in range(hidden):
            n = act_tanh(ax3[r, 2, j] + ax3[r, 0, j] * ah3[r, 2, j])
            h[b, j] = n + ax3[r, 1, j] * (h[b, j] - n)  # (1 - z) * n + z * h, as ATen's GRU cell writes it


@numba.njit(inline="always", **JIT)
def _accumulate(acc, v, w, rows):
    """``acc[:rows] += v[:rows] @ w`` for ``acc`` (R, N), ``v`` (R, K), ``w`` (K, N) C-contiguous.

    k runs in chunks of 4, in the order of the plain sum: each row of ``acc`` is loaded and stored
    once per 4 multiply-adds (the plain loop stores after every one and was store-bound), and the
    4 rows of ``w`` stay in L1 while every row of the block uses them.  The inner loop runs over
    N with no reduction, so it vectorizes without reassociation."""
    depth, width = w.shape
    k = 0
    while k + 4 <= depth:
        for r in range(rows):
            v0, v1, v2, v3 = v[r, k], v[r, k + 1], v[r, k + 2], v[r, k + 3]
            for j in range(width):
                acc[r, j] = acc[r, j] + v0 * w[k, j] + v1 * w[k + 1, j] + v2 * w[k + 2, j] + v3 * w[k + 3, j]
        k += 4
    while k < depth:
        for r in range(rows):
            vk = v[r, k]
            for j in range(width):
                acc[r, j] += vk * w[k, j]
        k += 1


@numba.njit(inline="always", **JIT)
def _gemm(blas, packed, a, b, out, beta):
    """``out = a @ b + beta * out`` through ``blas`` (:class:`BlasArgs`), for C-contiguous ``a``
    (M, K), ``b`` (K, N), ``out`` (M, N) of one dtype: the column-major ``out^T = b^T a^T``.
    ``packed``: ``b`` as packed by :meth:`kernels.numba.blas.Route.pack` (then ``?gemm_compute_`` is
    called), or empty (then ``?gemm_``)."""
    chars, dims, scalars = blas.chars, blas.dims, blas.scalars
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0 or k == 0:  # BLAS rejects a leading dimension of 0
        if beta == 0:
            out[:] = 0
        return
    chars[0], chars[1] = (80 if packed.size else 78), 78  # 'P' (packed) or 'N', then 'N'
    dims[0], dims[1], dims[2] = n, m, k
    scalars[0], scalars[1] = 1, beta
    if packed.size:
        blas.compute(chars[0:].ctypes.data, chars[1:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                     dims[2:].ctypes.data, packed.ctypes.data, dims[0:].ctypes.data, a.ctypes.data,
                     dims[2:].ctypes.data, scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data,
                     dims.ctypes.data)  # 13th: ignored
    else:
        blas.gemm(chars[1:].ctypes.data, chars[1:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                  dims[2:].ctypes.data, scalars.ctypes.data, b.ctypes.data, dims[0:].ctypes.data, a.ctypes.data,
                  dims[2:].ctypes.data, scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data)


@numba.njit(inline="always", **JIT)
def _project(blas, x, w_ih_t):
    """All timesteps' input projection in one product: (T, B, I) -> (T, B, G*H), without the
    bias, which is added step by step where the step's rows are in cache."""
    steps, batch, features = x.shape
    proj = np.empty((steps * batch, w_ih_t.shape[1]), x.dtype)
    unpacked = x[0, 0, :0]  # an empty array of the dtype: w_ih_t is not packed
    _gemm(blas, unpacked, x.reshape(steps * batch, features), w_ih_t, proj, 0)
    return proj.reshape(steps, batch, w_ih_t.shape[1])


@numba.njit(inline="always", **JIT)
def _finish_row(mode, proj, proj4, hh, hh3, bx, bh, m, c, t, b):
    """Batch row ``b`` of step ``t`` after the step's product: biases, gates, and the cell's new
    output in ``m[b]`` (``h`` itself, except with a projection).  ``proj`` (T, B, G*H) and
    ``proj4`` (T, B, G, H): two views of the step's pre-activations."""
    for j in range(bx.shape[0]):
        proj[t, b, j] += bx[j]
    if mode == GRU:
        for j in range(bh.shape[0]):
            hh[b, j] += bh[j]
        _update(mode, proj[t], proj4[t], hh3, b, m, c, b)
    else:
        _update(mode, proj[t], proj4[t], proj4[t], b, m, c, b)


@numba.njit(inline="always", **JIT)
def _emit(out, h, t, r0, r1, rows):
    """Step ``t``'s output of batch rows ``r0:r1``: the state of the first ``rows`` of them (those
    still running), zero for the others (past their sequence's end, or before its start)."""
    for b in range(r0, r1):
        if b < r0 + rows:
            for j in range(h.shape[1]):
                out[t, b, j] = h[b, j]
        else:
            for j in range(h.shape[1]):
                out[t, b, j] = 0


@numba.njit(inline="always", **JIT)
def _running(active, t, r0, r1):
    """How many of batch rows ``r0:r1`` run step ``t``: rows are sorted by decreasing length, so
    they are the first ones of the block (kernels.stack.Packing)."""
    return min(max(active[t] - r0, 0), r1 - r0)


#: From this much work per step (B * H) the rows' updates after each product of ``blas`` are spread
#: over threads, where the BLAS's threads leave the cores between calls (``Route.openmp``: MKL);
#: below it, starting the threads costs more than the rows (README, "Numba strategies").
PARALLEL_ROWS = 4096


@numba.njit(parallel=True, **JIT)
def _layer_blas(blas, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, w_hr_t, active, reverse):
    """The ``blas`` strategy: one layer, one direction; ``blas`` is a :class:`BlasArgs`.  Each
    step's products take the rows that run it (a prefix of the batch); with a projection, the
    cell's output ``m`` (B, H) is multiplied by W_hr^T into ``h`` after the rows' updates."""
    steps = x.shape[0]
    proj = _project(blas, x, w_ih_t)
    h, c = h0.copy(), c0.copy()
    batch, hidden = c.shape
    gates = w_hh_t.shape[1] // hidden
    m = np.empty((batch, hidden), h.dtype) if w_hr_t.size else h
    hh = np.empty((batch, w_hh_t.shape[1]) if mode == GRU else (0, 0), h.dtype)
    hh3 = hh.reshape(hh.shape[0], gates if mode == GRU else 0, hidden)
    proj4 = proj.reshape(steps, batch, gates, hidden)
    out = np.empty((steps, batch, h.shape[1]), h.dtype)
    unpacked = bx[:0]
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        rows = active[t]
        packed = blas.packed if rows == batch else unpacked  # packed for products of the whole batch
        if mode == GRU:  # h W_hh^T + b_hh on its own, for r * (W_hn h + b_hn)
            _gemm(blas, packed, h[:rows], w_hh_t, hh[:rows], 0)
        else:  # the product lands on this step's projection: beta = 1, no extra pass
            _gemm(blas, packed, h[:rows], w_hh_t, proj[t, :rows], 1)
        if blas.row_threads and rows * hidden >= PARALLEL_ROWS:
            for b in numba.prange(rows):  # rows are independent: deterministic
                _finish_row(mode, proj, proj4, hh, hh3, bx, bh, m, c, t, b)
        else:
            for b in range(rows):
                _finish_row(mode, proj, proj4, hh, hh3, bx, bh, m, c, t, b)
        if w_hr_t.size:
            _gemm(blas, unpacked, m[:rows], w_hr_t, h[:rows], 0)
        _emit(out, h, t, 0, batch, rows)
    return out, h, c


#: Batch rows per block in ``fused`` and ``parallel``: a block's rows share each chunk of W^T
#: while it is in L1.
ROW_BLOCK = 4


@numba.njit(inline="always", **JIT)
def _block(mode, x, projected, h, m, c, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, active, reverse, r0, r1):
    """Batch rows ``r0:r1`` through every timestep with the products as loops: no BLAS call and no
    allocation per step.  ``projected``: ``x`` already holds x W_ih^T (T, B, G*H), and the bias is
    added here; otherwise ``x`` is the input (T, B, I) and its product is taken here, step by
    step.  A step runs the block's rows that run it (:func:`_running`); the cell's output goes to
    ``m`` (B, H), ``h`` itself except with a projection, which is then multiplied by W_hr^T into
    ``h``.  Rows never interact: a row's result is the same whatever block it is in."""
    steps, size, width = x.shape[0], r1 - r0, bx.shape[0]
    hidden = c.shape[1]
    ax = np.empty((size, width), h.dtype)
    ah = np.empty((size, width), h.dtype)
    ax3, ah3 = ax.reshape(size, width // hidden, hidden), ah.reshape(size, width // hidden, hidden)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        rows = _running(active, t, r0, r1)
        for r in range(rows):  # explicit loops: slice assignment costs more than the work here
            for j in range(width):
                ax[r, j] = x[t, r0 + r, j] + bx[j] if projected else bx[j]
            if mode == GRU:
                for j in range(width):
                    ah[r, j] = bh[j]
        if not projected:
            _accumulate(ax, x[t, r0:r1], w_ih_t, rows)
        _accumulate(ah if mode == GRU else ax, h[r0:r1], w_hh_t, rows)
        for r in range(rows):
            _update(mode, ax, ax3, ah3, r, m, c, r0 + r)
        if w_hr_t.size:
            for r in range(rows):
                for j in range(h.shape[1]):
                    h[r0 + r, j] = 0
            _accumulate(h[r0:r1], m[r0:r1], w_hr_t, rows)
        _emit(out, h, t, r0, r1, rows)


@numba.njit(**JIT)
def _layer_fused(blas, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, w_hr_t, active, reverse):
    """The ``fused`` strategy: the projection through ``blas``, then blocks of rows on one thread."""
    h, c = h0.copy(), c0.copy()
    batch = h.shape[0]
    m = np.empty(c.shape, h.dtype) if w_hr_t.size else h
    out = np.empty((x.shape[0], batch, h.shape[1]), h.dtype)
    proj = _project(blas, x, w_ih_t)  # one BLAS call; the loop below then has half the work
    for r0 in range(0, batch, ROW_BLOCK):
        _block(mode, proj, True, h, m, c, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, active, reverse, r0,
               min(r0 + ROW_BLOCK, batch))
    return out, h, c


@numba.njit(parallel=True, **JIT)
def _layer_parallel(blas, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, w_hr_t, active, reverse):
    """The ``parallel`` strategy: no BLAS (``blas`` is unused), blocks of rows over threads."""
    h, c = h0.copy(), c0.copy()
    batch = h.shape[0]
    m = np.empty(c.shape, h.dtype) if w_hr_t.size else h
    out = np.empty((x.shape[0], batch, h.shape[1]), h.dtype)
    # no BLAS here: OpenBLAS's threads spin after a call and took the cores from the workers
    for i in numba.prange((batch + ROW_BLOCK - 1) // ROW_BLOCK):  # each block runs all steps on one thread
        r0 = i * ROW_BLOCK
        _block(mode, x, False, h, m, c, w_ih_t, w_hh_t, bx, bh, w_hr_t, out, active, reverse, r0,
               min(r0 + ROW_BLOCK, batch))
    return out, h, c


#: The kernel of each strategy (:data:`kernels.numba.backend.STRATEGIES`), all with one signature.
LAYERS = {"blas": _layer_blas, "fused": _layer_fused, "parallel": _layer_parallel}


# --- backpropagation through time ------------------------------------------------------------
#
# One kernel per layer and direction, after the forward kernel above has run: it recomputes the
# gate pre-activations of every step at once from the stored outputs (h_{t-1} of every step is
# known: h0 and the output), in two products over all T*B rows, applies the activations (and for
# LSTM runs the cell-state recurrence again, pointwise), then walks the steps backwards with one
# product per step for dh (two with a projection: dm = dh W_hr first), keeping every step's gate
# gradients; the weight and input gradients are then one product each over all steps (as cuDNN
# and haste accumulate them).  ``blas``: every product through the BLAS; ``fused``: the products
# over all steps through the BLAS, the per-step ones as loops on blocks of rows; ``parallel``: no
# BLAS, blocks of rows over threads.  A row that does not run a step (variable-length batches,
# kernels.stack.Packing) gets zero gate gradients there, and its dh and dc pass the step unchanged.
#
# The sums over all T*B rows (the weight and bias gradients) are not one running float32 sum: its
# error grows as sqrt(T*B) ulps, 1.2e-4 of the scale at T*B = 1.28e6 (numba#2855, #3702 are of that
# kind), in loops and in MKL's GEMM alike.  They are taken in blocks of SUM_BLOCK rows, each summed
# in the dtype and added into float64 (_product_tn, _sum_rows).


@numba.njit(inline="always", **JIT)
def _gemm_tn(blas, a, b, out):
    """``out = a^T @ b`` through ``blas`` for C-contiguous ``a`` (K, M), ``b`` (K, N), ``out``
    (M, N): the column-major ``out^T = b^T a`` ('N', 'T')."""
    chars, dims, scalars = blas.chars, blas.dims, blas.scalars
    k, m = a.shape
    n = b.shape[1]
    if m == 0 or n == 0 or k == 0:
        out[:] = 0
        return
    chars[0], chars[1] = 78, 84  # 'N', 'T'
    dims[0], dims[1], dims[2] = n, m, k
    scalars[0], scalars[1] = 1, 0
    blas.gemm(chars[0:].ctypes.data, chars[1:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
              dims[2:].ctypes.data, scalars.ctypes.data, b.ctypes.data, dims[0:].ctypes.data, a.ctypes.data,
              dims[1:].ctypes.data, scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data)


#: Rows per block of the sums over all T*B rows (:func:`_product_tn`, :func:`_sum_rows`): each
#: block is summed in the dtype (by the BLAS or by loops) and blocks are added in float64, so a
#: float32 sum errs by ~sqrt(SUM_BLOCK) ulps whatever T*B; the float64 additions cost one pass
#: over the result per block.
SUM_BLOCK = 2048


@numba.njit(**JIT)
def _accumulate_tn(acc, a, b):
    """``acc += a^T @ b`` as loops, for ``a`` (K, M), ``b`` (K, N), ``acc`` (M, N) C-contiguous;
    the inner loop runs over a contiguous row of ``b`` and ``acc``."""
    for k in range(a.shape[0]):
        for m in range(a.shape[1]):
            akm = a[k, m]
            for j in range(b.shape[1]):
                acc[m, j] += akm * b[k, j]


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
def _product(blas, use_blas, a, b, out, beta):
    """``out = a @ b + beta * out`` (beta 0 or 1), through the BLAS or as loops."""
    if use_blas:
        _gemm(blas, a[0, :0], a, b, out, beta)
    else:
        if beta == 0:
            out[:] = 0
        _accumulate(out, a, b, a.shape[0])


@numba.njit(inline="always", **JIT)
def _product_tn_block(blas, use_blas, a, b, out):
    """``out = a^T @ b``, through the BLAS or as loops, in one sum."""
    if use_blas:
        _gemm_tn(blas, a, b, out)
    else:
        out[:] = 0
        _accumulate_tn(out, a, b)


@numba.njit(**JIT)
def _product_tn(blas, use_blas, a, b, out):
    """``out = a^T @ b`` for ``a`` (K, M), ``b`` (K, N), through the BLAS or as loops; beyond
    :data:`SUM_BLOCK` rows, one product per block of rows, added into a float64 total (a BLAS too
    sums a tall product's K in one running sum: MKL's float32 dW_hh erred by 1.2e-4 of its scale at
    K = 1.28e6)."""
    depth = a.shape[0]
    if depth <= SUM_BLOCK:
        _product_tn_block(blas, use_blas, a, b, out)
        return
    total = np.zeros(out.shape, np.float64)
    for k0 in range(0, depth, SUM_BLOCK):
        k1 = min(k0 + SUM_BLOCK, depth)
        _product_tn_block(blas, use_blas, a[k0:k1], b[k0:k1], out)
        for m in range(out.shape[0]):
            for j in range(out.shape[1]):
                total[m, j] += out[m, j]
    for m in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[m, j] = total[m, j]


@numba.njit(**JIT)
def _activate_rows(mode, ax3, ah3, c0, cprev, ctanh, m, active, reverse, r0, r1):
    """Rows ``r0:r1`` of every step: the gate pre-activations ``ax3`` (T, B, G, H) replaced by the
    gates (LSTM: i, f, g, o; GRU: r, z, n, with ``ah3`` holding h W_hh^T + b_hh), and for LSTM the
    cell-state recurrence again: ``cprev[t]`` the state before step t, ``ctanh[t]`` tanh(c_t),
    a row's state carried unchanged through the steps it does not run; with a projection (``m``
    not empty) also ``m[t]`` = o * tanh(c_t), the cell's output before it, zero where the row
    does not run.  Nothing to do for the Elman cells, whose derivative reads the output."""
    steps, hidden = ax3.shape[0], ax3.shape[3]
    if mode == LSTM:
        for b in range(r0, r1):
            for s in range(steps):
                t = steps - 1 - s if reverse else s
                before = t + 1 if reverse else t - 1
                if b < active[t]:
                    for j in range(hidden):
                        c = c0[b, j] if s == 0 else ctanh[before, b, j]  # c_{t-1}, still raw (below)
                        i = _sigmoid(ax3[t, b, 0, j])
                        f = _sigmoid(ax3[t, b, 1, j])
                        g = act_tanh(ax3[t, b, 2, j])
                        o = _sigmoid(ax3[t, b, 3, j])
                        ax3[t, b, 0, j], ax3[t, b, 1, j], ax3[t, b, 2, j], ax3[t, b, 3, j] = i, f, g, o
                        cprev[t, b, j] = c
                        ctanh[t, b, j] = f * c + i * g  # c_t, raw until this row's steps are done
                else:  # not running this step: the state passes it
                    for j in range(hidden):
                        c = c0[b, j] if s == 0 else ctanh[before, b, j]
                        cprev[t, b, j] = c
                        ctanh[t, b, j] = c
            for t in range(steps):
                for j in range(hidden):
                    ctanh[t, b, j] = act_tanh(ctanh[t, b, j])
                if m.size:
                    running = b < active[t]
                    for j in range(hidden):
                        m[t, b, j] = ax3[t, b, 3, j] * ctanh[t, b, j] if running else 0
    elif mode == GRU:
        for t in range(steps):
            for b in range(r0, r1):
                for j in range(hidden):
                    r = _sigmoid(ax3[t, b, 0, j] + ah3[t, b, 0, j])
                    z = _sigmoid(ax3[t, b, 1, j] + ah3[t, b, 1, j])
                    ax3[t, b, 0, j], ax3[t, b, 1, j] = r, z
                    ax3[t, b, 2, j] = act_tanh(ax3[t, b, 2, j] + r * ah3[t, b, 2, j])


@numba.njit(inline="always", **JIT)
def _seed_rows(dh, d_out, dhp, t, r0, r1):
    """Rows ``r0:r1`` of step ``t`` (those that run it): ``d_out[t]`` added to dh, the gradient of
    h_t carried from later steps; with a projection (``dhp`` not empty) dh kept in ``dhp[t]``
    for the gradient of W_hr."""
    for b in range(r0, r1):
        for j in range(dh.shape[1]):
            dh[b, j] += d_out[t, b, j]
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


@numba.njit(**JIT)
def _grad_row(mode, t, b, ax3, ah3, out, hprev, cprev, ctanh, dm, dh, dc, dgx3, dgh3):
    """Batch row ``b`` of step ``t`` backwards: from dm (the gradient of the cell's output at
    step t: dh + d_out[t], times W_hr with a projection, else the very array ``dh``) and dc, the
    gate gradients ``dgx3[t, b]`` (of the ``x W_ih^T + b_ih`` part) and ``dgh3[t, b]`` (of the
    ``h W_hh^T + b_hh`` part; the same array as ``dgx3`` except for GRU); ``dh[b]`` becomes the
    direct part of dh_{t-1} (the product with W_hh is added by the caller) and ``dc[b]`` becomes
    dc_{t-1}.  The derivatives of the PyTorch docs' equations, as in :mod:`kernels.numpy_backend`."""
    hidden = dc.shape[1]
    one = type(dh[b, 0])(1.0)
    if mode == RNN_TANH:
        for j in range(hidden):
            h = out[t, b, j]
            dgx3[t, b, 0, j] = dm[b, j] * (one - h * h)
            dh[b, j] = 0
    elif mode == RNN_RELU:
        for j in range(hidden):
            dgx3[t, b, 0, j] = dm[b, j] if out[t, b, j] > 0 else one - one  # torch: 0 at 0
            dh[b, j] = 0
    elif mode == LSTM:
        for j in range(hidden):
            dht = dm[b, j]
            i, f, g, o = ax3[t, b, 0, j], ax3[t, b, 1, j], ax3[t, b, 2, j], ax3[t, b, 3, j]
            tc = ctanh[t, b, j]
            dct = dc[b, j] + dht * o * (one - tc * tc)
            dgx3[t, b, 0, j] = dct * g * i * (one - i)
            dgx3[t, b, 1, j] = dct * cprev[t, b, j] * f * (one - f)
            dgx3[t, b, 2, j] = dct * i * (one - g * g)
            dgx3[t, b, 3, j] = dht * tc * o * (one - o)
            dc[b, j] = dct * f
        for j in range(dh.shape[1]):  # h_size wide: P with a projection (dm is then its own array)
            dh[b, j] = 0
    else:  # GRU
        for j in range(hidden):
            dht = dm[b, j]
            r, z, n = ax3[t, b, 0, j], ax3[t, b, 1, j], ax3[t, b, 2, j]
            da_n = dht * (one - z) * (one - n * n)
            da_r = da_n * ah3[t, b, 2, j] * r * (one - r)
            da_z = dht * (hprev[t, b, j] - n) * z * (one - z)
            dgx3[t, b, 0, j], dgx3[t, b, 1, j], dgx3[t, b, 2, j] = da_r, da_z, da_n
            dgh3[t, b, 0, j], dgh3[t, b, 1, j], dgh3[t, b, 2, j] = da_r, da_z, da_n * r
            dh[b, j] = dht * z


@numba.njit(**JIT)
def _backward_block(mode, ax3, ah3, out, hprev, cprev, ctanh, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh, w_hr,
                    active, reverse, r0, r1):
    """Rows ``r0:r1`` through every step backwards with the per-step products dm = dh W_hr (with a
    projection) and dh += dgh_t W_hh as loops: no BLAS call and no allocation per step."""
    steps = ax3.shape[0]
    for s in range(steps):
        t = s if reverse else steps - 1 - s
        rows = _running(active, t, r0, r1)
        _seed_rows(dh, d_out, dhp, t, r0, r0 + rows)
        if w_hr.size:
            for b in range(r0, r0 + rows):
                for j in range(dm.shape[1]):
                    dm[b, j] = 0
            _accumulate(dm[r0:r1], dh[r0:r1], w_hr, rows)
        for b in range(r0, r0 + rows):
            _grad_row(mode, t, b, ax3, ah3, out, hprev, cprev, ctanh, dm, dh, dc, dgx3, dgh3)
        _idle_rows(dgx3, dgh3, dhp, t, r0 + rows, r1)
        _accumulate(dh[r0:r1], dgh[t, r0:r1], w_hh, rows)


@numba.njit(parallel=True, **JIT)
def _backward_parallel(mode, ax3, ah3, c0, out, hprev, cprev, ctanh, m, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh,
                       w_hr, active, reverse):
    """The ``parallel`` strategy's walk backwards: blocks of rows over threads; rows never interact
    until the sums over all steps, so the result is deterministic."""
    batch = dh.shape[0]
    for i in numba.prange((batch + ROW_BLOCK - 1) // ROW_BLOCK):
        r0, r1 = i * ROW_BLOCK, min((i + 1) * ROW_BLOCK, batch)
        _activate_rows(mode, ax3, ah3, c0, cprev, ctanh, m, active, reverse, r0, r1)
        _backward_block(mode, ax3, ah3, out, hprev, cprev, ctanh, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh, w_hr,
                        active, reverse, r0, r1)


@numba.njit(**JIT)
def _layer_backward(blas, strategy, mode, x, h0, c0, out, w_ih_t, w_hh_t, bx, bh, w_hr_t, w_ih, w_hh, w_hr, active,
                    reverse, d_out, d_h, d_c):
    """BPTT of one layer, one direction, after the forward kernel gave ``out`` (T, B, h_size).

    ``strategy``: 0 ``blas``, 1 ``fused``, 2 ``parallel`` (:data:`STRATEGY_CODES`).  ``x`` (T, B, I),
    ``h0`` (B, h_size), ``c0`` (B, H) (read by LSTM only), the forward kernels' converted weights
    (``w_ih_t``, ``w_hh_t``, ``bx``, ``bh``, ``w_hr_t``) and ``w_ih`` (G*H, I), ``w_hh``
    (G*H, h_size), ``w_hr`` (P, H) as stored (``w_hr`` and ``w_hr_t`` empty without a
    projection); ``active`` (T,): the rows that run each step, a prefix (kernels.stack.Packing);
    ``d_out`` (T, B, h_size), ``d_h`` (B, h_size), ``d_c`` (B, H).  Returns ``(dx, dh0, dc0,
    dw_ih, dw_hh, db_ih, db_hh, dw_hr)``, all C-contiguous, ``dw_hr`` (P, H), (0, H) without a
    projection."""
    steps, batch, features = x.shape
    size, hidden = h0.shape[1], c0.shape[1]
    width = w_hh_t.shape[1]
    gates = width // hidden
    rows = steps * batch
    big = strategy != 2  # the products over all steps through the BLAS
    projecting = w_hr.size > 0
    # h_{t-1} of every step, in input-time order: the output of the step before, or h0 at the
    # step where the row starts (the first, or its last valid one for the reverse direction)
    hprev = np.empty((steps, batch, size), h0.dtype)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        before = t + 1 if reverse else t - 1
        for b in range(batch):
            if s > 0 and b < active[before]:
                for j in range(size):
                    hprev[t, b, j] = out[before, b, j]
            else:
                for j in range(size):
                    hprev[t, b, j] = h0[b, j]
    # the gate pre-activations of every step: x W_ih^T (+ h W_hh^T, apart for GRU) + biases
    ax = np.empty((rows, width), h0.dtype)
    _product(blas, big, x.reshape(rows, features), w_ih_t, ax, 0)
    ah = np.empty((rows if mode == GRU else 0, width), h0.dtype)
    if mode == GRU:
        _product(blas, big, hprev.reshape(rows, size), w_hh_t, ah, 0)
    else:
        _product(blas, big, hprev.reshape(rows, size), w_hh_t, ax, 1)
    for r in range(rows):
        for j in range(width):
            ax[r, j] += bx[j]
        if mode == GRU:
            for j in range(width):
                ah[r, j] += bh[j]
    ax3 = ax.reshape(steps, batch, gates, hidden)
    ah3 = ah.reshape(steps if mode == GRU else 0, batch, gates, hidden)
    lstm_steps = steps if mode == LSTM else 0
    cprev = np.empty((lstm_steps, batch, hidden), h0.dtype)
    ctanh = np.empty((lstm_steps, batch, hidden), h0.dtype)
    proj_steps = steps if projecting else 0
    m = np.empty((proj_steps, batch, hidden), h0.dtype)  # o * tanh(c_t): the cell's output before W_hr
    dhp = np.empty((proj_steps, batch, size), h0.dtype)  # the gradient of h_t, for W_hr's

    dgx = np.empty((steps, batch, width), h0.dtype)
    dgh = np.empty((steps, batch, width), h0.dtype) if mode == GRU else dgx
    dgx3 = dgx.reshape(steps, batch, gates, hidden)
    dgh3 = dgh.reshape(steps, batch, gates, hidden)
    dh, dc = d_h.copy(), d_c.copy()
    dm = np.empty((batch, hidden), h0.dtype) if projecting else dh
    blocks = (batch + ROW_BLOCK - 1) // ROW_BLOCK
    if strategy == 0:
        _activate_rows(mode, ax3, ah3, c0, cprev, ctanh, m, active, reverse, 0, batch)
        unpacked = bx[:0]
        for s in range(steps):
            t = s if reverse else steps - 1 - s
            running = active[t]
            _seed_rows(dh, d_out, dhp, t, 0, running)
            if projecting:
                _gemm(blas, unpacked, dh[:running], w_hr, dm[:running], 0)
            for b in range(running):
                _grad_row(mode, t, b, ax3, ah3, out, hprev, cprev, ctanh, dm, dh, dc, dgx3, dgh3)
            _idle_rows(dgx3, dgh3, dhp, t, running, batch)
            _gemm(blas, blas.packed, dgh[t, :running], w_hh, dh[:running], 1)
    elif strategy == 1:
        for i in range(blocks):
            r0, r1 = i * ROW_BLOCK, min((i + 1) * ROW_BLOCK, batch)
            _activate_rows(mode, ax3, ah3, c0, cprev, ctanh, m, active, reverse, r0, r1)
            _backward_block(mode, ax3, ah3, out, hprev, cprev, ctanh, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp, w_hh,
                            w_hr, active, reverse, r0, r1)
    else:
        _backward_parallel(mode, ax3, ah3, c0, out, hprev, cprev, ctanh, m, d_out, dh, dm, dc, dgx3, dgh, dgh3, dhp,
                           w_hh, w_hr, active, reverse)
    # the sums over all steps: one product each
    dgx2, dgh2 = dgx.reshape(rows, width), dgh.reshape(rows, width)
    dx = np.empty((rows, features), h0.dtype)
    _product(blas, big, dgx2, w_ih, dx, 0)
    dw_ih = np.empty((width, features), h0.dtype)
    _product_tn(blas, big, dgx2, x.reshape(rows, features), dw_ih)
    dw_hh = np.empty((width, size), h0.dtype)
    _product_tn(blas, big, dgh2, hprev.reshape(rows, size), dw_hh)
    dw_hr = np.zeros((w_hr.shape[0], hidden), h0.dtype)
    if projecting:
        _product_tn(blas, big, dhp.reshape(rows, size), m.reshape(rows, hidden), dw_hr)
    db_ih = np.empty(width, h0.dtype)
    db_hh = np.empty(width, h0.dtype)
    _sum_rows(dgx2, db_ih)
    _sum_rows(dgh2, db_hh)
    return dx.reshape(steps, batch, features), dh, dc, dw_ih, dw_hh, db_ih, db_hh, dw_hr


#: The backward kernel's ``strategy`` argument per strategy name.
STRATEGY_CODES = {"blas": 0, "fused": 1, "parallel": 2}


#: The strategies whose kernels start numba's threads (``parallel=True``).
LAUNCH_THREADS = frozenset(name for name, kernel in LAYERS.items() if kernel.targetoptions.get("parallel"))


def serialize_launches() -> bool:
    """Whether calls of the kernels of :data:`LAUNCH_THREADS` must not overlap: where numba's
    threading layer is ``workqueue``, which is not threadsafe and aborts the process when two
    threads launch parallel work at once (numba docs, "The Threading Layers"); ``omp`` and
    ``tbb`` are threadsafe.  The layer is chosen at the first launch: until then, serialize."""
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # not chosen yet
        return True
