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

A side whose times cannot make a ratio -- a median of 0 s (a coarse clock, a
hand-made file), a non-finite round, a process median that is not a positive
finite time -- is *not comparable*, with the reason; no NaN or infinity
reaches a verdict, a geometric mean or the output (JSON output is strict
JSON).  Files of different schema versions are paired on the key columns
both have, and the columns one lacks are named (:data:`bench.results.ADDED`).
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

from .results import ADDED, READ_AS, SCHEMA_VERSION
from .results import SPEC_COLUMNS, read_results, sidecar_path

KEY_COLUMNS = ["backend", *SPEC_COLUMNS, "timesteps", "batch", "pass", "threads"]
#: Metadata that should match for a fair comparison; a difference is a warning.  Each is compared
#: as the set of values the file's rows hold.  Clock readings, run ids and commits are expected to
#: differ and are not compared; so is ``peak_blas``, which names the fastest of the BLAS libraries
#: in one run's peak measurement and flips between near ties from run to run.
COMPARED_METADATA = ["machine_id", "cpu_model", "cores", "blas", "blas_threads", "torch_threads", "python_version",
                     "numpy_version", "numba_version", "scipy_version", "torch_version", "numba_blas",
                     "thread_pools", "numba_threads", "onnx_version", "onnxruntime_version",
                     "jax_version", "jaxlib_version", "onnxruntime_threads", "xla_threads", "xla_flags"]
#: What a plain pytest-benchmark JSON's ``machine_info`` and ``commit_info`` say that should match
#: for a fair comparison: (name in warnings, path in the document).  Ours carry the rows' metadata.
FOREIGN_METADATA = [("machine_info.cpu.brand_raw", ("machine_info", "cpu", "brand_raw")),
                    ("machine_info.cpu.count", ("machine_info", "cpu", "count")),
                    ("machine_info.machine", ("machine_info", "machine")),
                    ("machine_info.system", ("machine_info", "system")),
                    ("machine_info.python_implementation", ("machine_info", "python_implementation")),
                    ("machine_info.python_version", ("machine_info", "python_version")),
                    ("commit_info.project", ("commit_info", "project"))]
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
    machine: str = ""  # the machine_id of the row ("" where the file does not say)


@dataclasses.dataclass
class Side:
    path: Path
    entries: dict
    metadata: dict
    schema_version: int | None
    busy: str = ""  # why this file's run looks like it ran on a busy machine, or ""
    dirty: str = ""  # the commit whose working tree had uncommitted changes when this file was made, or ""
    machines: tuple = ()  # the machine_ids of its rows, when it holds more than one (a cluster run, a merge)


def _norm(value) -> str:
    return "" if value is None else str(value)


def _key(fields: dict) -> tuple:
    """The benchmark key of a row or ``extra_info``; a key column absent or empty in files made
    before it existed takes its known value there (:data:`bench.results.READ_AS`: ``pass`` is
    ``forward``, the only pass timed then)."""
    values = {c: fields.get(c) for c in KEY_COLUMNS}
    values.update({c: values[c] or value for c, value in READ_AS.items()})
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
                                 info.get(key, (None, None, None))[2], r.get("machine_id", ""))
        version = int(rows[0]["schema_version"])
        metadata = {c: ", ".join(sorted({str(r.get(c, "")) for r in rows} - {""}))
                    for c in COMPARED_METADATA if c not in added_since(version)}
        dirty = next((r.get("git_commit") or "?" for r in rows if str(r.get("git_dirty")) == "True"), "")
        machines = sorted({r.get("machine_id") for r in rows} - {None, ""})
        return Side(path, entries, metadata, version, busy_reason(rows), dirty[:7],
                    tuple(machines) if len(machines) > 1 else ())
    if path.suffix == ".json":
        doc = _read_json(path)
        if not isinstance(doc.get("benchmarks"), list):
            raise Unusable(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
        samples, info = _samples_by_key(doc["benchmarks"])
        entries = {k: Entry(k, info[k][0], "ok", info[k][1], samples[k], info[k][2]) for k in samples}
        ours = (doc.get("machine_info") or {}).get("rnn_cell_bench") or {}
        version = ours.get("schema_version")
        metadata, dirty = json_metadata(doc)
        return Side(path, entries, metadata, None if version is None else int(version), dirty=dirty)
    raise Unusable(f"{path}: expected a result .csv or a pytest-benchmark .json")


def added_since(version: int | None) -> list[str]:
    """Result columns that files of schema ``version`` lack (added by a later version); [] for None."""
    if version is None:
        return []
    return [c for v, cols in ADDED.items() if v > version for c in cols]


def _dig(doc, path: tuple):
    for part in path:
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def json_metadata(doc: dict) -> tuple[dict, str]:
    """``(metadata, dirty)`` of a pytest-benchmark JSON: our rows' :data:`COMPARED_METADATA`
    (each the set of values its benchmarks' ``extra_info`` hold, where they hold it), then what
    pytest-benchmark's own ``machine_info`` and ``commit_info`` say (:data:`FOREIGN_METADATA`,
    where present); ``dirty`` is the commit id when ``commit_info`` (or our rows) say the working
    tree had uncommitted changes, else ""."""
    extras = [b.get("extra_info") or {} for b in doc.get("benchmarks") or [] if isinstance(b, dict)]
    metadata = {c: ", ".join(sorted({_norm(e.get(c)) for e in extras} - {""}))
                for c in COMPARED_METADATA if any(c in e for e in extras)}
    for name, where in FOREIGN_METADATA:
        value = _dig(doc, where)
        if value not in (None, ""):
            metadata[name] = _norm(value)
    commit = doc.get("commit_info") if isinstance(doc.get("commit_info"), dict) else {}
    dirty = ""
    if commit.get("dirty") is True:
        dirty = str(commit.get("id") or "?")[:7]
    elif any(str(e.get("git_dirty")) == "True" for e in extras):
        dirty = str(next(e.get("git_commit") for e in extras if str(e.get("git_dirty")) == "True") or "?")[:7]
    return metadata, dirty


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

    pair = Pair(new.label, new.key, _finite(base.median), _finite(new.median), None, None, threshold, "not comparable")
    for side, e in (("BASE", base), ("NEW", new)):
        if e.status != "ok":
            pair.why = f"status {e.status} in {side}"
            return pair
    if pair.base and pair.new and pair.base > 0 and pair.new > 0:
        pair.ratio = pair.new / pair.base
    for side, e in (("BASE", base), ("NEW", new)):
        if e.samples is None or len(e.samples) == 0:
            pair.why = f"no raw samples in {side}"
            return pair
    for side, e in (("BASE", base), ("NEW", new)):
        problem = times_problem(e.samples, "rounds") or (e.process_medians and times_problem(e.process_medians,
                                                                                           "process medians"))
        if problem:
            pair.ratio, pair.why = None, f"{side}: {problem}"
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


def times_problem(values, what: str = "rounds") -> str:
    """Why ``values`` (seconds) cannot make a ratio, or "": a value that is not finite, a negative
    one, or a median of 0 s (a coarse clock, a hand-made file): a ratio of it is 0, inf or NaN.
    Process medians must all be positive (their logs are tested)."""
    v = np.asarray(values, float)
    if not np.all(np.isfinite(v)):
        return f"{what} hold a value that is not finite ({float(v[~np.isfinite(v)][0])})"
    if v.min() < 0:
        return f"{what} hold a negative time ({v.min():g} s)"
    if what == "process medians" and v.min() == 0:
        return "a process median of 0 s (no time resolved)"
    if np.median(v) == 0:
        return f"median of the {what} is 0 s ({int(np.sum(v == 0))} of {v.size} are 0; no time resolved)"
    return ""


def _finite(x) -> float | None:
    """``x`` as a float, or None where it is missing or not finite (NaN and infinity are not JSON)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


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

    pair = Pair(label, key, _finite(np.median(base)) if base else None, _finite(np.median(new)) if new else None,
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
        ratios = [p.ratio for p in self.pairs if p.verdict != "not comparable" and _finite(p.ratio) and p.ratio > 0
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
    if any(v > SCHEMA_VERSION for v in versions):
        raise Unusable(f"schema version {max(versions)} is newer than this code's {SCHEMA_VERSION}")
    notes = common_columns(base, new)
    common = [k for k in new.entries if k in base.entries]
    if not common:
        raise Unusable(f"no benchmarks in common between {base.path} and {new.path}")
    pairs = []
    for k in common:
        t = thresholds.get(k[0], thresholds.get(k[1], thresholds["default"])) if k[0] != "name" else thresholds["default"]
        b, n = base.entries[k], new.entries[k]
        if (base.machines or new.machines) and b.machine and n.machine and b.machine != n.machine:
            pairs.append(Pair(n.label, k, b.median, n.median, None, None, t, "not comparable",
                              f"ran on {b.machine} in BASE, {n.machine} in NEW"))  # a file of several machines
            continue
        pairs.append(judge(b, n, t, alpha))
    if all(p.verdict == "not comparable" for p in pairs):
        from collections import Counter

        why, n = Counter(p.why for p in pairs).most_common(1)[0]
        raise Unusable(f"none of the {len(pairs)} common benchmarks is comparable ({n} of them: {why})")
    pairs.sort(key=lambda p: (p.verdict == "not comparable", -(p.ratio or 0)))
    warnings = notes + metadata_warnings(base, new)
    warnings += [f"{name} was made from {side.dirty} with uncommitted changes: its code is not that commit's"
                 for name, side in (("BASE", base), ("NEW", new)) if side.dirty]
    only_base = [base.entries[k].label for k in base.entries if k not in new.entries]
    only_new = [new.entries[k].label for k in new.entries if k not in base.entries]
    return Comparison(base, new, pairs, only_base, only_new, warnings, alpha)


def common_columns(base: Side, new: Side) -> list[str]:
    """Re-key both sides on the key columns both files' schemas have (a newer schema only adds
    columns, :data:`bench.results.ADDED`) and return what was left out, as notes; [] when the
    versions agree.

    Raises:
        Unusable: dropping a key column makes two rows of one side the same benchmark.
    """
    if base.schema_version is None or new.schema_version is None or base.schema_version == new.schema_version:
        return []
    old, older = (base, "BASE") if base.schema_version < new.schema_version else (new, "NEW")
    missing = added_since(old.schema_version)
    dropped = [i for i, c in enumerate(KEY_COLUMNS) if c in missing and c not in READ_AS]  # READ_AS ones are filled
    for name, side in (("BASE", base), ("NEW", new)):
        entries = {}
        for k, e in side.entries.items():
            if k[0] != "name":
                k = tuple(v for i, v in enumerate(k) if i not in dropped)
            if k in entries:
                raise Unusable(f"{name} has several rows of {e.label} once {[KEY_COLUMNS[i] for i in dropped]} "
                               f"(not in {older}'s schema {old.schema_version}) is left out of the key")
            e.key = k
            entries[k] = e
        side.entries = entries
    keys = [KEY_COLUMNS[i] for i in dropped]
    return [f"schema versions differ (BASE {base.schema_version}, NEW {new.schema_version}): compared on the "
            f"columns both have; {older} lacks {', '.join(missing)}"
            + (f" (benchmarks paired without {', '.join(keys)})" if keys else "")]


def metadata_warnings(base: Side, new: Side) -> list[str]:
    """Where the two sides' machines, libraries or threads differ, and where either ran busy.
    A field is compared where both sides have it (our rows' columns, or a plain
    pytest-benchmark JSON's ``machine_info``/``commit_info``)."""
    warnings = [
        f"{field} differs: BASE {base.metadata[field]!r}, NEW {new.metadata[field]!r}"
        for field in base.metadata
        if field in new.metadata and base.metadata[field] != new.metadata[field]
    ]
    warnings += [f"{name} ran on a busy machine: {side.busy}" for name, side in (("BASE", base), ("NEW", new))
                 if side.busy]
    warnings += [f"{name} holds rows of {len(side.machines)} machines ({', '.join(side.machines)}); a benchmark "
                 "that ran on different machines in BASE and NEW is not comparable"
                 for name, side in (("BASE", base), ("NEW", new)) if side.machines]
    return warnings


# --- output -----------------------------------------------------------------

FIELDS = ["benchmark", "base_median_s", "new_median_s", "ratio", "p_value", "threshold", "verdict", "why"]


def records(c: Comparison) -> list[dict]:
    """One dict of :data:`FIELDS` per pair; a number that is missing or not finite is None."""
    return [dict(zip(FIELDS, (p.label, _finite(p.base), _finite(p.new), _finite(p.ratio), _finite(p.p_value),
                              p.threshold, p.verdict, p.why)))
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
        doc = {"base": str(c.base.path), "new": str(c.new.path), "rows": recs, "summary": summary(c)}
        return json.dumps(doc, indent=2, allow_nan=False)  # strict JSON: every number is finite or null
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
