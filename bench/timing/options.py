"""The options of a timed run, declared once.

:class:`RunOptions` is the table: each field is one option, with its flag
(``max_time`` -> ``--max-time``) and help in the field's metadata.  The CLI's
``run`` (argparse) and the pytest plugin (``pytest --benchmark-only``) both
add them from here with :func:`add_options` and read them back into a
``RunOptions``; ``None`` means "not given", and :meth:`RunOptions.policy`
fills in the defaults.  Nothing here imports pytest.
"""

from __future__ import annotations

import dataclasses

from ..grids import GRIDS, MAX_TIME
from .policy import TimingPolicy

_DEFAULTS = TimingPolicy()
DEFAULT_THREADS = 1
DEFAULT_PROCESSES = 3
#: What a run measures (``--measure``): wall-clock time, or instructions counted under valgrind.
MEASURES = ("time", "instructions")
#: Worker processes per backend and side when counting instructions: counts repeat exactly from
#: process to process (docs/instructions.md), so one valgrind process times the whole grid.
COUNT_PROCESSES = 1


def _option(help: str, **argparse_kwargs):
    return dataclasses.field(default=argparse_kwargs.pop("default", None), metadata={"help": help, **argparse_kwargs})


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """One timed run's options, as given (``None``: not given)."""

    grid: str | None = _option(f"named grid: {', '.join(GRIDS)} (default: quick, or the grid of --resume's file)",
                               choices=list(GRIDS))
    backends: str | None = _option("comma-separated backends (default: every registered one); 'numba:<variant>' "
                                   "forces a strategy and BLAS route, e.g. numba:fused, numba:blas@openblas")
    out: str | None = _option("result CSV (default: <results>/local/<grid>-<run id>.csv; <results> is "
                              "$RNN_BENCH_RESULTS, else ./results)")
    save: bool = _option("store the result under <results>/<machine_id>/<run id>-<commit>[-dirty].csv (for history "
                         "and the dashboard)", default=False, action="store_true")
    resume: str | None = _option("complete result CSV FILE: run only the rows it lacks and rows that errored "
                                 "(grid and backends default to the file's)", metavar="FILE")
    max_time: float | None = _option(f"seconds of timed rounds to aim for per benchmark and process (default "
                                     f"{_DEFAULTS.max_time}; {', '.join(f'{g}: {t}' for g, t in MAX_TIME.items())}); "
                                     f"at most {_DEFAULTS.max_rounds} rounds are kept, so a fast call is repeated "
                                     "within each round until they fill it", type=float)
    min_rounds: int | None = _option(f"timed rounds at least, budget permitting (default {_DEFAULTS.min_rounds})",
                                     type=int)
    budget: float | None = _option(f"seconds of timed rounds per benchmark at most (default {_DEFAULTS.budget})",
                                   type=float)
    check_steps: int | None = _option(f"timesteps of the accuracy check (default {_DEFAULTS.check_steps})", type=int)
    threads: int | None = _option(f"threads of every pool (BLAS, OpenMP, torch, numba) in each timing process "
                                  f"(default {DEFAULT_THREADS}: a busy core then slows one thread, not a pool "
                                  "whose threads wait on each other); part of the benchmark key", type=int)
    processes: int | None = _option(f"worker processes per backend, interleaved (default {DEFAULT_PROCESSES}; "
                                    f"{COUNT_PROCESSES} with --measure instructions); a row's median is the median "
                                    "of their medians", type=int)
    measure: str | None = _option("time: wall-clock seconds per call (default); instructions: instructions per call "
                                  "counted under valgrind's callgrind (one thread; the CPU valgrind presents, without "
                                  "AVX-512): deterministic, so it sees 1%% changes on a noisy machine, but blind to "
                                  "cache misses, memory bandwidth, vector width and threads; part of the benchmark key",
                                  choices=list(MEASURES))
    seed: int | None = _option("seed of the random interleaved order of the worker processes (default: drawn, "
                               "and recorded on every row)", type=int)
    shard: str | None = _option("run only the K-th of N parts of the grid (after --where), e.g. 2/3: the same split "
                                "on every run and machine, balanced by estimated cost; join the parts with "
                                "`bench merge`", metavar="K/N")
    dask: str | None = _option("run the benchmarks as tasks on the dask.distributed cluster at ADDRESS (its workers "
                               "started with --nthreads 1 --resources bench=1, one per machine); rows stream back "
                               "into this run's files", metavar="ADDRESS")
    passes: str | None = _option("comma-separated passes to time: forward, forward_backward (forward, then "
                                 "backpropagation through time); every size of the grid once per pass (default: the "
                                 "grid's passes: default both, deepbench training sizes forward_backward and inference "
                                 "sizes forward, the others forward); part of the benchmark key")
    where: list | None = _option("keep only cases whose COLUMN equals VALUE (case_id, a spec field, timesteps, batch, "
                                 "pass or lengths); repeatable", action="append", metavar="COLUMN=VALUE")

    @classmethod
    def read(cls, get) -> "RunOptions":
        """The options from ``get(name)``: ``vars(args).get`` for argparse, ``config.getoption`` for pytest."""
        return cls(**{f.name: get(f.name) for f in dataclasses.fields(cls)})

    @property
    def counting(self) -> bool:
        """Whether this run counts instructions (``--measure instructions``)."""
        return self.measure == "instructions"

    def counts(self) -> tuple[int, int]:
        """``(threads, processes)``, defaults filled in (:data:`COUNT_PROCESSES` processes when
        counting instructions).

        Raises:
            ValueError: a count below 1, naming its option; more than one thread when counting
                instructions, with the reason.
        """
        threads = DEFAULT_THREADS if self.threads is None else self.threads
        default = COUNT_PROCESSES if self.counting else DEFAULT_PROCESSES
        processes = default if self.processes is None else self.processes
        for name, value in (("threads", threads), ("processes", processes)):
            if value < 1:
                raise ValueError(f"--{name}: expected a positive number, got {value}")
        if self.counting and threads > 1:
            from .valgrind import refusal

            raise ValueError(refusal(threads))
        return threads, processes

    def policy(self, grid: str) -> TimingPolicy:
        """The timing policy of these options for ``grid``: given values, else the defaults
        (``max_time`` from :data:`bench.grids.MAX_TIME` for small grids).

        Raises:
            ValueError: a value out of range, naming its option (:class:`TimingPolicy`).
        """
        min_rounds = _DEFAULTS.min_rounds if self.min_rounds is None else self.min_rounds
        return TimingPolicy(
            max_time=MAX_TIME.get(grid, _DEFAULTS.max_time) if self.max_time is None else self.max_time,
            min_rounds=min_rounds,
            max_rounds=max(_DEFAULTS.max_rounds, min_rounds),
            budget=_DEFAULTS.budget if self.budget is None else self.budget,
            check_steps=_DEFAULTS.check_steps if self.check_steps is None else self.check_steps,
        )


def add_options(add) -> None:
    """Declare every :class:`RunOptions` field through ``add(flag, dest=..., help=..., ...)``:
    argparse's ``add_argument`` or pytest's ``addoption``, which take the same arguments."""
    for f in dataclasses.fields(RunOptions):
        add(f"--{f.name.replace('_', '-')}", dest=f.name, default=f.default, **f.metadata)
