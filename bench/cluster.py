"""Timed runs on a dask.distributed cluster: ``python -m bench run --dask ADDRESS``.

Each benchmark -- one case on one backend, with its ``processes`` worker
processes (and, with several sides, every side's) -- is one task.  The task
runs on a cluster worker the same code as a local run
(:func:`bench.runner.live_workers` and :func:`bench.runner.time_case`): it
starts the same ``python -m bench worker`` processes there, from that
machine's checkout, and collects that machine's metadata, so every row names
the machine it ran on.  Every task requires the worker resource ``bench=1``
(:data:`RESOURCES`): a cluster worker started with ``--resources bench=1``
runs one benchmark at a time, so one such worker per machine means timings
never overlap on a machine.

The client writes each row to the run's CSV and sidecar as its task finishes
(``as_completed``).  A task whose cluster worker dies is run again elsewhere
by the scheduler (up to its ``allowed-failures``, 3 by default); after that,
or when the task itself fails, its rows are written with status ``error``
and the reason, and ``--resume`` runs them again.  Ctrl-C cancels the tasks
not yet finished; the files keep every row finished.
"""

from __future__ import annotations

import random

from .runner import (REPO, Output, Side, Sweep, live_workers, machine_metadata, schedule, state_columns, time_case)

#: The worker resource every task requires: a worker started with ``--resources bench=1`` runs one at a time.
RESOURCES = {"bench": 1}
#: How a user starts a cluster worker for these runs (one per machine).
WORKER_COMMAND = "dask worker {address} --nthreads 1 --resources bench=1"


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


def bench_task(case, backend: str, sides: list, job: dict, threads: int, processes: int, run_id: str, seed: int,
               shared: dict) -> dict:
    """Time ``case`` on ``backend`` on this cluster worker: the task of one benchmark.

    Args:
        sides: ``[(side label, environment pairs)]`` to run; their workers run this machine's checkout.
        job: :meth:`bench.runner.Sweep.job`; ``shared``: columns the client sets on every row
            (``timestamp``, ``grid``, ``shard``).

    Returns:
        ``{"rows": [(side label, row, rounds, process medians)], "summary": progress text}``; each
        row carries this machine's metadata and its state at the task's start and end, and
        ``dask_worker``, this worker's address.
    """
    from distributed import get_worker

    try:
        address = get_worker().address
    except ValueError:  # not inside a worker (called directly)
        address = ""
    metadata = {**machine_metadata(run_id, REPO, threads, seed), **shared, "dask_worker": address}
    sides = [Side(label, REPO, tuple(env)) for label, env in sides]
    order = [(s.label, backend) for s in sides]
    rng = random.Random(f"{seed}:{case.id}:{backend}")  # the bursts' order, reproducible per task
    with live_workers(schedule(sides, [backend], processes, seed), job, threads) as (workers, cpus):
        metadata["worker_cpus"] = cpus
        measured, summary = time_case(case, workers, {s.label: set() for s in sides}, rng, metadata, order)
    from .environment import machine_state

    end = state_columns(machine_state(), "end")
    return {"rows": [(label, {**row, **end}, rounds, medians) for label, row, rounds, medians in measured],
            "summary": summary}


def error_row(case, backend: str, reason: str, shared: dict, threads: int, processes: int, run: dict) -> dict:
    """The row of a benchmark whose task failed or whose workers kept dying: status ``error``,
    the reason, the run's columns; no machine's metadata (none finished it)."""
    return {"case_id": case.id, "backend": backend, **case.fields(), "status": "error", "reason": reason,
            "threads": threads, "processes": processes, **shared,
            **{k: run[k] for k in ("run_id", "schema_version", "seed")}}


def run_on_cluster(sweep: Sweep, progress=print) -> dict:
    """Run ``sweep`` as tasks on the cluster at ``sweep.options.dask``; returns ``{side label: [rows]}``.

    Rows are written as their tasks finish, in that order.  KeyboardInterrupt cancels the tasks
    not finished and propagates after the files hold every row done.

    Raises:
        ValueError: from :func:`connect`.
    """
    from distributed import as_completed

    from .environment import run_metadata

    address = sweep.options.dask
    threads, processes = sweep.options.counts()
    here = {**run_metadata(sweep.run_id), "threads": threads, "seed": sweep.seed, "dask": address}
    shared = {"timestamp": here["timestamp"], **sweep.run_columns()}
    run_info = {k: here[k] for k in ("run_id", "schema_version", "threads", "seed", "dask", "pytest_benchmark_version")}
    outputs = {s.label: Output(sweep.outputs[s.label], {**run_info, **shared}, sweep.existing.get(s.label))
               for s in sweep.sides}  # the sidecar's machine_info names no machine: each row names its own
    done, cases = sweep.todo()
    job = sweep.job(threads)
    client = connect(address)
    tasks: dict = {}
    try:
        for case in cases:
            for backend in sweep.backends:
                sides = [(s.label, s.env) for s in sweep.sides if (case.id, backend) not in done[s.label]]
                if sides:
                    future = client.submit(bench_task, case, backend, sides, job, threads, processes, sweep.run_id,
                                           sweep.seed, shared, resources=RESOURCES, pure=False,
                                           key=f"bench-{sweep.run_id}-{case.id}-{backend}")
                    tasks[future] = (case, backend, sides)
        workers = client.scheduler_info().get("workers", {})
        progress(f"dask: {len(tasks)} benchmarks as tasks on {address} ({len(workers)} workers)")
        commits = {here["git_commit"]}
        for n, future in enumerate(as_completed(tasks), 1):
            case, backend, sides = tasks.pop(future)
            try:
                answer = future.result()
                rows, summary = answer["rows"], answer["summary"]
            except Exception as exc:  # noqa: BLE001  (KilledWorker after the retries, or the task failed)
                reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:500]  # one line: a CSV cell
                rows = [(label, error_row(case, backend, reason, shared, threads, processes, here), [], [])
                        for label, _ in sides]
                summary = f"error ({reason})"
            for label, row, rounds, medians in rows:
                outputs[label].add(row, rounds, medians)
                if row.get("git_commit") and row["git_commit"] not in commits:
                    commits.add(row["git_commit"])
                    progress(f"warning: {row.get('hostname')} ({row.get('dask_worker')}) runs commit "
                             f"{row['git_commit'][:12]}, this checkout {here['git_commit'][:12] or 'none'}")
            where = next((r.get("machine_id") for _, r, _, _ in rows if r.get("machine_id")), "")
            progress(f"[{n}/{n + len(tasks)}] {case.id} {backend}: {summary}" + (f" on {where}" if where else ""))
    except BaseException:
        client.cancel(list(tasks))
        raise
    finally:
        client.close()
    return {label: out.file.rows for label, out in outputs.items()}
