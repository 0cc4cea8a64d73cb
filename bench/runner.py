"""The one place a timed run is put together: options -> cases and backends -> a
:class:`~bench.timing.sweep.Sweep` -> an executor -> result files.

``python -m bench run``, ``pytest --benchmark-only`` (:mod:`bench.plugin`), ``bench ab``,
``bench calibrate`` and ``bench tune`` all resolve their options with :func:`resolve` (the grid,
``--where``, ``--shard``, ``--backends``, ``--resume``'s file) and time through :func:`execute`.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

from kernels import backend_names, parse_backend_list
from kernels.registry import registered_backends

from .environment import code_metadata, new_run_id, run_metadata
from .grids import GRIDS, Case, get_grid, parse_shard, select, shard
from .results.files import file_problem, read_results
from .results.paths import claim, local_path, save_path
from .results.schema import SCHEMA_VERSION
from .results.writer import ResultWriter
from .timing.executors import DaskExecutor, LocalExecutor
from .timing.options import RunOptions
from .timing.process import Side
from .timing.sweep import Sweep


class UsageError(ValueError):
    """Options that cannot make a run (exit status 2); the message names the option."""


@dataclasses.dataclass
class Resolved:
    """What a run's options come to: the options with the grid (and a resumed file's counts)
    filled in, the cases, the backends, and a resumed file's rows kept (its errors dropped)."""

    options: RunOptions
    cases: list[Case]
    backends: list[str]
    existing: list[dict]


def _resume_grid(options: RunOptions, rows: list[dict]) -> RunOptions:
    """``options`` with the grid of a file being resumed: --grid when given (checked), else the
    one its rows name, else the smallest grid holding all its cases; with its own passes, or
    (without --passes) the passes of the file's rows."""
    ids = {r["case_id"] for r in rows}
    recorded = {r.get("grid") for r in rows} - {None, ""}
    named = options.grid or (recorded.pop() if len(recorded) == 1 else None)
    if not ids and not named:
        raise UsageError("--resume: the file has no rows to tell its grid; pass --grid")
    candidates = [named] if named else sorted(GRIDS, key=lambda g: len(GRIDS[g]()))
    file_passes = ",".join(dict.fromkeys(r["pass"] for r in rows))
    tries = [options.passes] if options.passes is not None else [None, file_passes or None]
    for name in candidates:
        for passes in tries:
            if ids <= {c.id for c in get_grid(name, passes)}:
                return dataclasses.replace(options, grid=name, passes=passes)
    raise UsageError(f"--resume: the file's cases are not all in grid {named or 'any named grid'}; pass the right --grid")


def _resume_counts(options: RunOptions, rows: list[dict]) -> RunOptions:
    """The file's --threads, --processes and --shard for a resumed run (threads are part of the key,
    a row's median means the same number of processes, a part stays its part); a different value
    given is a usage error."""
    for name in ("threads", "processes", "shard"):
        found = {r[name] for r in rows if r.get(name)}
        if len(found) == 1:
            value = found.pop()
            value = value if name == "shard" else int(value)
            given = getattr(options, name)
            if given is not None and given != value:
                raise UsageError(f"--resume: the file was run with --{name} {value}; got --{name} {given}")
            options = dataclasses.replace(options, **{name: value})
    return options


def _existing(options: RunOptions) -> tuple[RunOptions, list[dict]]:
    """``(options, rows of --resume's file)``: its grid and counts filled in."""
    if not options.resume:
        return dataclasses.replace(options, grid=options.grid or "quick"), []
    if options.out or options.save:
        raise UsageError("--resume: writes back to its own FILE; drop --out/--save")
    try:
        rows = read_results(options.resume)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UsageError(file_problem("--resume", exc)) from None
    if rows and rows[0]["schema_version"] != str(SCHEMA_VERSION):
        raise UsageError(f"--resume: {options.resume} has schema_version {rows[0]['schema_version']}; "
                         f"this code writes {SCHEMA_VERSION}, so rerun it whole")
    return _resume_counts(_resume_grid(options, rows), rows), rows


def resolve(options: RunOptions, default_grid: str = "quick") -> Resolved:
    """Resolve ``options`` into the run they ask for (see :class:`Resolved`); every value is
    checked before any worker starts.  An empty selection is allowed here (a shard with no case;
    the caller decides what that means).

    Raises:
        UsageError: a bad value, naming its option.
    """
    if options.grid is None and not options.resume:
        options = dataclasses.replace(options, grid=default_grid)
    options, rows = _existing(options)
    existing = [r for r in rows if r["status"] != "error"]  # a resumed run times its errors again
    try:
        cases = select(get_grid(options.grid, options.passes), options.where)
        if options.shard:
            cases = shard(cases, *parse_shard(options.shard))
        options.policy(options.grid)
        options.counts()
        if options.backends is not None:
            backends = parse_backend_list(options.backends)
        else:
            backends = list(dict.fromkeys(r["backend"] for r in rows)) or backend_names()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return Resolved(options, cases, backends, existing)


def new_seed() -> int:
    """A seed for the interleaved order, drawn from the OS."""
    return random.SystemRandom().randrange(2**31)


def sweep_of(resolved: Resolved, sides: list[Side], made_by: str, run_id: str | None = None,
             pairs: set | None = None) -> Sweep:
    """The sweep of ``resolved`` for ``sides``, its seed drawn unless the options give one."""
    options = resolved.options
    done = {s.label: {(r["case_id"], r["backend"]) for r in resolved.existing} for s in sides}
    return Sweep(options, resolved.cases, resolved.backends, sides, run_id or new_run_id(),
                 new_seed() if options.seed is None else options.seed, done, pairs, registered_backends(), made_by)


def claim_output(options: RunOptions, run_id: str) -> Path:
    """The result file of a run, created now (:func:`bench.results.paths.claim`) so that no other
    run writes it: ``--resume``'s file, the saved run's (``--save``), ``--out``, or
    ``<results>/local/<grid>-<run id>.csv``.

    Raises:
        UsageError: naming the option: ``--save`` with ``--out``, an ``--out`` that exists, is not a
            ``.csv`` path or cannot be written.
    """
    try:
        if options.resume:
            return Path(options.resume)
        if options.save:
            if options.out:
                raise UsageError("--save: chooses the file name itself; drop --out")
            return claim(save_path(run_metadata(run_id)), unique=True, arg="--save")
        if options.out:
            return claim(Path(options.out), unique=False)
        return claim(local_path(options.grid, run_id), unique=True)
    except UsageError:
        raise
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def executor_of(options: RunOptions, default=LocalExecutor()):
    """The executor ``options`` ask for: the dask cluster of ``--dask``, else ``default``."""
    return DaskExecutor(options.dask) if options.dask else default


def execute(sweep: Sweep, writers: dict, executor, progress=print, step=None) -> dict:
    """Run ``sweep`` on ``executor``, each finished benchmark appended to the
    :class:`~bench.results.writer.ResultWriter` of its side (``writers[label]``); returns
    ``{side label: rows}``.  On Ctrl-C, SIGTERM or a failure the files hold every finished
    benchmark and the exception propagates; on success each file records the machine's state at
    the end on every row."""
    try:
        end = executor.run(sweep, lambda m, columns: writers[m.side].add(m, columns), progress, step)
    except BaseException:
        for w in writers.values():
            w.close()
        raise
    for w in writers.values():
        w.finish(end)
    return {label: w.rows for label, w in writers.items()}


def run_to_files(sweep: Sweep, outputs: dict, executor=None, progress=print, step=None) -> dict:
    """Run ``sweep`` into new result files, ``outputs[side label]`` (created now; each side's
    sidecar header records the run and that side's code); returns ``{side label: rows}``.

    Raises:
        UsageError: an output exists or cannot be written (naming the file).
    """
    metadata = {**run_metadata(sweep.run_id), "seed": sweep.seed, **sweep.run_columns()}
    try:
        paths = {s.label: claim(Path(outputs[s.label]), unique=False) for s in sweep.sides}
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    writers = {s.label: ResultWriter(paths[s.label], {**metadata, **code_metadata(s.root)}) for s in sweep.sides}
    return execute(sweep, writers, executor or executor_of(sweep.options), progress, step)


def run_header(sweep: Sweep) -> str:
    """The first line of a run: what it times and how."""
    threads, processes = sweep.options.counts()
    return (f"rnn-cell-bench: {len(sweep.cases)} cases x {len(sweep.backends)} backends, {processes} worker "
            f"processes each, {threads} thread(s), seed {sweep.seed}")

