"""``python -m bench show FILE``: a result file as a table, one line per case, backends side by side,
then what became of its benchmarks and who won.  Exit 1 when no row matches ``--where``."""

from __future__ import annotations

from rich.console import Console

from ..report.console import outcome_lines
from ..report.table import markdown, render
from ..report.wins import wins_lines
from ..results.files import file_problem, read_results
from .base import FOUND, OK, Command, fail


def select_rows(rows: list[dict], conditions: list[str]) -> list[dict]:
    """The rows matching every ``COLUMN=VALUE`` (values as written in the file).

    Raises:
        ValueError: naming ``--where``: a condition without ``=`` or an unknown column.
    """
    for condition in conditions:
        column, sep, value = condition.partition("=")
        if not sep or (rows and column not in rows[0]):
            raise ValueError(f"--where: expected COLUMN=VALUE with a result column, got {condition!r}")
        rows = [r for r in rows if r[column] == value]
    return rows


class Show(Command):
    name = "show"
    help = "print a result CSV with backends side by side"

    def add_arguments(self, parser):
        parser.add_argument("file", help="result CSV")
        parser.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                            help="keep matching rows (repeatable)")
        parser.add_argument("--column", default="per_step_s",
                            help="column to show (default: per_step_s); *_s columns in microseconds, others as stored")
        parser.add_argument("--format", choices=["table", "markdown"], default="table")

    def run(self, args) -> int:
        try:
            rows = read_results(args.file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return fail(file_problem("FILE", exc))
        if rows and args.column not in rows[0]:
            return fail(f"--column: {args.column!r} is not a result column")
        try:
            rows = select_rows(rows, args.where)
        except ValueError as exc:
            return fail(exc)
        if not rows:
            print(f"no rows match {' '.join(args.where)} (values are compared as written in the file, e.g. bias=True)")
            return FOUND
        seconds = args.column.endswith("_s")
        scale, unit = (1e6, f"{args.column.removesuffix('_s')} in microseconds") if seconds else (1.0, args.column)
        lower_is_better = args.column not in ("gflops", "pct_peak", "weight_gbps")
        by_machine: dict = {}
        for r in rows:  # rows of several machines (a cluster run, a merge) are shown a table per machine
            by_machine.setdefault(r.get("machine_id", ""), []).append(r)
        for machine, group in by_machine.items():
            on = f" on {machine}" if len(by_machine) > 1 else ""
            if args.format == "markdown":
                print(f"{on.strip()}:\n" if on else "", end="")
                print(markdown(group, args.column, scale, lower_is_better), end="")
            else:
                render(group, args.column, scale, title=f"{unit}{on} (* best, ~ unstable)",
                       lower_is_better=lower_is_better)
                console = Console(highlight=False)
                for line in outcome_lines(group) + (wins_lines(group) if args.column == "per_step_s" else []):
                    console.print(line, soft_wrap=True, markup=False)
        return OK


COMMAND = Show()
