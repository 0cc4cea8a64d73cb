"""What a result was measured on: machine, libraries, threads, and the code that ran.

Every result row carries these fields, so files from different machines and commits can be
merged and compared without side files.  The code's provenance (:func:`code_metadata`) is taken
by each worker process from the checkout it runs, so the two sides of an A/B run each record
their own commit.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import re
import socket
import subprocess
from importlib import metadata
from pathlib import Path

from .results.schema import SCHEMA_VERSION

#: The checkout this code runs from (git commands and A/B worktrees start from it).
REPO = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _git(*args: str, root: Path = REPO) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


@functools.lru_cache(maxsize=None)
def cpu_model() -> str:
    import cpuinfo

    info = cpuinfo.get_cpu_info() or {}
    return info.get("brand_raw") or platform.processor() or platform.machine()


def memory_gib() -> int:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)
    except (ValueError, OSError, AttributeError):
        return 0


#: The widest x86 vector extension first: a CPU's is the first of these its flags hold.
VECTOR_ISAS = ("avx512f", "avx2", "avx")


@functools.lru_cache(maxsize=None)
def vector_isa() -> str:
    """The widest vector extension the CPU reports, from :data:`VECTOR_ISAS` (``"avx512"`` for
    ``avx512f``), or ``""`` when it reports none of them (non-x86 CPUs)."""
    import cpuinfo

    flags = set((cpuinfo.get_cpu_info() or {}).get("flags", ()))
    return next((isa.removesuffix("f") if isa == "avx512f" else isa for isa in VECTOR_ISAS if isa in flags), "")


def machine_id() -> str:
    """``$RNN_BENCH_MACHINE_ID``, else a slug of CPU model, vector extension, cores and memory,
    e.g. ``amd-epyc-avx2-2c-24g``: the same on every machine of one hardware kind, so history
    follows the hardware, not a host name.  The vector extension is in it because a virtual
    machine's model name may not tell CPU generations apart ("AMD EPYC" is given for EPYCs with
    and without AVX-512), and the fastest kernels and BLAS routes differ between them."""
    override = os.environ.get("RNN_BENCH_MACHINE_ID")
    if override:
        return override
    model = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", cpu_model().lower())).strip("-")
    return "-".join(filter(None, (model, vector_isa(), f"{os.cpu_count()}c", f"{memory_gib()}g")))


def blas_summary() -> tuple[str, int]:
    """NumPy's BLAS as ``"openblas 0.3.31 SkylakeX"`` and its thread count (threadpoolctl)."""
    import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl sees it)
    from threadpoolctl import threadpool_info

    libs = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    mine = [i for i in libs if "numpy" in i.get("filepath", "")] or libs
    if not mine:
        return "", 0
    lib = mine[0]
    name = " ".join(str(lib.get(k) or "") for k in ("internal_api", "version", "architecture")).strip()
    return name, int(lib.get("num_threads") or 0)


def thread_pools() -> str:
    """Every thread pool loaded in this process: ``"openblas(numpy.libs)=2; openmp(torch)=2"``."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        parts_of_path = Path(info.get("filepath", "")).parts
        # the installed package that ships the library, e.g. "numpy.libs" or "torch"
        owner = next((parts_of_path[i + 1] for i, p in enumerate(parts_of_path[:-1]) if p == "site-packages"), "")
        parts.append(f"{info.get('internal_api')}({owner})={info.get('num_threads')}")
    return "; ".join(sorted(parts))  # sorted: the order libraries happened to load in is no difference


def library_threads(module: str) -> int:
    """``<module>.get_num_threads()`` for ``"numba"`` or ``"torch"`` when it is already
    imported, else 0 (nothing is imported for this)."""
    import sys

    lib = sys.modules.get(module)
    return int(lib.get_num_threads()) if lib is not None else 0


def pin_threads(threads: int) -> None:
    """Set every thread pool this process has loaded to ``threads``: the BLAS and OpenMP pools
    through threadpoolctl, and torch's and numba's own counts where those libraries are imported
    (nothing is imported for this).  A worker calls it once its backend's libraries are loaded;
    the environment it was started with (:func:`thread_env`) sized the pools that start later."""
    import sys

    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "numba" in sys.modules:
        sys.modules["numba"].set_num_threads(min(threads, sys.modules["numba"].config.NUMBA_NUM_THREADS))


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that size every pool a worker may start to ``threads``, before any
    library reads them: OpenMP (GNU and Intel, used by torch and MKL), MKL, OpenBLAS, numba; for
    one thread also XLA's Eigen calls (``--xla_cpu_multi_thread_eigen=false`` added to this
    process's ``XLA_FLAGS``).  XLA has no flag for its pool's size: its CPU client sizes it to the
    CPUs the process may run on, which :func:`bench.timing.process.worker_cpus` limits to ``threads``.
    ONNX Runtime's pool is per session (:meth:`kernels.Backend.use_threads`)."""
    n = str(threads)
    env = {"OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "NUMBA_NUM_THREADS": n}
    if threads == 1:
        env["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS", ""), "--xla_cpu_multi_thread_eigen=false"]))
    return env


def machine_state(window_s: float = 0.5, top: int = 3) -> dict:
    """How busy the machine is now, from everything but this process and its children.

    Returns:
        ``{"load_avg": 1-minute load average, "other_cores": cores used by other processes over
        ``window_s`` seconds, "busiest": "name (pid) 98%; ..." of the ``top`` busiest others,
        "cpu_freq_mhz": current frequency or "", "governor": the cpufreq governor or ""}``.
        ``other_cores`` above :data:`bench.measurement.BUSY_CORES` means busy.
    """
    import psutil

    me = psutil.Process()
    mine = {me.pid, *(c.pid for c in me.children(recursive=True))}
    procs = [p for p in psutil.process_iter(["name"]) if p.pid not in mine]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    import time

    time.sleep(window_s)
    usage = []
    for p in procs:
        try:
            usage.append((p.cpu_percent(None), p.info["name"], p.pid))
        except psutil.Error:
            continue
    usage.sort(reverse=True)
    busiest = "; ".join(f"{name} ({pid}) {pct:.0f}%" for pct, name, pid in usage[:top] if pct >= 5)
    freq = psutil.cpu_freq()
    governor = Path("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return {
        "load_avg": round(os.getloadavg()[0], 2),
        "other_cores": round(sum(u[0] for u in usage) / 100, 2),
        "busiest": busiest,
        "cpu_freq_mhz": round(freq.current) if freq else "",
        "governor": governor.read_text().strip() if governor.is_file() else "",
    }


def process_metadata() -> dict:
    """The columns that describe this process's libraries and thread pools (call after the
    backend's libraries are loaded): ``blas``, ``blas_threads``, ``thread_pools``,
    ``torch_threads``, ``numba_threads``."""
    blas, blas_threads = blas_summary()
    return {"blas": blas, "blas_threads": blas_threads, "thread_pools": thread_pools(),
            "torch_threads": library_threads("torch"), "numba_threads": library_threads("numba")}


def new_run_id(now: datetime.datetime | None = None) -> str:
    """A run's id: the UTC time it started, ``20261205T101500Z`` (sorts as time)."""
    return (now or datetime.datetime.now(datetime.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


@functools.lru_cache(maxsize=None)
def code_metadata(root: Path = REPO) -> dict:
    """The code at ``root`` (a checkout): ``git_commit``, ``git_dirty`` (tracked files changed) and
    ``git_worktree`` (the checkout's path); "" each where ``root`` is not in a git checkout."""
    commit = _git("rev-parse", "HEAD", root=root)
    return {"git_commit": commit,
            "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", root=root)) if commit else "",
            "git_worktree": _git("rev-parse", "--show-toplevel", root=root) if commit else ""}


def run_metadata(run_id: str | None = None) -> dict:
    """The columns that describe the machine, the installed versions and the code, the same for
    every row of a run; nothing is imported for them (versions come from package metadata).  The
    code is this process's checkout; each worker records its own (:func:`code_metadata`)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "run_id": run_id or new_run_id(now),
        "timestamp": now.isoformat(timespec="seconds"),
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "python_version": platform.python_version(),
        **{f"{name.replace('-', '_')}_version": _version(name) for name in VERSIONED},
        "cpu_env": cpu_env(),
        **code_metadata(),
    }


#: Environment variables that choose which CPU kernels a library runs (OpenBLAS's core type and cache
#: sizes, MKL's instruction sets and reproducibility mode, NumPy's disabled CPU features, numba's
#: target CPU): a machine's figures depend on them as much as on its CPU.
CPU_ENV = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR", "MKL_DEBUG_CPU_TYPE",
           "NPY_DISABLE_CPU_FEATURES", "NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")


def cpu_env() -> str:
    """The :data:`CPU_ENV` variables set in this process, as ``NAME=value NAME=value`` ("" for none)."""
    return " ".join(f"{name}={os.environ[name]}" for name in CPU_ENV if os.environ.get(name))


#: The distributions whose versions every row records, as ``<name>_version`` (``-`` as ``_``).
VERSIONED = ("numpy", "numba", "scipy", "torch", "onnx", "onnxruntime", "jax", "jaxlib", "pytest-benchmark")


def plan_environment(machine: str, plan_file: Path) -> dict[str, str]:
    """The environment that hands ``numba`` its machine's tuned plan (:mod:`kernels.numba.plan`):
    ``RNN_BENCH_MACHINE_ID`` = ``machine`` and ``RNN_BENCH_PLAN`` = the plan file the user named
    in ``$RNN_BENCH_PLAN`` (or ``off``), else ``plan_file`` where it exists, else ``off``."""
    given = os.environ.get("RNN_BENCH_PLAN", "").strip()
    plan = given or (str(Path(plan_file).resolve()) if Path(plan_file).is_file() else "off")
    return {"RNN_BENCH_MACHINE_ID": machine, "RNN_BENCH_PLAN": plan}
