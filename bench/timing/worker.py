"""A worker process: one backend's libraries, its cases timed on the parent's command.

Started by the parent (:mod:`bench.timing.process`) as ``python -m bench worker JOB.json`` with
its thread pools sized by the environment (:func:`bench.environment.thread_env`), from the
checkout whose code it times.  It speaks JSON lines: one request on stdin, one answer on stdout,
so that the parent can alternate short bursts of several workers (backends, or the two sides of
an A/B run) while all of them are alive and idle but one:

* ``{"cmd": "prepare", "case": ID}`` -> ``{"row": {...}, "rounds": N}``: check, warm up and
  plan the case (:func:`bench.timing.measure.prepare_case`); ``rounds`` is 0 when the row's
  status says it will not be timed.  The row holds this process's libraries and thread pools and
  the commit of the checkout it runs (:func:`bench.environment.code_metadata`).
* ``{"cmd": "time", "rounds": N}`` -> ``{"times": [seconds per call, ...], "peak_rss_bytes": B,
  "wall_s": W, "cpu_s": C}``: N rounds of the prepared case, with the wall-clock and this process's
  CPU seconds (all its threads, nanosecond clocks) they took: a worker that got less CPU than
  wall time times its threads had its CPU taken by other processes.  A job whose ``measure`` is
  ``instructions`` (a worker started under valgrind, :mod:`bench.timing.valgrind`) answers
  ``times`` in instructions per call instead, its warm-up and rounds fixed
  (:class:`~bench.timing.counting.CountingPolicy`), and its prepare row says what the libraries
  ran on the CPU valgrind presents.  Every prepare row says its ``measure``.
* ``{"cmd": "quit"}`` -> ``{"metadata": {...}}``: this process's libraries, then exit.

Only the case being timed is held (its arrays, its prepared backend, its float64 reference):
preparing the next case drops the previous one's.  Anything a library prints goes to stderr:
stdout carries only the answers.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time

from kernels import register_backend

from ..environment import code_metadata, cpu_env, process_metadata
from ..grids import get_grid
from .measure import PeakMemory, prepare_case, time_rounds
from .policy import TimingPolicy


def register_extra_backends(extra: dict) -> None:
    """Register the parent's :func:`kernels.register_backend` backends here: ``{name: "module:attr"}``."""
    for name, path in (extra or {}).items():
        module, _, attr = path.partition(":")
        factory = importlib.import_module(module)
        for part in attr.split("."):
            factory = getattr(factory, part)
        register_backend(name, factory)


def serve(job: dict, requests, answer) -> None:
    """Answer ``requests`` (an iterator of dicts) through ``answer(dict)`` for ``job``."""
    register_extra_backends(job.get("extra_backends"))
    cases = {c.id: c for c in get_grid(job["grid"], job.get("passes"))}
    code = code_metadata()
    measure = job.get("measure") or "time"
    counter, policy = None, TimingPolicy(**job["policy"])
    if measure == "instructions":
        from .counting import Counter, CountingPolicy, kernels_seen

        counter, policy = Counter(), CountingPolicy(**job["policy"])
    ready = None
    for request in requests:
        cmd = request.get("cmd")
        if cmd == "prepare":
            ready = None  # the previous case's arrays and reference go before this one's are made
            outcome, ready, _ = prepare_case(cases[request["case"]], job["backend"], policy, job["threads"])
            row = {**process_metadata(), **code, **outcome.row, "measure": measure}
            if counter is not None:  # what ran under valgrind, and the switches that chose it (this process's)
                row.update(valgrind_cpu=counter.cpu(), valgrind_kernels=kernels_seen(), cpu_env=cpu_env())
            answer({"row": row, "rounds": ready.rounds if ready else 0})
        elif cmd == "time":
            wall, cpu = time.perf_counter(), time.process_time()
            if counter is not None:  # no /proc read before a count: its text varies from run to run
                times, peak_bytes = counter.count(ready.call, int(request["rounds"]), ready.iterations), ""
            else:
                with PeakMemory() as peak:
                    times = time_rounds(ready.call, int(request["rounds"]), ready.iterations)
                peak_bytes = peak.bytes
            answer({"times": times, "peak_rss_bytes": peak_bytes, "wall_s": time.perf_counter() - wall,
                    "cpu_s": time.process_time() - cpu})
        elif cmd == "quit":
            answer({"metadata": process_metadata()})
            return
        else:
            answer({"error": f"unknown request {request!r}"})


def main(job_path: str) -> int:
    """Run a worker for the job file ``job_path``; stdin/stdout are the protocol."""
    with open(job_path) as f:
        job = json.load(f)
    out = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints, C libraries' too, go to stderr
    sys.stdout = sys.stderr

    def answer(message: dict) -> None:
        out.write(json.dumps(message, default=str) + "\n")

    serve(job, (json.loads(line) for line in sys.stdin), answer)
    return 0
