"""``python -m bench history``: trends and step changes over a machine's saved runs
(:mod:`bench.judge.history`).  Exit 2 when the machine has no saved run."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..environment import machine_id
from ..judge.history import format_trends, trends
from ..judge.sides import Unusable, load
from ..judge.stats import parse_thresholds
from ..report.plots import plot_history
from ..results.catalog import machines, saved_runs
from ..results.paths import results_dir
from .base import OK, Command, fail


def skipped_note(others) -> str:
    """One line for the files of a machine's folder that are not saved runs, by what made them."""
    if not others:
        return ""
    kinds = Counter("not a result file" if f.kind == "other" else f"{f.kind} sweep" if f.kind == "tune" else f.kind
                    for f in others)
    return "skipped (not saved runs): " + ", ".join(f"{n} {kind}" for kind, n in kinds.items())


class History(Command):
    name = "history"
    help = "trends and step changes over the runs saved with `run --save`"

    def add_arguments(self, parser):
        parser.add_argument("--machine", help="machine id (default: the only one saved, else this machine's)")
        parser.add_argument("--results", help="results folder (default: $RNN_BENCH_RESULTS, else ./results)")
        parser.add_argument("--threshold", action="append", default=[], metavar="RATIO",
                            help="step size that counts (default 1.10)")
        parser.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
        parser.add_argument("--plot", action="store_true", help="also write <results>/<machine>/history.png")

    def run(self, args) -> int:
        results = Path(args.results) if args.results else results_dir()
        known = machines(results)
        machine = args.machine or (known[0] if len(known) == 1 else machine_id())
        runs, others = saved_runs(results, machine)
        if not runs:
            return fail(f"no saved runs for machine {machine!r} under {results}/ (saved: {known or 'none'}; "
                        "save one with `python -m bench run --save`)")
        try:
            thresholds = parse_thresholds(args.threshold)
            ts = trends([load(p) for p in runs], thresholds["default"], args.alpha, machine)
        except (Unusable, ValueError) as exc:
            return fail(exc)
        print(format_trends(ts, machine, len(runs), skipped_note(others)), end="")
        if args.plot:
            print(f"plot: {plot_history(ts, results / machine / 'history.png', machine)}")
        return OK


COMMAND = History()
