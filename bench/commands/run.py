"""``python -m bench run``: time a grid in isolated worker processes, print a table, write the
result CSV and its raw samples.  Exit 0: every benchmark timed or not timed for a stated reason;
1: a mismatch or an error; 2: bad options; 130: interrupted (the files hold every finished row)."""

from __future__ import annotations

from ..environment import REPO, run_metadata
from ..grids import get_grid, no_match
from ..report.console import ConsoleReporter
from ..results.paths import sidecar_path
from ..results.writer import ResultWriter
from ..runner import UsageError, claim_output, execute, executor_of, resolve, run_header, sweep_of
from ..timing.executors import connect
from ..timing.options import RunOptions
from ..timing.process import Side
from .base import FOUND, OK, Command, add_run_options, fail


class Run(Command):
    name = "run"
    help = "time a grid, print a table, write the result CSV and its raw samples"

    def add_arguments(self, parser):
        add_run_options(parser)

    def run(self, args) -> int:
        options = RunOptions.read(vars(args).get)
        try:
            resolved = resolve(options)
            if options.dask:
                connect(options.dask).close()  # reachable, with a worker for us, before anything is written
        except ValueError as exc:
            return fail(exc)
        options = resolved.options
        if not resolved.cases and not options.shard:
            return fail(no_match(options.grid, get_grid(options.grid, options.passes), options.where))
        sweep = sweep_of(resolved, [Side("", REPO)], "saved" if options.save else "run")
        if options.resume and not sweep.todo():
            print(f"{options.resume}: complete, nothing to resume")
            return OK
        try:
            out = claim_output(options, sweep.run_id)
        except UsageError as exc:
            return fail(exc)
        metadata = {**run_metadata(sweep.run_id), "seed": sweep.seed, **sweep.run_columns()}
        writer = ResultWriter(out, metadata, resolved.existing if options.resume else None)
        reporter = ConsoleReporter()
        if not resolved.cases:  # a shard with no case: a valid file with no rows, which merge accepts
            writer.finish({})
            reporter.line(f"--shard {options.shard}: no case of grid {options.grid} falls in this part; "
                          f"wrote {out} with no rows (bench merge accepts it)")
            return OK
        already = f" ({len(resolved.existing)} already in {out})" if resolved.existing else ""
        reporter.line(f"{run_header(sweep)}: {sweep.benchmarks()} benchmarks to time{already}")
        try:
            with reporter.track() as (line, step):
                rows = execute(sweep, {"": writer}, executor_of(options), line, step)[""]
        except KeyboardInterrupt:
            reporter.finish(writer.rows, out, sidecar_path(out), interrupted=True)
            raise
        reporter.finish(rows, out, sidecar_path(out))
        return FOUND if any(r["status"] in ("mismatch", "error") for r in rows) else OK


COMMAND = Run()
