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

:func:`choose_strategy` picks one per spec; ``get_backend("numba:fused")``
forces one, ``get_backend("numba:blas@openblas")`` a BLAS route too
(:meth:`NumbaBackend.variants` lists them).  The compiled code is in
:mod:`kernels.numba_kernels`, imported (and so numba loaded) only by
``prepare``; this module's names, variants and availability need neither
numba nor torch.  ``prepare`` compiles, or loads from numba's disk cache,
before any timing.
"""

from __future__ import annotations

import importlib.util

import numpy as np

from . import blas
from .base import Backend
from .stack import StackPrepared

STRATEGIES = ("blas", "fused", "parallel")
#: Strategies that call a BLAS, and so can be forced onto a route: ``"blas@openblas"``.
ROUTED = ("blas", "fused")


def choose_strategy(spec, batch: int) -> str:
    """The strategy for ``spec`` at batch size ``batch``.

    Rule: ``blas`` once H >= 256 or B * H >= 4096, where one product per step
    reuses each weight across the batch and the BLAS call's fixed cost is paid
    back; below that ``parallel``, which calls no BLAS at all.  ``fused`` is
    never picked.  Evidence: ``python -m bench run --grid strategies`` with
    every strategy forced (results/strategies.csv; the README's "Numba
    strategies" gives how often the rule picks the fastest and its worst pick).
    """
    if spec.hidden_size >= 256 or batch * spec.hidden_size >= 4096:
        return "blas"
    return "parallel"


class NumbaPrepared(StackPrepared):
    def __init__(self, spec, weights, strategy, route):
        from . import numba_kernels

        self.kernels = numba_kernels
        self.strategy, self.route = strategy, route
        self.unpacked = np.empty(0, spec.np_dtype)
        # the BLAS's by-pointer arguments: transa/transb, m/n/k, alpha/beta (BlasArgs)
        self.scratch = (np.zeros(2, np.uint8), np.zeros(3, np.int32), np.zeros(2, spec.np_dtype))
        self._packed = {}
        super().__init__(spec, weights)

    def blas_args(self, packed):
        """The kernels' :class:`kernels.numba_kernels.BlasArgs` with ``packed`` W_hh^T (or empty)."""
        dtype = self.spec.np_dtype
        return self.kernels.BlasArgs(self.route.gemm(dtype), self.route.compute(dtype), packed,
                                     self.route.openmp, *self.scratch)

    def packed(self, w_hh_t, batch):
        """``w_hh_t`` packed by the BLAS for products with ``batch`` rows: made on the first call with
        that batch (the harness's untimed warm-up) and kept, one packing per weight (MKL's is at
        least 8 MB whatever the size), checked to belong to this very array."""
        entry = self._packed.get(id(w_hh_t))
        if entry is None or entry[0] is not w_hh_t or entry[1] != batch:
            entry = self._packed[id(w_hh_t)] = (w_hh_t, batch, self.route.pack(w_hh_t, batch))
        return entry[2]

    def convert(self, params):
        """The forward kernels' ``(W_ih^T, W_hh^T, bx, bh)`` (biases folded except for GRU), then
        ``W_ih`` and ``W_hh`` as stored, for the backward kernel's products."""
        w_ih, w_hh, b_ih, b_hh = params
        fold = self.spec.mode != "gru"  # GRU keeps b_hn inside r * (W_hn h + b_hn)
        bx = (b_ih + b_hh) if fold else b_ih
        bh = np.zeros_like(b_hh) if fold else b_hh
        return (np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T),
                np.ascontiguousarray(bx), np.ascontiguousarray(bh),
                np.ascontiguousarray(w_ih), np.ascontiguousarray(w_hh))

    def strategy_for(self, batch: int) -> str:
        return self.strategy if self.strategy != "auto" else choose_strategy(self.spec, batch)

    def layer(self, x, h0, c0, params, reverse):
        batch = x.shape[1]
        strategy = self.strategy_for(batch)
        c = np.ascontiguousarray(h0 if c0 is None else c0)  # carried for every mode, read by LSTM only
        packed = self.packed(params[1], batch) if strategy == "blas" else self.unpacked
        out, h, c = self.kernels.LAYERS[strategy](
            self.blas_args(packed), self.kernels.MODE_CODES[self.spec.mode],
            np.ascontiguousarray(x), np.ascontiguousarray(h0), c, *params[:4], reverse)
        return out, h, (c if c0 is not None else None)

    def layer_train(self, x, h0, c0, params, reverse):
        """The forward kernel; the cache is its inputs and output, from which the backward kernel
        recomputes the gates (:mod:`kernels.numba_kernels`)."""
        x = np.ascontiguousarray(x)
        out, h, c = self.layer(x, h0, c0, params, reverse)
        return out, h, c, (x, h0, c0, out)

    def layer_backward(self, cache, d_out, d_h, d_c, params, reverse):
        x, h0, c0, out = cache
        strategy = self.strategy_for(x.shape[1])
        zeros = np.zeros_like(h0)
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = self.kernels._layer_backward(
            self.blas_args(self.unpacked), self.kernels.STRATEGY_CODES[strategy], self.kernels.MODE_CODES[self.spec.mode],
            x, np.ascontiguousarray(h0), np.ascontiguousarray(zeros if c0 is None else c0), out, *params, reverse,
            np.ascontiguousarray(d_out), np.ascontiguousarray(d_h), np.ascontiguousarray(zeros if d_c is None else d_c))
        return dx, dh0, (dc0 if c0 is not None else None), (dw_ih, dw_hh, db_ih, db_hh)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None):
        self.compile_backward()
        return super().to_device_backward(x, h0, c0, grad_output, grad_h_n, grad_c_n)

    def compile_backward(self):
        """Compile (or load from the disk cache) this dtype's backward kernel on inputs of one
        element, before any timed call; ``jit_cache`` then says how the backward's code came."""
        if getattr(self, "_backward_ready", False):
            return
        dt = self.spec.np_dtype
        x, s, b, w = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt), np.zeros(1, dt), np.zeros((1, 1), dt)
        kernel = self.kernels._layer_backward
        before = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        kernel(self.blas_args(self.unpacked), 2, 0, x, s, s, x, w, w, b, b, w, w, False, x, s, s)
        after = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        self.jit_cache = "compiled" if after[0] > before[0] else "disk cache" if after[1] > before[1] else self.jit_cache
        self._backward_ready = True

    def compile(self):
        """Compile (or load from the disk cache) this dtype's signatures of the strategies this
        backend may run, on inputs of one element."""
        dt = self.spec.np_dtype
        x, s, b = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt), np.zeros(1, dt)
        layers = [self.kernels.LAYERS[n] for n in (STRATEGIES if self.strategy == "auto" else (self.strategy,))]

        def counts():
            return [(sum(f.stats.cache_misses.values()), sum(f.stats.cache_hits.values())) for f in layers]

        before = counts()
        for layer in layers:
            layer(self.blas_args(self.unpacked), 0, x, s, s, s, s, b, b, False)
        after = counts()
        missed = any(a[0] > b_[0] for a, b_ in zip(after, before))
        hit = any(a[1] > b_[1] for a, b_ in zip(after, before))
        self.jit_cache = "compiled" if missed else "disk cache" if hit else "in memory"


class NumbaBackend(Backend):
    """``variant``: ``"auto"`` (:func:`choose_strategy`) or one of :meth:`variants`: a strategy,
    or ``"<strategy>@<route>"`` for a strategy that calls a BLAS, to force the route too
    (:mod:`kernels.blas`; default :func:`kernels.blas.default_route`), e.g. ``"blas@openblas"``.

    Raises:
        ValueError: an unknown variant (the message lists the known ones).
    """

    def __init__(self, variant: str = "auto"):
        if variant != "auto" and variant not in self.variants():
            raise ValueError(f"variant: expected 'auto' or one of {list(self.variants())}; got {variant!r}")
        strategy, _, route = variant.partition("@")
        self.strategy, self.route_name = strategy, route or None
        self.name = "numba" if variant == "auto" else f"numba:{variant}"

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """Every strategy, then each strategy that calls a BLAS on each route: ``blas@mkl``, ..."""
        return STRATEGIES + tuple(f"{s}@{r}" for s in ROUTED for r in blas.ROUTE_NAMES)

    @property
    def route(self) -> blas.Route | None:
        """The BLAS route this backend calls, or ``None`` where it is not present."""
        return blas.routes().get(self.route_name) if self.route_name else blas.default_route()

    def unavailable_reason(self):
        if importlib.util.find_spec("numba") is None:
            return "numba is not installed"
        if self.route_name is None:  # any route will do; asked without importing torch
            if any(importlib.util.find_spec(lib) for lib in ("scipy", "torch")):
                return None
        elif self.route is not None:
            return None
        wanted = [self.route_name] if self.route_name else list(blas.ROUTE_NAMES)
        return "no BLAS route here: " + "; ".join(f"{name} {blas.ROUTE_NEEDS[name]}" for name in wanted)

    def passes(self):
        return ("forward", "forward_backward")

    def describe(self):
        """``numba_blas``: the description of the BLAS route the kernels call (empty for
        ``parallel``, which calls none)."""
        route = self.route if self.strategy != "parallel" else None
        return {"numba_blas": route.description if route else ""}

    def prepare(self, spec, weights):
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"backend {self.name}: {reason}")
        prepared = NumbaPrepared(spec, weights, self.strategy, self.route)
        prepared.compile()
        return prepared
