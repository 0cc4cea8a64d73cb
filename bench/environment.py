"""What a result was measured on: machine, libraries, threads, commit.

Every result row carries these fields, so files from different machines and
commits can be merged and compared without side files.
"""

from __future__ import annotations

import datetime
import functools
import os
import platform
import re
import subprocess
from importlib import metadata
from pathlib import Path

#: Bumped whenever a result column is added, removed or changes meaning
#: (bench.results.ADDED lists what each version added).
SCHEMA_VERSION = 3

REPO = Path(__file__).resolve().parent.parent


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return ""


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
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


def machine_id() -> str:
    """``$RNN_BENCH_MACHINE_ID``, else a slug of CPU model, cores and memory,
    e.g. ``intel-xeon-processor-2-80ghz-2c-24g``: the same on every machine of
    one hardware kind, so history follows the hardware, not a host name."""
    override = os.environ.get("RNN_BENCH_MACHINE_ID")
    if override:
        return override
    slug = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\((r|tm)\)", "", cpu_model().lower())).strip("-")
    return f"{slug}-{os.cpu_count()}c-{memory_gib()}g"


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
    return "; ".join(parts)


def library_threads(module: str) -> int:
    """``<module>.get_num_threads()`` for ``"numba"`` or ``"torch"`` when it is already
    imported, else 0 (nothing is imported for this)."""
    import sys

    lib = sys.modules.get(module)
    return int(lib.get_num_threads()) if lib is not None else 0


def numba_blas() -> str:
    """The BLAS route the numba backend calls by default (:mod:`kernels.blas`), when the numba
    backend is already imported, else ""."""
    import sys

    if "kernels.numba_backend" not in sys.modules:
        return ""
    route = sys.modules["kernels.blas"].default_route()
    return route.description if route else ""


def collect(run_id: str | None = None) -> dict:
    """The metadata columns of a result row (call after the backends are imported).

    Returns:
        ``{column: value}`` with machine id, CPU model, cores, memory (GiB),
        Python/NumPy/Numba/SciPy/torch/pytest-benchmark versions, BLAS and its
        threads, all thread pools, torch and numba threads, numba's BLAS route, git commit and dirtiness,
        UTC timestamp (ISO 8601), run id and schema version.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    blas, blas_threads = blas_summary()
    commit = _git("rev-parse", "HEAD")
    return {
        "run_id": run_id or now.strftime("%Y%m%dT%H%M%SZ"),
        "timestamp": now.isoformat(timespec="seconds"),
        "schema_version": SCHEMA_VERSION,
        "machine_id": machine_id(),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": memory_gib(),
        "python_version": platform.python_version(),
        "numpy_version": _version("numpy"),
        "numba_version": _version("numba"),
        "scipy_version": _version("scipy"),
        "torch_version": _version("torch"),
        "pytest_benchmark_version": _version("pytest-benchmark"),
        "blas": blas,
        "blas_threads": blas_threads,
        "thread_pools": thread_pools(),
        "torch_threads": library_threads("torch"),
        "numba_threads": library_threads("numba"),
        "numba_blas": numba_blas(),
        "git_commit": commit,
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")) if commit else "",
    }
