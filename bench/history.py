"""History per machine: saved runs, trends, and step changes.

``python -m bench run --save`` stores a run as
``results/<machine_id>/<run_id>-<commit>.csv`` with its ``.json``
(:func:`bench.results.save_path`).  For each
benchmark, :func:`find_steps` looks for step changes over the saved runs by
binary segmentation: take the split of the series that maximizes
|log(median after / median before)|, and accept it when the comparison's own
rule (:func:`bench.compare.judge`: ratio beyond the threshold and a one-sided
Mann-Whitney U test at ``alpha`` on the rounds pooled on each side) calls it
a regression or an improvement; then search both halves again.  Pooling
treats rounds of different runs alike, so the threshold, not the p-value
alone, guards against run-to-run drift.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from .compare import Entry, judge, load, times_problem
from .results import read_results


def _saved(results_dir: Path) -> dict[Path, set]:
    """``{saved result CSV: machine ids of its rows}`` under ``results_dir/<machine_id>/`` (not
    ``local``, the unsaved runs); a row without a machine id counts as its folder's machine."""
    found = {}
    root = Path(results_dir)
    for path in sorted(root.glob("*/*.csv")) if root.is_dir() else []:
        if path.parent.name == "local":
            continue
        try:
            found[path] = {r.get("machine_id") or path.parent.name for r in read_results(path)}
        except (OSError, ValueError):
            found[path] = {path.parent.name}
    return found


def machines(results_dir: Path) -> list[str]:
    """Machine ids with saved rows: a run saved from a cluster (``run --dask --save``) or a merge of
    shards holds rows of several machines, and each is history of its own machine."""
    return sorted(set().union(*_saved(results_dir).values()))


def saved_runs(results_dir: Path, machine: str) -> list[Path]:
    """The saved result CSVs holding rows of ``machine``, oldest first (names start with the UTC
    run id), wherever they were saved; :func:`trends` keeps only that machine's rows."""
    return sorted((p for p, ids in _saved(results_dir).items() if machine in ids), key=lambda p: (p.name, str(p)))


@dataclasses.dataclass
class Step:
    run: str  # the first run after the step
    index: int
    ratio: float
    p_value: float
    verdict: str


@dataclasses.dataclass
class Trend:
    label: str
    key: tuple
    runs: list  # run names, oldest first, where the benchmark was timed
    medians: list
    steps: list


def _pooled(entries: list[Entry]) -> Entry:
    samples = np.concatenate([e.samples for e in entries])
    return Entry(entries[0].key, entries[0].label, "ok", float(np.median(samples)), samples)


def _median(entry: Entry) -> float:
    """The entry's median as its file states it (of process medians, for this runner's files),
    else that of its rounds where the file's is missing or not a positive finite time."""
    m = entry.median
    return m if m is not None and 0 < m < float("inf") else float(np.median(entry.samples))


def find_steps(entries: list[Entry], threshold: float = 1.10, alpha: float = 0.01) -> list[tuple[int, object]]:
    """Indices ``k`` (first entry after a step) with the :class:`bench.compare.Pair` that justified them, sorted."""
    steps = []

    def segment(lo: int, hi: int) -> None:
        if hi - lo < 2:
            return
        best_k, best = None, 0.0
        for k in range(lo + 1, hi):
            r = abs(np.log(np.median(np.concatenate([e.samples for e in entries[k:hi]]))
                           / np.median(np.concatenate([e.samples for e in entries[lo:k]]))))
            if r > best:
                best_k, best = k, r
        if best_k is None:
            return
        pair = judge(_pooled(entries[lo:best_k]), _pooled(entries[best_k:hi]), threshold, alpha)
        if pair.verdict in ("regression", "improvement"):
            steps.append((best_k, pair))
            segment(lo, best_k)
            segment(best_k, hi)

    segment(0, len(entries))
    return sorted(steps, key=lambda s: s[0])


def trends(paths: list[Path], threshold: float = 1.10, alpha: float = 0.01, machine: str | None = None) -> list[Trend]:
    """Per benchmark timed in any of ``paths`` (oldest first): medians per run and the steps found;
    with ``machine``, only the rows of that machine (rows that do not name one are kept).  A run
    whose rounds cannot make a ratio (:func:`bench.compare.times_problem`: a median of 0 s, a
    non-finite round) is left out of the benchmark's series."""
    sides = [load(p) for p in paths]
    for s in sides:
        s.entries = {k: e for k, e in s.entries.items() if machine is None or e.machine in ("", machine)}
    keys = list(dict.fromkeys(k for s in sides for k in s.entries))
    out = []
    for key in keys:
        series = [(s.path.stem, s.entries[key]) for s in sides
                  if key in s.entries and s.entries[key].status == "ok" and s.entries[key].samples is not None
                  and len(s.entries[key].samples) and not times_problem(s.entries[key].samples)]
        if not series:
            continue
        names, entries = zip(*series)
        steps = [Step(names[k], k, pair.ratio, pair.p_value, pair.verdict) for k, pair in find_steps(list(entries), threshold, alpha)]
        out.append(Trend(entries[0].label, key, list(names), [_median(e) for e in entries], steps))
    return out


def format_trends(ts: list[Trend], machine: str, n_runs: int) -> str:
    lines = [f"{machine}: {n_runs} saved runs, {len(ts)} benchmarks, "
             f"{sum(bool(t.steps) for t in ts)} with step changes"]
    for t in sorted(ts, key=lambda t: (not t.steps, t.label)):
        trail = " -> ".join(f"{m * 1e6:.3g}" for m in t.medians[-8:])
        more = "... " if len(t.medians) > 8 else ""
        lines.append(f"{t.label}: {more}{trail} us")
        for s in t.steps:
            lines.append(f"    step ({s.verdict}) at {s.run}: x{s.ratio:.3f} (p={s.p_value:.2g})")
    return "\n".join(lines) + "\n"
