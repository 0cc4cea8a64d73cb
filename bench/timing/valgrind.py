"""Instruction counts (``--measure instructions``): workers under valgrind's callgrind, counting
exactly the timed calls.

**How a worker is started** (:class:`CallgrindSpawner`): ``valgrind --tool=callgrind
--instr-atstart=no`` before ``python -m bench worker JOB``, its dumps next to the job file
(:func:`dump_prefix`), ``PYTHONHASHSEED=0`` (a string's hash, hence a set's order, is the same in
every process) and one thread (:func:`refusal`).  Instrumentation is off while the worker starts,
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
NOTES-instructions.md (the user guide's "Instruction counts").
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .policy import TimingPolicy
from .process import Side, Slot, Spawner, each, live_workers

#: Rounds counted per case and process.  A count repeats exactly from process to process, but not
#: quite from call to call (CPython retries failed specialisations ever more rarely, a free list
#: refills): a few rounds of a small case differ by up to 2%, so a row's count is their median.
COUNT_ROUNDS = 5
#: Calls of the warm-up before counting, whatever their time: the same history in every process.
WARM_UP_CALLS = 10
#: How many times slower a call runs counted than under valgrind with instrumentation off (measured
#: 1.1 to 3.5 on NumPy LSTM and tanh calls): it sizes the estimate of a count's cost for the budget.
COUNTED_SLOWDOWN = 4
#: Empty rounds (no call) counted per request: their median is the cost of counting a round.
EMPTY_ROUNDS = 3
#: The environment variable that hands a counting worker the compiled helper's path.
HELPER_ENV = "RNN_BENCH_CALLGRIND_HELPER"
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


def dump_prefix(job_path: Path) -> Path:
    """Where the worker of ``job_path`` dumps its counts: ``<job>.callgrind.<pid>.<n>``, in the run's
    temporary folder (the parent's valgrind command line and the worker agree through this)."""
    return Path(str(Path(job_path).with_suffix("")) + ".callgrind")


#: Backends that cannot be counted, and why (measured: bench ab --grid quick, NOTES-instructions.md).
UNCOUNTABLE: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class CallgrindSpawner(Spawner):
    """Starts each worker under callgrind with instrumentation off (see the module docstring)."""

    def command(self, job_path: Path) -> list[str]:
        return [*self.prefix, f"--callgrind-out-file={dump_prefix(job_path)}.%p", sys.executable, "-m", "bench",
                "worker", str(job_path)]

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
            each(workers, lambda w: w.ask({"cmd": "prepare", "case": case.id}), plain.concurrency())


# --- in the worker -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class CountingPolicy(TimingPolicy):
    """A counting worker's plan: :data:`WARM_UP_CALLS` warm-up calls and :data:`COUNT_ROUNDS`
    rounds of one call, whatever a call's time, so that every process counts after the same
    history.  Over budget where the warm-up and the counted rounds would take more than ``budget``
    seconds (a call's time under valgrind, instrumentation off; counted, :data:`COUNTED_SLOWDOWN`
    times that), judged on the fastest warm-up call: the accuracy check's one call, often a first
    call that initialises (a JIT, a library's buffers), rules a case out only where the warm-up
    alone would overrun the budget, and the warm-up stops once it has."""

    def warm_up(self, call) -> float:
        times = []
        for _ in range(WARM_UP_CALLS):
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
            if sum(times) > self.budget and len(times) < WARM_UP_CALLS:
                # their mean overruns the budget in plan(): no count follows a short warm-up
                return sum(times) / len(times)
        return min(times)

    def cost(self, call_s: float) -> float:
        """Seconds of warming up and counting calls of ``call_s`` seconds (under valgrind)."""
        return (WARM_UP_CALLS + COUNT_ROUNDS * COUNTED_SLOWDOWN) * call_s

    def screen(self, call_s: float) -> tuple[int, int, str]:
        if WARM_UP_CALLS * call_s > self.budget:
            return 0, 1, self._over(call_s)
        return COUNT_ROUNDS, 1, ""

    def plan(self, call_s: float) -> tuple[int, int, str]:
        if self.cost(call_s) > self.budget:
            return 0, 1, self._over(call_s)
        return COUNT_ROUNDS, 1, ""

    def _over(self, call_s: float) -> str:
        return (f"one call takes ~{call_s:.3g} s under valgrind; warming up and counting {COUNT_ROUNDS} rounds "
                f"would take ~{self.cost(call_s):.3g} s, over the budget of {self.budget:g} s")


_TOTALS = re.compile(rb"^(?:totals|summary):\s*(\d+)", re.M)


class Counter:
    """Counts instructions of rounds of calls in this worker (see the module docstring).

    Raises (on construction):
        RuntimeError: this process is not running under valgrind, or has no helper.
    """

    def __init__(self, job_path: Path):
        helper = os.environ.get(HELPER_ENV)
        if not helper:
            raise RuntimeError(f"no {HELPER_ENV}: this worker was not started to count instructions")
        lib = ctypes.CDLL(helper)
        if not lib.rnnb_running():
            raise RuntimeError("this worker does not run under valgrind")
        lib.rnnb_dump.argtypes = [ctypes.c_char_p]
        lib.rnnb_cpu.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.lib = lib
        self.prefix = dump_prefix(job_path)

    def cpu(self) -> str:
        """The CPU this process sees (valgrind's): its brand and widest vector extension."""
        buf = ctypes.create_string_buffer(128)
        self.lib.rnnb_cpu(buf, len(buf))
        return buf.value.decode(errors="replace")

    def _dumps(self) -> list[Path]:
        """This process's dumps not yet read, in the order they were written."""
        def number(path: Path) -> int:
            tail = path.name.rsplit(".", 1)[1]
            return int(tail) if tail.isdigit() else -1

        found = self.prefix.parent.glob(f"{self.prefix.name}.{os.getpid()}.*")
        return sorted((p for p in found if number(p) >= 0), key=number)

    @staticmethod
    def _total(path: Path) -> int:
        found = _TOTALS.findall(path.read_bytes())
        if not found:
            raise RuntimeError(f"no totals in callgrind's dump {path.name}")
        return int(found[-1])

    def count(self, call, rounds: int, iterations: int) -> list[float]:
        """Instructions per call of ``rounds`` rounds of ``iterations`` calls of ``call()``, less
        the cost of counting a round (the median of :data:`EMPTY_ROUNDS` empty rounds).

        Each round lies between a zero and a dump of valgrind's counters, and nothing else runs
        between rounds: the dumps are read once instructions are off, so that reading them (files,
        allocations) leaves the next round's heap as the last round left it."""
        for stale in self._dumps():
            stale.unlink()
        zero, dump, tag = self.lib.rnnb_zero, self.lib.rnnb_dump, b"round"
        # an empty round thrown away (this loop's first pass), empty rounds, counted rounds
        sizes = [0] + [0] * EMPTY_ROUNDS + [iterations] * rounds
        gc.collect()
        enabled = gc.isenabled()
        gc.disable()  # a collection falls wherever allocations make it: not in a count
        self.lib.rnnb_start()
        try:
            for n in sizes:
                zero()
                for _ in range(n):
                    call()
                dump(tag)
        finally:
            self.lib.rnnb_stop()
            if enabled:
                gc.enable()
        dumps = self._dumps()
        if len(dumps) != len(sizes):
            raise RuntimeError(f"callgrind wrote {len(dumps)} dumps at {self.prefix}.{os.getpid()}.*, "
                               f"expected {len(sizes)}")
        totals = [self._total(d) for d in dumps]
        for d in dumps:
            d.unlink()
        empty = sorted(totals[1:1 + EMPTY_ROUNDS])[EMPTY_ROUNDS // 2]
        return [(t - empty) / iterations for t in totals[1 + EMPTY_ROUNDS:]]


def kernels_seen() -> str:
    """What the libraries loaded in this process chose for the CPU they see (under valgrind, the
    one valgrind presents): each BLAS's kernel (threadpoolctl's ``architecture``), torch's CPU
    capability and numba's LLVM target, where loaded; e.g. ``openblas(numpy.libs)=Haswell; llvm=haswell``."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        if info.get("architecture"):
            path = Path(info.get("filepath", "")).parts
            owner = next((path[i + 1] for i, p in enumerate(path[:-1]) if p == "site-packages"), "")
            parts.append(f"{info.get('internal_api')}({owner})={info['architecture']}")
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            parts.append(f"torch={torch.backends.cpu.get_cpu_capability()}")
        except (AttributeError, RuntimeError):
            pass
    if "numba" in sys.modules:
        from numba.core import config

        import llvmlite.binding as ll

        parts.append(f"llvm={config.CPU_NAME or ll.get_host_cpu_name()}")
    return "; ".join(sorted(set(parts)))
