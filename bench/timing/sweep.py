"""A timed run: which benchmarks, whose code, and how their workers take turns.

Every timed benchmark runs in worker processes (:mod:`bench.timing.worker`) that each import only
their own backend's libraries.  Each backend gets ``processes`` workers per side, and all of them
(of every backend and, for an A/B run, both sides) are alive at once, idle but one: case by case,
each worker prepares it in turn (no two warm-ups compete), then their timed rounds are taken in
at most :data:`BURSTS` bursts in a seeded random interleaved order (:func:`burst_order`): the
backends in random order, and the two sides of an A/B pair back to back in random order, so
drift of the machine touches both sides of a pair alike.

:func:`time_case` is the one place a case is timed: the local executor and a dask task
(:mod:`bench.timing.executors`) both call it; it yields one
:class:`~bench.measurement.Measurement` per benchmark.
"""

from __future__ import annotations

import dataclasses
import datetime
import random

import numpy as np

from ..environment import code_metadata
from ..grids import Case
from ..measurement import Measurement, ProcessRun
from .options import RunOptions
from .process import CpuMeter, Side, Slot, WorkerDied, each

#: A process's rounds of one case are taken in this many bursts at most, alternating with the
#: other workers' bursts of the same case, so that a slow spell of the machine falls on all alike.
BURSTS = 5


@dataclasses.dataclass
class Sweep:
    """A timed run: the cases and backends, the sides (whose code), the options, and what is done.

    Attributes:
        options: the run's options, its grid resolved.
        done: per side label, the ``(case id, backend)`` already in its file (a resumed run).
        pairs: the ``(case id, backend)`` to time (``pytest -k`` selects some); None: every one.
        extra_backends: what :func:`kernels.register_backend` added in this process, by name:
            ``"module:attr"``, handed to the workers.
        made_by: what the result files are (:data:`bench.results.catalog.KINDS`): ``run``,
            ``saved``, ``ab``, ``tune``, ``calibration``.
    """

    options: RunOptions
    cases: list[Case]
    backends: list[str]
    sides: list[Side]
    run_id: str
    seed: int
    done: dict = dataclasses.field(default_factory=dict)
    pairs: set | None = None
    extra_backends: dict = dataclasses.field(default_factory=dict)
    made_by: str = "run"

    def job(self, threads: int) -> dict:
        """What every worker of this run is told (:mod:`bench.timing.worker`), less its backend."""
        return {"grid": self.options.grid, "passes": self.options.passes, "threads": threads,
                "extra_backends": self.extra_backends, "measure": self.measure,
                "policy": dataclasses.asdict(self.options.policy(self.options.grid))}

    @property
    def measure(self) -> str:
        """``time`` or ``instructions`` (``--measure``)."""
        return self.options.measure or "time"

    def order(self) -> list:
        """``(side label, backend)`` in the order a case's rows are written: the backends as asked for."""
        return [(s.label, b) for s in self.sides for b in self.backends]

    def wanted(self, case: Case, label: str, backend: str) -> bool:
        """Whether this run times ``backend`` on ``case`` for side ``label``."""
        pair = (case.id, backend)
        return (self.pairs is None or pair in self.pairs) and pair not in self.done.get(label, ())

    def todo(self) -> list[Case]:
        """The cases with a benchmark still to time."""
        return [c for c in self.cases if any(self.wanted(c, s.label, b) for s in self.sides for b in self.backends)]

    def benchmarks(self) -> int:
        """How many benchmarks are still to time (every side counted)."""
        return sum(self.wanted(c, s.label, b) for c in self.cases for s in self.sides for b in self.backends)

    def run_columns(self) -> dict:
        """Columns of this run on every row: ``grid``, ``shard``, ``made_by`` and ``measure``."""
        return {"grid": self.options.grid or "", "shard": self.options.shard or "", "made_by": self.made_by,
                "measure": self.measure}


def schedule(sides: list[Side], backends: list[str], processes: int, seed: int) -> list[Slot]:
    """The order the workers are started in: for each process round, the backends in random order,
    each backend's sides back to back in random order (ABBA-like); reproducible from ``seed``."""
    rng = random.Random(seed)
    order = []
    for k in range(processes):
        blocks = []
        for backend in backends:
            pair = [Slot(side, backend, k) for side in sides]
            rng.shuffle(pair)
            blocks.append(pair)
        rng.shuffle(blocks)
        order += [slot for block in blocks for slot in block]
    return order


def burst_order(workers: list, rng: random.Random) -> list:
    """One round of bursts: backends in random order, each backend's workers back to back, the
    sides of a process pair adjacent in random order (ABBA-like), so that an A/B pair is timed
    as close together as the machine allows."""
    groups: dict = {}
    for w in workers:
        groups.setdefault(w.slot.backend, {}).setdefault(w.slot.process, []).append(w)
    blocks = list(groups.values())
    rng.shuffle(blocks)
    order = []
    for by_process in blocks:
        for pair in by_process.values():
            pair = list(pair)
            rng.shuffle(pair)
            order += pair
    return order


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the microsecond: a row's ``started`` and ``finished``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


@dataclasses.dataclass
class _Process:
    """One worker's part of one case while it is timed: its prepare answer, rounds planned, and
    what it measured so far: samples, memory, and how busy the machine was during its own bursts
    -- the parent's meter of other processes (``wall``, ``other_cpu``, give or take ``slack``) and
    the worker's own wall-clock and CPU seconds (``worker_wall``, ``worker_cpu``)."""

    row: dict
    rounds: int = 0
    times: list = dataclasses.field(default_factory=list)
    peak_rss_bytes: int | None = None
    wall: float = 0.0
    other_cpu: float = 0.0
    slack: float = 0.0
    worker_wall: float = 0.0
    worker_cpu: float = 0.0

    def other_cores(self, threads: int) -> float:
        """Cores other processes used during this process's bursts: the larger of what they took
        from the worker itself (its CPU seconds short of wall-clock times threads, measured in the
        worker to the nanosecond) and what the parent's meter saw them use anywhere, less the
        meter's uncertainty (a tick per counter and burst: short bursts cannot show a busy
        neighbour, only the worker's own loss can)."""
        taken = max(0.0, self.worker_wall * threads - self.worker_cpu) / self.worker_wall if self.worker_wall > 0 else 0.0
        seen = max(0.0, self.other_cpu - self.slack) / self.wall if self.wall > 0 else 0.0
        return max(taken, seen)

    def run(self, threads: int) -> ProcessRun:
        return ProcessRun(tuple(self.times), self.other_cores(threads), self.peak_rss_bytes)


def _prepare(case: Case, workers: list, measure: str = "time", concurrency: int = 1) -> dict:
    """Ask each worker to prepare ``case`` (up to ``concurrency`` at once); ``{worker: _Process}``
    (an error row for one that died, or for one whose code cannot take ``measure``: a checkout
    older than ``--measure``)."""
    parts = {}

    def prepare(w) -> None:
        try:
            answer = w.ask({"cmd": "prepare", "case": case.id})
            parts[w] = _Process(answer["row"], answer["rounds"])
        except WorkerDied as exc:
            parts[w] = _Process({"case_id": case.id, "backend": w.slot.backend, **case.fields(), "status": "error",
                                 "reason": str(exc)})
            return
        if measure != "time" and parts[w].row.get("measure") != measure:
            parts[w] = _Process({**parts[w].row, "status": "error",
                                 "reason": f"the code of {w.slot.side.root} cannot measure {measure} (its worker "
                                           "predates --measure)"})

    each(workers, prepare, concurrency)
    return {w: parts[w] for w in workers}


def _burst(w, part: _Process, rounds: int) -> None:
    """Time ``rounds`` rounds on worker ``w``, metering the machine's other load while it runs."""
    meter = CpuMeter([w])
    try:
        answer = w.time(rounds)
    except WorkerDied as exc:
        part.row = {**part.row, "status": "error", "reason": str(exc)}
        return
    wall, other = meter.spans()
    part.wall, part.other_cpu, part.slack = part.wall + wall, part.other_cpu + other, part.slack + meter.uncertainty()
    part.worker_wall += answer.get("wall_s", 0.0)
    part.worker_cpu += answer.get("cpu_s", 0.0)
    part.times += answer["times"]
    if answer["peak_rss_bytes"] != "":
        part.peak_rss_bytes = max(int(answer["peak_rss_bytes"]), part.peak_rss_bytes or 0)


def _fields(case: Case, parts: list[_Process]) -> dict:
    """A benchmark's fields from its processes' prepare rows: the first's, with the first outcome
    that is not ``ok``, the median ``prepare_s`` and every way its code came (``jit_cache``)."""
    fields = dict(parts[0].row)
    bad = next((p.row for p in parts if p.row.get("status") != "ok"), None)
    if bad is not None:
        fields.update(status=bad.get("status", "error"), reason=bad.get("reason", "not timed"))
    prepares = [float(p.row["prepare_s"]) for p in parts if p.row.get("prepare_s") not in (None, "")]
    if prepares:
        fields["prepare_s"] = float(np.median(prepares))
    fields["jit_cache"] = ", ".join(dict.fromkeys(p.row.get("jit_cache", "") for p in parts if p.row.get("jit_cache")))
    return fields


def unavailable(sweep: Sweep, case: Case, backend: str, reason: str, label: str) -> Measurement:
    """The Measurement of a backend that cannot run here at all: no worker was started for it."""
    threads, _ = sweep.options.counts()
    fields = {"case_id": case.id, "backend": backend, **case.fields(), "threads": threads,
              "flops": case.flops(), "weight_bytes": case.spec.weight_bytes(),
              "status": "unavailable", "reason": reason, "processes": 0, "measure": sweep.measure}
    return Measurement(fields, side=label)


def time_case(sweep: Sweep, case: Case, workers: list, rng: random.Random, unit: str = "s",
              cannot_run: dict | None = None, concurrency: int = 1) -> list[Measurement]:
    """Prepare ``case`` on each worker that has it to do, time it in interleaved bursts, and return
    one Measurement per benchmark (side and backend), in :meth:`Sweep.order`; each holds
    ``started`` and ``finished`` (its first prepare to its last round, UTC) in its fields.
    ``cannot_run``: ``{backend: reason}`` of backends with no workers, each ``unavailable``.
    ``concurrency``: how many workers may work at once (counts: one per CPU; times: 1)."""
    started = utc_now()
    todo = [w for w in workers if sweep.wanted(case, w.slot.side.label, w.slot.backend)]
    parts = _prepare(case, todo, sweep.measure, concurrency)
    timed = [w for w in todo if parts[w].rounds > 0 and parts[w].row.get("status") == "ok"]
    # counts do not drift with the machine: one burst, one start and stop of valgrind's instrumentation
    bursts = (1 if unit == "instructions" else min([BURSTS, *(parts[w].rounds for w in timed)])) if timed else 0
    for b in range(bursts):
        def burst(w, b=b) -> None:
            part = parts[w]
            if part.row.get("status") == "ok":  # else its worker died in an earlier burst
                _burst(w, part, part.rounds // bursts + (1 if b < part.rounds % bursts else 0))

        each(burst_order(timed, rng), burst, concurrency)
    finished = utc_now()
    by_benchmark: dict = {}
    roots = {w.slot.side.label: w.slot.side.root for w in workers}
    for w in todo:
        by_benchmark.setdefault((w.slot.side.label, w.slot.backend), []).append(parts[w])
    threads, _ = sweep.options.counts()
    measurements = []
    for label, backend in sweep.order():
        group = by_benchmark.get((label, backend))
        if backend in (cannot_run or {}) and sweep.wanted(case, label, backend):
            measurements.append(unavailable(sweep, case, backend, cannot_run[backend], label))
        elif group:
            # the code that ran: its side's checkout, read here so that a worker of any version records it
            fields = {**_fields(case, group), **code_metadata(roots[label]), "started": started, "finished": finished,
                      "measure": sweep.measure}
            measurements.append(Measurement.from_processes(fields, [p.run(threads) for p in group], unit, label))
    return measurements


def summary(measurements: list[Measurement], timesteps: int) -> str:
    """A progress line's words for one case: each benchmark's median per timestep in microseconds
    (as the final table shows it), or its status; a backend that ran no worker is left to the run's
    "not timed" note."""
    words = []
    for m in measurements:
        if m.fields.get("processes") == 0:
            continue
        name = f"{m.side} {m.backend}" if m.side else m.backend
        words.append(f"{name} {m.median / timesteps * 1e6:.3g} us/step" if m.timed and m.unit == "s"
                     else f"{name} {m.median / timesteps:.4g} instr/step" if m.timed else f"{name} {m.status}")
    return ", ".join(words)
