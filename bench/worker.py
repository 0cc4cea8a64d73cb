"""A worker process: one backend's libraries, its cases timed on the parent's command.

Started by :mod:`bench.runner` as ``python -m bench worker JOB.json`` with its
thread pools sized by the environment (:func:`bench.environment.thread_env`).
It speaks JSON lines: one request on stdin, one answer on stdout, so that the
parent can alternate short bursts of several workers (backends, or the two
sides of an A/B run) while all of them are alive and idle but one:

* ``{"cmd": "prepare", "case": ID}`` -> ``{"row": {...}, "rounds": N}``: check,
  warm up and plan the case (:func:`bench.measure.prepare_case`); ``rounds``
  is 0 when the row's status says it will not be timed.
* ``{"cmd": "time", "rounds": N}`` -> ``{"times": [seconds per call, ...],
  "peak_rss_bytes": B}``: N rounds of the prepared case.
* ``{"cmd": "quit"}`` -> ``{"metadata": {...}}``: this process's libraries and
  thread pools (:func:`bench.environment.process_metadata`), then exit.

Anything a library prints goes to stderr: stdout carries only the answers.
"""

from __future__ import annotations

import json
import os
import sys

from kernels import register_backend

from .environment import process_metadata
from .grids import get_grid
from .measure import PeakMemory, TimingPolicy, prepare_case, time_rounds


def serve(job: dict, requests, answer) -> None:
    """Answer ``requests`` (an iterator of dicts) through ``answer(dict)`` for ``job``."""
    import importlib

    for name, path in (job.get("extra_backends") or {}).items():  # register_backend()s of the parent
        module, _, attr = path.partition(":")
        factory = importlib.import_module(module)
        for part in attr.split("."):
            factory = getattr(factory, part)
        register_backend(name, factory)
    cases = {c.id: c for c in get_grid(job["grid"], job.get("passes"))}
    policy = TimingPolicy(**job["policy"])
    ready, references = None, {}
    for request in requests:
        cmd = request.get("cmd")
        if cmd == "prepare":
            case = cases[request["case"]]
            ready = None  # the previous case's arrays go before this one's are made
            outcome, ready, references[case.id] = prepare_case(case, job["backend"], policy, job["threads"],
                                                                references.get(case.id))
            answer({"row": {**process_metadata(), **outcome.row}, "rounds": ready.rounds if ready else 0})
        elif cmd == "time":
            with PeakMemory() as peak:
                times = time_rounds(ready.call, int(request["rounds"]), ready.iterations)
            answer({"times": times, "peak_rss_bytes": peak.bytes})
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
