"""The one value a timed benchmark becomes: :class:`Measurement`.

As ``torch.utils.benchmark.Measurement`` and pyperf's ``Benchmark``: a benchmark's identity
(its row fields: case, backend, spec, T, B, pass, threads, and what its worker said of it) plus
its raw samples, per worker process.  Everything else -- the median, the spread, whether it is
unstable and why -- is derived from it, once, here.  Executors (:mod:`bench.timing.executors`)
yield Measurements; the result files (:mod:`bench.results`) write them and read them back; the
judge (:mod:`bench.judge`) compares them.

The worker process is the unit of replication (pyperf's rule): ``median`` is the median of the
process medians, ``process_cv`` their spread; rounds within a process are not replicates.
Samples are in the measurement's ``unit``: seconds per call (``"s"``) or instructions per call
(``"instructions"``, ``--measure instructions``), whose statistics and stability differ: a count
has no seconds, and a count is stable when its processes agree to :data:`COUNT_TOLERANCE`.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

import numpy as np

#: A benchmark whose process medians vary by more than this (stdev / mean) is unstable (pyperf's 10%).
UNSTABLE_CV = 0.10
#: Other processes using more than this many cores while a worker timed make the machine "busy".
BUSY_CORES = 0.25
#: The unit of each measure's samples (``--measure``).
UNITS = {"time": "s", "instructions": "instructions"}
#: How far (max - min) / min the instruction counts of one benchmark's processes may differ and
#: still be one count, half the default threshold of counts (1%): two runs of one commit on the
#: quick grid differed by at most 0.25% on every row, most rows by nothing (torch_cpu's smallest
#: cases by up to 0.6% in an earlier series) (docs/instructions.md).  Beyond it a count is
#: unstable and not comparable.
COUNT_TOLERANCE = 0.005


@dataclasses.dataclass(frozen=True)
class ProcessRun:
    """What one worker process measured of one benchmark.

    Attributes:
        times: per-call samples of its rounds, in the measurement's unit.
        other_cores: cores the machine's other processes used while this process timed.
        peak_rss_bytes: its peak resident memory while timing above what it held before, or None.
    """

    times: tuple = ()
    other_cores: float = 0.0
    peak_rss_bytes: int | None = None

    @property
    def median(self) -> float:
        return float(np.median(self.times))


@dataclasses.dataclass(frozen=True)
class Measurement:
    """One benchmark (a backend on a case) measured in one or more worker processes.

    Attributes:
        fields: the benchmark's row fields known before timing: ``case_id``, ``backend``, the
            spec fields, ``timesteps``, ``batch``, ``pass``, what its worker recorded (versions,
            threads, ``prepare_s``, the accuracy check, ...), and ``status``/``reason``.
        rounds: every round's per-call sample, pooled over processes (seconds, or instructions).
        process_medians: one per worker process that timed it, in process order.
        other_cores: per process, the cores other processes used while it timed ([] when unknown).
        peak_rss_bytes: the largest peak resident memory of its processes, or None.
        unit: ``"s"`` or ``"instructions"``.
        side: the A/B side it belongs to (``""`` for a plain run, ``"base"`` or ``"new"``).

    A benchmark that was not timed (``status`` other than ``ok``) has no rounds.
    """

    fields: Mapping
    rounds: tuple = ()
    process_medians: tuple = ()
    other_cores: tuple = ()
    peak_rss_bytes: int | None = None
    unit: str = "s"
    side: str = ""

    @classmethod
    def from_processes(cls, fields: Mapping, processes, unit: str = "s", side: str = "") -> "Measurement":
        """A Measurement of ``processes`` (:class:`ProcessRun`, one per worker process).

        The status is ``ok`` only when every process timed it; otherwise the first other
        outcome's, with its reason, and no samples are kept."""
        processes = list(processes)
        untimed = [p for p in processes if not p.times]
        fields = {**fields, "processes": len(processes)}
        if untimed or fields.get("status") != "ok":
            if fields.get("status") == "ok":
                fields.update(status="error", reason="not timed")
            return cls(fields, unit=unit, side=side)
        rss = [p.peak_rss_bytes for p in processes if p.peak_rss_bytes is not None]
        return cls(fields, tuple(t for p in processes for t in p.times), tuple(p.median for p in processes),
                   tuple(p.other_cores for p in processes), max(rss) if rss else None, unit, side)

    # --- identity -------------------------------------------------------------------------
    case_id = property(lambda self: str(self.fields.get("case_id", "")), doc="the case's id")
    backend = property(lambda self: str(self.fields.get("backend", "")), doc="the backend's name")
    status = property(lambda self: str(self.fields.get("status", "")), doc="ok, or why it was not timed")
    reason = property(lambda self: str(self.fields.get("reason", "")), doc="why, in one line")

    @property
    def label(self) -> str:
        """``<case_id>-<backend>``, as tables and verdicts name a benchmark."""
        return f"{self.case_id}-{self.backend}"

    @property
    def timed(self) -> bool:
        return self.status == "ok" and len(self.rounds) > 0

    # --- derived statistics --------------------------------------------------------------------
    @functools.cached_property
    def median(self) -> float | None:
        """The median of the process medians (of the rounds where there are none), or None untimed."""
        if self.process_medians:
            return float(np.median(self.process_medians))
        return float(np.median(self.rounds)) if self.rounds else None

    @functools.cached_property
    def process_cv(self) -> float | None:
        """stdev / mean of the process medians; None for one process or medians of 0 (a clock too
        coarse for the call)."""
        medians = np.asarray(self.process_medians, float)
        if len(medians) < 2 or not np.mean(medians) > 0:
            return None
        return float(np.std(medians, ddof=1) / np.mean(medians))

    @functools.cached_property
    def spread(self) -> float | None:
        """(max - min) / min of the process medians: how far its processes disagree; None for fewer
        than 2 processes or a median that is not positive."""
        medians = np.asarray(self.process_medians, float)
        if len(medians) < 2 or not medians.min() > 0:
            return None
        return float(np.ptp(medians) / medians.min())

    @functools.cached_property
    def unstable(self) -> tuple[str, ...]:
        """Why this measurement should not be trusted, one reason per entry; () when it is stable.
        Times: its processes disagree (``process_cv`` over :data:`UNSTABLE_CV`), or other processes
        used more than :data:`BUSY_CORES` cores while some of its processes timed.  Counts (which
        other processes do not change): its processes disagree by more than :data:`COUNT_TOLERANCE`."""
        if self.unit == "instructions":
            if self.spread is not None and self.spread > COUNT_TOLERANCE:
                return (f"processes disagree: their counts differ by {self.spread:.2%} "
                        f"((max - min)/min > {COUNT_TOLERANCE:.1%})",)
            return ()
        reasons = []
        if self.process_cv is not None and self.process_cv > UNSTABLE_CV:
            reasons.append(f"processes disagree: their medians vary by {self.process_cv:.0%} "
                           f"(stdev/mean > {UNSTABLE_CV:.0%})")
        busy = [c for c in self.other_cores if c > BUSY_CORES]
        if busy:
            reasons.append(f"machine busy during {len(busy)} of {len(self.other_cores)} processes "
                           f"(other processes used up to {max(busy):.2f} cores)")
        return tuple(reasons)

    def statistics(self) -> dict:
        """The row's statistics columns: ``rounds``, ``median_s``, ``min_s``, ``mean_s``,
        ``stddev_s``, ``iqr_s`` (of the pooled rounds but the median), ``process_cv`` ("" where it
        has no meaning) and ``unstable`` (its reasons joined by "; "); {} when not timed.  A count
        has ``instructions`` (the median per call) instead of the ``*_s`` columns."""
        if not self.timed:
            return {}
        if self.unit == "instructions":
            return {"rounds": len(self.rounds), "instructions": self.median,
                    "process_cv": "" if self.process_cv is None else self.process_cv,
                    "unstable": "; ".join(self.unstable)}
        pooled = np.asarray(self.rounds, float)
        q1, q3 = np.percentile(pooled, [25, 75])
        return {"rounds": len(pooled), "median_s": self.median, "min_s": float(pooled.min()),
                "mean_s": float(pooled.mean()), "stddev_s": float(pooled.std(ddof=1)) if len(pooled) > 1 else 0.0,
                "iqr_s": float(q3 - q1), "process_cv": "" if self.process_cv is None else self.process_cv,
                "unstable": "; ".join(self.unstable)}
