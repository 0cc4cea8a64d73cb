"""Join the result files of a grid's parts (``run --shard K/N`` on a CI matrix or an array job)
into one: ``python -m bench merge PARTS... --out FILE``."""

from __future__ import annotations

from pathlib import Path

from .files import csv_text, atomic_write_text, read_results
from .paths import legacy_sidecar_path, sidecar_path
from .schema import key
from .sidecar import read_sidecar, write_sidecar


class Refused(Exception):
    """Parts that cannot be merged (exit status 2), with the reason."""


def _one(values: set, what: str, by_part: dict) -> str:
    """The single value of ``what`` over all parts, or Refused naming the parts that differ."""
    if len(values) > 1:
        raise Refused(f"parts of different {what}: " + "; ".join(f"{p}: {', '.join(sorted(v)) or '(none)'}"
                                                               for p, v in by_part.items()))
    return next(iter(values), "")


def _read(paths: list[Path]) -> tuple[dict, dict]:
    """``({part: rows}, {part: (machine_info, entries)})``; Refused for a part that cannot be read
    or whose timed rows have no samples."""
    rows, samples = {}, {}
    for p in paths:
        try:
            rows[p] = read_results(p)
            found = read_sidecar(p)
        except (OSError, ValueError) as exc:
            raise Refused(f"{p}: {exc}" if str(p) not in str(exc) else str(exc)) from None
        if found:
            samples[p] = found
        elif any(r["status"] == "ok" for r in rows[p]):
            raise Refused(f"{p}: no sidecar {sidecar_path(p).name}; its raw samples would be lost")
    return rows, samples


def merge(parts: list, out) -> str:
    """Join the result files ``parts`` (each CSV with its sidecar) into ``out`` and its sidecar,
    both written by atomic replace; returns a one-line summary.

    Rows keep their order, part after part, and so do the sidecar's benchmarks, under the first
    part's ``machine_info`` with ``merged_from`` listing the parts.  A part with no rows (a shard
    with no case) is valid and adds nothing.

    Raises:
        Refused: ``out`` is not a new ``.csv`` path; a part is unreadable, or its sidecar is missing
            while it holds timed rows; the parts differ in grid, schema version, commit, or the N of
            their shards; or two parts hold the same benchmark
            (:data:`bench.results.schema.KEY_COLUMNS`).
    """
    out = Path(out)
    paths = [Path(p) for p in parts]
    if out.suffix != ".csv":
        raise Refused(f"--out: expected a path to a .csv file, got {out}")
    if out.exists() or sidecar_path(out).exists() or legacy_sidecar_path(out).exists():
        raise Refused(f"--out: {out} (or its sidecar) exists; merge writes a new file")
    if not paths:
        raise Refused("merge: no parts given")
    if len(set(paths)) < len(paths):
        twice = next(p for p in paths if paths.count(p) > 1)
        raise Refused(f"overlapping rows: {twice} is given twice")
    rows, samples = _read(paths)
    for column, what in (("schema_version", "schema versions"), ("grid", "grids"), ("git_commit", "commits")):
        by_part = {p: {r.get(column, "") for r in rs} for p, rs in rows.items() if rs}
        _one(set().union(*by_part.values()) if by_part else set(), what, by_part)
    splits = {p: {r["shard"].partition("/")[2] for r in rs if r.get("shard")} for p, rs in rows.items() if rs}
    _one(set().union(*splits.values()) if splits else set(), "splits (N of --shard K/N)", splits)
    seen: dict = {}
    for p, rs in rows.items():
        for r in rs:
            if key(r) in seen:
                raise Refused(f"overlapping rows: {r['case_id']} {r['backend']} (threads {r.get('threads')}) is in "
                              f"{seen[key(r)]} and {p}")
            seen[key(r)] = p
    merged = [r for rs in rows.values() for r in rs]
    if samples:
        info = dict(next(iter(samples.values()))[0])
        ours = dict(info.get("rnn_cell_bench") or {})
        info["rnn_cell_bench"] = {**ours, "merged_from": [str(p) for p in paths]}
        write_sidecar(out, info, [e for _, entries in samples.values() for e in entries])
    atomic_write_text(out, csv_text(merged))
    named = {str((info.get("rnn_cell_bench") or {}).get("shard") or "") for info, _ in samples.values()}
    shards = sorted({r["shard"] for r in merged if r.get("shard")} | (named - {""}),
                    key=lambda s: int(s.partition("/")[0]))  # an empty part names its shard in its sidecar
    note = ""
    if shards:
        n = int(shards[0].partition("/")[2])
        missing = [f"{k}/{n}" for k in range(1, n + 1) if f"{k}/{n}" not in shards]
        note = f" (shards {', '.join(shards)}" + (f"; missing {', '.join(missing)}" if missing else "") + ")"
    machines = sorted({r["machine_id"] for r in merged if r.get("machine_id")})
    return (f"merged {len(merged)} rows of {len(paths)} parts{note} from {len(machines)} machine(s) "
            f"({', '.join(machines)}) into {out}")
