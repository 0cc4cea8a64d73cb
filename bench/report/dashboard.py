"""The dashboard's model (:mod:`bench.publish`) from a results folder: per machine, its saved runs,
every benchmark's measurements over them and the step changes history finds, its A/B reports, and
who wins where in its latest run of each grid."""

from __future__ import annotations

import datetime
import json
import re
from pathlib import Path

from ..judge.history import Trend, trends
from ..judge.sides import load
from ..judge.stats import COUNT_THRESHOLD, parse_thresholds
from ..results.catalog import machines as saved_machines
from ..results.catalog import saved_runs
from ..results.files import read_results
from ..results.schema import KEY_COLUMNS
from .wins import regime_tables


def slug(text: str) -> str:
    """``text`` as a file name: letters, digits, ``.``, ``_`` and ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"


def _fields(trend: Trend) -> dict:
    """The benchmark's key as the dashboard's fields (numbers as numbers; a column files before it
    existed lack, e.g. ``threads`` before schema 4, is left out)."""
    key = dict(zip(KEY_COLUMNS, trend.key))
    last = trend.measurements[-1].fields
    numbers = {k: int(key[k]) for k in ("hidden_size", "batch", "timesteps", "num_layers", "proj_size", "threads")
               if key[k] not in ("", None)}
    return {**{k: key[k] for k in ("mode", "pass", "backend", "dtype", "lengths")}, **numbers,
            "bidirectional": key["bidirectional"] == "True", "measure": last.get("measure") or "time",
            "case_id": last.get("case_id", "")}


def _step(trend: Trend, runs: dict) -> dict | None:
    """The most recent step of ``trend`` in the model's shape, or None."""
    if not trend.steps:
        return None
    s = trend.steps[-1]
    before, after = trend.runs[s.index - 1], trend.runs[s.index]
    return {"factor": s.ratio, "verdict": s.verdict, "before": s.before, "after": s.after, "run_before": before,
            "run_after": after, "commit_before": runs[before]["commit"], "commit_after": runs[after]["commit"]}


def benchmark_model(trend: Trend, runs: dict, latest: str) -> dict:
    """One benchmark of the model from its history."""
    fields = _fields(trend)
    unit = trend.measurements[0].unit
    points = [{"run": run, "median": m.median, "process_medians": list(m.process_medians) or [m.median]}
              for run, m in zip(trend.runs, trend.measurements)]
    identity = f"{fields['case_id']}-t{fields.get('threads', '')}-{fields['measure']}"
    return {"id": slug(f"{identity}-{fields['backend']}"), "page": slug(identity),
            "label": f"{fields['case_id']} {fields['backend']}", "fields": fields, "unit": unit, "points": points,
            "latest": trend.medians[-1] if trend.runs[-1] == latest else None, "in_latest": trend.runs[-1] == latest,
            "step": _step(trend, runs)}


def _run_model(path: Path) -> dict:
    rows = read_results(path)
    first = rows[0] if rows else {}
    return {"name": path.stem, "commit": first.get("git_commit") or "", "dirty": str(first.get("git_dirty")) == "True",
            "timestamp": first.get("timestamp") or ""}


def ab_reports(folder: Path) -> list[dict]:
    """The A/B reports ``bench ab`` kept in a machine's folder, newest first."""
    reports = []
    for path in sorted(folder.glob("ab-*.json"), reverse=True):
        doc = json.loads(path.read_text())
        if doc.get("format") != "rnn-cell-bench ab":
            continue
        threshold = next((r.get("threshold") for r in doc["rows"] if r.get("threshold")), None)
        reports.append({"name": slug(path.stem), "base": doc["base"], "new": doc["new"],
                        "base_commit": doc.get("base_commit", ""), "new_commit": doc.get("new_commit", ""),
                        "timestamp": path.stem.split("-")[1] if "-" in path.stem else "",
                        "threshold": threshold or 1.0, "alpha": doc.get("alpha", 0.01),
                        "rows": [{"benchmark": r["benchmark"], "base_median": r.get("base_median_s"),
                                  "new_median": r.get("new_median_s"), "ratio": r.get("ratio"),
                                  "p_value": r.get("p_value"), "verdict": r["verdict"], "why": r.get("why", ""),
                                  "paired_ratios": r.get("paired_ratios", []), "unit": r.get("unit") or "s"}
                                 for r in doc["rows"]]})
    return reports


def who_wins(paths: list[Path]) -> list[dict]:
    """Regime tables of the latest saved run of each grid that measured time (who wins is a
    matter of time: a run of instruction counts has none)."""
    latest: dict = {}
    for path in paths:
        rows = read_results(path)
        if rows and all(r.get("measure") == "instructions" for r in rows):
            continue
        latest[(rows[0].get("grid") if rows else "") or path.stem] = (path, rows)
    tables = []
    for grid, (path, rows) in latest.items():
        for table in regime_tables(rows):
            tables.append({**table, "title": f"{grid or 'run'} grid, {table['title']}",
                           "note": f"From {path.name}: per regime, how often each backend was fastest and each "
                                   "backend's geometric mean of its time over the fastest's (1.00 = always fastest), "
                                   "on the cases where all were timed."})
    return tables


def machine_model(results: Path, machine: str, threshold: float, alpha: float,
                  count_threshold: float = COUNT_THRESHOLD) -> dict:
    """One machine of the model (steps of instruction counts by ``count_threshold``)."""
    paths, _ = saved_runs(results, machine)
    runs = {p.stem: _run_model(p) for p in paths}
    latest = paths[-1].stem
    found = trends([load(p) for p in paths], threshold, alpha, machine, count_threshold)
    benchmarks = [benchmark_model(t, runs, latest) for t in found]
    steps = []
    for t, b in zip(found, benchmarks):
        for s in t.steps:
            before, after = t.runs[s.index - 1], t.runs[s.index]
            steps.append({"benchmark": b["id"], "label": b["label"], "factor": s.ratio, "verdict": s.verdict,
                          "before": s.before, "after": s.after, "run_before": before, "run_after": after,
                          "commit_before": runs[before]["commit"], "commit_after": runs[after]["commit"]})
    steps.sort(key=lambda s: s["run_after"], reverse=True)
    cpu = next((r.get("cpu_model") for r in read_results(paths[-1]) if r.get("cpu_model")), "")
    return {"machine_id": machine, "cpu_model": cpu, "runs": list(runs.values()), "benchmarks": benchmarks,
            "steps": steps, "ab_reports": ab_reports(results / machine), "who_wins": who_wins(paths)}


def site_model(results: Path, threshold: float = 1.10, alpha: float = 0.01) -> dict:
    """The model of every machine with saved runs under ``results``.

    Raises:
        ValueError: no machine has a saved run there.
    """
    found = saved_machines(results)
    if not found:
        raise ValueError(f"--results: no saved runs under {results}/ (save one with `python -m bench run --save`)")
    threshold = parse_thresholds([], threshold)["default"]
    return {"generated": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "machines": [machine_model(results, m, threshold, alpha) for m in found]}
