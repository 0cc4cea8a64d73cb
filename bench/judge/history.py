"""History per machine: a benchmark's measurements over saved runs, and its step changes.

``python -m bench run --save`` stores a run under ``<results>/<machine_id>/``
(:func:`bench.results.paths.save_path`).  For each benchmark (the same key as ``compare``'s, so
machines, passes and thread counts stay apart), :func:`find_steps` looks for step changes over
the saved runs, oldest first, by binary segmentation: take the split of the series that maximizes
|log(median after / median before)|, and accept it when ``compare``'s own rule
(:func:`bench.judge.stats.judge`) calls the two segments a regression or an improvement; then
search both halves again.

The unit of the test is ``compare``'s: each worker process's median is a replicate (Welch's
t-test on their logs), a segment pooling the process medians of its runs; files without process
medians fall back to the Mann-Whitney U test on rounds.  Binary segmentation with this test, not
asv's penalized change-point fit, so that a step in history means exactly what a regression in
``compare`` means (ratio beyond the threshold and significant at ``alpha``), and stays
explainable from two numbers; its weakness is a slow drift, which it reports as one step where
the drift crosses the threshold.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from ..measurement import Measurement
from .sides import Entry, Side
from .stats import Pair, judge, times_problem


@dataclasses.dataclass
class Step:
    """A step change: the first run after it (``run``, its index), NEW/BASE of the two segments'
    medians, the test's p, and ``regression`` or ``improvement``."""

    run: str
    index: int
    ratio: float
    p_value: float
    verdict: str
    before: float = 0.0
    after: float = 0.0


@dataclasses.dataclass
class Trend:
    """One benchmark over a machine's saved runs: the runs where it was timed (oldest first), its
    measurement in each, and the steps found."""

    label: str
    key: tuple
    runs: list
    measurements: list
    steps: list

    @property
    def medians(self) -> list[float]:
        return [m.median for m in self.measurements]


def pooled(measurements: list[Measurement]) -> Measurement:
    """One Measurement of a segment of runs: their rounds and their process medians pooled."""
    first = measurements[0]
    return Measurement(first.fields, tuple(t for m in measurements for t in m.rounds),
                       tuple(p for m in measurements for p in m.process_medians), unit=first.unit)


def find_steps(measurements: list[Measurement], threshold: float = 1.10, alpha: float = 0.01) -> list[tuple]:
    """``[(k, Pair)]``: the index ``k`` of the first run after each step, with the verdict that
    justified it, sorted by ``k``."""
    steps = []

    def segment(lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        best_k, best = None, 0.0
        for k in range(lo + 1, hi):
            r = abs(np.log(pooled(measurements[k:hi]).median / pooled(measurements[lo:k]).median))
            if r > best:
                best_k, best = k, r
        if best_k is None:
            return
        pair = judge("", (), pooled(measurements[lo:best_k]), pooled(measurements[best_k:hi]), threshold, alpha)
        if pair.verdict in ("regression", "improvement"):
            steps.append((best_k, pair))
            segment(lo, best_k)
            segment(best_k, hi)

    segment(0, len(measurements))
    return sorted(steps, key=lambda s: s[0])


def usable(entry: Entry) -> bool:
    """A run's entry that can stand in a series: timed, with samples that can make a ratio."""
    m = entry.measurement
    return m.timed and not times_problem(m.rounds) and (not m.process_medians or not times_problem(
        m.process_medians, "process medians"))


def trends(sides: list[Side], threshold: float = 1.10, alpha: float = 0.01, machine: str | None = None) -> list[Trend]:
    """Per benchmark timed in any of ``sides`` (saved runs, oldest first): its measurements per run
    and the steps found; with ``machine``, only the entries of that machine (entries that do not
    name one are kept).  A run whose samples cannot make a ratio
    (:func:`bench.judge.stats.times_problem`) is left out of the benchmark's series."""
    keys = list(dict.fromkeys(k for s in sides for k, e in s.entries.items()
                              if machine is None or e.machine in ("", machine)))
    out = []
    for key in keys:
        series = [(s.path.stem, s.entries[key]) for s in sides if key in s.entries and usable(s.entries[key])
                  and (machine is None or s.entries[key].machine in ("", machine))]
        if not series:
            continue
        names, entries = zip(*series)
        measurements = [e.measurement for e in entries]
        steps = []
        for k, pair in find_steps(measurements, threshold, alpha):
            steps.append(Step(names[k], k, pair.ratio, pair.p_value, pair.verdict, pair.base, pair.new))
        out.append(Trend(entries[0].label, key, list(names), measurements, steps))
    return out


def format_trends(ts: list[Trend], machine: str, n_runs: int, skipped: str = "") -> str:
    """History as text: a line per benchmark (its last 8 medians), with its steps under it."""
    lines = [f"{machine}: {n_runs} saved runs, {len(ts)} benchmarks, "
             f"{sum(bool(t.steps) for t in ts)} with step changes"]
    if skipped:
        lines.append(skipped)
    for t in sorted(ts, key=lambda t: (not t.steps, t.label)):
        scale, unit = (1e6, " us") if t.measurements[0].unit == "s" else (1.0, " instructions")
        trail = " -> ".join(f"{m * scale:.4g}" for m in t.medians[-8:])
        more = "... " if len(t.medians) > 8 else ""
        lines.append(f"{t.label}: {more}{trail}{unit}")
        for s in t.steps:
            lines.append(f"    step ({s.verdict}) at {s.run}: x{s.ratio:.3f} (p={s.p_value:.2g})")
    return "\n".join(lines) + "\n"


def series_of(paths: list[Path]) -> list[str]:
    """Run names of ``paths`` in history's order (oldest first: names start with the UTC run id)."""
    return [p.stem for p in sorted(paths, key=lambda p: (p.name, str(p)))]


__all__ = ["Pair", "Step", "Trend", "find_steps", "format_trends", "pooled", "trends"]
