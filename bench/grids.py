"""Named sweeps, declared as data; one definition feeds the CLI and pytest.

A :class:`Case` is one timed problem: a :class:`~kernels.CellSpec` plus T
and B.  Its id reads like ``lstm-T100-B1-H256-float32``, with
``I5``/``L3``/``bi``/``bf``/``nobias`` added only when they differ from the
defaults (I = H, one layer, unidirectional, time-major, with bias).
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
from importlib import resources

import numpy as np

from kernels import MODES, CellSpec, init_weights


@dataclasses.dataclass(frozen=True)
class Case:
    spec: CellSpec
    timesteps: int
    batch: int

    @property
    def id(self) -> str:
        s = self.spec
        parts = [s.mode, f"T{self.timesteps}", f"B{self.batch}"]
        if s.input_size != s.hidden_size:
            parts.append(f"I{s.input_size}")
        parts.append(f"H{s.hidden_size}")
        if s.num_layers != 1:
            parts.append(f"L{s.num_layers}")
        parts += [flag for flag, on in (("bi", s.bidirectional), ("bf", s.batch_first), ("nobias", not s.bias)) if on]
        parts.append(s.dtype)
        return "-".join(parts)

    def fields(self) -> dict:
        """Every spec field plus ``timesteps`` and ``batch``, for result rows and ``extra_info``."""
        return {**dataclasses.asdict(self.spec), "timesteps": self.timesteps, "batch": self.batch}

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
    """Tiny, for the test suite's end-to-end runs: seconds."""
    return [
        Case(CellSpec("rnn_tanh", 3, 4), 5, 2),
        Case(CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True), 4, 3),
    ]


def quick() -> list[Case]:
    """Smoke runs and CI: every mode at two T, H and B, plus a stacked bidirectional GRU."""
    return _product(MODES, (1, 50), (16, 128), (1, 32)) + [
        Case(CellSpec("gru", 32, 32, num_layers=2, bidirectional=True), 20, 4),
    ]


def default() -> list[Case]:
    """T in {1, 10, 100, 1000} x H in {8, 64, 256, 1024} x B in {1, 64}, every mode, I = H, float32."""
    return _product(MODES, (1, 10, 100, 1000), (8, 64, 256, 1024), (1, 64))


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


def deepbench() -> list[Case]:
    """Baidu DeepBench's RNN sizes (bench/workloads/deepbench_rnn.csv): one layer, I = H, float32."""
    text = resources.files("bench").joinpath("workloads/deepbench_rnn.csv").read_text()
    rows = csv.DictReader(line for line in text.splitlines() if not line.startswith("#"))
    cases = []
    for row in rows:
        h = int(row["hidden_size"])
        spec = CellSpec(DEEPBENCH_CELLS[row["cell"]], h, h)
        cases.append(Case(spec, int(row["timesteps"]), int(row["batch"])))
    return list(dict.fromkeys(cases))  # the source lists a few sizes twice


#: Seconds of timed rounds to aim for per benchmark and worker process when --max-time is not
#: given (TimingPolicy.max_time elsewhere): small grids stay quick.
MAX_TIME = {"smoke": 0.05, "quick": 0.1, "strategies": 0.25, "calibration": 0.05}

GRIDS = {"quick": quick, "default": default, "seed": seed, "deepbench": deepbench, "strategies": strategies,
         "smoke": smoke, "calibration": calibration}


def get_grid(name: str) -> list[Case]:
    """The cases of grid ``name``.  Raises ValueError for an unknown name, listing the known ones."""
    if name not in GRIDS:
        raise ValueError(f"grid: unknown name {name!r}; known: {list(GRIDS)}")
    return GRIDS[name]()


def select(cases: list[Case], conditions) -> list[Case]:
    """The cases matching every ``"COLUMN=VALUE"`` of ``conditions`` (``--where``), in order.

    COLUMN is ``case_id``, a spec field, ``timesteps`` or ``batch``; VALUE is compared with the
    value as a result file writes it (``bias=True``, ``hidden_size=256``).

    Raises:
        ValueError: a condition without ``=``, or an unknown column (the known ones are listed).
    """
    known = ["case_id", *Case(CellSpec("rnn_tanh", 1, 1), 1, 1).fields()]
    parsed = []
    for condition in conditions or ():
        key, sep, value = str(condition).partition("=")
        if not sep or key not in known:
            raise ValueError(f"--where: expected COLUMN=VALUE with COLUMN one of {known}, got {condition!r}")
        parsed.append((key, value))
    return [c for c in cases if all(str({"case_id": c.id, **c.fields()}[k]) == v for k, v in parsed)]
