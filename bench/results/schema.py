"""The result file's schema: its columns, what each version added, and the benchmark key.

One tidy row per (backend, case): the backend, every spec field, T and B, the pass, the
outcome, timing statistics in seconds (``*_s``), the accuracy check, then the run's metadata on
every row.  Files of every version since 1 read back (:func:`bench.results.files.read_results`
fills the columns a version lacks).
"""

from __future__ import annotations

#: Bumped whenever a result column is added, removed or changes meaning (:data:`ADDED` lists what
#: each version added).
SCHEMA_VERSION = 6

SPEC_COLUMNS = ["mode", "input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional", "dtype",
                "proj_size", "dropout"]

COLUMNS = [
    "case_id",
    "backend",
    "device",
    *SPEC_COLUMNS,
    "timesteps",
    "batch",
    # forward | forward_backward (kernels.base.PASSES): part of the benchmark key
    "pass",
    # the sequence lengths as a named distribution (bench.lengths): full | uniform:F | tail; part of the key
    "lengths",
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
    # the CPUs every worker was pinned to ("" where they were not), bench.timing.process.worker_cpus
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
    # environment variables that choose a library's CPU kernels (bench.environment.CPU_ENV), e.g.
    # OPENBLAS_CORETYPE=Haswell: OpenBLAS then runs its AVX2 kernels on an AVX-512 CPU
    "cpu_env",
    "thread_pools",
    "torch_threads",
    "numba_threads",
    # the code that timed the row: its worker's checkout (each side's own in an A/B run)
    "git_commit",
    "git_dirty",
    "git_worktree",
    # what made the file: saved | run | ab | tune | calibration (bench.results.catalog)
    "made_by",
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
    # time | instructions (--measure; bench.timing.valgrind): part of the benchmark key.  Rows of
    # instructions hold no *_s statistics: ``instructions`` is the median per call (of the process
    # medians), ``instructions_per_step`` that over T; ``valgrind_cpu`` is the CPU valgrind presents
    # (brand and widest vector extension) and ``valgrind_kernels`` what the libraries chose for it
    # (each BLAS's kernel, torch's capability, numba's LLVM target)
    "measure",
    "instructions",
    "instructions_per_step",
    "valgrind_cpu",
    "valgrind_kernels",
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
             "xla_flags", "weight_gbps", "sgemv_gbps", "variant", "plan", "pass"],
         6: ["git_worktree", "made_by", "proj_size", "dropout", "lengths", "cpu_env", "measure", "instructions",
             "instructions_per_step", "valgrind_cpu", "valgrind_kernels"]}

#: Columns whose value in files made before the column existed is known: before schema 5 every row
#: timed the forward pass, before schema 6 every row measured time.  :func:`read_results` fills
#: them, so they stay in the benchmark key.
READ_AS = {"pass": "forward", "proj_size": "0", "dropout": "0.0", "lengths": "full", "measure": "time"}

STATUSES = ("ok", "over_budget", "unavailable", "mismatch", "error")


def number(value) -> float | None:
    """A result cell as a float (cells are read as strings), or ``None`` for an empty or text cell."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None



#: The columns that name a benchmark: rows of two files with the same values here are the same
#: benchmark (compare, ab, history and merge pair on them).
KEY_COLUMNS = ["backend", *SPEC_COLUMNS, "timesteps", "batch", "pass", "lengths", "threads", "measure"]


def key(fields) -> tuple:
    """The benchmark key of a row (or a sidecar's ``extra_info``): its :data:`KEY_COLUMNS` as
    strings, a column absent or empty in files made before it existed taking its known value
    there (:data:`READ_AS`)."""
    values = {c: fields.get(c) for c in KEY_COLUMNS}
    values.update({c: values[c] or value for c, value in READ_AS.items()})
    return tuple("" if values[c] is None else str(values[c]) for c in KEY_COLUMNS)


def added_since(version: int | None) -> list[str]:
    """Columns that files of schema ``version`` lack (added by a later version); [] for None."""
    if version is None:
        return []
    return [c for v, cols in ADDED.items() if v > version for c in cols]
