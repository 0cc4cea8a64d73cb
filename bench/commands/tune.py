"""``python -m bench tune``: measure which numba variant is fastest at each size here, and write
this machine's plan (:mod:`kernels.numba.plan`), which plain ``numba`` then follows.

A tune is a sweep (:class:`bench.timing.sweep.Sweep`) whose backends are the numba variants: every
strategy on every BLAS route (``numba:parallel``, ``numba:blas@mkl``, ``numba:fused@openblas``,
...), each timed in worker processes of its own on the sizes of a grid, interleaved as any run.
Variants unavailable here (a route absent or dropped by its check) come back ``unavailable`` and
are left out.  For each case the fastest variant among those timed ``ok`` and within tolerance
becomes the plan's entry, with every candidate's time beside it; the sweep's own result file
stays next to the plan as its evidence.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path

from kernels.numba import ROUTED, STRATEGIES, blas, choose_strategy
from kernels.numba.backend import recurrent_tiles, rule_route_order
from kernels.numba.blas import ROUTE_NAMES
from kernels.numba.plan import FORMAT, PLAN_ENV, VERSION

from ..environment import REPO, machine_id, new_run_id
from ..grids import Case, get_grid, select
from ..results.files import atomic_write_text
from ..results.paths import plan_path
from ..runner import Resolved, new_seed, run_to_files, sweep_of
from ..timing.executors import LocalExecutor
from ..timing.options import RunOptions
from ..timing.process import Side
from .base import FOUND, OK, Command, add_grid, add_where, fail

#: Worker processes per variant unless --processes says otherwise: a tune times many variants,
#: and the plan keeps every candidate's time so that close calls show.
TUNE_PROCESSES = 1
#: Total seconds of timed rounds a tune aims at unless --budget says otherwise.
TUNE_BUDGET = 1800.0


def tune_backends() -> list[str]:
    """The numba variants a tune times: ``parallel`` (no BLAS), then each strategy that calls a
    BLAS on each route of :data:`kernels.numba.blas.ROUTE_NAMES` (the plain ``blas``/``fused`` are the
    default route's, so they are not repeated).  Nothing is imported for it but the names."""
    unrouted = [s for s in STRATEGIES if s not in ROUTED]
    return [f"numba:{s}" for s in unrouted] + [f"numba:{s}@{r}" for s in ROUTED for r in ROUTE_NAMES]


def tune_options(options: RunOptions, cases: int, variants: int, budget: float) -> RunOptions:
    """``options`` with ``max_time`` and ``budget`` per benchmark from a total ``budget`` in seconds
    of timed rounds: each of the ``cases`` x ``variants`` x processes benchmarks gets an equal
    share as its cap (:class:`bench.timing.policy.TimingPolicy`'s budget) and aims at half of it
    (preparation, the accuracy check and the warm-up come on top).

    Raises:
        ValueError: a non-positive ``budget``.
    """
    if not budget > 0:
        raise ValueError(f"--budget: expected a positive number of seconds, got {budget}")
    _, processes = options.counts()
    share = budget / max(1, cases * variants * processes)
    return dataclasses.replace(options, max_time=max(share / 2, 1e-3), budget=max(share, 2e-3))


def entry_key(row: dict) -> tuple:
    return (row["mode"], row["dtype"], row.get("pass") or "forward", int(row["timesteps"]), int(row["batch"]),
            int(row["hidden_size"]))


def build_plan(rows: list[dict], meta: dict) -> dict:
    """The plan document (:mod:`kernels.numba.plan`'s format) from a tune's result rows.

    Per case (mode, dtype, pass, T, B, H): the variant with the smallest ``median_s`` among the
    rows of status ``ok``; ``candidates`` holds every such variant's ``median_s``.  A case with
    no row ``ok`` gets no entry.  ``meta`` gives ``machine_id`` and the record fields
    (``git_commit``, ``grid``, ``threads``, ``processes``, ``source``)."""
    by_case: dict = {}
    for row in rows:
        if row.get("status") != "ok" or not str(row.get("backend", "")).startswith("numba:"):
            continue
        variant = row["backend"].partition(":")[2]
        by_case.setdefault(entry_key(row), {})[variant] = float(row["median_s"])
    entries = []
    for (mode, dtype, pass_, steps, batch, hidden), candidates in by_case.items():
        best = min(candidates, key=candidates.get)
        entries.append({"mode": mode, "dtype": dtype, "pass": pass_, "timesteps": steps, "batch": batch,
                        "hidden_size": hidden, "variant": best, "median_s": candidates[best],
                        "candidates": dict(sorted(candidates.items(), key=lambda kv: kv[1]))})
    return {"format": FORMAT, "version": VERSION, "machine_id": meta["machine_id"],
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            **{k: meta.get(k, "") for k in ("git_commit", "grid", "threads", "processes", "source")},
            "entries": entries}


def default_plan_path(machine: str) -> Path:
    """Where a tune writes its plan: ``$RNN_BENCH_PLAN`` when it names a file, else
    ``<results>/<machine>/plan.json`` (where runs look for it)."""
    given = os.environ.get(PLAN_ENV, "").strip()
    if given and given.lower() != "off":
        return Path(given)
    return plan_path(machine)


def rule_variant(case: Case, routes_here: list[str]) -> str:
    """What plain ``numba`` runs at ``case`` without a plan: the rule's strategy, on the first route
    of ``routes_here`` in the rule's order (:func:`kernels.numba.backend.rule_route_order`) for a
    strategy that calls a BLAS."""
    route = next((name for name in rule_route_order() + tuple(routes_here) if name in routes_here), None)
    found = blas.route(route) if route else None
    tiles = found is not None and recurrent_tiles(found, case.spec, case.batch) is not None
    strategy = choose_strategy(case.spec, case.batch, case.timesteps, case.pass_, tiles)
    return f"{strategy}@{route}" if strategy in ROUTED and route else strategy


def summary(plan: dict, cases: list[Case], rows: list[dict]) -> list[str]:
    """One line per entry: the plan's variant and time, and the rule's choice with its ratio."""
    timed = {r["backend"].partition("@")[2] for r in rows if r.get("status") == "ok" and "@" in r["backend"]}
    routes_here = [r for r in ROUTE_NAMES if r in timed]
    by_key = {(e["mode"], e["dtype"], e["pass"], e["timesteps"], e["batch"], e["hidden_size"]): e
              for e in plan["entries"]}
    lines, differ = [], 0
    for case in cases:
        key = (case.spec.mode, case.spec.dtype, case.pass_, case.timesteps, case.batch, case.spec.hidden_size)
        entry = by_key.get(key)
        if entry is None:
            lines.append(f"{case.id}: no variant timed ok")
            continue
        rule = rule_variant(case, routes_here)
        rule_s = entry["candidates"].get(rule)
        ratio = f"{rule_s / entry['median_s']:.2f}x" if rule_s else "not timed"
        differ += rule != entry["variant"]
        lines.append(f"{case.id}: {entry['variant']} {entry['median_s'] * 1e6:.3g} us (rule: {rule}, {ratio})")
    lines.append(f"the plan differs from the rule in {differ} of {len(plan['entries'])} entries")
    per_pass = {}
    for e in plan["entries"]:
        per_pass[e["pass"]] = per_pass.get(e["pass"], 0) + 1
    lines.append("written: " + ", ".join(f"{n} {p} entries" for p, n in per_pass.items()))
    return lines


def tune(options: RunOptions, cases: list[Case], budget: float, out: Path | None, run_id: str, seed: int,
         progress=print) -> tuple[Path, dict]:
    """Run the tune sweep and write the plan (unless it has no entry); returns ``(plan path,
    plan)``.  The sweep's result file is ``tune-<run_id>.csv`` next to the plan."""
    backends = tune_backends()
    options = tune_options(options, len(cases), len(backends), budget)
    path = Path(out) if out else default_plan_path(machine_id())
    csv_path = path.parent / f"tune-{run_id}.csv"
    options = dataclasses.replace(options, seed=seed)
    sweep = sweep_of(Resolved(options, cases, backends, []), [Side("", REPO)], "tune", run_id)
    threads, processes = options.counts()
    progress(f"tune: {len(cases)} cases x {len(backends)} variants, {processes} worker process(es) each, "
             f"{threads} thread(s), about {options.max_time:.3g} s of rounds per benchmark, seed {seed}")
    rows = run_to_files(sweep, {"": csv_path}, LocalExecutor(), progress)[""]
    for line in sorted({f"{r['backend']}: {r['reason']}" for r in rows if r.get("status") == "unavailable"}):
        progress(f"not tuned: {line}")
    meta = {"machine_id": rows[0]["machine_id"] if rows else machine_id(), "git_commit": rows[0].get("git_commit", "")
            if rows else "", "grid": options.grid, "threads": threads, "processes": processes,
            "source": _display(csv_path)}
    plan = build_plan(rows, meta)
    if not plan["entries"]:  # an existing plan is not replaced by an empty one
        progress(f"no variant was timed ok: {path} not written")
        return path, plan
    atomic_write_text(path, json.dumps(plan, indent=1) + "\n")
    for line in summary(plan, cases, rows):
        progress(line)
    return path, plan


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


class Tune(Command):
    name = "tune"
    help = "time every numba strategy x BLAS route on a grid's sizes; write this machine's plan"
    description = ("Time every numba variant (strategy x BLAS route) on the sizes of a grid, each in worker processes "
                   "of its own, and write the fastest per size and pass to this machine's plan "
                   "(<results>/<machine_id>/plan.json, or $RNN_BENCH_PLAN, or --out), which plain `numba` then follows. "
                   "Exit 0: a plan written; 1: nothing timed ok; 2: bad input.")

    def add_arguments(self, parser):
        add_grid(parser, "default", "named grid whose sizes are tuned")
        parser.add_argument("--budget", type=float, help=f"seconds of timed rounds in all, shared equally by every "
                                                         f"benchmark (default {TUNE_BUDGET:g}; preparation and "
                                                         "compilation come on top)")
        add_where(parser)
        parser.add_argument("--passes", help="comma-separated passes to tune (default: the grid's)")
        parser.add_argument("--threads", type=int, help="threads of every pool in each worker (default 1); recorded")
        parser.add_argument("--processes", type=int, help="worker processes per variant (default 1)")
        parser.add_argument("--seed", type=int, help="seed of the interleaved order")
        parser.add_argument("--out", help="plan file to write (default: $RNN_BENCH_PLAN, else "
                                          "<results>/<machine_id>/plan.json)")

    def run(self, args) -> int:
        options = RunOptions(grid=args.grid, threads=args.threads, seed=args.seed, passes=args.passes,
                             processes=TUNE_PROCESSES if args.processes is None else args.processes)
        try:
            options.counts()
            cases = select(get_grid(args.grid, args.passes), args.where)
            budget = TUNE_BUDGET if args.budget is None else args.budget
            if not budget > 0:
                raise ValueError(f"--budget: expected a positive number of seconds, got {budget}")
        except ValueError as exc:
            return fail(exc)
        if not cases:
            return fail(f"--where: no case of grid {args.grid} matches {' '.join(args.where)}")
        if args.out and not str(args.out).endswith(".json"):
            return fail(f"--out: expected a path to a .json plan file, got {args.out}")
        seed = new_seed() if args.seed is None else args.seed
        path, plan = tune(options, cases, budget, args.out, new_run_id(), seed,
                          progress=lambda line: print(line, flush=True))
        print(f"plan: {path} ({len(plan['entries'])} entries, machine {plan['machine_id']})")
        return OK if plan["entries"] else FOUND


COMMAND = Tune()
