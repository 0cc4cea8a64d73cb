"""Executors: what runs a :class:`~bench.timing.sweep.Sweep` -- worker processes on this machine,
or tasks on a dask.distributed cluster -- handed to the run as a value (asv's ``Spawner``).

Both time through the same code (:func:`bench.timing.sweep.time_case` on
:func:`bench.timing.process.live_workers`) and hand each finished benchmark's
:class:`~bench.measurement.Measurement`, with the columns of the machine it ran on, to a
``sink(measurement, columns)`` as soon as it is done.

**Local** (:class:`LocalExecutor`): every worker of the run is started at once and the cases are
timed one after another.

**Dask** (:class:`DaskExecutor`, ``run --dask ADDRESS``): each benchmark -- one case on one
backend, with its ``processes`` worker processes and every side's -- is one task; the task runs
on a cluster worker the same code as a local run, from that machine's checkout, and collects that
machine's metadata, so every row names the machine it ran on.  Every task requires the worker
resource ``bench=1`` (:data:`RESOURCES`): a cluster worker started with ``--resources bench=1``
runs one benchmark at a time, so one such worker per machine means timings never overlap on a
machine.  A task whose cluster worker dies is run again elsewhere by the scheduler (up to its
``allowed-failures``); after that, or when the task itself fails, its benchmarks come back as
``error`` with the reason, and ``--resume`` runs them again.  Ctrl-C cancels the tasks not yet
finished.
"""

from __future__ import annotations

import dataclasses
import random

from ..environment import REPO, machine_state
from ..grids import Case
from ..measurement import Measurement
from .machine import busy_warning, machine_columns, plan_in_use, state_columns, worker_environment
from .process import Side, Spawner, live_workers, probe
from .sweep import Sweep, schedule, summary, time_case

#: The worker resource every dask task requires: a worker started with ``--resources bench=1``
#: runs one at a time.
RESOURCES = {"bench": 1}
#: How a user starts a cluster worker for these runs (one per machine).
WORKER_COMMAND = "dask worker {address} --nthreads 1 --resources bench=1"


@dataclasses.dataclass(frozen=True)
class LocalExecutor:
    """Times a sweep on worker processes of this machine, started by ``spawner``; ``unit`` is what
    the workers measure (``"s"``, or ``"instructions"`` under a counting spawner)."""

    spawner: Spawner = Spawner()
    unit: str = "s"

    def run(self, sweep: Sweep, sink, progress=print, step=None) -> dict:
        """Time every benchmark of ``sweep``, handing each to ``sink(measurement, columns)`` as soon
        as its case is done; returns the columns of the machine's state at the end, for every row.
        ``progress(line)`` is told what happens; ``step(cases done, cases to do)``, when given,
        before the first case and after each.  KeyboardInterrupt propagates after every finished
        benchmark was handed on."""
        cases = self.cases(sweep, progress)
        total = len(sweep.todo())
        if step is not None:
            step(0, total)
        n = 0
        while True:
            try:
                case, measured, columns = next(cases)
            except StopIteration as done:
                return done.value
            n += 1
            for m in measured:
                sink(m, columns)
            progress(f"[{n}/{total}] {case.id}: {summary(measured, case.timesteps)}")
            if step is not None:
                step(n, total)

    def cases(self, sweep: Sweep, progress=print):
        """A generator of ``(case, its Measurements, the columns of this machine)`` per case to time,
        in order, on workers started before the first and ended after the last (or when the
        generator is closed); its return value is the columns of the machine's state at the end."""
        threads, processes = sweep.options.counts()
        state = machine_state()
        if busy_warning(state):
            progress(busy_warning(state))
        env = worker_environment()
        if plan_in_use(env) and any(b == "numba" for b in sweep.backends):
            progress(f"numba follows the plan {plan_in_use(env)}")
        columns = {**machine_columns(sweep.run_id, threads, sweep.seed, state), **sweep.run_columns()}
        cannot = {}
        for root in dict.fromkeys(s.root for s in sweep.sides):  # no worker for a backend that cannot run
            cannot.update(probe(sweep.backends, root, sweep.extra_backends, {**env, **dict(self.spawner.env)}))
        runnable = [b for b in sweep.backends if b not in cannot]
        slots = schedule(sweep.sides, runnable, processes, sweep.seed)
        rng = random.Random(sweep.seed)
        with live_workers(slots, sweep.job(threads), threads, self.spawner, env) as (workers, cpus):
            columns["worker_cpus"] = cpus
            for case in sweep.todo():
                yield case, time_case(sweep, case, workers, rng, self.unit, cannot), columns
        return state_columns(machine_state(), "end")


def connect(address: str, timeout: str = "10s"):
    """A ``distributed.Client`` of the cluster at ``address`` that has a worker offering
    :data:`RESOURCES`.

    Raises:
        ValueError: dask.distributed is not installed, the cluster cannot be reached, or none of its
            workers offers the resource (the message says how to start one); names ``--dask``.
    """
    try:
        from distributed import Client
    except ImportError:
        raise ValueError("--dask: needs dask.distributed: pip install 'rnn-cell-bench[dask]'") from None
    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"--dask: cannot reach a dask scheduler at {address}: {exc}") from None
    workers = client.scheduler_info().get("workers", {}).values()
    if not any(w.get("resources", {}).get(name, 0) >= need for w in workers for name, need in RESOURCES.items()):
        client.close()
        raise ValueError(f"--dask: no worker of the cluster at {address} offers the resource bench=1 "
                         f"({len(workers)} workers); start one per machine with `{WORKER_COMMAND.format(address=address)}`")
    return client


def bench_task(sweep: Sweep, case: Case, backend: str, shared: dict) -> dict:
    """Time ``backend`` on ``case`` for every side of ``sweep`` that wants it, on this cluster
    worker: the task of one benchmark.  ``shared``: columns the client sets on every row.

    Returns:
        ``{"measured": [(Measurement, columns)], "summary": progress text}``; the columns hold this
        machine's metadata, its state at the task's start and end, and ``dask_worker``.
    """
    from distributed import get_worker

    try:
        address = get_worker().address
    except ValueError:  # not inside a worker (called directly)
        address = ""
    threads, processes = sweep.options.counts()
    local = dataclasses.replace(sweep, backends=[backend], sides=[Side(s.label, REPO, s.env) for s in sweep.sides])
    columns = {**machine_columns(sweep.run_id, threads, sweep.seed), **shared, "dask_worker": address}
    rng = random.Random(f"{sweep.seed}:{case.id}:{backend}")  # the bursts' order, reproducible per task
    slots = schedule(local.sides, [backend], processes, sweep.seed)
    with live_workers(slots, sweep.job(threads), threads, env=worker_environment()) as (workers, cpus):
        columns["worker_cpus"] = cpus
        measured = time_case(local, case, workers, rng)
    columns.update(state_columns(machine_state(), "end"))
    return {"measured": [(m, columns) for m in measured], "summary": summary(measured, case.timesteps)}


def failed(sweep: Sweep, case: Case, backend: str, label: str, reason: str) -> Measurement:
    """The Measurement of a benchmark whose task failed or whose workers kept dying: ``error``,
    the reason, no machine's metadata (none finished it)."""
    threads, processes = sweep.options.counts()
    fields = {"case_id": case.id, "backend": backend, **case.fields(), "status": "error", "reason": reason,
              "threads": threads, "processes": processes}
    return Measurement(fields, side=label)


@dataclasses.dataclass(frozen=True)
class DaskExecutor:
    """Times a sweep as tasks on the dask.distributed cluster at ``address`` (one per benchmark)."""

    address: str

    def run(self, sweep: Sweep, sink, progress=print, step=None) -> dict:
        """As :meth:`LocalExecutor.run`, benchmarks handed on as their tasks finish; returns {} (each
        task's columns hold its machine's state at its end).

        Raises:
            ValueError: from :func:`connect`.
        """
        from distributed import as_completed

        from ..environment import run_metadata

        here = run_metadata(sweep.run_id)
        shared = {"timestamp": here["timestamp"], **sweep.run_columns()}
        client = connect(self.address)
        tasks: dict = {}
        try:
            for case in sweep.todo():
                for backend in sweep.backends:
                    labels = [s.label for s in sweep.sides if sweep.wanted(case, s.label, backend)]
                    if labels:
                        future = client.submit(bench_task, sweep, case, backend, shared, resources=RESOURCES, pure=False,
                                               key=f"bench-{sweep.run_id}-{case.id}-{backend}")
                        tasks[future] = (case, backend, labels)
            progress(f"dask: {len(tasks)} benchmarks as tasks on {self.address} "
                     f"({len(client.scheduler_info().get('workers', {}))} workers)")
            commits = {here["git_commit"]}
            for n, future in enumerate(as_completed(tasks), 1):
                case, backend, labels = tasks.pop(future)
                try:
                    answer = future.result()
                    measured, text = answer["measured"], answer["summary"]
                except Exception as exc:  # noqa: BLE001  (KilledWorker after the retries, or the task failed)
                    reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]  # one line: a CSV cell
                    run = {**shared, "seed": sweep.seed, **{k: here[k] for k in ("run_id", "schema_version")}}
                    measured = [(failed(sweep, case, backend, label, reason), run) for label in labels]
                    text = f"error ({reason})"
                for m, columns in measured:
                    sink(m, columns)
                    commit = m.fields.get("git_commit")
                    if commit and commit not in commits:
                        commits.add(commit)
                        progress(f"warning: {columns.get('hostname')} ({columns.get('dask_worker')}) runs commit "
                                 f"{commit[:12]}, this checkout {here['git_commit'][:12] or 'none'}")
                where = next((c.get("machine_id") for _, c in measured if c.get("machine_id")), "")
                progress(f"[{n}/{n + len(tasks)}] {case.id} {backend}: {text}" + (f" on {where}" if where else ""))
        except BaseException:
            client.cancel(list(tasks))
            raise
        finally:
            client.close()
        return {}
