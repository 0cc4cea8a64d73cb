"""Instruction counts (``--measure instructions``): workers under valgrind's callgrind, counting
exactly the timed calls.

**How a worker is started** (:class:`CallgrindSpawner`): ``valgrind --tool=callgrind
--instr-atstart=no`` before ``python -m bench worker JOB``, one command line for every worker
and run (its dumps' place comes through the environment: a different valgrind command line
lays the program's heap out differently, :func:`~bench.timing.counting.dump_prefix`),
``PYTHONHASHSEED=0`` (a string's hash, hence a set's order, is the same in every process) and one
thread (:func:`refusal`).  Instrumentation is off while the worker starts,
imports its backend, compiles, checks and warms up: valgrind runs that part at a few times
native cost, not the tens of times of counting.

**What is counted** (:class:`Counter`, in the worker): valgrind's client requests, through a tiny
C helper compiled once per user with gcc against ``valgrind/callgrind.h`` and loaded with ctypes
(:func:`helper_library`; valgrind's documented interface).  A counting worker prepares a case as
a timing one does (compile, check, transfers) and warms up with a fixed number of calls
(:class:`CountingPolicy`).  For its one ``time`` request it collects the garbage and disables the
collector, starts instrumentation, counts empty rounds (zero the counters, no call, dump; the
first thrown away) for the cost of counting a round, then ``rounds`` rounds of ``iterations``
calls of the timed call -- the same ``run`` wall time times, inputs already in place, no check,
no transfer -- each between a zero and a dump, with nothing else between rounds; then stops
instrumentation and reads the dumps.  A sample is a round's instructions less an empty round's,
divided by ``iterations``: instructions per call, every thread of the process counted (``Ir``,
guest instructions executed).  Counts do not depend on the machine's load, so the workers of a
counting run are not pinned and work at once, one per CPU (:attr:`Spawner.concurrent`).

**Which kernels run** (:func:`count_target`): valgrind presents its own CPU (an AVX2 Haswell with
FMA, whatever the host; no AVX-512), and the libraries pick their kernels for it.  valgrind 3.19
runs every FMA instruction through a helper call, about 65 times the cost of a multiply and an add
(measured), so the AVX2 kernels, all of them FMA kernels, run 40 to 80 times slower under
valgrind than AVX kernels: a torch LSTM call (T = 50, B = 32, H = 128) took 10 s instead of 0.12
s.  So by default the libraries of a counting worker are held to AVX without FMA or AVX2, a Sandy
Bridge, through their documented switches (:data:`AVX_SWITCHES`: OpenBLAS's core type, NumPy's
dispatch, torch's ATen capability, MKL, oneDNN, XLA, numba's LLVM target); ONNX Runtime has no such
switch and runs its AVX2 kernels.  ``RNN_BENCH_COUNT_TARGET=valgrind`` keeps the CPU valgrind
presents instead.  Either way each row records what ran (``valgrind_cpu``, ``valgrind_kernels``).

**numba under valgrind** (:meth:`CallgrindSpawner.ready`): numba's cache is keyed by the CPU it
compiles for, so code cached outside valgrind does not match and a counting worker would compile
again, at valgrind's cost (minutes).  Before the workers start, numba's target is fixed for both
(``NUMBA_CPU_NAME`` and ``NUMBA_CPU_FEATURES``: the features LLVM sees under valgrind, read once
per run, less FMA and AVX2 by default: :func:`count_target`), and a plain worker per checkout
prepares every case with that target outside valgrind: it compiles at native speed, or loads
numba's cache when a run before did; the counting workers then load that cache.  Wall-time runs
are untouched (numba compiles for the host).

What counts miss, and what runs under valgrind instead of what wall time measures, is in
docs/instructions.md.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .counting import DUMPS_ENV, HELPER_ENV, dump_prefix
from .process import Side, Slot, Spawner, each, live_workers

#: ``avx`` (default): the libraries of counting workers are held to AVX without FMA; ``valgrind``:
#: they run the kernels of the CPU valgrind presents (AVX2 and FMA; slow under valgrind).
TARGET_ENV = "RNN_BENCH_COUNT_TARGET"
#: Each library's documented switch that holds it to AVX without FMA or AVX2 (a Sandy Bridge),
#: set in the environment of counting workers.  NumPy's dispatch targets above AVX are added at run
#: time (:func:`numpy_disabled`); numba's target is set by :func:`count_target`.
AVX_SWITCHES = {
    "OPENBLAS_CORETYPE": "Sandybridge",    # OpenBLAS: numpy's, scipy's (numba's BLAS routes)
    "ATEN_CPU_CAPABILITY": "default",      # torch's ATen kernels (its lowest: no AVX2)
    "MKL_ENABLE_INSTRUCTIONS": "AVX",      # MKL (torch's BLAS, numba's mkl route)
    "ONEDNN_MAX_CPU_ISA": "AVX",           # oneDNN (torch)
}
#: XLA's flag for the same (added to the worker's XLA_FLAGS).
XLA_AVX_FLAG = "--xla_cpu_max_isa=AVX"
#: NumPy's dispatch targets that need no more than AVX (the others are disabled).
NUMPY_AVX_TARGETS = {"SSE", "SSE2", "SSE3", "SSSE3", "SSE41", "POPCNT", "SSE42", "X86_V2", "AVX", "F16C"}
#: LLVM's features that go beyond AVX, turned off in numba's target.
LLVM_ABOVE_AVX = ("avx2", "fma", "avx512", "avxvnni", "avxifma", "avx10")
#: How to install valgrind, in every message that says it is missing.
INSTALL = ("install the package `valgrind` (Debian/Ubuntu: apt-get install valgrind; Fedora: dnf install "
           "valgrind valgrind-devel; macOS: not supported by valgrind on Apple silicon)")

HELPER_SOURCE = r"""
/* rnn-cell-bench: valgrind's callgrind client requests, for ctypes (bench/timing/valgrind.py). */
#include <valgrind/callgrind.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

int rnnb_running(void) { return RUNNING_ON_VALGRIND; }
void rnnb_start(void) { CALLGRIND_START_INSTRUMENTATION; }
void rnnb_stop(void) { CALLGRIND_STOP_INSTRUMENTATION; }
void rnnb_zero(void) { CALLGRIND_ZERO_STATS; }
void rnnb_dump(const char *why) { CALLGRIND_DUMP_STATS_AT(why); }

/* The CPU this process sees (under valgrind: the one valgrind presents): brand and widest vectors. */
void rnnb_cpu(char *out, int size) {
    char brand[49] = "";
#if defined(__x86_64__) || defined(__i386__)
    unsigned int r[12];
    if (__get_cpuid_max(0x80000000u, 0) >= 0x80000004u) {
        for (unsigned int i = 0; i < 3; i++) __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        memcpy(brand, r, 48);
        brand[48] = 0;
    }
    __builtin_cpu_init();
    const char *isa = __builtin_cpu_supports("avx512f") ? "avx512" : __builtin_cpu_supports("avx2") ? "avx2"
                    : __builtin_cpu_supports("avx") ? "avx" : "sse";
#else
    const char *isa = "";
#endif
    const char *b = brand;
    while (*b == ' ') b++;
    strncpy(out, b, size - 1);
    out[size - 1] = 0;
    size_t n = strlen(out);
    if (*isa && n + strlen(isa) + 4 < (size_t)size) { strcat(out, " ("); strcat(out, isa); strcat(out, ")"); }
}
"""


class CountingUnavailable(ValueError):
    """Instructions cannot be counted here: valgrind, gcc or valgrind's header is missing; the
    message names what to install."""


def valgrind_path() -> str:
    """The valgrind executable on PATH.

    Raises:
        CountingUnavailable: none, with the package to install.
    """
    found = shutil.which("valgrind")
    if not found:
        raise CountingUnavailable(f"--measure instructions: counts instructions under valgrind, which is not on "
                                  f"PATH; {INSTALL}")
    return found


def valgrind_version(path: str) -> str:
    """``valgrind-3.19.0``, or "" where it does not say."""
    proc = subprocess.run([path, "--version"], capture_output=True, text=True)
    return proc.stdout.strip()


def cache_dir() -> Path:
    """Where the compiled helper is kept, per user: ``$XDG_CACHE_HOME/rnn-cell-bench`` (default
    ``~/.cache/rnn-cell-bench``), or a folder of this user's in the temporary directory where that
    cannot be written."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnn-cell-bench"
    try:
        base.mkdir(parents=True, exist_ok=True)
        if os.access(base, os.W_OK):
            return base
    except OSError:
        pass
    fallback = Path(tempfile.gettempdir()) / f"rnn-cell-bench-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    fallback.mkdir(parents=True, exist_ok=True)
    return fallback


def helper_library(valgrind: str | None = None) -> Path:
    """The compiled client-request helper (:data:`HELPER_SOURCE`), built now with gcc (``$CC``) if
    this user has no copy for this source and valgrind version, else the copy.

    Raises:
        CountingUnavailable: valgrind, gcc or ``valgrind/callgrind.h`` is missing, naming what to install.
    """
    version = valgrind_version(valgrind or valgrind_path())
    digest = hashlib.sha256(f"{HELPER_SOURCE}\n{version}\n{sys.platform}".encode()).hexdigest()[:16]
    path = cache_dir() / f"callgrind-helper-{digest}.so"
    if path.is_file():
        return path
    cc = shutil.which(os.environ.get("CC") or "gcc")
    if not cc:
        raise CountingUnavailable("--measure instructions: needs a C compiler (gcc, or $CC) to build valgrind's "
                                  "client requests once; install the package `gcc` (Debian/Ubuntu: apt-get install gcc)")
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        source, built = Path(tmp) / "helper.c", Path(tmp) / "helper.so"
        source.write_text(HELPER_SOURCE)
        proc = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(built), str(source)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            if "callgrind.h" in proc.stderr:
                raise CountingUnavailable("--measure instructions: valgrind's header valgrind/callgrind.h is not "
                                          f"installed; {INSTALL} (it ships the header on Debian and Ubuntu)")
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise CountingUnavailable(f"--measure instructions: cannot build valgrind's client requests with {cc}: {last}")
        os.replace(built, path)  # atomic: a concurrent run finds the whole file or none
    return path


def check_counting() -> None:
    """Make sure instructions can be counted here before a run starts (valgrind, gcc, the header).

    Raises:
        CountingUnavailable: naming what to install.
    """
    helper_library(valgrind_path())


def refusal(threads: int, dask: bool = False) -> str:
    """Why ``--measure instructions`` cannot run with these options, or ""."""
    if threads > 1:
        return (f"--threads: instruction counts run with one thread (got {threads}): valgrind runs a process's "
                "threads one at a time, so a count of several threads measures how they wait on each other "
                "under valgrind's scheduler, not the parallel code; time threads with --measure time")
    if dask:
        return "--dask: instruction counts run on this machine (`python -m bench run --measure instructions`)"
    return ""


#: Backends that cannot be counted, and why (measured on the quick grid, docs/instructions.md).
UNCOUNTABLE = {
    "jax": ("jax cannot be counted: XLA's CPU runtime runs its own threads (18 in a worker with one "
            "thread) and dispatches asynchronously, so its counts are not repeatable (two runs of one "
            "commit differed by up to 53% on the quick grid), and a call takes up to 10 s under valgrind"),
}


@dataclasses.dataclass(frozen=True)
class CallgrindSpawner(Spawner):
    """Starts each worker under callgrind with instrumentation off (see the module docstring)."""

    def command(self, job_path: Path) -> list[str]:
        # one command line for every worker: the dumps' place comes through the environment
        return [*self.prefix, f"--callgrind-out-file=%q{{{DUMPS_ENV}}}", sys.executable, "-m", "bench", "worker",
                str(job_path)]

    def worker_env(self, job_path: Path) -> dict:
        """Where this worker's dumps go (its folder made now)."""
        prefix = dump_prefix(job_path)
        prefix.parent.mkdir(exist_ok=True)
        return {DUMPS_ENV: str(prefix)}

    def refuses(self, backend: str) -> str | None:
        """Why this backend's workers cannot count instructions, or None."""
        return UNCOUNTABLE.get(backend.partition(":")[0])

    def ready(self, sweep, backends: list[str], env: dict, progress=print) -> "CallgrindSpawner":
        """This spawner for ``backends`` of ``sweep``: where numba is among them, its target fixed
        to the CPU valgrind presents and its cache made for it in each checkout (the module
        docstring); ``self`` otherwise."""
        numba = [b for b in backends if b.partition(":")[0] == "numba"]
        if not numba:
            return self
        target = count_target(self.prefix[0], numba=True)
        progress(f"numba: compiling for the counting target ({target['NUMBA_CPU_NAME']}) outside valgrind, "
                 "or loading numba's cache of it")
        start = time.perf_counter()
        spawner = dataclasses.replace(self, env=tuple({**dict(self.env), **target}.items()))
        prime_numba(sweep, numba, {**env, **dict(spawner.env)})
        progress(f"numba: ready for valgrind in {time.perf_counter() - start:.0f} s")
        return spawner


def callgrind_spawner() -> CallgrindSpawner:
    """The spawner of counting workers, the helper built (or found) now.

    Raises:
        CountingUnavailable: valgrind, gcc or valgrind's header is missing.
    """
    valgrind = valgrind_path()
    helper = helper_library(valgrind)
    prefix = (valgrind, "--tool=callgrind", "--instr-atstart=no", "--dump-line=no", "--dump-instr=no", "-q")
    env = {"PYTHONHASHSEED": "0", HELPER_ENV: str(helper), **count_target()}
    return CallgrindSpawner(prefix, tuple(env.items()), concurrent=True)


_TARGET_PROBE = ("import json, llvmlite.binding as ll; "
                 "print(json.dumps([ll.get_host_cpu_name(), ll.get_host_cpu_features().flatten()]))")


def presented_target(valgrind: str) -> tuple[str, str]:
    """``(CPU name, features)`` of the CPU valgrind presents, as LLVM sees it (a second or two: a
    Python that imports llvmlite alone, under ``--tool=none``).

    Raises:
        RuntimeError: the probe failed.
    """
    proc = subprocess.run([valgrind, "--tool=none", "-q", sys.executable, "-c", _TARGET_PROBE], capture_output=True,
                          text=True)
    try:
        name, features = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"cannot read the CPU valgrind presents to LLVM: {proc.stderr.strip()[-300:]}") from None
    return name, features


def numpy_disabled() -> str:
    """NumPy's dispatch targets above AVX (``X86_V3 X86_V4 ...`` for NumPy 2, ``AVX2 FMA3 ...``
    for 1.x), as ``NPY_DISABLE_CPU_FEATURES`` takes them."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:  # NumPy 1.x
        from numpy.core._multiarray_umath import __cpu_dispatch__
    return " ".join(t for t in __cpu_dispatch__ if t not in NUMPY_AVX_TARGETS)


def count_target(valgrind: str | None = None, numba: bool = False) -> dict[str, str]:
    """The environment that sets which kernels counting workers run: by default the libraries'
    switches to AVX (:data:`AVX_SWITCHES`, NumPy's, XLA's) and, with ``numba``, numba's target: the
    CPU valgrind presents to LLVM (:func:`presented_target`) less its features beyond AVX, as
    ``sandybridge``; with ``RNN_BENCH_COUNT_TARGET=valgrind`` only numba's target, the CPU as valgrind
    presents it.

    Raises:
        ValueError: an unknown ``RNN_BENCH_COUNT_TARGET``.
    """
    from ..environment import thread_env

    target = os.environ.get(TARGET_ENV, "avx") or "avx"
    if target not in ("avx", "valgrind"):
        raise ValueError(f"{TARGET_ENV}: expected avx or valgrind, got {target!r}")
    env = {}
    if target == "avx":
        xla = thread_env(1).get("XLA_FLAGS", os.environ.get("XLA_FLAGS", ""))
        env = {**AVX_SWITCHES, "NPY_DISABLE_CPU_FEATURES": numpy_disabled(),
               "XLA_FLAGS": " ".join(filter(None, [xla, XLA_AVX_FLAG]))}
    if numba:
        name, features = presented_target(valgrind or valgrind_path())
        if target == "avx":
            name = "sandybridge"
            features = ",".join(f"-{f[1:]}" if f[1:].startswith(LLVM_ABOVE_AVX) else f for f in features.split(","))
        env.update(NUMBA_CPU_NAME=name, NUMBA_CPU_FEATURES=features)
    return env


def prime_numba(sweep, backends: list[str], env: dict) -> None:
    """Prepare every case of ``sweep`` on each of ``backends`` in a plain worker per checkout, with
    ``env`` (numba's target fixed), so that numba's cache holds the code the counting workers will
    load.  Preparing compiles (or loads) exactly what a counting worker's prepare will ask for."""
    roots = {}
    for side in sweep.sides:
        roots.setdefault(side.root, Side(side.label or "prime", side.root))
    slots = [Slot(Side(f"prime-{i}", side.root), backend, 0) for i, side in enumerate(roots.values())
             for backend in backends]
    job = {**sweep.job(1), "measure": "time"}
    plain = Spawner(env=tuple(env.items()), concurrent=True)
    with live_workers(slots, job, 1, plain, env) as (workers, _):
        for case in sweep.todo():
            request = {"cmd": "prepare", "case": case.id}
            each(workers, lambda w, request=request: w.ask(request), plain.concurrency())
