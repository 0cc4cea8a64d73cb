"""One side of a comparison: a result file read as its benchmarks' Measurements, with what the
judge must know of the run that made it (machine, libraries, whether it ran busy or dirty).

Two kinds of file are read: a result CSV with its sidecar (:mod:`bench.results`), and anyone's
pytest-benchmark JSON, whose benchmarks are keyed by their full name.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..measurement import BUSY_CORES, Measurement
from ..results.rows import is_ours, measurement_of, read_measurements
from ..results.schema import added_since, key
from ..results.sidecar import read_pytest_benchmark

#: Metadata that should match for a fair comparison; a difference is a warning.  Each is compared
#: as the set of values the file's rows hold.  Clock readings, run ids and commits are expected to
#: differ and are not compared; so is ``peak_blas``, which names the fastest of the BLAS libraries
#: in one run's peak measurement and flips between near ties from run to run.
COMPARED_METADATA = ["machine_id", "cpu_model", "cores", "blas", "blas_threads", "cpu_env", "torch_threads",
                     "python_version",
                     "numpy_version", "numba_version", "scipy_version", "torch_version", "numba_blas",
                     "thread_pools", "numba_threads", "onnx_version", "onnxruntime_version",
                     "jax_version", "jaxlib_version", "onnxruntime_threads", "xla_threads", "xla_flags",
                     "valgrind_cpu", "valgrind_kernels"]
#: What a plain pytest-benchmark JSON's ``machine_info`` and ``commit_info`` say that should match
#: for a fair comparison: (name in warnings, path in the document).  Ours carry the rows' metadata.
FOREIGN_METADATA = [("machine_info.cpu.brand_raw", ("machine_info", "cpu", "brand_raw")),
                    ("machine_info.cpu.count", ("machine_info", "cpu", "count")),
                    ("machine_info.machine", ("machine_info", "machine")),
                    ("machine_info.system", ("machine_info", "system")),
                    ("machine_info.python_implementation", ("machine_info", "python_implementation")),
                    ("machine_info.python_version", ("machine_info", "python_version")),
                    ("commit_info.project", ("commit_info", "project"))]


class Unusable(Exception):
    """An input that cannot be compared at all (exit status 2)."""


@dataclasses.dataclass
class Entry:
    """A benchmark of a side: its key, its label, its measurement and the machine it ran on ("" where
    the file does not say)."""

    key: tuple
    label: str
    measurement: Measurement
    machine: str = ""


@dataclasses.dataclass
class Side:
    """A file read for judging: its entries by key, its metadata (:data:`COMPARED_METADATA`, each
    as the set of values of its rows), schema version, and why it looks busy or dirty ("" if not)."""

    path: Path
    entries: dict
    metadata: dict
    schema_version: int | None
    busy: str = ""
    dirty: str = ""  # the commit whose working tree had uncommitted changes when this file was made
    machines: tuple = ()  # the machine_ids of its rows ((): none named)


def busy_reason(rows: list[dict]) -> str:
    """Why the run of ``rows`` looks like it ran on a busy machine: other processes' use of cores
    at its start or end (:data:`bench.measurement.BUSY_CORES`), or rows marked unstable for it; else "".
    Rows of instruction counts, which other processes do not change, are not asked."""
    rows = [r for r in rows if r.get("measure") != "instructions"]
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


def _dig(doc, path: tuple):
    for part in path:
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


def _norm(value) -> str:
    return "" if value is None else str(value)


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


def _load_csv(path: Path) -> Side:
    try:
        rows, measurements, _ = read_measurements(path)
    except (OSError, ValueError) as exc:
        raise Unusable(str(exc) if str(path) in str(exc) else f"{path}: {exc}") from None
    if not rows:
        raise Unusable(f"{path}: no result rows")
    entries = {}
    for m in measurements:
        entries[key(m.fields)] = Entry(key(m.fields), m.label, m, m.fields.get("machine_id", ""))
    version = int(rows[0]["schema_version"])
    metadata = {c: ", ".join(sorted({str(r.get(c, "")) for r in rows} - {""}))
                for c in COMPARED_METADATA if c not in added_since(version)}
    dirty = next((r.get("git_commit") or "?" for r in rows if str(r.get("git_dirty")) == "True"), "")
    machines = tuple(sorted({r.get("machine_id") for r in rows} - {None, ""}))
    return Side(path, entries, metadata, version, busy_reason(rows), dirty[:7], machines)


def _load_json(path: Path) -> Side:
    try:
        doc = read_pytest_benchmark(path)
    except ValueError as exc:
        raise Unusable(str(exc)) from None
    entries = {}
    for b in doc["benchmarks"]:
        if not isinstance(b, dict) or not isinstance(b.get("stats"), dict):
            raise Unusable(f"{path}: a benchmark entry without 'stats'")
        extra = b.get("extra_info") or {}
        if is_ours(extra):
            m = measurement_of({**extra, "status": extra.get("status") or "ok"}, b)
            k, label = key(extra), m.label
        else:  # anyone's pytest-benchmark: keyed by full name
            m = measurement_of({"status": "ok", "median_s": b["stats"].get("median")}, b)
            k, label = ("name", b.get("fullname") or b.get("name")), str(b.get("fullname") or b.get("name"))
        entries[k] = Entry(k, label, m, str(extra.get("machine_id") or ""))
    ours = (doc.get("machine_info") or {}).get("rnn_cell_bench") or {}
    version = ours.get("schema_version")
    metadata, dirty = json_metadata(doc)
    machines = tuple(sorted({e.machine for e in entries.values()} - {""}))
    return Side(path, entries, metadata, None if version is None else int(version), dirty=dirty, machines=machines)


def load(path) -> Side:
    """Read a result CSV (with its sidecar) or a pytest-benchmark JSON.

    Raises:
        Unusable: a missing file, not our schema, unreadable JSON, no rows.
    """
    path = Path(path)
    if not path.is_file():
        raise Unusable(f"{path}: no such file")
    if path.suffix == ".csv":
        return _load_csv(path)
    if path.suffix == ".json":
        return _load_json(path)
    raise Unusable(f"{path}: expected a result .csv or a pytest-benchmark .json")


def metadata_warnings(base: Side, new: Side) -> list[str]:
    """Where the two sides' machines, libraries or threads differ, and where either ran busy.
    A field is compared where both sides have it (our rows' columns, or a plain pytest-benchmark
    JSON's ``machine_info``/``commit_info``)."""
    warnings = [f"{field} differs: BASE {base.metadata[field]!r}, NEW {new.metadata[field]!r}"
                for field in base.metadata if field in new.metadata and base.metadata[field] != new.metadata[field]]
    warnings += [f"{name} ran on a busy machine: {side.busy}" for name, side in (("BASE", base), ("NEW", new))
                 if side.busy]
    warnings += [f"{name} holds rows of {len(side.machines)} machines ({', '.join(side.machines)}); a benchmark "
                 "that ran on different machines in BASE and NEW is not comparable"
                 for name, side in (("BASE", base), ("NEW", new)) if len(side.machines) > 1]
    return warnings
