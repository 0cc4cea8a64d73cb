"""``python -m bench compare BASE NEW``: judge every benchmark two result files share.
Exit 0: no regression; 1: a regression; 2: unusable input (one line on stderr), or files of two
machines whose benchmarks are not comparable (unless ``--across-machines``)."""

from __future__ import annotations

import sys

from ..judge.compare import compare
from ..judge.formats import format_comparison
from ..judge.sides import Unusable, load
from ..judge.stats import parse_thresholds
from .base import FOUND, OK, Command, add_judgement_args, fail


def machines_line(base, new) -> str:
    """"" when both sides ran on the same machines, else the first line of a compare saying which
    machine each ran on and what that means."""
    if not base.machines or not new.machines or set(base.machines) == set(new.machines):
        return ""
    return (f"machines differ: BASE ran on {', '.join(base.machines)}, NEW on {', '.join(new.machines)}; "
            "a time of one machine is no baseline for another")


class Compare(Command):
    name = "compare"
    help = "compare two result files; exit 1 on a regression"
    description = ("Pair benchmarks of two result files (CSV with its sidecar, or a pytest-benchmark JSON) and judge "
                   "each: regression, improvement, unchanged or not comparable. Files of different machines are not "
                   "compared unless --across-machines. Exit 0: no regression, 1: regression, 2: unusable input.")

    def add_arguments(self, parser):
        add_judgement_args(parser, "result file (.csv or pytest-benchmark .json)", "1.10",
                           "Welch t-test on process medians, or Mann-Whitney U on rounds")
        parser.add_argument("--across-machines", action="store_true",
                            help="judge benchmarks that ran on different machines too (their differences are listed)")

    def run(self, args) -> int:
        try:
            base, new = load(args.base), load(args.new)
        except Unusable as exc:
            return fail(exc)
        first = machines_line(base, new)
        if first:  # on stdout above a table, on stderr where stdout is CSV or JSON for a program
            stream = sys.stdout if args.format in ("table", "markdown") else sys.stderr
            print(first + ("; compared anyway (--across-machines)" if args.across_machines else
                           "; their benchmarks are not comparable (--across-machines to compare them anyway)"),
                  file=stream, flush=True)
        try:
            result = compare(base, new, parse_thresholds(args.threshold), args.alpha,
                             across_machines=args.across_machines)
        except (Unusable, ValueError) as exc:
            return fail(exc)
        print(format_comparison(result, args.format), end="")
        return FOUND if result.regressions else OK


COMMAND = Compare()
