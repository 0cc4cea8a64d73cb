"""The result file: one tidy row per (backend, case), written durably.

Columns are :data:`COLUMNS`: the backend, every spec field, T and B, the
outcome, timing statistics in seconds (``*_s``), the accuracy check, then
the run metadata of :mod:`bench.environment` on every row.  Raw per-round
samples live in a JSON file next to the CSV (same stem, ``.json``) in
pytest-benchmark's format.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path

#: Bumped whenever a result column is added, removed or changes meaning (:data:`ADDED` lists what
#: each version added).
SCHEMA_VERSION = 5

SPEC_COLUMNS = ["mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional", "dtype"]

COLUMNS = [
    "case_id",
    "backend",
    "device",
    *SPEC_COLUMNS,
    "timesteps",
    "batch",
    # forward | forward_backward (kernels.base.PASSES): part of the benchmark key
    "pass",
    # thread count of every pool in the timing processes: part of the benchmark key
    "threads",
    # ok | over_budget | unavailable | mismatch | error
    "status",
    "reason",
    "rounds",
    "iterations",
    "median_s",
    "min_s",
    "mean_s",
    "stddev_s",
    "iqr_s",
    "per_step_s",
    # repetition over worker processes (bench.runner): median_s is the median of the process medians
    "processes",
    "process_cv",
    "unstable",
    "seed",
    # the worker's cost outside the timed call, and its memory
    "prepare_s",
    "jit_cache",
    "peak_rss_bytes",
    # the CPUs every worker was pinned to ("" where they were not), bench.runner.worker_cpus
    "worker_cpus",
    "flops",
    "weight_bytes",
    "gflops",
    "pct_peak",
    # B = 1 rows: GB/s of recurrent weights read (bench.roofline.place)
    "weight_gbps",
    "max_abs_err",
    "err_timesteps",
    "tolerance_ok",
    # run metadata (bench.environment.run_metadata and process_metadata)
    "run_id",
    "timestamp",
    "schema_version",
    "machine_id",
    "cpu_model",
    "cores",
    "memory_gib",
    "python_version",
    "numpy_version",
    "numba_version",
    "scipy_version",
    "torch_version",
    "pytest_benchmark_version",
    "blas",
    "blas_threads",
    "thread_pools",
    "torch_threads",
    "numba_threads",
    "git_commit",
    "git_dirty",
    # this machine's limits, measured at the start of the run (bench.roofline)
    "peak_sgemm_gflops",
    "peak_dgemm_gflops",
    "mem_bandwidth_gbs",
    # NumPy's float32 matrix-vector product, the bandwidth a B = 1 step can reach (bench.roofline)
    "sgemv_gbps",
    # the BLAS behind the peaks, and the one the numba backend calls (kernels.numba.blas)
    "peak_blas",
    "numba_blas",
    # what the numba backend ran (e.g. blas@openblas) and the tuned plan that chose it ("" for the rule)
    "variant",
    "plan",
    # the machine's state at the run's start and end (bench.environment.machine_state)
    "load_avg_start",
    "load_avg_end",
    "other_cores_start",
    "other_cores_end",
    "busiest_start",
    "busiest_end",
    "cpu_freq_mhz",
    "governor",
    # where and when the row was timed (UTC, ISO 8601: from its first prepare to its last round), the
    # grid and --shard K/N it belongs to, the host and the dask worker ("" for a local run) it ran on
    "started",
    "finished",
    "grid",
    "shard",
    "hostname",
    "dask_worker",
    # the ONNX Runtime and JAX backends: versions (run metadata) and their own thread pools (describe())
    "onnx_version",
    "onnxruntime_version",
    "jax_version",
    "jaxlib_version",
    "onnxruntime_threads",
    "xla_threads",
    "xla_flags",
]

#: Columns each schema version added; files of older versions are read with them empty.
ADDED = {2: ["weight_bytes", "gflops", "pct_peak", "numba_threads", "peak_sgemm_gflops", "peak_dgemm_gflops",
             "mem_bandwidth_gbs"],
         3: ["peak_blas", "numba_blas"],
         4: ["threads", "processes", "process_cv", "unstable", "seed", "prepare_s", "jit_cache", "peak_rss_bytes",
             "worker_cpus",
             "load_avg_start", "load_avg_end", "other_cores_start", "other_cores_end", "busiest_start",
             "busiest_end", "cpu_freq_mhz", "governor"],
         5: ["started", "finished", "grid", "shard", "hostname", "dask_worker", "onnx_version",
             "onnxruntime_version", "jax_version", "jaxlib_version", "onnxruntime_threads", "xla_threads",
             "xla_flags", "weight_gbps", "sgemv_gbps", "variant", "plan", "pass"]}

#: Columns whose value in files made before the column existed is known: before schema 5 every row
#: timed the forward pass.  :func:`read_results` fills them, so they stay in the benchmark key.
READ_AS = {"pass": "forward"}

STATUSES = ("ok", "over_budget", "unavailable", "mismatch", "error")


def number(value) -> float | None:
    """A result cell as a float (cells are read as strings), or ``None`` for an empty or text cell."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def save_path(results_dir: Path, metadata: dict) -> Path:
    """Where ``run --save`` stores a run, for ``history``:
    ``results_dir/<machine_id>/<run_id>-<commit[:7] or nogit>[-dirty].csv``."""
    commit = (metadata.get("git_commit") or "nogit")[:7]
    dirty = "-dirty" if metadata.get("git_dirty") is True else ""
    return Path(results_dir) / metadata["machine_id"] / f"{metadata['run_id']}-{commit}{dirty}.csv"


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """The raw-sample JSON next to a result CSV: same stem, ``.json``."""
    return Path(csv_path).with_suffix(".json")


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a part."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results private to the writer
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ResultFile:
    """A result CSV that is complete after every :meth:`add`.

    Each row is added by rewriting the file to a temporary name and renaming it
    over the old one, so a crash or Ctrl-C leaves a valid CSV of the rows done.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.rows: list[dict] = []

    def add(self, row: dict) -> None:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"row: unknown columns {sorted(unknown)}")
        self.rows.append(row)
        write_results(self.path, self.rows)


def write_results(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``rows`` (dicts keyed by :data:`COLUMNS`) as the result CSV ``path``, by atomic replace."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(Path(path), buf.getvalue())


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a result CSV as dicts of strings.

    Files of an older schema version are read with the columns added since
    (:data:`ADDED`) empty.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not a result file (missing columns), or a schema version
            this code does not know.
    """
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        rows = list(reader)
    if "schema_version" not in fields:
        missing = [c for c in COLUMNS if c not in fields]
        raise ValueError(f"{path}: not an rnn-cell-bench result file; missing columns {missing}")
    versions = {r.get("schema_version") for r in rows}
    if len(versions) > 1:
        raise ValueError(f"{path}: mixed schema versions {sorted(map(str, versions))}")
    try:
        version = int(versions.pop()) if versions else SCHEMA_VERSION
    except (TypeError, ValueError):
        raise ValueError(f"{path}: not an rnn-cell-bench result file; no numeric schema_version") from None
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version}, this code reads 1 to {SCHEMA_VERSION}")
    later = {c for v, cols in ADDED.items() if v > version for c in cols}
    missing = [c for c in COLUMNS if c not in fields and c not in later]
    if missing or not fields:
        raise ValueError(f"{path}: not an rnn-cell-bench result file; missing columns {missing or COLUMNS[:3]}")
    for r in rows:
        for c in later:
            r.setdefault(c, "")
        for c, value in READ_AS.items():
            if not r[c]:
                r[c] = value
    return rows


def file_problem(arg: str, exc: Exception) -> str:
    """One line for a result file (argument ``arg``, e.g. ``FILE`` or ``--resume``) that cannot be read
    (``exc`` from :func:`read_results`), naming the argument: no bare errno."""
    if isinstance(exc, FileNotFoundError):
        return f"{arg}: no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"{arg}: expected a result .csv file, got the directory {exc.filename}"
    if isinstance(exc, OSError):
        return f"{arg}: cannot read {exc.filename}: {exc.strerror}"
    return f"{arg}: {exc}"
