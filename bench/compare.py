"""Compare two result files: ratio of medians, a significance test, a verdict.

Rows are paired on the benchmark key (backend, every spec field, T, B, the
pass, threads).  A row is a *regression* when NEW is slower by more than the
threshold (ratio NEW/BASE > t) **and** a one-sided test says NEW is slower at
level ``alpha``; an *improvement* mirrors it (ratio < 1/t, NEW faster,
significant); otherwise *unchanged*.  The test is at the unit of replication:

* both files carry process medians (runs of :mod:`bench.runner`): Welch's
  t-test on the logs of the process medians, the ratio being that of the
  medians of process medians;
* else (older files, anyone's pytest-benchmark JSON): a Mann-Whitney U test on
  the raw rounds -- on ranks, so one outlier round cannot make a regression;
  a pair with so few rounds that no outcome could reach ``alpha`` is *not
  comparable* (the exact test's smallest p-value is 1 / C(n1 + n2, n1)).

:func:`judge_paired` judges an A/B run's pairs of processes that ran side by
side (``bench ab``): a one-sample t-test on the log ratios of paired process
medians, whose mean gives the ratio.  Summaries use the geometric mean of the
ratios (google/benchmark's compare.py reports the same).
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np

from .results import SCHEMA_VERSION
from .results import SPEC_COLUMNS, read_results, sidecar_path

KEY_COLUMNS = ["backend", *SPEC_COLUMNS, "timesteps", "batch", "pass", "threads"]
#: Metadata that should match for a fair comparison; a difference is a warning.  Each is compared
#: as the set of values the file's rows hold.  Clock readings, run ids and commits are expected to
#: differ and are not compared.
COMPARED_METADATA = ["machine_id", "cpu_model", "cores", "blas", "blas_threads", "torch_threads", "python_version",
                     "numpy_version", "numba_version", "scipy_version", "torch_version", "numba_blas",
                     "thread_pools", "numba_threads", "peak_blas"]
VERDICTS = ("regression", "improvement", "unchanged", "not comparable")


class Unusable(Exception):
    """An input that cannot be compared at all (exit status 2)."""


@dataclasses.dataclass
class Entry:
    key: tuple
    label: str
    status: str
    median: float | None
    samples: np.ndarray | None
    process_medians: list | None = None


@dataclasses.dataclass
class Side:
    path: Path
    entries: dict
    metadata: dict
    schema_version: int | None
    busy: str = ""  # why this file's run looks like it ran on a busy machine, or ""


def _norm(value) -> str:
    return "" if value is None else str(value)


def _key(fields: dict) -> tuple:
    """The benchmark key of a row or ``extra_info``; a ``pass`` absent or empty (files before
    schema 5) is ``forward``, the only pass timed then."""
    values = {c: fields.get(c) for c in KEY_COLUMNS}
    values["pass"] = values["pass"] or "forward"
    return tuple(_norm(values[c]) for c in KEY_COLUMNS)


def _samples_by_key(benchmarks: list) -> tuple[dict, dict]:
    """``{key: samples}`` and ``{key: (label, median, process medians or None)}`` from
    pytest-benchmark's ``benchmarks`` list.

    Our benchmarks carry every key field in ``extra_info``; anyone else's are
    keyed by ``fullname`` (``params`` may be null)."""
    samples, info = {}, {}
    for b in benchmarks:
        if not isinstance(b, dict) or not isinstance(b.get("stats"), dict):
            raise Unusable("a benchmark entry without 'stats'")
        extra = b.get("extra_info") or {}
        ours = all(c in extra for c in KEY_COLUMNS if c not in ("threads", "pass"))  # since schemas 4 and 5
        key = _key(extra) if ours else ("name", b.get("fullname") or b.get("name"))
        data = b["stats"].get("data")
        samples[key] = np.asarray(data, float) if data else None
        label = f"{extra['case_id']}-{extra['backend']}" if "case_id" in extra and "backend" in extra else str(key[-1])
        info[key] = (label, b["stats"].get("median"), extra.get("process_medians"))
    return samples, info


def load(path: str | Path) -> Side:
    """Read a result CSV (with its ``.json`` sidecar) or a pytest-benchmark JSON.

    Raises:
        Unusable: missing file, not our schema, unreadable JSON.
    """
    path = Path(path)
    if not path.is_file():
        raise Unusable(f"{path}: no such file")
    if path.suffix == ".csv":
        try:
            rows = read_results(path)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Unusable(str(exc)) from None
        if not rows:
            raise Unusable(f"{path}: no result rows")
        sidecar = sidecar_path(path)
        samples, info = {}, {}
        if sidecar.is_file():
            samples, info = _samples_by_key(_read_json(sidecar).get("benchmarks") or [])
        entries = {}
        for r in rows:
            key = _key(r)
            median = float(r["median_s"]) if r["status"] == "ok" and r["median_s"] else None
            entries[key] = Entry(key, f"{r['case_id']}-{r['backend']}", r["status"], median, samples.get(key),
                                 info.get(key, (None, None, None))[2])
        metadata = {c: ", ".join(sorted({str(r.get(c, "")) for r in rows} - {""})) for c in COMPARED_METADATA}
        return Side(path, entries, metadata, int(rows[0]["schema_version"]), busy_reason(rows))
    if path.suffix == ".json":
        doc = _read_json(path)
        if not isinstance(doc.get("benchmarks"), list):
            raise Unusable(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
        samples, info = _samples_by_key(doc["benchmarks"])
        entries = {k: Entry(k, info[k][0], "ok", info[k][1], samples[k], info[k][2]) for k in samples}
        ours = (doc.get("machine_info") or {}).get("rnn_cell_bench") or {}
        metadata = {c: _norm(ours.get(c)) for c in COMPARED_METADATA} if ours else {}
        version = ours.get("schema_version")
        return Side(path, entries, metadata, None if version is None else int(version))
    raise Unusable(f"{path}: expected a result .csv or a pytest-benchmark .json")


def busy_reason(rows: list[dict]) -> str:
    """Why the run of ``rows`` looks like it ran on a busy machine: other processes' use of cores
    at its start or end (bench.environment.BUSY_CORES), or rows marked unstable for it; else ""."""
    from .environment import BUSY_CORES

    reasons = []
    for when in ("start", "end"):
        cores = [float(r[f"other_cores_{when}"]) for r in rows if r.get(f"other_cores_{when}") not in (None, "")]
        if cores and max(cores) > BUSY_CORES:
            busiest = next((r.get(f"busiest_{when}") for r in rows if r.get(f"busiest_{when}")), "")
            reasons.append(f"other processes used {max(cores):.2f} cores at its {when}" + (f" ({busiest})" if busiest else ""))
    busy_rows = sum("machine busy" in (r.get("unstable") or "") for r in rows)
    if busy_rows:
        reasons.append(f"{busy_rows} rows were timed while other processes used the cores")
    return "; ".join(reasons)


def _read_json(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise Unusable(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise Unusable(f"{path}: not a pytest-benchmark JSON")
    return doc


def parse_thresholds(items: list[str]) -> dict[str, float]:
    """``["numba=1.05", "1.2"]`` -> ``{"numba": 1.05, "default": 1.2}``; the default default is 1.10.

    A group is a backend name or a mode; a row takes its backend's threshold,
    else its mode's, else the default.  Raises ValueError for a value <= 1."""
    thresholds = {"default": 1.10}
    for item in items:
        group, sep, value = item.rpartition("=")
        group = group if sep else "default"
        try:
            t = float(value)
        except ValueError:
            raise ValueError(f"--threshold: expected GROUP=RATIO or RATIO, got {item!r}") from None
        if not t > 1.0 or not math.isfinite(t):
            raise ValueError(f"--threshold: expected a ratio above 1 (1.10 = 10% slower), got {item!r}")
        thresholds[group] = t
    return thresholds


def min_p_value(n1: int, n2: int) -> float:
    """Smallest one-sided p-value the exact Mann-Whitney U test can give for samples of n1 and n2."""
    ways = math.comb(n1 + n2, n1)
    return 1.0 / ways if ways < 10**300 else 0.0


@dataclasses.dataclass
class Pair:
    label: str
    key: tuple
    base: float | None
    new: float | None
    ratio: float | None
    p_value: float | None
    threshold: float
    verdict: str
    why: str = ""


def judge(base: Entry, new: Entry, threshold: float, alpha: float) -> Pair:
    """The verdict for one paired benchmark (see the module docstring)."""
    from scipy.stats import mannwhitneyu

    pair = Pair(new.label, new.key, base.median, new.median, None, None, threshold, "not comparable")
    for side, e in (("BASE", base), ("NEW", new)):
        if e.status != "ok":
            pair.why = f"status {e.status} in {side}"
            return pair
    if base.median and new.median:
        pair.ratio = new.median / base.median
    for side, e in (("BASE", base), ("NEW", new)):
        if e.samples is None or len(e.samples) == 0:
            pair.why = f"no raw samples in {side}"
            return pair
    if base.process_medians and new.process_medians and min(len(base.process_medians), len(new.process_medians)) < 2:
        # rounds of one process are not replicates: its level is shared by all of them
        pair.why = (f"{len(base.process_medians)} vs {len(new.process_medians)} worker processes; "
                    "at least 2 a side are needed")
        return pair
    if base.process_medians and new.process_medians:
        from scipy.stats import ttest_ind

        b, n = np.log(base.process_medians), np.log(new.process_medians)
        pair.ratio = float(np.median(new.process_medians) / np.median(base.process_medians))
        direction = "greater" if pair.ratio >= 1 else "less"
        with warnings.catch_warnings():  # nearly identical processes: scipy warns of precision, the p stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p = ttest_ind(n, b, equal_var=False, alternative=direction).pvalue
        pair.p_value = 1.0 if not np.isfinite(p) else float(p)  # identical processes: no evidence
        return _verdict(pair, threshold, alpha)
    n1, n2 = len(new.samples), len(base.samples)
    if min_p_value(n1, n2) > alpha:
        pair.why = f"too few rounds ({n2} vs {n1}) for alpha={alpha:g}"
        return pair
    pair.ratio = float(np.median(new.samples) / np.median(base.samples))
    direction = "greater" if pair.ratio >= 1 else "less"
    pair.p_value = float(mannwhitneyu(new.samples, base.samples, alternative=direction).pvalue)
    return _verdict(pair, threshold, alpha)


def _verdict(pair: Pair, threshold: float, alpha: float) -> Pair:
    """Set ``pair.verdict`` from its ratio and p-value: beyond the threshold and significant."""
    if pair.ratio >= 1:
        pair.verdict = "regression" if pair.ratio > threshold and pair.p_value < alpha else "unchanged"
    else:
        pair.verdict = "improvement" if pair.ratio < 1 / threshold and pair.p_value < alpha else "unchanged"
    return pair


def judge_paired(label: str, key: tuple, base: list, new: list, threshold: float, alpha: float) -> Pair:
    """The verdict for one benchmark of an A/B run from its paired process medians (seconds):
    ``base[k]`` and ``new[k]`` ran side by side.  The ratio is the geometric mean of the paired
    ratios; p is a one-sided one-sample t-test of their logs against 0 (the paired t-test on
    log times); fewer than 2 pairs is not comparable."""
    from scipy.stats import ttest_1samp

    pair = Pair(label, key, float(np.median(base)) if base else None, float(np.median(new)) if new else None,
                None, None, threshold, "not comparable")
    if len(base) != len(new):
        pair.why = f"{len(base)} BASE processes against {len(new)} NEW: not paired"
        return pair
    if len(base) < 2:
        pair.why = f"{len(base)} paired processes; at least 2 are needed"
        return pair
    b, n = np.asarray(base, float), np.asarray(new, float)
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(n)) and b.min() > 0 and n.min() > 0):
        pair.why = "a process median that is not a positive finite time"
        return pair
    logs = np.log(n / b)
    pair.ratio = float(np.exp(logs.mean()))
    if np.ptp(logs) == 0:  # every pair agrees exactly: certain, whichever way
        pair.p_value = 0.0 if logs[0] != 0 else 1.0
    else:
        with warnings.catch_warnings():  # nearly identical pairs: scipy warns of precision, the p stands
            warnings.simplefilter("ignore", RuntimeWarning)
            p = ttest_1samp(logs, 0.0, alternative="greater" if pair.ratio >= 1 else "less").pvalue
        pair.p_value = float(p) if np.isfinite(p) else 1.0
    return _verdict(pair, threshold, alpha)


@dataclasses.dataclass
class Comparison:
    base: Side
    new: Side
    pairs: list
    only_base: list
    only_new: list
    warnings: list
    alpha: float

    @property
    def regressions(self) -> list:
        return [p for p in self.pairs if p.verdict == "regression"]

    def geomean(self, backend: str | None = None) -> float | None:
        """Geometric mean of NEW/BASE median ratios over comparable pairs (of one backend)."""
        ratios = [p.ratio for p in self.pairs if p.verdict != "not comparable" and p.ratio
                  and (backend is None or p.key[0] == backend)]
        return float(np.exp(np.mean(np.log(ratios)))) if ratios else None


def compare(base_path, new_path, thresholds: dict | None = None, alpha: float = 0.01) -> Comparison:
    """Pair and judge every benchmark of two result files.

    Args:
        thresholds: from :func:`parse_thresholds`; default 1.10 for all.
        alpha: significance level of the one-sided Mann-Whitney U test.

    Raises:
        Unusable: a file cannot be read, the schema versions differ, the
            files have no benchmark in common, or none of the common ones is
            comparable (e.g. no raw samples): a CI gate must not pass on nothing.
    """
    thresholds = thresholds or {"default": 1.10}
    base, new = load(base_path), load(new_path)
    versions = {s.schema_version for s in (base, new)} - {None}
    if len(versions) > 1:
        raise Unusable(f"schema versions differ: BASE {base.schema_version}, NEW {new.schema_version}")
    if any(v > SCHEMA_VERSION for v in versions):
        raise Unusable(f"schema version {versions.pop()} is newer than this code's {SCHEMA_VERSION}")
    common = [k for k in new.entries if k in base.entries]
    if not common:
        raise Unusable(f"no benchmarks in common between {base.path} and {new.path}")
    pairs = []
    for k in common:
        t = thresholds.get(k[0], thresholds.get(k[1], thresholds["default"])) if k[0] != "name" else thresholds["default"]
        pairs.append(judge(base.entries[k], new.entries[k], t, alpha))
    if all(p.verdict == "not comparable" for p in pairs):
        from collections import Counter

        why, n = Counter(p.why for p in pairs).most_common(1)[0]
        raise Unusable(f"none of the {len(pairs)} common benchmarks is comparable ({n} of them: {why})")
    pairs.sort(key=lambda p: (p.verdict == "not comparable", -(p.ratio or 0)))
    warnings = metadata_warnings(base, new)
    only_base = [base.entries[k].label for k in base.entries if k not in new.entries]
    only_new = [new.entries[k].label for k in new.entries if k not in base.entries]
    return Comparison(base, new, pairs, only_base, only_new, warnings, alpha)


def metadata_warnings(base: Side, new: Side) -> list[str]:
    """Where the two sides' machines, libraries or threads differ, and where either ran busy."""
    warnings = [
        f"{field} differs: BASE {base.metadata.get(field)!r}, NEW {new.metadata.get(field)!r}"
        for field in COMPARED_METADATA
        if base.metadata and new.metadata and base.metadata.get(field) != new.metadata.get(field)
    ]
    warnings += [f"{name} ran on a busy machine: {side.busy}" for name, side in (("BASE", base), ("NEW", new))
                 if side.busy]
    return warnings


# --- output -----------------------------------------------------------------

FIELDS = ["benchmark", "base_median_s", "new_median_s", "ratio", "p_value", "threshold", "verdict", "why"]


def records(c: Comparison) -> list[dict]:
    return [dict(zip(FIELDS, (p.label, p.base, p.new, p.ratio, p.p_value, p.threshold, p.verdict, p.why)))
            for p in c.pairs]


def summary(c: Comparison) -> dict:
    backends = list(dict.fromkeys(p.key[0] for p in c.pairs if p.key[0] != "name"))
    return {
        "counts": {v: sum(p.verdict == v for p in c.pairs) for v in VERDICTS},
        "geomean_ratio": c.geomean(),
        "geomean_ratio_by_backend": {b: c.geomean(b) for b in backends},
        "only_in_base": c.only_base,
        "only_in_new": c.only_new,
        "warnings": c.warnings,
        "alpha": c.alpha,
    }


def _fmt(x, spec=".3g"):
    return "" if x is None else format(x, spec)


def _summary_lines(c: Comparison, most: int = 20) -> list[str]:
    s = summary(c)
    counts = ", ".join(f"{n} {v}" for v, n in s["counts"].items())
    per_backend = ", ".join(f"{b} {_fmt(g, '.4f') or 'n/a'}" for b, g in s["geomean_ratio_by_backend"].items())
    lines = [f"{len(c.pairs)} benchmarks compared: {counts}",
             f"geometric mean ratio NEW/BASE: {_fmt(s['geomean_ratio'], '.4f') or 'n/a'} (per backend: {per_backend})"]
    for name, rows in (("only in BASE", c.only_base), ("only in NEW", c.only_new)):
        if rows:
            more = f" ... and {len(rows) - most} more" if len(rows) > most else ""
            lines.append(f"{name} ({len(rows)}): " + ", ".join(rows[:most]) + more)
    lines += [f"warning: {w}" for w in c.warnings]
    return lines


def format_comparison(c: Comparison, fmt: str = "table") -> str:
    """The comparison as ``table`` (text), ``csv``, ``json`` or ``markdown``."""
    recs = records(c)
    if fmt == "json":
        return json.dumps({"base": str(c.base.path), "new": str(c.new.path), "rows": recs, "summary": summary(c)}, indent=2)
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(recs)
        return buf.getvalue()
    cells = [[r["benchmark"], _fmt(r["base_median_s"]), _fmt(r["new_median_s"]), _fmt(r["ratio"], ".3f"),
              _fmt(r["p_value"], ".2g"), r["verdict"] + (f" ({r['why']})" if r["why"] else "")] for r in recs]
    header = ["benchmark", "BASE median s", "NEW median s", "NEW/BASE", "p", "verdict"]
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---|"]
        out += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(out + [""] + [f"- {line}" for line in _summary_lines(c)]) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BASE {c.base.path}  vs  NEW {c.new.path} (worst first)", title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if 0 < i < 5 else "left")
    for row in cells:
        table.add_row(*row)
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None, highlight=False).print(table)
    return buf.getvalue() + "\n".join(_summary_lines(c)) + "\n"
