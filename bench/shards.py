"""Grids split over any scheduler: ``run --shard K/N`` and ``merge``.

:func:`shard` picks the K-th of N parts of a grid's cases, the same on every
run and machine, balanced by an estimate of each case's cost; a CI matrix or
a batch system's array job runs one part per job, and :func:`merge` joins
the parts' result files (CSV and sidecar) into one, refusing parts that do
not belong together.
"""

from __future__ import annotations

import json
from pathlib import Path

from .grids import Case
from .measure import TimingPolicy
from .results import read_results, sidecar_path, write_results, atomic_write_text

#: A nominal rate for estimating a call's seconds from its FLOPs when balancing shards (a
#: single core's order of magnitude); it only weighs cases against each other and is never reported.
NOMINAL_FLOPS_PER_S = 1e10


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` (``--shard``) as ``(K, N)``.

    Raises:
        ValueError: not two integers ``K/N`` with 1 <= K <= N, naming ``--shard``.
    """
    k, sep, n = str(text).partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = 0
    if not sep or not 1 <= k <= n:
        raise ValueError(f"--shard: expected K/N with 1 <= K <= N, e.g. 2/3, got {text!r}")
    return k, n


def case_cost(case: Case) -> float:
    """Estimated seconds of timing ``case`` per backend and process, for balancing shards only:
    the default policy's ``max_time`` or its ``min_rounds`` calls, whichever is longer, a call
    taking its FLOPs (:meth:`kernels.CellSpec.flops`) at :data:`NOMINAL_FLOPS_PER_S`.  Independent
    of the run's options, so that runs with different ``--max-time`` still split a grid alike."""
    policy = TimingPolicy()
    call_s = case.spec.flops(case.timesteps, case.batch) / NOMINAL_FLOPS_PER_S
    return max(policy.max_time, policy.min_rounds * call_s)


def shard(cases: list[Case], k: int, n: int) -> list[Case]:
    """The ``k``-th of ``n`` parts of ``cases``, in the order of ``cases``.

    Greedy longest-processing-time assignment (Graham's LPT rule): the cases sorted by
    :func:`case_cost`, largest first, ties by case id, each given to the part with the least cost
    so far (ties to the lowest part).  It depends only on the cases, not on their order, the
    machine or the run, and the ``n`` parts hold every case exactly once.

    Raises:
        ValueError: ``k`` not in 1..``n``.
    """
    if not 1 <= k <= n:
        raise ValueError(f"--shard: expected K/N with 1 <= K <= N, got {k}/{n}")
    loads = [0.0] * n
    part = {}
    for case in sorted(cases, key=lambda c: (-case_cost(c), c.id)):
        i = loads.index(min(loads))
        loads[i] += case_cost(case)
        part[case.id] = i
    return [c for c in cases if part[c.id] == k - 1]


class Refused(Exception):
    """Parts that cannot be merged (exit status 2), with the reason."""


def _one(values: set, what: str, by_part: dict) -> str:
    """The single value of ``what`` over all parts, or Refused naming the parts that differ."""
    if len(values) > 1:
        raise Refused(f"parts of different {what}: " + "; ".join(f"{p}: {', '.join(sorted(v)) or '(none)'}"
                                                               for p, v in by_part.items()))
    return next(iter(values), "")


def merge(parts: list, out) -> str:
    """Join the result files ``parts`` (each CSV with its ``.json`` sidecar) into ``out`` and its
    sidecar, both written by atomic replace; returns a one-line summary.

    Rows keep their order, part after part; the sidecar's benchmarks are the parts' in the same
    order, under the first part's ``machine_info``, with ``merged_from`` listing the parts.

    Raises:
        Refused: ``out`` is not a new ``.csv`` path; a part is unreadable, or its sidecar is missing
            while it holds timed rows; the parts differ in grid, schema version, commit, or the N of
            their shards; or two parts hold the same benchmark (key of :mod:`bench.compare`).
    """
    from .compare import KEY_COLUMNS

    out = Path(out)
    paths = [Path(p) for p in parts]
    if out.suffix != ".csv":
        raise Refused(f"--out: expected a path to a .csv file, got {out}")
    if out.exists() or sidecar_path(out).exists():
        raise Refused(f"--out: {out} (or its .json) exists; merge writes a new file")
    if not paths:
        raise Refused("merge: no parts given")
    if len(set(paths)) < len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise Refused(f"overlapping rows: {twice} is given twice")
    rows, docs = {}, {}
    for p in paths:
        try:
            rows[p] = read_results(p)
        except (OSError, ValueError) as exc:
            raise Refused(str(exc)) from None
        side = sidecar_path(p)
        if side.is_file():
            try:
                docs[p] = json.loads(side.read_text())
            except (OSError, ValueError) as exc:
                raise Refused(f"{side}: unreadable JSON ({exc})") from None
        elif any(r["status"] == "ok" for r in rows[p]):
            raise Refused(f"{p}: no sidecar {side.name}; its raw samples would be lost")
    for column, what in (("schema_version", "schema versions"), ("grid", "grids"), ("git_commit", "commits")):
        by_part = {p: {r.get(column, "") for r in rs} for p, rs in rows.items() if rs}
        _one(set().union(*by_part.values()) if by_part else set(), what, by_part)
    splits = {p: {r["shard"].partition("/")[2] for r in rs if r.get("shard")} for p, rs in rows.items() if rs}
    _one(set().union(*splits.values()) if splits else set(), "splits (N of --shard K/N)", splits)
    seen: dict = {}
    for p, rs in rows.items():
        for r in rs:
            key = tuple(r.get(c, "") for c in KEY_COLUMNS)
            if key in seen:
                raise Refused(f"overlapping rows: {r['case_id']} {r['backend']} (threads {r.get('threads')}) is in "
                              f"{seen[key]} and {p}")
            seen[key] = p
    merged = [r for rs in rows.values() for r in rs]
    if docs:
        first = docs[next(iter(docs))]
        doc = {**first, "benchmarks": [b for d in docs.values() for b in d.get("benchmarks", [])]}
        info = dict((doc.get("machine_info") or {}).get("rnn_cell_bench") or {})
        doc["machine_info"] = {**(doc.get("machine_info") or {}),
                               "rnn_cell_bench": {**info, "merged_from": [str(p) for p in paths]}}
        atomic_write_text(sidecar_path(out), json.dumps(doc, default=str))
    write_results(out, merged)
    shards = sorted({r["shard"] for r in merged if r.get("shard")}, key=lambda s: int(s.partition("/")[0]))
    note = ""
    if shards:
        n = int(shards[0].partition("/")[2])
        missing = [f"{k}/{n}" for k in range(1, n + 1) if f"{k}/{n}" not in shards]
        note = f" (shards {', '.join(shards)}" + (f"; missing {', '.join(missing)}" if missing else "") + ")"
    machines = sorted({r["machine_id"] for r in merged if r.get("machine_id")})
    return (f"merged {len(merged)} rows of {len(paths)} parts{note} from {len(machines)} machine(s) "
            f"({', '.join(machines)}) into {out}")
