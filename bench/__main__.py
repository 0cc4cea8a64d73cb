"""Command line: ``python -m bench {run,check,grids} ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .grids import GRIDS, get_grid
from .measure import TimingPolicy

HERE = Path(__file__).resolve().parent


def cmd_run(args) -> int:
    """Time a grid through pytest-benchmark (the plugin in bench/plugin.py does the work)."""
    import pytest

    argv = [str(HERE / "bench_forward.py"), "-p", "bench.plugin", "--benchmark-only", "--benchmark-quiet",
            "-v", "--no-header", "-p", "no:cacheprovider", "-rfEs", f"--grid={args.grid}"]
    pyproject = HERE.parent / "pyproject.toml"
    if pyproject.exists():
        argv += ["-c", str(pyproject), "--rootdir", str(HERE.parent)]
    for name in ("backends", "out", "max_time", "min_rounds", "budget", "check_steps"):
        value = getattr(args, name)
        if value is not None:
            argv.append(f"--{name.replace('_', '-')}={Path(value).resolve() if name == 'out' else value}")
    return int(pytest.main(argv))


def cmd_check(args) -> int:
    """Max abs error of every backend against the float64 reference, per case."""
    from kernels import BACKENDS, get_backend
    from kernels.reference import TOLERANCES

    from .measure import check
    from .table import render

    backends = args.backends.split(",") if args.backends else list(BACKENDS)
    rows, failures = [], 0
    for case in get_grid(args.grid):
        weights, x = case.inputs()
        steps = min(case.timesteps, args.max_timesteps or case.timesteps)
        reference = None
        for name in backends:
            backend = get_backend(name)
            row = {"case_id": case.id, "backend": name, "status": "ok"}
            reason = backend.unavailable_reason()
            if reason is not None:
                row["status"] = "unavailable"
            else:
                err, ok, _, reference = check(backend.prepare(case.spec, weights), case, weights, x, steps, reference)
                row["max_abs_err"] = err
                if not ok:
                    row["status"], failures = f"FAIL {err:.3g}", failures + 1
            rows.append(row)
    tolerances = ", ".join(f"{k}: rtol={r:g} atol={a:g}" for k, (r, a) in TOLERANCES.items())
    render(rows, column="max_abs_err", scale=1.0, title=f"max abs error vs float64 reference ({tolerances})")
    print(f"{failures} beyond tolerance" if failures else "all within tolerance")
    return 1 if failures else 0


def cmd_show(args) -> int:
    """A result file as a table: one line per case, backends side by side."""
    from .results import read_results
    from .table import markdown, render

    try:
        rows = read_results(args.file)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for condition in args.where:
        key, sep, value = condition.partition("=")
        if not sep or (rows and key not in rows[0]):
            print(f"error: --where: expected COLUMN=VALUE with a result column, got {condition!r}", file=sys.stderr)
            return 2
        rows = [r for r in rows if r[key] == value]
    if args.format == "markdown":
        print(markdown(rows, args.column), end="")
    else:
        render(rows, args.column, title=f"{args.column} x 1e6 (* best)")
    return 0


def cmd_grids(args) -> int:
    for name, make in GRIDS.items():
        cases = make()
        doc = (make.__doc__ or "").strip().splitlines()[0]
        print(f"{name:10} {len(cases):4} cases  {doc}")
    return 0


def main(argv=None) -> int:
    from kernels import BACKENDS

    parser = argparse.ArgumentParser(prog="python -m bench", description="rnn-cell-bench: time and check recurrent-cell backends")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = TimingPolicy()

    def grid_arg(p, default):
        p.add_argument("--grid", default=default, choices=list(GRIDS), help=f"named grid (default: {default})")
        p.add_argument("--backends", help=f"comma-separated subset of {','.join(BACKENDS)} (default: all)")

    run = sub.add_parser("run", help="time a grid, print a table, write CSV + raw-sample JSON")
    grid_arg(run, "quick")
    run.add_argument("--out", help="result CSV (default: results/local/<grid>-<run id>.csv)")
    run.add_argument("--max-time", type=float, help=f"seconds of timed rounds per benchmark to aim for (default {defaults.max_time})")
    run.add_argument("--min-rounds", type=int, help=f"rounds at least, budget permitting (default {defaults.min_rounds})")
    run.add_argument("--budget", type=float, help=f"seconds of timed rounds per benchmark at most (default {defaults.budget})")
    run.add_argument("--check-steps", type=int, help=f"timesteps of the accuracy check (default {defaults.check_steps})")
    run.set_defaults(func=cmd_run)

    chk = sub.add_parser("check", help="max abs error of each backend against the float64 reference")
    grid_arg(chk, "quick")
    chk.add_argument("--max-timesteps", type=int, help="check only the first N timesteps (default: all)")
    chk.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="print a result CSV with backends side by side")
    show.add_argument("file", help="result CSV")
    show.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE", help="keep matching rows (repeatable)")
    show.add_argument("--column", default="per_step_s", help="column to show, in microseconds (default: per_step_s)")
    show.add_argument("--format", choices=["table", "markdown"], default="table")
    show.set_defaults(func=cmd_show)

    grids = sub.add_parser("grids", help="list the named grids")
    grids.set_defaults(func=cmd_grids)

    args = parser.parse_args(argv)
    if getattr(args, "backends", None):
        unknown = [b for b in args.backends.split(",") if b not in BACKENDS]
        if unknown:
            parser.error(f"--backends: unknown {unknown}; known: {', '.join(BACKENDS)}")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
