"""The parent's side of worker processes: starting them, speaking to them, and watching the machine.

A :class:`Spawner` says how a worker process is started (plain, or under valgrind); a
:class:`Worker` is one live worker, spoken to in JSON lines (:mod:`bench.timing.worker`);
:func:`live_workers` starts the workers of a run, pinned by :func:`worker_cpus`, and ends them
whatever happens; :class:`CpuMeter` tells how many cores the machine's other processes used
while a worker timed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from ..environment import thread_env


@dataclasses.dataclass(frozen=True)
class Side:
    """Whose code the workers run: ``label`` ("" for a plain run, "base"/"new" for A/B), the
    checkout ``root`` they run in, and ``env``, variables added to their environment."""

    label: str
    root: Path
    env: tuple = ()


@dataclasses.dataclass(frozen=True)
class Slot:
    """One worker process: a side, a backend, and which of its processes this is (0-based)."""

    side: Side
    backend: str
    process: int


@dataclasses.dataclass(frozen=True)
class Spawner:
    """How a worker process is started: ``prefix`` runs before ``python -m bench worker JOB``
    (empty for a plain process; a valgrind command line to count instructions), with ``env``
    added to its environment."""

    prefix: tuple = ()
    env: tuple = ()

    def command(self, job_path: Path) -> list[str]:
        return [*self.prefix, sys.executable, "-m", "bench", "worker", str(job_path)]


class WorkerDied(RuntimeError):
    """A worker process ended without answering (a crash, a kill, an interpreter abort)."""


class Worker:
    """A live worker process for one :class:`Slot`, spoken to in JSON lines."""

    def __init__(self, slot: Slot, job: dict, workdir: Path, threads: int, cpus: set | None,
                 spawner: Spawner, env: dict):
        self.slot = slot
        name = f"{slot.side.label or 'run'}-{slot.backend.replace(':', '_').replace('@', '_')}-{slot.process}"
        job_path = workdir / f"{name}.job.json"
        job_path.write_text(json.dumps({**job, "backend": slot.backend}))
        self.stderr_path = workdir / f"{name}.stderr"
        env = {**os.environ, **env, **thread_env(threads), **dict(spawner.env), **dict(slot.side.env)}
        env["PYTHONPATH"] = os.pathsep.join([str(slot.side.root), *filter(None, [os.environ.get("PYTHONPATH")])])
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen(spawner.command(job_path), cwd=slot.side.root, env=env, stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=err, text=True,
                                         start_new_session=True)  # Ctrl-C reaches the parent, which closes them
        if cpus:
            os.sched_setaffinity(self.proc.pid, cpus)
        self.ps = psutil.Process(self.proc.pid)
        self._cpu = 0.0
        self.metadata: dict = {}

    def ask(self, request: dict) -> dict:
        """Send one request and return the answer.

        Raises:
            WorkerDied: the worker has gone; the message ends with the last line of its stderr.
        """
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            line = ""
        if not line:
            self.proc.wait()
            tail = self.stderr_path.read_text(errors="replace").strip().splitlines() or ["no output"]
            raise WorkerDied(f"worker exited with status {self.proc.returncode}: {tail[-1]}")
        return json.loads(line)

    def time(self, rounds: int) -> dict:
        """Time ``rounds`` rounds of the prepared case: the worker's answer, ``times`` (samples per
        call), ``peak_rss_bytes`` (or ""), ``wall_s`` and ``cpu_s`` (:mod:`bench.timing.worker`)."""
        return self.ask({"cmd": "time", "rounds": rounds})

    def cpu_seconds(self) -> float:
        """CPU seconds this worker (and its children: valgrind runs the worker as one) has used so far
        (its last reading once it has gone)."""
        try:
            t = self.ps.cpu_times()
            self._cpu = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:  # gone, or a zombie
            pass
        return self._cpu

    def close(self) -> None:
        """Ask the worker for its metadata and let it exit; kill it if it does not."""
        try:
            if self.proc.poll() is None:
                self.metadata = self.ask({"cmd": "quit"}).get("metadata", {})
            self.proc.wait(timeout=30)
        except (WorkerDied, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


def probe(backends: list[str], root: Path, extra: dict, env: dict) -> dict[str, str]:
    """``{backend: why it cannot run}`` of the backends a worker started from ``root`` with ``env``
    would find unable to run (``python -m bench worker --probe``, one short process: this one
    imports no backend); {} where the probe itself fails (a checkout older than the probe, in an
    A/B run): its workers then say per case."""
    command = [sys.executable, "-m", "bench", "worker", "--probe", *backends, "--extra", json.dumps(extra)]
    path = os.pathsep.join([str(root), *filter(None, [os.environ.get("PYTHONPATH")])])
    proc = subprocess.run(command, cwd=root, env={**os.environ, **env, "PYTHONPATH": path}, capture_output=True,
                          text=True)
    try:
        found = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}
    return {b: why for b, why in found.items() if why is not None}


def _busy_seconds() -> float:
    """CPU seconds every process of the machine has spent busy so far (Linux: /proc/stat)."""
    t = psutil.cpu_times()
    return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq") if hasattr(t, f))


def _own_seconds() -> float:
    """CPU seconds of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: The resolution of the CPU-time counters :class:`CpuMeter` reads (Linux's clock ticks).
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 0.01


class CpuMeter:
    """CPU seconds used by the machine's processes other than this one and ``workers`` over a span:
    ``meter = CpuMeter(workers)`` ... ``meter.spans()``.  From Linux's tick counters
    (:data:`TICK_S`): a reading may be off by a tick per CPU and counter (:meth:`uncertainty`)."""

    def __init__(self, workers: list):
        self.workers = workers
        self.start = self._reading()

    def _reading(self):
        return (time.perf_counter(), _busy_seconds(), _own_seconds(), sum(w.cpu_seconds() for w in self.workers))

    def spans(self) -> tuple[float, float]:
        """``(wall seconds, CPU seconds of other processes)`` since the meter started."""
        wall, busy, own, theirs = (b - a for a, b in zip(self.start, self._reading()))
        return wall, max(0.0, busy - own - theirs)

    def others(self) -> float:
        """Cores other processes used over the span."""
        wall, other = self.spans()
        return other / wall if wall > 0 else 0.0

    @staticmethod
    def uncertainty() -> float:
        """CPU seconds one span's reading may be off by: a tick at each end of every CPU's counter,
        this process's and a worker's."""
        return 2 * ((os.cpu_count() or 1) + 2) * TICK_S


def worker_cpus(threads: int) -> tuple[set | None, set | None]:
    """``(CPUs for every worker, CPUs for this parent)``: the workers share the last ``threads``
    CPUs this process may use and the parent keeps the others, where there are more CPUs than
    threads; ``(None, None)`` otherwise (or where affinity cannot be set).

    On a 2-vCPU VM a process's speed depended on the vCPU it ran on, and a worker woken for its
    burst landed on either; on one shared CPU the two sides of a pair see the same one, and the
    spread of paired ratios halved (docs/timing.md, "Noise")."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return None, None
    if threads >= len(allowed):
        return None, None
    return set(allowed[-threads:]), set(allowed[:-threads])


def stop_on_sigterm():
    """Make SIGTERM (``timeout``, a CI runner cancelling a job) stop the run as Ctrl-C does, so that
    its workers are ended and its files are left valid; returns the handler to restore, or
    ``None`` where signals cannot be handled (not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def stop(signum, frame):
        raise KeyboardInterrupt(f"terminated by signal {signum}")

    return signal.signal(signal.SIGTERM, stop)


@contextlib.contextmanager
def live_workers(slots: list[Slot], job: dict, threads: int, spawner: Spawner = Spawner(), env: dict | None = None):
    """Start a :class:`Worker` for every slot (pinned by :func:`worker_cpus`, this process on the
    other CPUs) with ``env`` added to their environment, and yield ``(workers, worker_cpus
    column)``; on leaving, every worker is closed, or killed when the block raised (Ctrl-C,
    SIGTERM, a failure): no worker outlives its run."""
    cpus, mine = worker_cpus(threads)
    before = os.sched_getaffinity(0) if mine else None
    with tempfile.TemporaryDirectory(prefix="rnn-bench-") as tmp:
        workers = []
        previous = stop_on_sigterm()
        if mine:
            os.sched_setaffinity(0, mine)
        try:
            workers += [Worker(slot, job, Path(tmp), threads, cpus, spawner, env or {}) for slot in slots]
            yield workers, " ".join(map(str, sorted(cpus))) if cpus else ""
        except BaseException:
            for w in workers:
                w.proc.kill()
            raise
        finally:
            for w in workers:
                w.close()
            if before:
                os.sched_setaffinity(0, before)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
