"""The machine a run times on, as the columns its rows share: metadata, measured peaks, and its
state at the start and end of the run."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

from ..environment import REPO, machine_id, machine_state, plan_environment, run_metadata, thread_env
from ..measurement import BUSY_CORES
from ..results.paths import plan_path


def state_columns(state: dict, when: str) -> dict:
    """:func:`bench.environment.machine_state` as the result columns of the run's ``when``
    (``start`` or ``end``)."""
    columns = {f"load_avg_{when}": state["load_avg"], f"other_cores_{when}": state["other_cores"],
               f"busiest_{when}": state["busiest"]}
    if when == "start":
        columns.update(cpu_freq_mhz=state["cpu_freq_mhz"], governor=state["governor"])
    return columns


def busy_warning(state: dict) -> str:
    """A one-line warning when other processes use more than :data:`bench.measurement.BUSY_CORES`
    cores, else ""."""
    if state["other_cores"] <= BUSY_CORES:
        return ""
    return (f"warning: the machine is busy: other processes use {state['other_cores']:.2f} cores "
            f"({state['busiest'] or 'many small ones'}); timings will be slower and noisier than on a quiet machine")


@functools.lru_cache(maxsize=None)
def peaks(threads: int) -> tuple:
    """This machine's peaks (:func:`bench.roofline.measure_peaks`) with ``threads`` threads, the
    workers' own limit, measured once per process in a process of their kind (``python -m bench
    peaks``), so that this one loads no BLAS; ``()`` when that fails.  As ``(name, value)`` pairs."""
    proc = subprocess.run([sys.executable, "-m", "bench", "peaks"], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **thread_env(threads)})
    try:
        return tuple(json.loads(proc.stdout.strip().splitlines()[-1]).items())
    except (ValueError, IndexError):
        return ()


def machine_columns(run_id: str, threads: int, seed: int, state: dict | None = None) -> dict:
    """The columns every row timed here shares: :func:`bench.environment.run_metadata`, this
    machine's peaks, its ``state`` (taken now when not given) as the ``*_start`` columns,
    ``threads`` and ``seed``."""
    return {**run_metadata(run_id), **dict(peaks(threads)), **state_columns(state or machine_state(), "start"),
            "threads": threads, "seed": seed}


def worker_environment() -> dict[str, str]:
    """What every worker of this machine is handed: its machine's id and tuned plan
    (:func:`bench.environment.plan_environment`, the plan in the results folder)."""
    here = machine_id()
    return plan_environment(here, plan_path(here))


def plan_in_use(env: dict) -> Path | None:
    """The plan file ``env`` hands the workers, or None."""
    plan = env.get("RNN_BENCH_PLAN", "off")
    return None if plan in ("", "off") else Path(plan)
