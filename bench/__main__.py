"""Command line: ``python -m bench {run,check,grids} ...`` (``--help`` on each)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import dataclasses

from .grids import GRIDS, get_grid, select
from .options import RunOptions, add_options
from .results import file_problem

#: Paired processes per benchmark of an A/B run unless --processes says otherwise: enough for the
#: paired t-test to resolve a 10% change on a noisy machine (README, "Comparing runs").
AB_PROCESSES = 5

HERE = Path(__file__).resolve().parent


def fail(message) -> int:
    """Report unusable input on one line of stderr; the exit status for it, 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def cmd_run(args) -> int:
    """Time a grid through pytest-benchmark (the plugin in bench/plugin.py does the work); pytest's
    own reporter is off and bench.report speaks of benchmarks instead."""
    import pytest

    from .options import GivenOptions
    from .report import SweepReporter

    voice = SweepReporter()
    code = int(pytest.main(pytest_argv(),
                           plugins=[GivenOptions(RunOptions.read(vars(args).get)), voice]))
    voice.finish(code)
    if code == pytest.ExitCode.NO_TESTS_COLLECTED and args.resume:
        print(f"{args.resume}: complete, nothing to resume")
        return 0
    if code == pytest.ExitCode.INTERRUPTED:
        return 130  # Ctrl-C or SIGTERM, as a shell reports it; the files hold every finished row
    return 2 if code == pytest.ExitCode.USAGE_ERROR else code  # 2 for bad arguments, as argparse


def pytest_argv() -> list[str]:
    """pytest's arguments for the sweep in bench/bench_forward.py with this checkout's settings; pytest's
    terminal reporter off (bench.report.SweepReporter speaks) and nothing captured (the progress bar)."""
    argv = [str(HERE / "bench_forward.py"), "-p", "bench.plugin", "--benchmark-only", "--benchmark-quiet",
            "-p", "no:terminal", "-s", "-p", "no:cacheprovider"]
    pyproject = HERE.parent / "pyproject.toml"
    if pyproject.exists():
        argv += ["-c", str(pyproject), "--rootdir", str(HERE.parent)]
    return argv


def cmd_worker(args) -> int:
    """One worker process of a run (bench.runner starts it and speaks to it on stdin/stdout)."""
    from .worker import main as worker_main

    return worker_main(args.job)


def cmd_peaks(args) -> int:
    """This machine's GEMM peaks and memory bandwidth as one line of JSON."""
    import json

    from .roofline import measure_peaks

    print(json.dumps(measure_peaks()))
    return 0


def cmd_check(args) -> int:
    """Max abs error of every backend against the float64 reference, per case."""
    from kernels import availability, backend_names, backend_passes, get_backend
    from kernels.reference import GRAD_TOLERANCES, TOLERANCES

    from .measure import check
    from .table import render

    backends = args.backends or backend_names()
    available = {name: availability(name) for name in backends}  # each name's own: a variant's, not its base's
    rows, failures, errors = [], 0, []
    unavailable: dict[str, dict] = {}  # name -> its reasons (a dict as an ordered set)
    try:
        cases = get_grid(args.grid, args.passes)
    except ValueError as exc:
        return fail(exc)
    for case in cases:
        weights, x = case.inputs()
        steps = min(case.timesteps, args.max_timesteps or case.timesteps)
        reference = None
        for name in backends:
            row = {"case_id": case.id, "backend": name, "status": "ok"}
            why = available[name] or availability(name, case.spec)
            if why is None and case.pass_ not in backend_passes(get_backend(name)):
                why = f"it has no {case.pass_} pass"
            if why is not None:
                row["status"] = "unavailable"
                unavailable.setdefault(name, dict.fromkeys([]))[why] = None  # each reason once, in order
            else:
                try:
                    backend = get_backend(name)
                    err, problem, _, reference = check(backend.prepare(case.spec, weights), case, weights, x, steps,
                                                       reference)
                except Exception as exc:  # noqa: BLE001  (a backend's failure is its row's, as in `run`)
                    row["status"], failures = "error", failures + 1
                    errors.append(f"{case.id} {name}: {type(exc).__name__}: {exc}".splitlines()[0])
                else:
                    row["max_abs_err"] = err
                    if problem is not None:
                        row["status"], failures = f"FAIL: {problem}", failures + 1
            rows.append(row)
    tolerances = ", ".join(f"{k}: rtol={r:g} atol={a:g}" for k, (r, a) in TOLERANCES.items())
    if any(c.pass_ == "forward_backward" for c in cases):
        tolerances += "; forward_backward: " + ", ".join(f"{k}: rtol={r:g} atol={a:g} x scale"
                                                         for k, (r, a) in GRAD_TOLERANCES.items())
    render(rows, column="max_abs_err", scale=1.0, title=f"max abs error vs float64 reference ({tolerances})")
    for name, reasons in unavailable.items():
        print(f"{name} unavailable: {'; '.join(reasons)}")
    for line in errors:
        print(f"error: {line}")
    print(f"{failures} beyond tolerance or failed" if failures else "all within tolerance")
    return 1 if failures else 0


def cmd_show(args) -> int:
    """A result file as a table: one line per case, backends side by side."""
    from .results import read_results
    from .table import markdown, render

    try:
        rows = read_results(args.file)
    except (OSError, ValueError) as exc:
        return fail(file_problem("FILE", exc))
    if rows and args.column not in rows[0]:
        return fail(f"--column: {args.column!r} is not a result column")
    for condition in args.where:
        key, sep, value = condition.partition("=")
        if not sep or (rows and key not in rows[0]):
            return fail(f"--where: expected COLUMN=VALUE with a result column, got {condition!r}")
        rows = [r for r in rows if r[key] == value]
    if not rows:
        print(f"no rows match {' '.join(args.where)} (values are compared as written in the file, e.g. bias=True)")
        return 1
    seconds = args.column.endswith("_s")
    scale, unit = (1e6, f"{args.column.removesuffix('_s')} in microseconds") if seconds else (1.0, args.column)
    lower_is_better = args.column not in ("gflops", "pct_peak")
    by_machine: dict = {}
    for r in rows:  # rows of several machines (a cluster run, a merge) are shown a table per machine
        by_machine.setdefault(r.get("machine_id", ""), []).append(r)
    for machine, group in by_machine.items():
        on = f" on {machine}" if len(by_machine) > 1 else ""
        if args.format == "markdown":
            print(f"{on.strip()}:\n" if on else "", end="")
            print(markdown(group, args.column, scale, lower_is_better), end="")
        else:
            render(group, args.column, scale, title=f"{unit}{on} (* best)", lower_is_better=lower_is_better)
    return 0


def cmd_merge(args) -> int:
    """Join the result files of a grid's shards; exit 2 with the reason for parts that do not belong together."""
    from .shards import Refused, merge

    try:
        print(merge(args.parts, args.out))
    except Refused as exc:
        return fail(exc)
    return 0


def cmd_compare(args) -> int:
    """Exit 0: no regression; 1: a regression; 2: unusable input (one-line reason on stderr)."""
    from .compare import Unusable, compare, format_comparison, parse_thresholds

    try:
        result = compare(args.base, args.new, parse_thresholds(args.threshold), args.alpha)
    except (Unusable, ValueError) as exc:
        return fail(exc)
    print(format_comparison(result, args.format), end="")
    return 1 if result.regressions else 0


def cmd_ab(args) -> int:
    """A/B of two revisions, paired and interleaved; exit 0: no regression, 1: a regression, 2: unusable."""
    import datetime

    from kernels import backend_names
    from kernels.registry import registered_backends

    from .ab import AB_THRESHOLD, judge_files, run_ab
    from .compare import Unusable, format_comparison, parse_thresholds
    from .runner import Sweep, new_seed

    if args.out or args.save or args.resume:
        return fail("ab: writes results/local/ab-<run id>-base.csv and -new.csv itself; drop --out/--save/--resume")
    if args.dask or args.shard:
        return fail("ab: pairs both revisions' processes on this machine, whole; --dask and --shard are for run")
    grid = args.grid or "quick"
    options = dataclasses.replace(RunOptions.read(vars(args).get), grid=grid,
                                  processes=AB_PROCESSES if args.processes is None else args.processes)
    try:
        options.policy(grid)
        if options.counts()[1] < 2:
            raise ValueError(f"--processes: expected at least 2 paired processes, got {options.processes}")
        thresholds = parse_thresholds(args.threshold or [f"{AB_THRESHOLD}"])
        cases = select(get_grid(grid, options.passes), args.where)
    except ValueError as exc:
        return fail(exc)
    if not cases:
        return fail(f"--where: no case of grid {grid} matches {' '.join(args.where)}")
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path("results/local")
    out.mkdir(parents=True, exist_ok=True)
    outputs = {side: out / f"ab-{run_id}-{side}.csv" for side in ("base", "new")}
    seed = new_seed() if args.seed is None else args.seed
    backends = args.backends.split(",") if args.backends else backend_names()
    sweep = Sweep(options, cases, backends, [], outputs, run_id, seed, {}, registered_backends())
    print(f"ab: {args.base} against {args.new}: {len(cases)} cases x {len(backends)} backends, "
          f"{options.processes} paired processes each, seed {seed}", flush=True)
    try:
        base, new = run_ab(args.base, args.new, sweep, progress=lambda line: print(line, flush=True))
        result = judge_files(base, new, thresholds, args.alpha)
    except Unusable as exc:
        return fail(exc)
    print(format_comparison(result, args.format), end="")
    print(f"results: {base} and {new}")
    return 1 if result.regressions else 0


def cmd_calibrate(args) -> int:
    """The A/B gate's false-positive rate and power on this machine, with the calibrated backend."""
    import datetime
    import json

    from .ab import AB_THRESHOLD
    from .calibration import calibrate
    from .environment import machine_id
    from .runner import new_seed

    options = dataclasses.replace(RunOptions.read(vars(args).get), grid="calibration",
                                  processes=AB_PROCESSES if args.processes is None else args.processes)
    try:
        options.policy("calibration")
        options.counts()
    except ValueError as exc:
        return fail(exc)
    if not args.slowdown > 1:
        return fail(f"--slowdown: expected a factor above 1, got {args.slowdown}")
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    seed = new_seed() if args.seed is None else args.seed
    out_dir = Path(args.out_dir or Path("results") / machine_id())
    summary = calibrate(options, args.slowdown, args.threshold or AB_THRESHOLD, args.alpha, out_dir, run_id, seed,
                        progress=lambda line: print(line, flush=True))
    print(json.dumps(summary, indent=2))
    aa, ab = summary["aa"], summary["ab"]
    print(f"A/A: {aa['regressions'] + aa['improvements']} of {aa['rows']} rows flagged; "
          f"A/B x{args.slowdown}: {ab['regressions']} of {ab['rows']} rows detected "
          f"(threshold {summary['threshold']}, alpha {args.alpha}, {summary['processes']} paired processes)")
    return 0


def cmd_tune(args) -> int:
    """Time every numba variant on a grid's sizes in isolated workers; write this machine's plan."""
    import datetime

    from .runner import new_seed
    from .tune import TUNE_BUDGET, TUNE_PROCESSES, tune

    grid = args.grid or "default"
    options = RunOptions(grid=grid, threads=args.threads, seed=args.seed,
                         processes=TUNE_PROCESSES if args.processes is None else args.processes)
    try:
        options.counts()
        cases = select(get_grid(grid), args.where)
        budget = TUNE_BUDGET if args.budget is None else args.budget
        if not budget > 0:
            raise ValueError(f"--budget: expected a positive number of seconds, got {budget}")
    except ValueError as exc:
        return fail(exc)
    if not cases:
        return fail(f"--where: no case of grid {grid} matches {' '.join(args.where)}")
    if args.out and not str(args.out).endswith(".json"):
        return fail(f"--out: expected a path to a .json plan file, got {args.out}")
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    seed = new_seed() if args.seed is None else args.seed
    path, plan = tune(options, cases, budget, args.out, run_id, seed, progress=lambda line: print(line, flush=True))
    print(f"plan: {path} ({len(plan['entries'])} entries, machine {plan['machine_id']})")
    return 0 if plan["entries"] else 1


def cmd_history(args) -> int:
    """Trends and step changes over a machine's saved runs."""
    from .compare import Unusable, parse_thresholds
    from .environment import machine_id
    from .history import format_trends, machines, saved_runs, trends

    results = Path(args.results)
    known = machines(results)
    machine = args.machine or (known[0] if len(known) == 1 else machine_id())
    runs = saved_runs(results, machine)
    if not runs:
        return fail(f"no saved runs for machine {machine!r} under {results}/ (saved: {known or 'none'}; "
                    "save one with `python -m bench run --save`)")
    try:
        ts = trends(runs, parse_thresholds(args.threshold)["default"], args.alpha, machine)
    except (Unusable, ValueError) as exc:
        return fail(exc)
    print(format_trends(ts, machine, len(runs)), end="")
    if args.plot:
        from .plots import plot_history

        print(f"plot: {plot_history(ts, results / machine / 'history.png', machine)}")
    return 0


def cmd_plot(args) -> int:
    from .plots import plot_file

    try:
        paths = plot_file(args.file)
    except (OSError, ValueError) as exc:
        return fail(file_problem("FILE", exc))
    for p in paths:
        print(p)
    return 0


def cmd_charrnn(args) -> int:
    """Train the tutorial's character RNN on each backend; print the loss and prediction every 20
    epochs and the seconds per epoch; optionally write them as CSV.  Exit 1 when a backend fails."""
    from kernels import backend_names

    from .charrnn import PRINT_EVERY, SOURCE, TARGET, train, write_csv

    if args.epochs < 1 or args.threads < 1:
        bad = [f"{flag}: expected a positive number, got {value}" for flag, value in
               (("--epochs", args.epochs), ("--threads", args.threads)) if value < 1]
        return fail("; ".join(bad))
    import os

    from .environment import thread_env

    os.environ.update(thread_env(args.threads))  # before numba or torch start their pools
    names = args.backends.split(",") if args.backends else backend_names()
    print(f"charrnn: {SOURCE!r} -> {TARGET!r}, {args.dtype}, {args.epochs} epochs, Adam lr 0.1; "
          f"loss and prediction every {PRINT_EVERY} epochs")
    rows, failed = [], 0
    for name in names:
        try:
            got = train(name, args.dtype, args.epochs, args.threads)
        except RuntimeError as exc:
            print(f"{name}: skipped: {exc}")
            continue
        except Exception as exc:  # noqa: BLE001  (one backend's failure is reported, the others run)
            print(f"{name}: error: {type(exc).__name__}: {exc}")
            failed += 1
            continue
        for r in got:
            print(f"{name:>12} epoch {r['epoch']:>4}  loss {r['loss']:.10f}  prediction {r['prediction']}  "
                  f"{r['seconds'] * 1e3:.3f} ms/epoch")
        rows += got
        if args.out:
            write_csv(Path(args.out), rows)  # after every backend: an interrupted run keeps the finished ones
    if not rows:
        print("error: no backend trained (every one was skipped or failed)")
        return 1
    if args.out:
        print(f"results: {args.out}")
    return 1 if failed else 0


def cmd_grids(args) -> int:
    for name, make in GRIDS.items():
        cases = make()
        doc = (make.__doc__ or "").strip().splitlines()[0]
        print(f"{name:10} {len(cases):4} cases  {doc}")
    return 0


def main(argv=None) -> int:
    from kernels import backend_names, parse_backend_list

    parser = argparse.ArgumentParser(prog="python -m bench", description="rnn-cell-bench: time and check recurrent-cell backends")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="time a grid, print a table, write CSV + raw-sample JSON")
    add_options(run.add_argument)
    run.set_defaults(func=cmd_run)

    chk = sub.add_parser("check", help="max abs error of each backend against the float64 reference")
    chk.add_argument("--grid", default="quick", choices=list(GRIDS), help="named grid (default: quick)")
    chk.add_argument("--backends", help=f"comma-separated subset of {', '.join(backend_names(variants=True))} "
                                        "(default: every registered base name)")
    chk.add_argument("--max-timesteps", type=positive_int, help="check only the first N timesteps (default: all)")
    chk.add_argument("--passes", help="comma-separated passes to check: forward, forward_backward (default: the grid's)")
    chk.set_defaults(func=cmd_check)

    show = sub.add_parser("show", help="print a result CSV with backends side by side")
    show.add_argument("file", help="result CSV")
    show.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE", help="keep matching rows (repeatable)")
    show.add_argument("--column", default="per_step_s",
                      help="column to show (default: per_step_s); *_s columns in microseconds, others as stored")
    show.add_argument("--format", choices=["table", "markdown"], default="table")
    show.set_defaults(func=cmd_show)

    mrg = sub.add_parser("merge", help="join the result files of a grid's shards (run --shard K/N) into one",
                         description="Join result CSVs (each with its .json sidecar) into --out, written atomically. "
                                     "Exit 2, with the reason, for parts of different grids, schema versions, "
                                     "commits or splits, and for overlapping rows.")
    mrg.add_argument("parts", nargs="+", help="result CSVs to join")
    mrg.add_argument("--out", required=True, help="the joined result CSV (a new file)")
    mrg.set_defaults(func=cmd_merge)

    cmp = sub.add_parser("compare", help="compare two result files; exit 1 on a regression",
                         description="Pair benchmarks of two result files (CSV with its .json sidecar, or a "
                                     "pytest-benchmark JSON) and judge each: regression, improvement, unchanged or "
                                     "not comparable. Exit 0: no regression, 1: regression, 2: unusable input.")
    judgement_args(cmp, "result file (.csv or pytest-benchmark .json)", "1.10",
                   "Welch t-test on process medians, or Mann-Whitney U on rounds")
    cmp.set_defaults(func=cmd_compare)

    ab = sub.add_parser("ab", help="A/B of two git revisions on this machine, paired and interleaved; exit 1 on a regression",
                        description="Time two revisions (git revisions, or WORKTREE for this checkout as it is) "
                                    "side by side: paired worker processes, bursts alternating. Exit 0: no "
                                    "regression, 1: regression, 2: unusable input.")
    judgement_args(ab, "git revision (e.g. HEAD~1, a tag, WORKTREE)", "1.05", "paired t-test on process medians")
    add_options(ab.add_argument)
    ab.set_defaults(func=cmd_ab)

    cal = sub.add_parser("calibrate", help="the A/B gate's false-positive rate and power on this machine")
    cal.add_argument("--slowdown", type=float, default=1.10, help="factor of the A/B run's slower side (default 1.10)")
    cal.add_argument("--threshold", type=float, default=None, help="ratio that counts (default: bench ab's 1.05)")
    cal.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    cal.add_argument("--processes", type=int, help=f"paired processes (default {AB_PROCESSES})")
    cal.add_argument("--max-time", type=float, help="seconds of rounds per case and process (default 0.05)")
    cal.add_argument("--threads", type=int, help="threads per pool (default 1)")
    cal.add_argument("--seed", type=int, help="seed of the interleaved order")
    cal.add_argument("--out-dir", help="where the files go (default results/<machine_id>)")
    cal.set_defaults(func=cmd_calibrate, grid=None, backends=None, out=None, save=False, resume=None, min_rounds=None,
                     budget=None, check_steps=None, where=None, passes=None)

    tun = sub.add_parser("tune", help="time every numba strategy x BLAS route on a grid's sizes; write this machine's plan",
                         description="Time every numba variant (strategy x BLAS route) on the sizes of a grid, each in "
                                     "worker processes of its own, and write the fastest per size to this machine's "
                                     "plan (results/<machine_id>/plan.json, or $RNN_BENCH_PLAN, or --out), which plain "
                                     "`numba` then follows. Exit 0: a plan written; 1: nothing timed ok; 2: bad input.")
    tun.add_argument("--grid", choices=list(GRIDS), help="named grid whose sizes are tuned (default: default)")
    tun.add_argument("--budget", type=float, help="seconds of timed rounds in all, shared equally by every benchmark "
                                                  "(default 1800; preparation and compilation come on top)")
    tun.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE", help="keep matching cases (repeatable)")
    tun.add_argument("--threads", type=int, help="threads of every pool in each worker (default 1); recorded in the plan")
    tun.add_argument("--processes", type=int, help="worker processes per variant (default 1)")
    tun.add_argument("--seed", type=int, help="seed of the interleaved order")
    tun.add_argument("--out", help="plan file to write (default: $RNN_BENCH_PLAN, else results/<machine_id>/plan.json)")
    tun.set_defaults(func=cmd_tune)

    hist = sub.add_parser("history", help="trends and step changes over the runs saved with `run --save`")
    hist.add_argument("--machine", help="machine id (default: the only one saved, else this machine's)")
    hist.add_argument("--results", default="results", help="results folder (default: results)")
    hist.add_argument("--threshold", action="append", default=[], metavar="RATIO", help="step size that counts (default 1.10)")
    hist.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
    hist.add_argument("--plot", action="store_true", help="also write <results>/<machine>/history.png")
    hist.set_defaults(func=cmd_history)

    plot = sub.add_parser("plot", help="PNG plots next to a result CSV")
    plot.add_argument("file", help="result CSV")
    plot.set_defaults(func=cmd_plot)

    char = sub.add_parser("charrnn", help="train the tutorial's character RNN ('recurrent' -> 'neuralnet') on each backend")
    char.add_argument("--backends", help="comma-separated backends (default: every registered one)")
    char.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(default float32)")
    char.add_argument("--epochs", type=int, default=101, help="training epochs (default 101)")
    char.add_argument("--out", help="CSV of the printed epochs: backend, dtype, epoch, loss, prediction, seconds")
    char.add_argument("--threads", type=int, default=1, help="threads of every pool in this process (default 1)")
    char.set_defaults(func=cmd_charrnn)

    worker = sub.add_parser("worker", help="(internal) one worker process of a run, started by the runner")
    worker.add_argument("job", help="the job file the runner wrote")
    worker.set_defaults(func=cmd_worker)

    peaks = sub.add_parser("peaks", help="this machine's GEMM peaks and memory bandwidth, as JSON")
    peaks.set_defaults(func=cmd_peaks)

    grids = sub.add_parser("grids", help="list the named grids")
    grids.set_defaults(func=cmd_grids)

    args = parser.parse_args(argv)
    if getattr(args, "backends", None) is not None:
        try:
            names = parse_backend_list(args.backends)
        except ValueError as exc:
            parser.error(str(exc))
        args.backends = names if args.command == "check" else ",".join(names)
    if getattr(args, "where", None) and args.command in ("run", "ab", "tune"):
        try:
            select([], args.where)
        except ValueError as exc:
            parser.error(str(exc))
    from .runner import stop_on_sigterm

    stop_on_sigterm()  # cleanups (workers, worktrees, files) run as on Ctrl-C
    try:
        return args.func(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the files hold every finished row
        print(f"interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return 130


def judgement_args(parser, side: str, default_threshold: str, test: str) -> None:
    """BASE, NEW, --threshold, --alpha and --format of the commands that judge two sides (compare, ab)."""
    parser.add_argument("base", help=f"BASE {side}")
    parser.add_argument("new", help=f"NEW {side}")
    parser.add_argument("--threshold", action="append", default=[], metavar="[GROUP=]RATIO",
                        help=f"slowdown ratio that counts (default {default_threshold}); GROUP is a backend or a mode; "
                             "repeatable")
    parser.add_argument("--alpha", type=float, default=0.01, help=f"significance level of the {test} (default 0.01)")
    parser.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
