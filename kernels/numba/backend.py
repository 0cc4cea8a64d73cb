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
  :mod:`kernels.numba.blas` (MKL inside torch by default; SciPy's OpenBLAS).  For
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

Every strategy computes LSTM's projections and variable-length batches in its compiled kernels,
forward and backward: the rows arrive sorted by length (:class:`kernels.stack.Packing`), so a step
runs the prefix of the batch still running (in ``blas``, the step's product takes those rows; in
``fused`` and ``parallel`` each block of rows takes its running prefix), and with a projection the
cell's output ``o * tanh(c)`` (H) is multiplied by W_hr^T into h (P) after each step's updates.

Plain ``numba`` follows this machine's tuned plan (:mod:`kernels.numba.plan`, written by
``python -m bench tune``): per mode, dtype and pass, the variant -- strategy and BLAS route --
measured fastest at the nearest size in log space; without a plan, :func:`choose_strategy`'s rule
on the default route.  ``get_backend("numba:fused")`` forces a strategy,
``get_backend("numba:blas@openblas")`` a BLAS route too (:meth:`NumbaBackend.variants` lists
them).  The compiled code is in
:mod:`kernels.numba.compiled`, imported (and so numba loaded) only by
``prepare``; this module's names, variants and availability need neither
numba nor torch.  ``prepare`` compiles, or loads from numba's disk cache,
before any timing.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import threading

import numpy as np

from . import blas
from . import plan as plans
from ..base import Backend
from ..checks import standard_layout
from ..stack import StackPrepared

STRATEGIES = ("blas", "fused", "parallel")
#: Strategies that call a BLAS, and so can be forced onto a route: ``"blas@openblas"``.
ROUTED = ("blas", "fused")
#: Held around a kernel that starts numba's threads where the threading layer cannot take two
#: launches at once (:func:`kernels.numba.compiled.serialize_launches`); one per process, since the
#: threading layer is.
LAUNCH_LOCK = threading.Lock()


def _no_blas(*args):
    raise AssertionError("the parallel strategy called a BLAS")


#: What ``parallel``, which calls no BLAS, passes for the BLAS: the kernels' argument record
#: (:class:`kernels.numba.compiled.BlasArgs`) is one type for every strategy, so it needs pointers
#: of ``?gemm_``'s type; these are never called.
NO_BLAS = blas.Route("none", "", {"float32": blas.GEMM(_no_blas), "float64": blas.GEMM(_no_blas)})


def choose_strategy(spec, batch: int) -> str:
    """The strategy for ``spec`` at batch size ``batch``.

    Rule: ``blas`` once H >= 256 or B * H >= 4096, where one product per step
    reuses each weight across the batch and the BLAS call's fixed cost is paid
    back; below that ``parallel``, which calls no BLAS at all.  ``fused`` is
    never picked.  Evidence: ``python -m bench run --grid strategies`` with
    every strategy forced (results/intel-xeon-processor-2-80ghz-2c-24g/strategies.csv; docs/speed.md, "Numba
    strategies" gives how often the rule picks the fastest and its worst pick).
    """
    if spec.hidden_size >= 256 or batch * spec.hidden_size >= 4096:
        return "blas"
    return "parallel"


@dataclasses.dataclass(frozen=True)
class Choice:
    """What one layer call runs: a strategy, the route it calls (also passed, unused, to
    ``parallel``), and the plan that chose it (its label; "" for the rule or a forced variant)."""

    strategy: str
    route: blas.Route
    plan: str = ""

    @property
    def variant(self) -> str:
        """``"parallel"``, or ``"<strategy>@<route>"`` for a strategy that calls a BLAS."""
        return self.strategy if self.strategy not in ROUTED else f"{self.strategy}@{self.route.name}"


class NumbaPrepared(StackPrepared):
    """Safe to run from several threads at once: kernels that start numba's threads are serialized
    where the threading layer demands it (:data:`LAUNCH_LOCK`).  The BLAS's scratch is shared by
    the threads: a kernel holds the GIL everywhere but inside its parallel loops, which call no
    BLAS, so between a thread's writes of the scratch and the BLAS call that reads them no other
    thread runs."""

    def __init__(self, spec, weights, strategy, route, plan=None):
        from . import compiled

        self.kernels = compiled
        self.strategy, self.route, self.plan = strategy, route, plan
        self.unpacked = np.empty(0, spec.np_dtype)
        # the BLAS's by-pointer arguments: transa/transb, m/n/k, alpha/beta (BlasArgs)
        self.scratch = (np.zeros(2, np.uint8), np.zeros(3, np.int32), np.zeros(2, spec.np_dtype))
        self._packed = {}
        self._every_step = {}
        #: strategies whose kernels run under LAUNCH_LOCK: all that start threads until compile()
        #: has seen which threading layer numba chose
        self.serialized = compiled.LAUNCH_THREADS
        self._choices = {}
        self.last: Choice | None = None
        super().__init__(spec, weights)

    def blas_args(self, route, packed):
        """The kernels' :class:`kernels.numba.compiled.BlasArgs` for ``route`` with ``packed``
        W_hh^T (or empty)."""
        dtype = self.spec.np_dtype
        return self.kernels.BlasArgs(route.gemm(dtype), route.compute(dtype), packed, route.openmp, *self.scratch)

    def packed(self, route, w_hh_t, batch):
        """``w_hh_t`` packed by ``route`` for products with ``batch`` rows: made on the first call
        with that batch (the harness's untimed warm-up) and kept, one packing per weight (MKL's is
        at least 8 MB whatever the size), checked to belong to this very array and route."""
        entry = self._packed.get(id(w_hh_t))
        if entry is None or entry[0] is not w_hh_t or entry[1] != (batch, route.name):
            entry = self._packed[id(w_hh_t)] = (w_hh_t, (batch, route.name), route.pack(w_hh_t, batch))
        return entry[2]

    def choose(self, steps: int, batch: int) -> Choice:
        """What runs a layer of ``steps`` timesteps and ``batch`` rows: the forced variant; else
        the plan's variant for the nearest size, where the plan has this mode and dtype and its
        route is here; else the rule on the default route.  Worked out once per (T, B): the
        timed calls only look it up."""
        key = (steps, batch)
        choice = self._choices.get(key)
        if choice is None:
            choice = self._choices[key] = self._choose(steps, batch)
        self.last = choice
        return choice

    def _choose(self, steps, batch):
        if self.strategy != "auto":
            return Choice(self.strategy, self.route)
        spec = self.spec
        variant = self.plan.choose(spec.mode, spec.dtype, steps, batch, spec.hidden_size) if self.plan else None
        if variant is not None:
            strategy, _, route_name = variant.partition("@")
            route = blas.route(route_name) if route_name else self.route
            if route is not None:
                return Choice(strategy, route, self.plan.label)
        return Choice(choose_strategy(spec, batch), self.route)

    def ran(self):
        """``variant`` (what the last run called, e.g. ``blas@openblas``), ``plan`` (the label of the
        plan that chose it, "" for the rule or a forced variant) and ``numba_blas`` (the route it
        called; "" for ``parallel``)."""
        if self.last is None:
            return {}
        called = self.last.route.description if self.last.strategy in ROUTED else ""
        return {"variant": self.last.variant, "plan": self.last.plan, "numba_blas": called}

    def convert(self, params):
        """The forward kernels' ``(W_ih^T, W_hh^T, bx, bh, W_hr^T)`` (biases folded except for GRU;
        W_hr^T (H, P), empty (0, 0) without a projection), then ``W_ih``, ``W_hh`` and ``W_hr`` as
        stored (``W_hr`` empty likewise), for the backward kernel's products."""
        w_ih, w_hh, b_ih, b_hh, w_hr = params
        fold = self.spec.mode != "gru"  # GRU keeps b_hn inside r * (W_hn h + b_hn)
        bx = (b_ih + b_hh) if fold else b_ih
        bh = np.zeros_like(b_hh) if fold else b_hh
        w_hr = np.zeros((0, 0), self.spec.np_dtype) if w_hr is None else w_hr
        # in the layout compile() compiled for, whatever flags the caller's arrays carry (read-only,
        # unaligned, byte-swapped): else the first run would compile again, inside a timing
        return tuple(standard_layout(a, self.spec.np_dtype) for a in (w_ih.T, w_hh.T, bx, bh, w_hr.T, w_ih, w_hh, w_hr))

    def every_step(self, steps: int, batch: int) -> np.ndarray:
        """The kernels' ``active`` where every row runs every step: ``batch`` for each of ``steps``
        (made once per size: the timed calls only look it up)."""
        active = self._every_step.get((steps, batch))
        if active is None:
            active = self._every_step[(steps, batch)] = np.full(steps, batch, np.int64)
        return active

    def layer(self, x, h0, c0, params, reverse, active):
        steps, batch = x.shape[0], x.shape[1]
        choice = self.choose(steps, batch)
        c = np.ascontiguousarray(h0 if c0 is None else c0)  # carried for every mode, read by LSTM only
        packed = self.packed(choice.route, params[1], batch) if choice.strategy == "blas" else self.unpacked
        out, h, c = self.launch(choice.strategy, self.blas_args(choice.route, packed),
                                self.kernels.MODE_CODES[self.spec.mode], np.ascontiguousarray(x),
                                np.ascontiguousarray(h0), c, *params[:5],
                                self.every_step(steps, batch) if active is None else active, reverse)
        return out, h, (c if c0 is not None else None)

    def launch(self, strategy, *args):
        """``strategy``'s kernel on ``args``, under :data:`LAUNCH_LOCK` where it must be."""
        kernel = self.kernels.LAYERS[strategy]
        if strategy in self.serialized:
            with LAUNCH_LOCK:
                return kernel(*args)
        return kernel(*args)

    def layer_train(self, x, h0, c0, params, reverse, active):
        """The forward kernel; the cache is its inputs and output, from which the backward kernel
        recomputes the gates (:mod:`kernels.numba.compiled`)."""
        x = np.ascontiguousarray(x)
        active = self.every_step(x.shape[0], x.shape[1]) if active is None else active
        out, h, c = self.layer(x, h0, c0, params, reverse, active)
        return out, h, c, (x, h0, c0, out, active)

    def layer_backward(self, cache, d_out, d_h, d_c, params, reverse):
        x, h0, c0, out, active = cache
        choice = self.choose(x.shape[0], x.shape[1])  # the forward's choice at this size
        zeros = np.zeros_like(h0)  # c0 and dc for the cells without one (h_size is H there)
        dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh, dw_hr = self.launch_backward(
            choice.strategy, self.blas_args(choice.route, self.unpacked),
            self.kernels.STRATEGY_CODES[choice.strategy], self.kernels.MODE_CODES[self.spec.mode],
            x, np.ascontiguousarray(h0), np.ascontiguousarray(zeros if c0 is None else c0), out, *params, active,
            reverse, np.ascontiguousarray(d_out), np.ascontiguousarray(d_h),
            np.ascontiguousarray(zeros if d_c is None else d_c))
        return (dx, dh0, (dc0 if c0 is not None else None),
                (dw_ih, dw_hh, db_ih, db_hh, dw_hr if self.spec.proj_size else None))

    def launch_backward(self, strategy, *args):
        """The backward kernel for ``strategy`` on ``args``, under :data:`LAUNCH_LOCK` where that
        strategy's threads must not overlap another's (it starts threads for ``parallel`` only)."""
        if strategy in self.serialized:
            with LAUNCH_LOCK:
                return self.kernels._layer_backward(*args)
        return self.kernels._layer_backward(*args)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        self.compile_backward()
        return super().to_device_backward(x, h0, c0, grad_output, grad_h_n, grad_c_n, lengths)

    def compile_backward(self):
        """Compile (or load from the disk cache) this dtype's backward kernel on inputs of one
        element, before any timed call; ``jit_cache`` then says how the backward's code came."""
        if getattr(self, "_backward_ready", False):
            return
        dt = self.spec.np_dtype
        x, s, b, w = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt), np.zeros(1, dt), np.zeros((1, 1), dt)
        none, active = np.zeros((0, 0), dt), np.ones(1, np.int64)
        kernel = self.kernels._layer_backward
        before = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        self.launch_backward("parallel", self.blas_args(self.route, self.unpacked), 2, 0, x, s, s, x, w, w, b, b, none,
                             w, w, none, active, False, x, s, s)
        after = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        self.jit_cache = "compiled" if after[0] > before[0] else "disk cache" if after[1] > before[1] else self.jit_cache
        self._backward_ready = True

    def compile(self):
        """Compile (or load from the disk cache) this dtype's signatures of the strategies this
        backend may run, on inputs of one element.  ``jit_cache`` says which, and, where numba has
        no writable cache directory, that the code is not cached and why."""
        dt = self.spec.np_dtype
        x, s, b = np.zeros((1, 1, 1), dt), np.zeros((1, 1), dt), np.zeros(1, dt)
        none, active = np.zeros((0, 0), dt), np.ones(1, np.int64)
        names = STRATEGIES if self.strategy == "auto" else (self.strategy,)
        layers = [self.kernels.LAYERS[n] for n in names]

        def counts():
            return [(sum(f.stats.cache_misses.values()), sum(f.stats.cache_hits.values())) for f in layers]

        before = counts()
        for name in names:
            self.launch(name, self.blas_args(self.route, self.unpacked), 0, x, s, s, s, s, b, b, none, active, False)
        after = counts()
        missed = any(a[0] > b_[0] for a, b_ in zip(after, before))
        hit = any(a[1] > b_[1] for a, b_ in zip(after, before))
        self.jit_cache = "compiled" if missed else "disk cache" if hit else "in memory"
        if not self.kernels.DISK_CACHE:
            self.jit_cache += f" (no disk cache: {self.kernels.DISK_CACHE_REASON})"
        if not self.kernels.serialize_launches():  # the layer is chosen, and threadsafe: no lock
            self.serialized = frozenset()


class NumbaBackend(Backend):
    """``variant``: ``"auto"`` (this machine's plan, else :func:`choose_strategy`) or one of
    :meth:`variants`: a strategy,
    or ``"<strategy>@<route>"`` for a strategy that calls a BLAS, to force the route too
    (:mod:`kernels.numba.blas`; default :func:`kernels.numba.blas.default_route`), e.g. ``"blas@openblas"``.

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
        """The BLAS route this backend calls, or ``None`` where it is not present (or every route
        present was dropped by its check, :func:`kernels.numba.blas.verify`) and for ``parallel``, which
        calls none."""
        if self.strategy == "parallel":
            return None
        return blas.route(self.route_name) if self.route_name else blas.default_route()

    def unavailable_reason(self):
        """Why this very variant cannot run here: numba missing, or the BLAS route it calls (the
        forced one, else any) absent; ``parallel`` needs no BLAS and asks for none (so neither
        scipy nor torch is imported for it)."""
        if importlib.util.find_spec("numba") is None:
            return "numba is not installed"
        if self.strategy == "parallel" or self.route is not None:
            return None
        wanted = [self.route_name] if self.route_name else list(blas.ROUTE_NAMES)
        return "no BLAS route here: " + "; ".join(f"{name} {blas.why_not(name)}" for name in wanted)

    def passes(self):
        return ("forward", "forward_backward")

    def unavailable_for_lengths(self, spec):
        return None

    def describe(self):
        """``numba_blas``: the description of the BLAS route the kernels call (empty for
        ``parallel``, which calls none)."""
        route = self.route
        return {"numba_blas": route.description if route else ""}

    def prepare(self, spec, weights):
        reason = self.unavailable_reason()
        if reason:
            raise RuntimeError(f"backend {self.name}: {reason}")
        plan = plans.current(self.variants()) if self.strategy == "auto" else None
        prepared = NumbaPrepared(spec, weights, self.strategy, self.route or NO_BLAS, plan)
        prepared.compile()
        return prepared
