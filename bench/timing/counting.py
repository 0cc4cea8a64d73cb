"""Counting instructions inside a worker (``--measure instructions``): the fixed plan of a counting
worker (:class:`CountingPolicy`), the counting itself through valgrind's client requests
(:class:`Counter`), and what the libraries chose for the CPU they see (:func:`kernels_seen`).

The worker runs under callgrind, started by :class:`bench.timing.valgrind.CallgrindSpawner`, which
also says why counting is built this way.
"""

from __future__ import annotations

import ctypes
import dataclasses
import gc
import os
import re
import sys
import time
from pathlib import Path

from .policy import TimingPolicy

#: Rounds counted per case and process.  A count repeats exactly from process to process, but not
#: quite from call to call (CPython retries failed specialisations ever more rarely, a free list
#: refills): a few rounds of a small case differ by up to 2%, so a row's count is their median.
COUNT_ROUNDS = 5
#: Calls of the warm-up before counting, whatever their time: the same history in every process.
WARM_UP_CALLS = 5
#: How many times slower a call runs counted than under valgrind with instrumentation off (measured
#: 1.1 to 3.5 on NumPy LSTM and tanh calls): it sizes the estimate of a count's cost for the budget.
COUNTED_SLOWDOWN = 4
#: Empty rounds (no call) counted per request: their median is the cost of counting a round.
EMPTY_ROUNDS = 3
#: The environment variable that hands a counting worker the compiled helper's path.
HELPER_ENV = "RNN_BENCH_CALLGRIND_HELPER"
#: The environment variable that names where a counting worker's dumps go (``<it>.<n>``): callgrind's
#: ``--callgrind-out-file`` refers to it, so that valgrind's command line is the same in every
#: worker and every run (:func:`dump_prefix`).
DUMPS_ENV = "RNN_BENCH_CALLGRIND_OUT"


def dump_prefix(job_path: Path) -> Path:
    """Where the worker of ``job_path`` dumps its counts: a folder of its own in the run's temporary
    folder, of one name length for every worker.  Measured: what a counting process did before a
    count moves its heap, and its heap moves its counts (torch's smallest by up to 1%): so
    callgrind's ``--callgrind-out-file`` is the same text in every worker (it names this through
    :data:`DUMPS_ENV`), the paths are of one length (one size of environment), and a worker lists
    only its own dumps, never another's that are being written."""
    import hashlib

    job_path = Path(job_path)
    return job_path.parent / hashlib.sha1(job_path.name.encode()).hexdigest()[:16] / "callgrind"


@dataclasses.dataclass(frozen=True)
class CountingPolicy(TimingPolicy):
    """A counting worker's plan: :data:`WARM_UP_CALLS` warm-up calls and :data:`COUNT_ROUNDS`
    rounds of one call, whatever a call's time, so that every process counts after the same
    history.  Over budget where the warm-up and the counted rounds would take more than ``budget``
    seconds (a call's time under valgrind, instrumentation off; counted, :data:`COUNTED_SLOWDOWN`
    times that), judged on the fastest warm-up call: the accuracy check's one call, often a first
    call that initialises (a JIT, a library's buffers), rules a case out only where they would
    take twice the budget, and the warm-up stops once it has overrun the budget."""

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
        if self.cost(call_s) > 2 * self.budget:  # a first call may well take twice a warm one
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

    def __init__(self):
        helper, prefix = os.environ.get(HELPER_ENV), os.environ.get(DUMPS_ENV)
        if not helper or not prefix:
            raise RuntimeError(f"no {HELPER_ENV} or {DUMPS_ENV}: this worker was not started to count instructions")
        lib = ctypes.CDLL(helper)
        if not lib.rnnb_running():
            raise RuntimeError("this worker does not run under valgrind")
        lib.rnnb_dump.argtypes = [ctypes.c_char_p]
        lib.rnnb_cpu.argtypes = [ctypes.c_char_p, ctypes.c_int]
        self.lib = lib
        self.prefix = Path(prefix)

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

        found = self.prefix.parent.glob(f"{self.prefix.name}.*")
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
            raise RuntimeError(f"callgrind wrote {len(dumps)} dumps at {self.prefix}.*, "
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
        import llvmlite.binding as ll
        from numba.core import config

        parts.append(f"llvm={config.CPU_NAME or ll.get_host_cpu_name()}")
    return "; ".join(sorted(set(parts)))
