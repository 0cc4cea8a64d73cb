"""``python -m bench tune``: measure which numba variant is fastest at each size here, and write
this machine's plan (:mod:`kernels.numba.plan`), which plain ``numba`` then follows.

A tune is a sweep (:class:`bench.runner.Sweep`) whose backends are the numba variants: every
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
from pathlib import Path

from .grids import Case
from .options import RunOptions
from .results import atomic_write_text

#: Worker processes per variant unless --processes says otherwise: a tune times many variants,
#: and the plan keeps every candidate's time so that close calls show.
TUNE_PROCESSES = 1
#: Total seconds of timed rounds a tune aims at unless --budget says otherwise.
TUNE_BUDGET = 1800.0


def tune_backends() -> list[str]:
    """The numba variants a tune times: ``parallel`` (no BLAS), then each strategy that calls a
    BLAS on each route of :data:`kernels.numba.blas.ROUTE_NAMES` (the plain ``blas``/``fused`` are the
    default route's, so they are not repeated).  Nothing is imported for it but the names."""
    from kernels.numba.blas import ROUTE_NAMES
    from kernels.numba.backend import ROUTED, STRATEGIES

    unrouted = [s for s in STRATEGIES if s not in ROUTED]
    return [f"numba:{s}" for s in unrouted] + [f"numba:{s}@{r}" for s in ROUTED for r in ROUTE_NAMES]


def tune_options(options: RunOptions, cases: int, variants: int, budget: float) -> RunOptions:
    """``options`` with ``max_time`` and ``budget`` per benchmark from a total ``budget`` in seconds
    of timed rounds: each of the ``cases`` x ``variants`` x processes benchmarks gets an equal
    share as its cap (:class:`bench.measure.TimingPolicy`'s budget) and aims at half of it
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
    from kernels.numba.plan import FORMAT, VERSION

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
    ``<repo>/results/<machine>/plan.json`` (where runs look for it)."""
    import os

    from kernels.numba.plan import PLAN_ENV, REPO

    given = os.environ.get(PLAN_ENV, "").strip()
    if given and given.lower() != "off":
        return Path(given)
    return REPO / "results" / machine / "plan.json"


def rule_variant(case: Case, routes_here: list[str]) -> str:
    """What plain ``numba`` runs at ``case`` without a plan: the rule's strategy, on the first
    route of :data:`kernels.numba.blas.ROUTE_NAMES` present in ``routes_here`` for a strategy that calls
    a BLAS."""
    from kernels.numba.backend import ROUTED, choose_strategy

    strategy = choose_strategy(case.spec, case.batch)
    return f"{strategy}@{routes_here[0]}" if strategy in ROUTED and routes_here else strategy


def summary(plan: dict, cases: list[Case], rows: list[dict]) -> list[str]:
    """One line per entry: the plan's variant and time, and the rule's choice with its ratio."""
    from kernels.numba.blas import ROUTE_NAMES

    timed = {r["backend"].partition("@")[2] for r in rows if r.get("status") == "ok" and "@" in r["backend"]}
    routes_here = [r for r in ROUTE_NAMES if r in timed]
    by_key = {(e["mode"], e["dtype"], e["pass"], e["timesteps"], e["batch"], e["hidden_size"]): e
              for e in plan["entries"]}
    lines, differ = [], 0
    for case in cases:
        key = (case.spec.mode, case.spec.dtype, "forward", case.timesteps, case.batch, case.spec.hidden_size)
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
    return lines


def tune(options: RunOptions, cases: list[Case], budget: float, out: Path | None, run_id: str, seed: int,
         progress=print) -> tuple[Path, dict]:
    """Run the tune sweep and write the plan (unless it has no entry); returns ``(plan path,
    plan)``.  The sweep's result file is ``tune-<run_id>.csv`` next to the plan."""
    from .environment import machine_id
    from .runner import REPO, Side, Sweep

    backends = tune_backends()
    options = tune_options(options, len(cases), len(backends), budget)
    path = Path(out) if out else default_plan_path(machine_id())
    csv_path = path.parent / f"tune-{run_id}.csv"
    sweep = Sweep(options, cases, backends, [Side("", REPO)], {"": csv_path}, run_id, seed)
    threads, processes = options.counts()
    progress(f"tune: {len(cases)} cases x {len(backends)} variants, {processes} worker process(es) each, "
             f"{threads} thread(s), about {options.max_time:.3g} s of rounds per benchmark, seed {seed}")
    rows = sweep.run(progress=progress)[""]
    missing = sorted({f"{r['backend']}: {r['reason']}" for r in rows if r.get("status") == "unavailable"})
    for line in missing:
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
    from kernels.numba.plan import REPO

    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)
