"""Isolated, repeated, interleaved timing: the parent process of every timed run.

Every timed benchmark runs in a worker process (``python -m bench worker
JOB``) that imports only its own backend's libraries and times that
backend's cases through pytest-benchmark (:mod:`bench.plugin` in worker
mode); this process imports neither torch nor numba.  Each backend gets
``processes`` workers, and the workers of all backends (and, for an A/B run,
of both sides) run one at a time in a seeded random interleaved order:
process round by process round, the backends in random order, and within an
A/B pair the two sides back to back in random order, so drift of the machine
touches both sides of a pair alike.

The worker process is the unit of replication (pyperf's rule): a row's
``median_s`` is the median of its process medians, ``process_cv`` their
spread, and the sidecar keeps every process median.  A row is ``unstable``,
with the reason, when its processes disagree (coefficient of variation over
:data:`UNSTABLE_CV`, pyperf's 10%) or when other processes used more than
:data:`bench.environment.BUSY_CORES` cores while one of its workers ran.

A local run (:meth:`Sweep.run`) and a task on a dask.distributed cluster
(:mod:`bench.cluster`, one benchmark on one cluster machine) time through the
same code: :func:`live_workers` starts and ends the workers,
:func:`time_case` prepares, times and aggregates one case on them, and
:func:`machine_metadata` gives the columns of the machine it ran on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import functools
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .environment import BUSY_CORES, machine_state, run_metadata, thread_env
from .grids import Case
from .options import RunOptions
from .results import COLUMNS, ResultFile, atomic_write_text, sidecar_path

#: The checkout this code runs from: the side of a plain run.
REPO = Path(__file__).resolve().parent.parent
#: A row whose process medians vary by more than this (stdev / mean) is unstable (pyperf's 10%).
UNSTABLE_CV = 0.10


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


def schedule(sides: list[Side], backends: list[str], processes: int, seed: int) -> list[Slot]:
    """The order of the workers: for each process round, the backends in random order, each
    backend's sides back to back in random order (ABBA-like); reproducible from ``seed``."""
    rng = random.Random(seed)
    order = []
    for k in range(processes):
        blocks = []
        for backend in backends:
            pair = [Slot(side, backend, k) for side in sides]
            rng.shuffle(pair)
            blocks.append(pair)
        rng.shuffle(blocks)
        order += [slot for block in blocks for slot in block]
    return order


class CpuMeter:
    """Cores used by the machine's processes other than this one and ``workers`` over a span:
    ``meter = CpuMeter(workers)`` ... ``meter.others()``.  From Linux's tick counters (10 ms), so
    spans of a fraction of a second and more are resolved to a few hundredths of a core."""

    def __init__(self, workers: list):
        self.workers = workers
        self.start = self._reading()

    def _reading(self):
        return (time.perf_counter(), _busy_seconds(), _own_seconds(), sum(w.cpu_seconds() for w in self.workers))

    def others(self) -> float:
        wall, busy, own, theirs = (b - a for a, b in zip(self.start, self._reading()))
        return max(0.0, (busy - own - theirs) / wall) if wall > 0 else 0.0


class WorkerDied(RuntimeError):
    """A worker process ended without answering (a crash, a kill, an interpreter abort)."""


class Worker:
    """A live worker process (:mod:`bench.worker`) for one :class:`Slot`, spoken to in JSON lines.

    It also keeps the CPU accounting of its bursts: how many cores the machine's other processes
    used while this worker was timing (:meth:`time`)."""

    def __init__(self, slot: Slot, job: dict, workdir: Path, threads: int, cpus: set | None = None):
        import psutil

        self.slot = slot
        name = f"{slot.side.label or 'run'}-{slot.backend.replace(':', '_').replace('@', '_')}-{slot.process}"
        job_path = workdir / f"{name}.job.json"
        job_path.write_text(json.dumps({**job, "backend": slot.backend}))
        self.stderr_path = workdir / f"{name}.stderr"
        env = {**os.environ, **thread_env(threads), **dict(slot.side.env)}
        env["PYTHONPATH"] = os.pathsep.join([str(slot.side.root), *filter(None, [os.environ.get("PYTHONPATH")])])
        with open(self.stderr_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench", "worker", str(job_path)], cwd=slot.side.root,
                                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, text=True,
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

    def time(self, rounds: int) -> tuple[list, int | str]:
        """Time ``rounds`` rounds of the prepared case: ``(seconds per call, peak RSS bytes)``."""
        answer = self.ask({"cmd": "time", "rounds": rounds})
        return answer["times"], answer["peak_rss_bytes"]

    def cpu_seconds(self) -> float:
        """CPU seconds this worker has used so far (its last reading once it has gone)."""
        try:
            t = self.ps.cpu_times()
            self._cpu = t.user + t.system
        except Exception:  # noqa: BLE001  (gone: psutil.NoSuchProcess, zombie)
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


def worker_cpus(threads: int) -> tuple[set | None, set | None]:
    """``(CPUs for every worker, CPUs for this parent)``: the workers share the last ``threads``
    CPUs this process may use and the parent keeps the others, where there are more CPUs than
    threads; ``(None, None)`` otherwise (or where affinity cannot be set).

    Measured on a 2-vCPU VM (README, "Noise"): a process's speed depended on the vCPU it ran on,
    and a worker woken for its burst landed on either; on one shared CPU the two sides of a pair
    see the same one, and the spread of paired ratios halved."""
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


def _busy_seconds() -> float:
    """CPU seconds every process of the machine has spent busy so far (Linux: /proc/stat)."""
    import psutil

    t = psutil.cpu_times()
    return sum(getattr(t, f) for f in ("user", "nice", "system", "irq", "softirq") if hasattr(t, f))


def _own_seconds() -> float:
    """CPU seconds of this process."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


@dataclasses.dataclass
class ProcessResult:
    """One case in one worker process: its row (``prepare``'s answer), its rounds (seconds per
    call), its peak memory, and the cores other processes used while the case was timed."""

    row: dict
    times: list = dataclasses.field(default_factory=list)
    peak_rss_bytes: int | str = ""
    other_cores: float = 0.0


#: A process's rounds of one case are taken in this many bursts at most, alternating with the
#: other workers' bursts of the same case, so that a slow spell of the machine falls on all alike.
BURSTS = 5


def burst_order(workers: list, rng: random.Random) -> list:
    """One round of bursts: backends in random order, each backend's workers back to back, the
    sides of a process pair adjacent in random order (ABBA-like), so that an A/B pair is timed
    as close together as the machine allows."""
    groups: dict = {}
    for w in workers:
        groups.setdefault(w.slot.backend, {}).setdefault(w.slot.process, []).append(w)
    blocks = list(groups.values())
    rng.shuffle(blocks)
    order = []
    for by_process in blocks:
        for pair in by_process.values():
            pair = list(pair)
            rng.shuffle(pair)
            order += pair
    return order


def aggregate(case: Case, backend: str, results: list) -> tuple[dict, list, list]:
    """One row from a benchmark's :class:`ProcessResult` per worker process, its pooled rounds,
    and its process medians.

    Returns ``(row, rounds, process_medians)``; ``rounds`` and ``process_medians`` are empty for
    a row that was not timed in every process.  The row's status is ``ok`` only when every
    process timed it; otherwise the first other outcome, with its reason.  ``median_s`` is the
    median of the process medians; ``min_s``, ``mean_s``, ``stddev_s`` and ``iqr_s`` are of the
    pooled rounds; ``process_cv`` is the stdev / mean of the process medians.
    """
    row = dict(results[0].row)
    row["processes"] = len(results)
    untimed = [r.row for r in results if r.row.get("status") != "ok" or not r.times]
    if untimed:
        row.update(status=untimed[0].get("status", "error"), reason=untimed[0].get("reason", "not timed"))
        return row, [], []
    medians = [float(np.median(r.times)) for r in results]
    pooled = np.concatenate([np.asarray(r.times, float) for r in results])
    median = float(np.median(medians))
    # "" where it has no meaning: one process, or medians of 0 s (a clock too coarse for the call)
    cv = float(np.std(medians, ddof=1) / np.mean(medians)) if len(medians) > 1 and np.mean(medians) > 0 else ""
    reasons = []
    if cv != "" and cv > UNSTABLE_CV:
        reasons.append(f"processes disagree: their medians vary by {cv:.0%} (stdev/mean > {UNSTABLE_CV:.0%})")
    busy = [r.other_cores for r in results if r.other_cores > BUSY_CORES]
    if busy:
        reasons.append(f"machine busy during {len(busy)} of {len(results)} processes "
                       f"(other processes used up to {max(busy):.2f} cores)")
    q1, q3 = np.percentile(pooled, [25, 75])
    rss = [int(r.peak_rss_bytes) for r in results if r.peak_rss_bytes != ""]
    row.update(
        status="ok",
        rounds=len(pooled),
        median_s=median,
        min_s=float(pooled.min()),
        mean_s=float(pooled.mean()),
        stddev_s=float(pooled.std(ddof=1)) if len(pooled) > 1 else 0.0,
        iqr_s=float(q3 - q1),
        per_step_s=median / case.timesteps,
        process_cv=cv,
        unstable="; ".join(reasons),
        prepare_s=float(np.median([float(r.row["prepare_s"]) for r in results])),
        jit_cache=", ".join(dict.fromkeys(r.row.get("jit_cache", "") for r in results if r.row.get("jit_cache"))),
        peak_rss_bytes=max(rss) if rss else "",
    )
    return row, pooled.tolist(), medians


class Output:
    """A side's result CSV and its pytest-benchmark-format JSON sidecar, both rewritten by atomic
    replace after every row, so an interrupted run leaves valid files of the rows done."""

    def __init__(self, path: Path, metadata: dict, rows: list[dict] | None = None):
        self.file = ResultFile(path)
        self.file.rows = list(rows or [])
        self.sidecar = sidecar_path(path)
        self.doc = {"machine_info": {"rnn_cell_bench": metadata}, "commit_info": {}, "benchmarks": [],
                    "datetime": metadata.get("timestamp"), "version": metadata.get("pytest_benchmark_version")}
        if rows and self.sidecar.is_file():
            done = {(r["case_id"], r["backend"]) for r in rows}
            old = json.loads(self.sidecar.read_text()).get("benchmarks", [])
            self.doc["benchmarks"] = [b for b in old if (b["extra_info"].get("case_id"), b["extra_info"].get("backend"))
                                      in done]

    def add(self, row: dict, rounds: list, process_medians: list) -> None:
        row = {k: v for k, v in row.items() if k in COLUMNS}
        if rounds:
            q1, q3 = np.percentile(rounds, [25, 75])
            self.doc["benchmarks"].append({
                "group": row["case_id"], "name": f"test_forward[{row['case_id']}-{row['backend']}]",
                "fullname": f"bench/bench_forward.py::test_forward[{row['case_id']}-{row['backend']}]",
                "params": None, "param": f"{row['case_id']}-{row['backend']}",
                "extra_info": {**row, "process_medians": process_medians},
                "options": {"rounds": len(rounds), "iterations": row.get("iterations")},
                "stats": {"min": min(rounds), "max": max(rounds), "mean": float(np.mean(rounds)),
                          "stddev": float(np.std(rounds, ddof=1)) if len(rounds) > 1 else 0.0,
                          "rounds": len(rounds), "median": row["median_s"], "iqr": float(q3 - q1),
                          "q1": float(q1), "q3": float(q3), "data": rounds},
            })
            atomic_write_text(self.sidecar, json.dumps(self.doc, default=str))
        self.file.add(row)

    def finish(self, state_end: dict) -> None:
        """Record the machine's state at the run's end on every row (one more atomic rewrite)."""
        rows, self.file.rows = self.file.rows, []
        for row in rows[:-1]:
            row.update(state_end)
            self.file.rows.append(row)
        if rows:
            rows[-1].update(state_end)
            self.file.add(rows[-1])


def state_columns(state: dict, when: str) -> dict:
    """:func:`bench.environment.machine_state` as the result columns of the run's ``when``."""
    columns = {f"load_avg_{when}": state["load_avg"], f"other_cores_{when}": state["other_cores"],
               f"busiest_{when}": state["busiest"]}
    if when == "start":
        columns.update(cpu_freq_mhz=state["cpu_freq_mhz"], governor=state["governor"])
    return columns


def busy_warning(state: dict) -> str:
    """A one-line warning when other processes use more than BUSY_CORES cores, else ""."""
    if state["other_cores"] <= BUSY_CORES:
        return ""
    return (f"warning: the machine is busy: other processes use {state['other_cores']:.2f} cores "
            f"({state['busiest'] or 'many small ones'}); timings will be slower and noisier than on a quiet machine")


def measure_peaks(root: Path, threads: int) -> dict:
    """This machine's peaks (:func:`bench.roofline.measure_peaks`) with ``threads`` threads, the
    workers' own limit, measured in a process of their kind so that this one loads no BLAS of
    torch's; ``{}`` when that fails."""
    proc = subprocess.run([sys.executable, "-m", "bench", "peaks"], cwd=root, capture_output=True, text=True,
                          env={**os.environ, **thread_env(threads)})
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def utc_now() -> str:
    """The time now, UTC, ISO 8601 to the microsecond: a row's ``started`` and ``finished``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")


@functools.lru_cache(maxsize=None)
def _peaks(root: Path, threads: int) -> tuple:
    return tuple(measure_peaks(root, threads).items())


def machine_metadata(run_id: str, root: Path, threads: int, seed: int, state: dict | None = None) -> dict:
    """The columns every row timed here shares: :func:`bench.environment.run_metadata`, this
    machine's peaks (measured once per process and ``threads``: a cluster worker's tasks share
    them), its ``state`` (:func:`bench.environment.machine_state`, taken now when not given) as the
    ``*_start`` columns, ``threads`` and ``seed``."""
    return {**run_metadata(run_id), **dict(_peaks(root, threads)),
            **state_columns(state or machine_state(), "start"), "threads": threads, "seed": seed}


@contextlib.contextmanager
def live_workers(slots: list[Slot], job: dict, threads: int):
    """Start a :class:`Worker` for every slot (pinned by :func:`worker_cpus`, this process on the
    other CPUs) and yield ``(workers, worker_cpus column)``; on leaving, every worker is closed, or
    killed when the block raised (Ctrl-C, SIGTERM, a failure): no worker outlives its run."""
    cpus, mine = worker_cpus(threads)
    before = os.sched_getaffinity(0) if mine else None
    with tempfile.TemporaryDirectory(prefix="rnn-bench-") as tmp:
        workers = []
        previous = stop_on_sigterm()
        if mine:
            os.sched_setaffinity(0, mine)
        try:
            workers += [Worker(slot, job, Path(tmp), threads, cpus) for slot in slots]
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


def prepare_and_time(case: Case, workers: list, done: dict, rng: random.Random) -> dict:
    """Prepare ``case`` on every worker that still has it to do, then time it in bursts;
    ``{(side label, backend): [ProcessResult per process]}``."""
    results: dict = {}
    planned = {}
    for w in workers:
        if (case.id, w.slot.backend) in done[w.slot.side.label]:
            continue
        try:
            answer = w.ask({"cmd": "prepare", "case": case.id})
            result = ProcessResult(answer["row"])
            planned[w] = (result, answer["rounds"])
        except WorkerDied as exc:
            result = ProcessResult({"case_id": case.id, "backend": w.slot.backend, **case.fields(),
                                    "status": "error", "reason": str(exc)})
        results.setdefault((w.slot.side.label, w.slot.backend), []).append(result)
    timed = [w for w, (_, rounds) in planned.items() if rounds > 0]
    bursts = min([BURSTS, *(planned[w][1] for w in timed)]) if timed else 0
    meter = CpuMeter(timed)
    for b in range(bursts):
        for w in burst_order(timed, rng):
            result, total = planned[w]
            if result.row.get("status") != "ok":  # its worker died in an earlier burst
                continue
            try:
                times, rss = w.time(total // bursts + (1 if b < total % bursts else 0))
            except WorkerDied as exc:
                result.row = {**result.row, "status": "error", "reason": str(exc)}
                continue
            result.times += times
            if rss != "":
                result.peak_rss_bytes = max(int(rss), int(result.peak_rss_bytes or 0))
    others = meter.others() if timed else 0.0
    for w in timed:
        planned[w][0].other_cores = others
    return results


def time_case(case: Case, workers: list, done: dict, rng: random.Random, metadata: dict,
              order: list) -> tuple[list, str]:
    """Time ``case`` on the live ``workers`` (:func:`prepare_and_time`) and aggregate each benchmark;
    returns ``([(side label, row, rounds, process medians)], progress summary)`` in ``order`` (of
    ``(side label, backend)``).  Each row carries ``metadata``, its place against the peaks and
    its ``started``/``finished`` times.  The local run and a cluster task both time through here."""
    from .roofline import place

    started = utc_now()
    results = prepare_and_time(case, workers, done, rng)
    finished = utc_now()
    measured = []
    for key in (k for k in order if k in results):
        row, rounds, medians = aggregate(case, key[1], results[key])
        row = {**row, **metadata, "started": started, "finished": finished}
        row.update(place(row, metadata))
        measured.append((key[0], row, rounds, medians))
    summary = ", ".join(f"{label + ' ' if label else ''}{backend} {_short(results[(label, backend)], case.timesteps)}"
                        for label, backend in order if (label, backend) in results)
    return measured, summary


@dataclasses.dataclass
class Sweep:
    """A timed run: the cases, the backends, the sides, where each side's rows go, how to run."""

    options: RunOptions
    cases: list[Case]
    backends: list[str]
    sides: list[Side]
    outputs: dict  # side label -> output path
    run_id: str
    seed: int
    existing: dict = dataclasses.field(default_factory=dict)  # side label -> rows already done (resume)
    extra_backends: dict = dataclasses.field(default_factory=dict)  # register_backend()s: name -> "module:attr"

    def job(self, threads: int) -> dict:
        """What every worker of this run is told (:mod:`bench.worker`), less its backend."""
        return {"grid": self.options.grid, "passes": self.options.passes, "threads": threads,
                "extra_backends": self.extra_backends,
                "policy": dataclasses.asdict(self.options.policy(self.options.grid))}

    def order(self) -> list:
        """``(side label, backend)`` in the order rows are written: the backends as asked for."""
        return [(s.label, b) for s in self.sides for b in self.backends]

    def todo(self) -> tuple[dict, list[Case]]:
        """``({side label: {(case id, backend) done}}, the cases with a benchmark still to do)``."""
        done = {s.label: {(r["case_id"], r["backend"]) for r in self.existing.get(s.label, [])} for s in self.sides}
        cases = [c for c in self.cases if any((c.id, b) not in done[s.label] for s in self.sides for b in self.backends)]
        return done, cases

    def run_columns(self) -> dict:
        """Columns of this run on every row: ``grid`` and ``shard``."""
        return {"grid": self.options.grid or "", "shard": self.options.shard or ""}

    def run(self, progress=print, step=None) -> dict:
        """Run every case on live workers, write every row as soon as its case is done; returns
        ``{side label: [rows]}``.

        All workers of the run (``processes`` per backend and side) are started at once and wait,
        idle, for requests.  Case by case, each prepares it in turn (no two warm-ups compete),
        then their bursts alternate (:func:`burst_order`).  ``progress(line)`` is told what
        happens; ``step(cases done, cases to do)``, when given, before the first case and after
        each (for a progress bar).  KeyboardInterrupt propagates after the files hold every completed row.  With
        ``options.dask``, the cases run on that cluster instead (:func:`bench.cluster.run_on_cluster`).
        """
        if self.options.dask:
            from .cluster import run_on_cluster

            return run_on_cluster(self, progress)
        threads, processes = self.options.counts()
        state = machine_state()
        warning = busy_warning(state)
        if warning:
            progress(warning)
        if "numba" in self.backends:
            plan_note(progress)
        metadata = {**machine_metadata(self.run_id, self.sides[0].root, threads, self.seed, state),
                    **self.run_columns()}
        outputs = {s.label: Output(Path(self.outputs[s.label]), metadata, self.existing.get(s.label)) for s in self.sides}
        done, cases = self.todo()
        rng = random.Random(self.seed)
        with live_workers(schedule(self.sides, self.backends, processes, self.seed), self.job(threads),
                          threads) as (workers, cpus):
            metadata["worker_cpus"] = cpus
            if step is not None:
                step(0, len(cases))
            for n, case in enumerate(cases, 1):
                measured, summary = time_case(case, workers, done, rng, metadata, self.order())
                for label, row, rounds, medians in measured:
                    outputs[label].add(row, rounds, medians)
                progress(f"[{n}/{len(cases)}] {case.id}: {summary}")
                if step is not None:
                    step(n, len(cases))
        end = state_columns(machine_state(), "end")
        for out in outputs.values():
            out.finish(end)
        return {label: out.file.rows for label, out in outputs.items()}


def plan_note(progress) -> None:
    """Tell ``progress`` which tuned plan plain ``numba`` follows in this run's workers, or why a
    plan file there is not used (:mod:`kernels.numba.plan`; the workers' own warnings go to their
    stderr).  Neither numba nor torch is imported for it."""
    import warnings

    from kernels.numba import plan as plans
    from kernels.numba.backend import NumbaBackend

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", plans.PlanWarning)
        plan = plans.current(NumbaBackend.variants())
    for w in caught:
        progress(f"warning: {w.message}")
    if plan is not None:
        progress(f"numba follows the plan {plan.label}")


def _short(results: list, timesteps: int) -> str:
    """A progress word for one benchmark: its median per timestep in microseconds (as the final
    table shows it), or its status."""
    if any(r.row.get("status") != "ok" for r in results):
        return next(r.row.get("status", "error") for r in results if r.row.get("status") != "ok")
    medians = [float(np.median(r.times)) for r in results if r.times]
    return f"{np.median(medians) / timesteps * 1e6:.3g} us/step" if medians else "no rounds"


def new_seed() -> int:
    """A seed for the interleaved order, drawn from the OS."""
    return random.SystemRandom().randrange(2**31)
