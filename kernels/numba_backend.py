"""``numba``: the recurrence compiled with ``@njit``, with three strategies.

* ``blas``: first the input projection of all timesteps in one matrix
  product, ``x W_ih^T`` over (T*B, I) -- the trick behind cuDNN's RNN
  speedups (Appleyard et al. 2016, "Optimizing performance of recurrent
  neural networks on GPUs") -- then per step only the recurrent product
  ``h W_hh^T``, added onto that step's projection by the BLAS itself
  (beta = 1), with W_hh^T packed once where the BLAS can pack (MKL), then one
  pass per batch row for biases and gates, rows spread over threads where
  the BLAS's own threads leave the cores between calls (MKL's OpenMP ones
  do; OpenBLAS's spin).  The BLAS is reached through
  :mod:`kernels.blas` (MKL inside torch by default; SciPy's OpenBLAS).  For
  large H or B, where the products are compute-bound.
* ``fused``: the same hoisted projection, then blocks of batch rows through
  all timesteps on one thread with the recurrent product as loops: k in
  chunks of 4 in the order of the plain sum, the inner loop over the G*H
  outputs of a contiguous row of W^T (no reduction, so LLVM vectorizes it
  without ``fastmath``); no call and no allocation per step.
* ``parallel``: no BLAS at all -- both products as those loops, step by
  step -- with blocks of batch rows spread over threads with ``prange``.
  Rows of a batch never interact, so each thread runs its rows through all
  timesteps alone: no shared accumulator, the same order of operations on
  every run, bitwise-identical results.  For small H, where a BLAS call costs
  more than the arithmetic (and its spinning threads take the cores).

:func:`choose_strategy` picks one per spec (the rule and the measurement
behind it are in its docstring); ``get_backend("numba:fused")`` forces one,
``get_backend("numba:blas@openblas")`` a BLAS route too.

float32 activations use a rational approximation of tanh (Eigen's
``generic_fast_tanh_float``: max abs error 4e-7 on [-10, 10], measured against
float64 tanh) that is plain arithmetic and vectorizes; sigmoid(v) =
0.5 + 0.5*tanh(v/2).  float64 uses libm's tanh.  NaN propagates: the clamp
is written with comparisons that NaN fails.  Functions are compiled once per
signature and cached on disk; ``prepare`` compiles before any timing.
"""

from __future__ import annotations

import importlib.util
import math

import numba
import numpy as np
from numba.core import types
from numba.extending import overload

from . import blas
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


@overload(act_tanh, jit_options={"cache": True, "error_model": "numpy"})
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
#: loop with a division, which kept the float32 tanh from vectorizing (measured 5x slower per element).
JIT = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}


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

    Written for LLVM's vectorizer, each choice measured: a gate is indexed as ``ax3[r, gate, j]``,
    not ``ax[r, 2 * H + j]`` (numba's negative-index check then stays in the loop: 9x slower per
    element) and not through a view per gate (views made in one branch of ``mode`` cost reference
    counting on every step: 3x slower for a small LSTM)."""
    hidden = h.shape[1]
    if mode == 0:
        for j in range(hidden):
            h[b, j] = act_tanh(ax[r, j])
    elif mode == 1:
        for j in range(hidden):
            v = ax[r, j]
            h[b, j] = type(v)(0.0) if v < 0.0 else v  # NaN stays NaN, as torch.relu
    elif mode == 2:  # gates in PyTorch's order i, f, g, o
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
    else:  # r, z, n
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
def _gemm(lib, packed, a, b, out, beta):
    """``out = a @ b + beta * out`` through the BLAS of ``lib`` (:meth:`NumbaPrepared.blas_args`),
    for C-contiguous ``a`` (M, K), ``b`` (K, N), ``out`` (M, N) of one dtype: the column-major
    ``out^T = b^T a^T``.  ``packed``: ``b`` as packed by :meth:`kernels.blas.Route.pack` (then
    ``?gemm_compute_`` is called), or empty (then ``?gemm_``).  The BLAS reads its scalar arguments
    through pointers into ``lib``'s scratch arrays, which the Python caller owns: arrays made here
    would be freed by numba after their last use in this function -- before the call."""
    gemm, compute = lib[0], lib[1]
    chars, dims, scalars = lib[4]
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
        compute(chars[0:].ctypes.data, chars[1:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
                dims[2:].ctypes.data, packed.ctypes.data, dims[0:].ctypes.data, a.ctypes.data, dims[2:].ctypes.data,
                scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data, dims.ctypes.data)  # 13th: ignored
    else:
        gemm(chars[1:].ctypes.data, chars[1:].ctypes.data, dims[0:].ctypes.data, dims[1:].ctypes.data,
             dims[2:].ctypes.data, scalars.ctypes.data, b.ctypes.data, dims[0:].ctypes.data, a.ctypes.data,
             dims[2:].ctypes.data, scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data)


@numba.njit(inline="always", **JIT)
def _project(lib, x, w_ih_t):
    """All timesteps' input projection in one product: (T, B, I) -> (T, B, G*H).  The bias is
    added step by step, where the step's rows are in cache (a pass of its own over T*B*G*H values
    cost about 25 us per step at B = 64, H = 256)."""
    steps, batch, features = x.shape
    xp = np.empty((steps * batch, w_ih_t.shape[1]), x.dtype)
    _gemm(lib, x[0, 0, :0], x.reshape(steps * batch, features), w_ih_t, xp, 0)  # x[0, 0, :0]: empty, unpacked
    return xp.reshape(steps, batch, w_ih_t.shape[1])


@numba.njit(inline="always", **JIT)
def _finish_row(mode, xp, xp4, hh, hh3, bx, bh, h, c, out, t, b):
    """Batch row ``b`` of step ``t`` after the step's product: biases, gates, output."""
    for j in range(bx.shape[0]):
        xp[t, b, j] += bx[j]
    if mode == 3:
        for j in range(bh.shape[0]):
            hh[b, j] += bh[j]
        _update(mode, xp[t], xp4[t], hh3, b, h, c, b)
    else:
        _update(mode, xp[t], xp4[t], xp4[t], b, h, c, b)
    for j in range(h.shape[1]):
        out[t, b, j] = h[b, j]


#: From this much work per step (B * H) the rows' updates after each product of ``blas`` are spread
#: over threads, where the BLAS's threads leave the cores between calls (``Route.openmp``: MKL);
#: below it, starting the threads costs more than the rows (3-4x slower at B = 8, H = 8).
PARALLEL_ROWS = 4096


@numba.njit(parallel=True, **JIT)
def _layer_blas(lib, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    """``lib``: see :meth:`NumbaPrepared.blas_args`."""
    _, _, packed, row_threads, _ = lib
    steps = x.shape[0]
    xp = _project(lib, x, w_ih_t)
    h, c = h0.copy(), c0.copy()
    batch, hidden = h.shape
    gates = w_hh_t.shape[1] // hidden
    hh = np.empty((batch, w_hh_t.shape[1]) if mode == 3 else (0, 0), h.dtype)
    hh3 = hh.reshape(hh.shape[0], gates if mode == 3 else 0, hidden)
    xp4 = xp.reshape(steps, batch, gates, hidden)
    out = np.empty((steps, batch, hidden), h.dtype)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        if mode == 3:  # GRU: h W_hh^T + b_hh on its own, for r * (W_hn h + b_hn)
            _gemm(lib, packed, h, w_hh_t, hh, 0)
        else:  # the product lands on this step's projection: beta = 1, no extra pass
            _gemm(lib, packed, h, w_hh_t, xp[t], 1)
        if row_threads and batch * hidden >= PARALLEL_ROWS:
            for b in numba.prange(batch):  # rows are independent: deterministic
                _finish_row(mode, xp, xp4, hh, hh3, bx, bh, h, c, out, t, b)
        else:
            for b in range(batch):
                _finish_row(mode, xp, xp4, hh, hh3, bx, bh, h, c, out, t, b)
    return out, h, c


#: Batch rows per block in ``fused`` and ``parallel``: a block's rows share each chunk of W^T
#: while it is in L1.
ROW_BLOCK = 4


@numba.njit(inline="always", **JIT)
def _block(mode, x, projected, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, r0, r1):
    """Batch rows ``r0:r1`` through every timestep with the products as loops: no BLAS call and no
    allocation per step.  ``projected``: ``x`` already holds x W_ih^T (T, B, G*H), and the bias is
    added here; otherwise ``x`` is the input (T, B, I) and its product is taken here, step by step.  Rows never interact:
    a row's result is the same whatever block it is in."""
    steps, rows, width = x.shape[0], r1 - r0, bx.shape[0]
    hidden = h.shape[1]
    ax = np.empty((rows, width), h.dtype)
    ah = np.empty((rows, width), h.dtype)
    ax3, ah3 = ax.reshape(rows, width // hidden, hidden), ah.reshape(rows, width // hidden, hidden)
    for s in range(steps):
        t = steps - 1 - s if reverse else s
        for r in range(rows):  # explicit loops: slice assignment costs more than the work here
            for j in range(width):
                ax[r, j] = x[t, r0 + r, j] + bx[j] if projected else bx[j]
            if mode == 3:
                for j in range(width):
                    ah[r, j] = bh[j]
        if not projected:
            _accumulate(ax, x[t, r0:r1], w_ih_t, rows)
        _accumulate(ah if mode == 3 else ax, h[r0:r1], w_hh_t, rows)
        for r in range(rows):
            b = r0 + r
            _update(mode, ax, ax3, ah3, r, h, c, b)
            for j in range(hidden):
                out[t, b, j] = h[b, j]


@numba.njit(**JIT)
def _layer_fused(lib, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    h, c = h0.copy(), c0.copy()
    batch = h.shape[0]
    out = np.empty((x.shape[0], batch, h.shape[1]), h.dtype)
    xp = _project(lib, x, w_ih_t)  # one BLAS call; the loop below then has half the work
    for r0 in range(0, batch, ROW_BLOCK):
        _block(mode, xp, True, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, r0, min(r0 + ROW_BLOCK, batch))
    return out, h, c


@numba.njit(parallel=True, **JIT)
def _layer_parallel(lib, mode, x, h0, c0, w_ih_t, w_hh_t, bx, bh, reverse):
    h, c = h0.copy(), c0.copy()
    batch = h.shape[0]
    out = np.empty((x.shape[0], batch, h.shape[1]), h.dtype)
    # no BLAS here: OpenBLAS's threads spin after a call and took the cores from the workers
    # (40 us per step at B = 64, H = 8 with a hoisted projection through OpenBLAS, against 4 without)
    for i in numba.prange((batch + ROW_BLOCK - 1) // ROW_BLOCK):  # each block runs all steps on one thread
        r0 = i * ROW_BLOCK
        _block(mode, x, False, h, c, w_ih_t, w_hh_t, bx, bh, out, reverse, r0, min(r0 + ROW_BLOCK, batch))
    return out, h, c


LAYERS = {"blas": _layer_blas, "fused": _layer_fused, "parallel": _layer_parallel}


def choose_strategy(spec, batch: int) -> str:
    """The strategy for ``spec`` at batch size ``batch``.

    Rule, from ``python -m bench run --grid strategies`` on the 2-core
    reference machine (results/strategies.csv; README, "Numba strategies"):
    ``blas`` once H >= 256 or B * H >= 4096, where one product per step reuses
    each weight across the batch and the BLAS call's fixed cost is paid back;
    below that ``parallel``, which calls no BLAS at all.  ``fused`` (the BLAS
    projection, then one thread) is never picked: at B = 1 and H <= 64 it is
    within 10% of ``parallel`` either way, and slower elsewhere.  The rule
    picks the fastest of the three in 29 of the 36 cases and one within 10%
    in 33; the worst pick is 1.16x the best (LSTM, B = 8, H = 64, where
    ``blas`` wins).
    """
    if spec.hidden_size >= 256 or batch * spec.hidden_size >= 4096:
        return "blas"
    return "parallel"


class NumbaPrepared(StackPrepared):
    def __init__(self, spec, weights, strategy, route):
        self.strategy, self.route = strategy, route
        self.gemm, self.compute = route.gemm(spec.np_dtype), route.compute(spec.np_dtype)
        self.unpacked = np.empty(0, spec.np_dtype)
        # the BLAS's by-pointer arguments: transa/transb, m/n/k, alpha/beta (see _gemm)
        self.scratch = (np.zeros(2, np.uint8), np.zeros(3, np.int32), np.zeros(2, spec.np_dtype))
        self._packed = {}
        super().__init__(spec, weights)

    def blas_args(self, packed):
        """What a layer needs of the BLAS: ``(?gemm_, ?gemm_compute_ or ?gemm_, packed W_hh^T or
        empty, whether rows may be spread over numba's threads between BLAS calls, scratch arrays
        for the BLAS's by-pointer arguments)``."""
        return self.gemm, self.compute, packed, self.route.openmp, self.scratch

    def packed(self, w_hh_t, batch):
        """``w_hh_t`` packed by the BLAS for products with ``batch`` rows: made on the first call with
        that batch (the harness's untimed warm-up) and kept, one packing per weight (MKL's is at
        least 8 MB whatever the size), checked to belong to this very array."""
        entry = self._packed.get(id(w_hh_t))
        if entry is None or entry[0] is not w_hh_t or entry[1] != batch:
            entry = self._packed[id(w_hh_t)] = (w_hh_t, batch, self.route.pack(w_hh_t, batch))
        return entry[2]

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
        packed = self.packed(params[1], batch) if strategy == "blas" else self.unpacked
        out, h, c = LAYERS[strategy](self.blas_args(packed), MODE_CODES[self.spec.mode],
                                     np.ascontiguousarray(x), np.ascontiguousarray(h0), c, *params, reverse)
        return out, h, (c if c0 is not None else None)


class NumbaBackend(Backend):
    """``variant``: ``"auto"`` (:func:`choose_strategy`), one of :data:`STRATEGIES`, or
    ``"<strategy>@<route>"`` to force the BLAS route too (:mod:`kernels.blas`; default
    :func:`kernels.blas.default_route`), e.g. ``"blas@openblas"``."""

    def __init__(self, variant: str = "auto"):
        strategy, _, route = variant.partition("@")
        if strategy not in ("auto", *STRATEGIES) or (route and route not in blas.ROUTE_NAMES):
            raise ValueError(f"variant: expected 'auto' or one of {list(STRATEGIES)}, optionally "
                             f"'@' one of {list(blas.ROUTE_NAMES)}; got {variant!r}")
        self.strategy, self.route_name = strategy, route or None
        self.name = "numba" if variant == "auto" else f"numba:{variant}"

    @property
    def route(self) -> blas.Route | None:
        """The BLAS route this backend calls, or ``None`` where it is not present."""
        return blas.routes().get(self.route_name) if self.route_name else blas.default_route()

    def unavailable_reason(self):
        if self.route_name is None:  # any route will do; asked without importing torch (kernels.base)
            if any(importlib.util.find_spec(lib) for lib in ("scipy", "torch")):
                return None
        elif self.route is not None:
            return None
        wanted = [self.route_name] if self.route_name else list(blas.ROUTE_NAMES)
        return "no BLAS route here: " + "; ".join(f"{name} {blas.ROUTE_NEEDS[name]}" for name in wanted)

    def prepare(self, spec, weights):
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"backend {self.name}: {reason}")
        prepared = NumbaPrepared(spec, weights, self.strategy, self.route)
        # compile (or load from the disk cache) this dtype's signatures now
        dt = spec.np_dtype
        x = np.zeros((1, 1, 1), dt)
        s = np.zeros((1, 1), dt)
        b = np.zeros(1, dt)
        for name in STRATEGIES if self.strategy == "auto" else (self.strategy,):
            LAYERS[name](prepared.blas_args(prepared.unpacked), 0, x, s, s, s, s, b, b, False)
        return prepared
