"""``numba``: the recurrence compiled with ``@njit``, with three strategies.

* ``blas``: first the input projection of all timesteps in one matrix
  product, ``x W_ih^T`` over (T*B, I) -- the trick behind cuDNN's RNN
  speedups (Appleyard et al. 2016, "Optimizing performance of recurrent
  neural networks on GPUs") -- then per step only the recurrent product
  ``h W_hh^T``, added onto that step's projection by the BLAS itself
  (beta = 1), with W_hh^T packed once where the BLAS can pack (MKL), or cut
  once into tiles whose products OpenBLAS takes without packing
  (:meth:`kernels.numba.blas.Route.tiles`), then one pass per batch row for
  biases and gates, rows spread over threads where the BLAS's own threads
  leave the cores between calls (MKL's OpenMP ones do; OpenBLAS's spin).  The
  BLAS is reached through :mod:`kernels.numba.blas` (MKL inside torch by
  default; SciPy's OpenBLAS).  For large H or B, where the products are
  compute-bound.
* ``fused``: the same hoisted projection, then blocks of batch rows through
  all timesteps on one thread with the recurrent product as loops: k in
  chunks of 4 in the order of the plain sum, the inner loop over the G*H
  outputs of a contiguous row of W^T (no reduction, so LLVM vectorizes it
  without ``fastmath``); no call and no allocation per step.
* ``lanes`` (:mod:`kernels.numba.lanes`): the batch in the vector lanes -- a
  step's state and buffers batch-minor, (H, B), every loop over a block of
  up to 64 batch columns -- for many rows of a small cell, where the
  batch-major loops run H wide; the backward's products over all steps
  through the BLAS.
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
them).

**One call per pass**: ``run`` and ``run_backward`` are one call of a compiled function
(:mod:`kernels.numba.driver`) that runs every layer and direction, concatenates the directions and
writes the states, on the caller's arrays, the weights as one flat array made by ``prepare``, and a
workspace made per ``to_device`` and thread (:class:`Call` says how long its buffers live).  The
compiled code is imported (and so numba loaded) only by ``prepare``; this module's names, variants
and availability need neither numba nor torch.  ``prepare`` compiles the forward's driver, or loads
it from numba's disk cache, ``to_device_backward`` the backward's, before any timing.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.util
import threading

import numpy as np

from ..base import Backend
from ..checks import standard_layout
from ..stack import StackPrepared
from . import blas
from . import layout as layouts
from . import plan as plans

STRATEGIES = ("blas", "fused", "parallel", "lanes")
#: Strategies that call a BLAS, and so can be forced onto a route: ``"blas@openblas"``.
ROUTED = ("blas", "fused", "lanes")
#: Held around a kernel that starts numba's threads where the threading layer cannot take two
#: launches at once (:func:`kernels.numba.jit.serialize_launches`); one per process, since the
#: threading layer is.
LAUNCH_LOCK = threading.Lock()


#: What ``parallel``, which calls no BLAS, runs with: a route of no BLAS (its addresses are 0).
NO_BLAS = blas.Route("none", "", {})


def choose_strategy(spec, batch: int, timesteps: int | None = None, pass_: str = "forward",
                    tiles: bool = False) -> str:
    """The strategy for ``spec`` at batch size ``batch`` and pass ``pass_`` (the same for every
    ``timesteps``: each step's work decides).  ``tiles``: whether the BLAS route the strategy would
    call multiplies tiles of W_hh^T unpacked in this dtype (:meth:`kernels.numba.blas.Route.tiles`).

    Rule: with at most :data:`FEW_ROWS` rows, ``blas`` for the forward from H = :data:`TILES_HIDDEN`
    where the route tiles (a tile's product streams W_hh^T faster than the loops do), else
    ``fused`` from H = 64 -- a step is a matrix-vector product, which the loops stream at the
    cache's bandwidth while a BLAS call per step adds its fixed cost -- else ``parallel``, which
    calls no BLAS at all (at T = 1 not even for the projection); from :data:`LANES_ROWS` rows and
    up to :data:`LANES_HIDDEN` units, ``lanes``, whose loops run over the batch and so fill the
    vectors where H would not; else ``blas`` once H >= 256 or B * H >= 4096, where one product per
    step reuses each weight across the batch and the BLAS call's fixed cost is paid back, else
    ``parallel``.  (The backward's per-step products of a few rows are not tiled, so
    ``forward_backward`` keeps ``fused`` there.)  Evidence: ``python -m bench run --grid
    strategies`` with every strategy forced (docs/speed.md, "Numba strategies"), and
    docs/numba.md for this rule's measurements.
    """
    if batch <= FEW_ROWS:
        if tiles and pass_ == "forward" and spec.hidden_size >= TILES_HIDDEN:
            return "blas"
        return "fused" if spec.hidden_size >= 64 else "parallel"
    if batch >= LANES_ROWS and spec.hidden_size <= LANES_HIDDEN:
        return "lanes"
    if spec.hidden_size >= 256 or batch * spec.hidden_size >= 4096:
        return "blas"
    return "parallel"


#: From this H a forward of :data:`FEW_ROWS` rows or fewer runs ``blas`` where its route tiles
#: (:func:`choose_strategy`).
TILES_HIDDEN = 256
def recurrent_tiles(route: blas.Route, spec, batch: int) -> tuple[int, int] | None:
    """:meth:`kernels.numba.blas.Route.tiles` for ``spec``'s W_hh^T (P, G*H) in products of
    ``batch`` rows: the ``(kb, nb)`` the ``blas`` strategy cuts it into on ``route``, or ``None``."""
    return route.tiles(spec.h_size, spec.gates * spec.hidden_size, batch, spec.dtype)


#: Up to this many rows a step is a matrix-vector product (or a few): :func:`choose_strategy`.
FEW_ROWS = 4
#: ``lanes`` (the batch in the vector lanes) from this many rows, where one vector of float32
#: lanes is full (at B = 8 half-empty vectors lose to ``parallel``) ...
LANES_ROWS = 16
#: ... up to this H: at H = 64 a step's product is large enough for ``blas`` or ``parallel`` to
#: use full vectors too, and ``lanes`` no longer wins in every cell (docs/numba.md).
LANES_HIDDEN = 32


@functools.cache
def _cpu_vendor() -> str:
    """``vendor_id`` of /proc/cpuinfo (``GenuineIntel``, ``AuthenticAMD``), ``""`` where unknown."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("vendor_id"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def rule_route_order() -> tuple[str, ...]:
    """The BLAS routes the rule prefers, in order (names only; nothing is loaded): the default
    order (:data:`kernels.numba.blas.ROUTE_NAMES`, MKL first) on Intel CPUs; on others the
    OpenBLAS routes first, since MKL does not run its fastest kernels there (AMD EPYC:
    docs/numba.md)."""
    if _cpu_vendor() in ("GenuineIntel", ""):
        return blas.ROUTE_NAMES
    return ("scipy-openblas32", "openblas", "mkl-wheel", "mkl")


def rule_route() -> blas.Route | None:
    """The BLAS route the rule's strategies call where no plan chooses: the first present and
    verified of :func:`rule_route_order`."""
    return next((r for name in rule_route_order() if (r := blas.route(name)) is not None), None)


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


class Call:
    """One ``to_device``'s arguments bound to what the compiled stack needs: the arrays, the
    choice, the table ``S`` (:func:`kernels.numba.layout.table`) and each thread's workspace.

    **Buffers and their lifetime**: a workspace (:class:`kernels.numba.layout.Workspace`: the flat
    ``F`` with every buffer of the pass, results included) is made per ``Call`` and per thread, on
    that thread's first run (``to_device`` makes its own thread's, so the timed calls allocate
    nothing), and lives as long as the ``Call``.  A result that ``run``/``run_backward`` returns
    is views into the calling thread's workspace: valid until that thread's next run on the same
    arguments; ``to_host``/``backward_to_host`` copy it, so what ``forward``/``forward_backward``
    hand the caller is the caller's own.  Threads never share a workspace, so several threads may
    run one ``Call`` at once."""

    def __init__(self, prepared, pass_, arrays, packing, choice, zero_h0=False):
        spec = prepared.spec
        self.prepared, self.pass_, self.arrays, self.packing, self.choice = prepared, pass_, arrays, packing, choice
        self.train = pass_ == "forward_backward"
        timesteps, batch = spec.timesteps_batch(arrays[0])
        self.batch = batch
        route = choice.route
        self.packs = choice.strategy == "blas" and bool(route.packing.get(spec.np_dtype.name)) and batch > 0
        pairs = spec.num_layers * spec.num_directions
        sizes = [route.pack_size(spec.h_size, spec.gates * spec.hidden_size, batch, spec.dtype) if self.packs else 0
                 for _ in range(pairs)]
        #: ``(kb, nb)`` of the tiles W_hh^T is cut into for ``blas`` (Route.tiles), or None
        self.tiles = recurrent_tiles(route, spec, batch) if choice.strategy == "blas" and not self.packs else None
        self.layout = layouts.call_layout(spec, timesteps, batch, self.train, sizes,
                                          lanes=choice.strategy == "lanes", tiles=self.tiles)
        active = np.full(timesteps, batch, np.int64) if packing is None else packing.active
        addresses = route.addresses(spec.dtype)
        self.S = layouts.table(spec, timesteps, batch, self.train, self.layout, prepared.weights, choice.strategy,
                               addresses, route.openmp, self.packs, active, layouts.MODE_CODES[spec.mode],
                               prepared.driver.numba.get_num_threads(), zero_h0 and prepared.finite_hh, self.tiles)
        self.workspaces = {}
        self.workspace()

    def workspace(self) -> layouts.Workspace:
        """The calling thread's workspace, made on its first call (with W_hh^T packed or cut into
        tiles in it)."""
        ident = threading.get_ident()
        ws = self.workspaces.get(ident)
        if ws is None:
            ws = layouts.Workspace(self.prepared.spec, self.layout, self.train)
            for k, params in enumerate(self.prepared.params):
                if self.packs:
                    self.choice.route.pack_into(params[1], self.batch,
                                                self.layout.view(ws.F, layouts.pair_slot(k, "PACKED")))
                if self.tiles:
                    grid = layouts.tile_grid(*params[1].shape, *self.tiles)
                    layouts.cut_tiles(params[1], self.layout.view(ws.F, layouts.pair_slot(k, "PACKED")).reshape(grid))
            self.workspaces[ident] = ws
        return ws


class NumbaPrepared(StackPrepared):
    """A whole pass is one call of a compiled function (:mod:`kernels.numba.driver`) on buffers
    made before it (:class:`Call`).  Safe to run from several threads at once: each thread has its
    own workspace, and where numba's threading layer cannot take two launches at once, a call
    that may start numba's threads runs under :data:`LAUNCH_LOCK`."""

    def __init__(self, spec, weights, strategy, route, plan=None):
        from . import driver

        self.driver = driver
        self.strategy, self.route, self.plan = strategy, route, plan
        #: until compile() has seen which threading layer numba chose, every call is serialized
        self.serialized = True
        self._choices = {}
        self.last: Choice | None = None
        super().__init__(spec, weights)
        self.weights, self.W = layouts.weights_layout(spec, self.params)
        #: whether h = 0 gives h W_hh^T = 0 exactly (no inf or NaN in any W_hh), so that a call
        #: without h0 may skip its first step's recurrent product
        self.finite_hh = all(bool(np.isfinite(p[1]).all()) for p in self.params)

    def choose(self, pass_: str, steps: int, batch: int) -> Choice:
        """What runs a pass of ``steps`` timesteps and ``batch`` rows: the forced variant; else the
        plan's variant for this pass at the nearest size, where the plan has this mode, dtype and
        pass and its route is here; else the rule on the default route.  Worked out in
        ``to_device``: the timed calls only run it."""
        key = (pass_, steps, batch)
        choice = self._choices.get(key)
        if choice is None:
            choice = self._choices[key] = self._choose(pass_, steps, batch)
        return choice

    def _choose(self, pass_, steps, batch):
        if self.strategy != "auto":
            return Choice(self.strategy, self.route)
        spec = self.spec
        variant = (self.plan.choose(spec.mode, spec.dtype, steps, batch, spec.hidden_size, pass_)
                   if self.plan else None)
        if variant is not None:
            strategy, _, route_name = variant.partition("@")
            route = blas.route(route_name) if route_name else self.route
            if route is not None:
                return Choice(strategy, route, self.plan.label)
        rule = rule_route() or self.route
        strategy = choose_strategy(spec, batch, steps, pass_, recurrent_tiles(rule, spec, batch) is not None)
        return Choice(strategy, rule if strategy in ROUTED else self.route)

    def ran(self):
        """``variant`` (what the last run called, e.g. ``blas@openblas``), ``plan`` (the label of the
        plan that chose it, "" for the rule or a forced variant) and ``numba_blas`` (the route it
        called; "" for ``parallel``)."""
        if self.last is None:
            return {}
        called = self.last.route.description if self.last.strategy in ROUTED else ""
        return {"variant": self.last.variant, "plan": self.last.plan, "numba_blas": called}

    def convert(self, params):
        """The kernels' weights of one pair (:data:`kernels.numba.layout.WEIGHT_SLOTS`):
        ``(W_ih^T, W_hh^T, bx, bh, W_hr^T, W_ih, W_hh, W_hr)`` (biases folded except for GRU; the
        projection's (0, 0) without one)."""
        w_ih, w_hh, b_ih, b_hh, w_hr = params
        fold = self.spec.mode != "gru"  # GRU keeps b_hn inside r * (W_hn h + b_hn)
        bx = (b_ih + b_hh) if fold else b_ih
        bh = np.zeros_like(b_hh) if fold else b_hh
        w_hr = np.zeros((0, 0), self.spec.np_dtype) if w_hr is None else w_hr
        return tuple(standard_layout(a, self.spec.np_dtype) for a in (w_ih.T, w_hh.T, bx, bh, w_hr.T, w_ih, w_hh, w_hr))

    def _bind(self, pass_, arrays, packing, zero_h0) -> Call:
        spec = self.spec
        timesteps, batch = spec.timesteps_batch(arrays[0])
        call = Call(self, pass_, arrays, packing, self.choose(pass_, timesteps, batch), zero_h0)
        self.last = call.choice
        return call

    def to_device(self, x, h0=None, c0=None, lengths=None):
        """``(call,)``: a :class:`Call` over :meth:`StackPrepared.place`'s arrays (zeros for absent
        states; with lengths, the rows sorted and the padding of ``x`` zeroed)."""
        zero_h0 = h0 is None
        x, h0, c0, packing = self.place(x, h0, c0, lengths)
        return (self._bind("forward", (x, h0, h0 if c0 is None else c0), packing, zero_h0),)

    def run(self, call):
        ws = call.workspace()
        self.last = call.choice
        self._launch(self.driver.DRIVERS["forward"], *call.arrays, self.W, ws.F, call.S)
        return ws.result, call.packing

    def _launch(self, kernel, *args):
        if self.serialized:
            with LAUNCH_LOCK:
                kernel(*args)
        else:
            kernel(*args)

    def to_host(self, result):
        """The result in the caller's row order, copied out of the workspace."""
        (output, h_n, c_n), packing = result
        if packing is None:  # else unsorting copies
            output, h_n, c_n = output.copy(), h_n.copy(), None if c_n is None else c_n.copy()
        return self._result(output, h_n, c_n, packing)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        """``(call,)`` over :meth:`StackPrepared.place_backward`'s arrays; compiles the pass
        first, where this prepared backend has not yet."""
        self.compile_backward()
        return self._bind_backward(x, h0, c0, grad_output, grad_h_n, grad_c_n, lengths)

    def _bind_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        zero_h0 = h0 is None
        x, h0, c0, grad_output, grad_h_n, grad_c_n, packing = self.place_backward(
            x, h0, c0, grad_output, grad_h_n, grad_c_n, lengths)
        arrays = (x, h0, h0 if c0 is None else c0, grad_output, grad_h_n, grad_h_n if grad_c_n is None else grad_c_n)
        return (self._bind("forward_backward", arrays, packing, zero_h0),)

    def run_backward(self, call):
        ws = call.workspace()
        self.last = call.choice
        self._launch(self.driver.DRIVERS["forward_backward"], *call.arrays, self.W, ws.F, call.S)
        return ws.result, ws.grads, call.packing

    def backward_to_host(self, result):
        """The result and gradients in the caller's row order, copied out of the workspace."""
        (output, h_n, c_n), grads, packing = result
        grads = {name: g.copy() for name, g in grads.items()}
        if packing is None:
            output, h_n, c_n = output.copy(), h_n.copy(), None if c_n is None else c_n.copy()
        return super().backward_to_host((output, h_n, c_n, grads, packing))

    def _compile(self, pass_):
        """Run ``pass_`` once on one timestep of one row, which compiles this dtype's driver (or
        loads it from the disk cache); returns ``"compiled"``, ``"disk cache"`` or ``"in memory"``."""
        spec = self.spec
        kernel = self.driver.DRIVERS[pass_]
        before = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        x = np.zeros(spec.input_shape(1, 1), spec.np_dtype)
        if pass_ == "forward":
            self.run(*self.to_device(x))
        else:
            self.run_backward(*self._bind_backward(x))
        after = (sum(kernel.stats.cache_misses.values()), sum(kernel.stats.cache_hits.values()))
        return "compiled" if after[0] > before[0] else "disk cache" if after[1] > before[1] else "in memory"

    def compile_backward(self):
        """Compile (or load from the disk cache) this dtype's forward_backward driver before any
        timed call; ``jit_cache`` then says how the backward's code came."""
        if getattr(self, "_backward_ready", False):
            return
        self._backward_ready = True
        how = self._compile("forward_backward")
        if how != "in memory":  # keep the reason the cache is off, where it is
            cut = self.jit_cache.find(" (")
            self.jit_cache = how + (self.jit_cache[cut:] if cut >= 0 else "")
        self.last = None

    def compile(self):
        """Compile (or load from the disk cache) this dtype's forward driver, on inputs of one
        element, and let numba choose its threading layer.  ``jit_cache`` says which, and, where
        numba has no writable cache directory, that the code is not cached and why."""
        with LAUNCH_LOCK:  # a parallel launch, which workqueue cannot take from two threads at once
            self.driver.choose_threading_layer()
        self.jit_cache = self._compile("forward")
        if not self.driver.DISK_CACHE:
            self.jit_cache += f" (no disk cache: {self.driver.DISK_CACHE_REASON})"
        self.serialized = self.driver.serialize_launches()
        self.last = None


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
