"""Named sweeps, declared as data; one definition feeds the CLI and pytest.

A :class:`Case` is one timed problem: a :class:`~kernels.CellSpec` plus T
and B, and the pass timed (``forward``, or ``forward_backward``: forward then
backpropagation through time).  Its id reads like
``lstm-T100-B1-H256-float32``, with ``I5``/``L3``/``bi``/``bf``/``nobias``
added only when they differ from the defaults (I = H, one layer,
unidirectional, time-major, with bias), and ``-fb`` at the end for the
``forward_backward`` pass.

A grid runs on any scheduler in parts: :func:`shard` picks the K-th of N parts of its cases,
the same on every run and machine, balanced by an estimate of each case's cost; a CI matrix or
a batch system's array job runs one part per job, and ``bench merge`` joins them.

Each grid says which passes it times (``default`` both, ``deepbench`` its
training sizes as ``forward_backward`` and its inference sizes as
``forward``, the others ``forward``); ``--passes`` replaces that with the
given passes for every size of the grid (:func:`get_grid`).
"""

from __future__ import annotations

import csv
import dataclasses
import difflib
import itertools
from importlib import resources

import numpy as np

from kernels import MODES, CellSpec, init_weights
from kernels.base import PASSES

from . import lengths as distributions
from .timing.policy import TimingPolicy

#: The id's suffix of each pass.
PASS_SUFFIX = {"forward": "", "forward_backward": "-fb"}


@dataclasses.dataclass(frozen=True)
class Case:
    spec: CellSpec
    timesteps: int
    batch: int
    #: ``"forward"`` or ``"forward_backward"`` (:data:`kernels.base.PASSES`)
    pass_: str = "forward"
    #: the sequence lengths, as a named distribution (:mod:`bench.lengths`): ``full``, ``tail``, ``uniform:F``
    lengths: str = "full"

    def __post_init__(self):
        distributions.check(self.lengths)

    @property
    def id(self) -> str:
        s = self.spec
        parts = [s.mode, f"T{self.timesteps}", f"B{self.batch}"]
        if s.input_size != s.hidden_size:
            parts.append(f"I{s.input_size}")
        parts.append(f"H{s.hidden_size}")
        if s.proj_size:
            parts.append(f"P{s.proj_size}")
        if s.num_layers != 1:
            parts.append(f"L{s.num_layers}")
        parts += [flag for flag, on in (("bi", s.bidirectional), ("bf", s.batch_first), ("nobias", not s.bias)) if on]
        if s.dropout:
            parts.append(f"dropout{s.dropout:g}")
        parts.append(s.dtype)
        return "-".join(parts) + distributions.suffix(self.lengths) + PASS_SUFFIX[self.pass_]

    def fields(self) -> dict:
        """Every spec field plus ``timesteps``, ``batch``, ``pass`` and ``lengths``, for result rows
        and ``extra_info``."""
        return {**dataclasses.asdict(self.spec), "timesteps": self.timesteps, "batch": self.batch, "pass": self.pass_,
                "lengths": self.lengths}

    def lengths_array(self):
        """The sequence lengths (B,) int64 of this case's distribution, or ``None`` for ``full``."""
        return distributions.lengths_of(self.lengths, self.timesteps, self.batch)

    def flops(self) -> int:
        """FLOPs of one call of this case's pass, valid steps only (:meth:`kernels.CellSpec.flops`)."""
        return self.spec.flops(self.timesteps, self.batch, self.pass_, self.lengths_array())

    def grad_seeds(self, timesteps: int | None = None, seed: int = 0):
        """``(grad_output, grad_h_n)`` for the ``forward_backward`` pass on the first ``timesteps``
        steps (all by default): standard normal (seed ``seed + 2``) in the spec's dtype; for LSTM
        ``grad_h_n`` is the pair ``(grad_h_n, grad_c_n)``."""
        steps = self.timesteps if timesteps is None else min(timesteps, self.timesteps)
        rng = np.random.default_rng(seed + 2)
        shapes = [self.spec.output_shape(steps, self.batch), *self.spec.state_shapes(self.batch)]
        seeds = [rng.standard_normal(shape, dtype=np.float32).astype(self.spec.dtype, copy=False) for shape in shapes]
        return seeds[0], (tuple(seeds[1:]) if self.spec.mode == "lstm" else seeds[1])

    def inputs(self, seed: int = 0) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Weights (PyTorch's default init, ``seed``) and a standard-normal ``x``
        of ``spec.input_shape(T, B)`` in ``spec.dtype`` (seed ``seed + 1``)."""
        rng = np.random.default_rng(seed + 1)
        x = rng.standard_normal(self.spec.input_shape(self.timesteps, self.batch), dtype=np.float32)
        return init_weights(self.spec, seed), x.astype(self.spec.dtype, copy=False)


def _product(modes, timesteps, hidden_sizes, batches, dtype="float32"):
    return [
        Case(CellSpec(mode=m, input_size=h, hidden_size=h, dtype=dtype), t, b)
        for m, t, h, b in itertools.product(modes, timesteps, hidden_sizes, batches)
    ]


def smoke() -> list[Case]:
    """Tiny, for the test suite's end-to-end runs: tens of seconds with every backend (their start and compilation)."""
    return [
        Case(CellSpec("rnn_tanh", 3, 4), 5, 2),
        Case(CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True), 4, 3),
    ]


def quick() -> list[Case]:
    """Smoke runs and CI: every mode at two T, H and B, plus a stacked bidirectional GRU, an LSTM with projections and a variable-length batch."""
    return _product(MODES, (1, 50), (16, 128), (1, 32)) + [
        Case(CellSpec("gru", 32, 32, num_layers=2, bidirectional=True), 20, 4),
        Case(CellSpec("lstm", 64, 64, proj_size=16), 20, 4),
        Case(CellSpec("lstm", 32, 32), 20, 8, lengths="uniform:0.5"),
    ]


def default() -> list[Case]:
    """T in {1, 10, 100, 1000} x H in {8, 64, 256, 1024} x B in {1, 64}, every mode, I = H, float32, both passes."""
    return with_passes(_product(MODES, (1, 10, 100, 1000), (8, 64, 256, 1024), (1, 64)), PASSES)


#: The lengths distributions of the ``varlen`` grid.
VARLEN = ("full", "uniform:0.5", "tail")


def varlen() -> list[Case]:
    """Variable-length batches: T in {50, 200} x H in {64, 256} x B in {16, 64}, every mode, lengths full, uniform:0.5 and tail, both passes."""
    sizes = _product(MODES, (50, 200), (64, 256), (16, 64))
    return [dataclasses.replace(c, lengths=d, pass_=p) for c in sizes for d in VARLEN for p in PASSES]


def projection() -> list[Case]:
    """LSTM with projections (proj_size = H/4): T in {10, 100} x H in {256, 1024} x B in {1, 64}, both passes."""
    return [Case(CellSpec("lstm", h, h, proj_size=h // 4), t, b, p)
            for t, h, b, p in itertools.product((10, 100), (256, 1024), (1, 64), PASSES)]


def seed() -> list[Case]:
    """The tutorial's examples: T = 10, batch 1."""
    return [
        Case(CellSpec("rnn_tanh", 4, 8), 10, 1),
        Case(CellSpec("rnn_tanh", 5, 8), 10, 1),
        Case(CellSpec("rnn_tanh", 5, 8, num_layers=4), 10, 1),
        Case(CellSpec("rnn_tanh", 5, 8, num_layers=3, bidirectional=True), 10, 1),
        Case(CellSpec("lstm", 5, 8), 10, 1),
    ]


def strategies() -> list[Case]:
    """The numba strategies' proving ground: T = 20, H in {8, 64, 256, 1024} x B in {1, 8, 64}, tanh, LSTM, GRU."""
    return _product(("rnn_tanh", "lstm", "gru"), (20,), (8, 64, 256, 1024), (1, 8, 64))


def calibration() -> list[Case]:
    """The A/B gate's calibration (bench calibrate): 100 small tanh cases, T in {1, 5, 10, 20, 50} x H in {4, 8, 16, 32} x B in {1, 2, 4, 8, 16}."""
    return _product(("rnn_tanh",), (1, 5, 10, 20, 50), (4, 8, 16, 32), (1, 2, 4, 8, 16))


DEEPBENCH_CELLS = {"vanilla": "rnn_relu", "lstm": "lstm", "gru": "gru"}
#: The pass of each DeepBench set: training times forward and backward, inference the forward pass.
DEEPBENCH_PASSES = {"training": "forward_backward", "inference_server": "forward", "inference_device": "forward"}


def deepbench() -> list[Case]:
    """Baidu DeepBench's RNN sizes (bench/workloads/deepbench_rnn.csv): one layer, I = H, float32;
    training sizes as forward_backward, inference sizes as forward."""
    text = resources.files("bench").joinpath("workloads/deepbench_rnn.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    cases = []
    for row in rows:
        h = int(row["hidden_size"])
        spec = CellSpec(DEEPBENCH_CELLS[row["cell"]], h, h)
        cases.append(Case(spec, int(row["timesteps"]), int(row["batch"]), DEEPBENCH_PASSES[row["set"]]))
    return list(dict.fromkeys(cases))  # the source lists a few sizes twice


#: Seconds of timed rounds to aim for per benchmark and worker process when --max-time is not
#: given (TimingPolicy.max_time elsewhere): small grids stay quick.
MAX_TIME = {"smoke": 0.05, "quick": 0.1, "strategies": 0.25, "calibration": 0.05}

GRIDS = {"quick": quick, "default": default, "varlen": varlen, "projection": projection, "seed": seed,
         "deepbench": deepbench, "strategies": strategies, "smoke": smoke, "calibration": calibration}


def with_passes(cases: list[Case], passes) -> list[Case]:
    """Every distinct size (spec, T, B, lengths) of ``cases``, in order, once per pass of ``passes``."""
    sizes = dict.fromkeys((c.spec, c.timesteps, c.batch, c.lengths) for c in cases)
    return [Case(spec, t, b, p, n) for spec, t, b, n in sizes for p in passes]


def parse_passes(text) -> tuple[str, ...] | None:
    """``"forward,forward_backward"`` -> ``("forward", "forward_backward")``; ``None`` stays ``None``
    (the grid's own passes).

    Raises:
        ValueError: an empty list or an unknown pass, naming ``--passes`` and the known ones.
    """
    if text is None:
        return None
    passes = tuple(dict.fromkeys(p.strip() for p in str(text).split(",") if p.strip()))
    unknown = [p for p in passes if p not in PASSES]
    if unknown or not passes:
        raise ValueError(f"--passes: expected a comma-separated list of {', '.join(PASSES)}; got {text!r}")
    return passes


def get_grid(name: str, passes=None) -> list[Case]:
    """The cases of grid ``name``, each with the grid's pass; with ``passes`` (a list, or the text
    of ``--passes``) every size of the grid once per given pass instead.

    Raises:
        ValueError: an unknown name (the known ones are listed), or bad ``passes``.
    """
    if name not in GRIDS:
        raise ValueError(f"grid: unknown name {name!r}; known: {list(GRIDS)}")
    cases = GRIDS[name]()
    passes = parse_passes(passes if passes is None or isinstance(passes, str) else ",".join(passes))
    return cases if passes is None else with_passes(cases, passes)


#: The letters of prose for the columns ``--where`` takes (T, B, H, I, L).
LETTERS = {"T": "timesteps", "B": "batch", "H": "hidden_size", "I": "input_size", "L": "num_layers"}


def where_columns() -> list[str]:
    """The columns ``--where`` can select on: ``case_id``, every spec field, T, B and the pass."""
    return ["case_id", *Case(CellSpec("rnn_tanh", 1, 1), 1, 1).fields()]


def parse_where(conditions) -> list[tuple[str, str]]:
    """``["timesteps=50", ...]`` as ``[(column, value)]``.

    Raises:
        ValueError: naming ``--where``: a condition without ``=``, or an unknown column (the known
            ones are listed, and the nearest suggested: ``T`` -> ``timesteps``).
    """
    known = where_columns()
    parsed = []
    for condition in conditions or ():
        column, sep, value = str(condition).partition("=")
        if not sep:
            raise ValueError(f"--where: expected COLUMN=VALUE, got {condition!r}; columns: {', '.join(known)}")
        if column not in known:
            near = [LETTERS[column]] if column in LETTERS else difflib.get_close_matches(column, known, n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            raise ValueError(f"--where: unknown column {column!r}{hint}; columns: {', '.join(known)}")
        parsed.append((column, value))
    return parsed


def _value(case: "Case", column: str) -> str:
    return str({"case_id": case.id, **case.fields()}[column])


def select(cases: list[Case], conditions) -> list[Case]:
    """The cases matching every ``"COLUMN=VALUE"`` of ``conditions`` (``--where``), in order.

    COLUMN is ``case_id``, a spec field, ``timesteps``, ``batch`` or ``pass``; VALUE is compared
    with the value as a result file writes it (``bias=True``, ``hidden_size=256``).

    Raises:
        ValueError: from :func:`parse_where`.
    """
    parsed = parse_where(conditions)
    return [c for c in cases if all(_value(c, k) == v for k, v in parsed)]


def no_match(grid: str, cases: list[Case], conditions) -> str:
    """Why ``--where`` selects nothing of ``cases`` (grid ``grid``): each condition's column and the
    values it takes in the grid."""
    parsed = parse_where(conditions)
    values = "; ".join(f"{k} takes {', '.join(sorted({_value(c, k) for c in cases}, key=_natural))}"
                       for k, _ in parsed)
    return f"--where: no case of grid {grid} matches {' '.join(conditions)}; in that grid {values}"


def _natural(text: str):
    """Numbers in numeric order, then text."""
    try:
        return (0, float(text), "")
    except ValueError:
        return (1, 0.0, text)


#: A nominal rate for estimating a call's seconds from its FLOPs when balancing shards (a
#: single core's order of magnitude); it only weighs cases against each other and is never reported.
NOMINAL_FLOPS_PER_S = 1e10


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (``--shard``) as ``(K, N)``.

    Raises:
        ValueError: not two integers ``K/N`` with 1 <= K <= N, naming ``--shard``.
    """
    k, sep, n = str(text).partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = 0
    if not sep or not 1 <= k <= n:
        raise ValueError(f"--shard: expected K/N with 1 <= K <= N, e.g. 2/3, got {text!r}")
    return k, n


def case_cost(case: Case) -> float:
    """Estimated seconds of timing ``case`` per backend and process, for balancing shards only:
    the default policy's ``max_time`` or its ``min_rounds`` calls, whichever is longer, a call
    taking its FLOPs (:meth:`kernels.CellSpec.flops`) at :data:`NOMINAL_FLOPS_PER_S`.  Independent
    of the run's options, so that runs with different ``--max-time`` still split a grid alike."""
    policy = TimingPolicy()
    call_s = case.spec.flops(case.timesteps, case.batch) / NOMINAL_FLOPS_PER_S  # lengths aside: a stable split
    return max(policy.max_time, policy.min_rounds * call_s)


def shard(cases: list[Case], k: int, n: int) -> list[Case]:
    """The ``k``-th of ``n`` parts of ``cases``, in the order of ``cases``.

    Greedy longest-processing-time assignment (Graham's LPT rule): the cases sorted by
    :func:`case_cost`, largest first, ties by case id, each given to the part with the least cost
    so far (ties to the lowest part).  It depends only on the cases, not on their order, the
    machine or the run, and the ``n`` parts hold every case exactly once.

    Raises:
        ValueError: ``k`` not in 1..``n``.
    """
    if not 1 <= k <= n:
        raise ValueError(f"--shard: expected K/N with 1 <= K <= N, got {k}/{n}")
    loads = [0.0] * n
    part = {}
    for case in sorted(cases, key=lambda c: (-case_cost(c), c.id)):
        i = loads.index(min(loads))
        loads[i] += case_cost(case)
        part[case.id] = i
    return [c for c in cases if part[c.id] == k - 1]
