"""What a run prints: a progress bar while it times, then the table, what became of every
benchmark, and who won.

Used by ``python -m bench run`` and by ``pytest --benchmark-only``'s summary alike: a sweep of
benchmarks, not a test session.  The progress bar (``rich.progress``: cases done, elapsed, time
left) shows on a terminal only; each case's line is printed above it, and off a terminal the
lines alone are the progress.
"""

from __future__ import annotations

import contextlib
from collections import Counter

from rich.console import Console

from .table import render
from .wins import wins_lines


def outcome_lines(rows: list[dict]) -> list[str]:
    """What became of each benchmark of ``rows`` (a result file's rows), in words: a count line
    (timed, not timed, mismatches, errors), then the untimed grouped by backend, status and
    reason, then every mismatch and error with its reason, then how many timed rows are unstable."""
    counts = Counter(r["status"] for r in rows)
    untimed = counts["unavailable"] + counts["over_budget"]
    lines = [f"{len(rows)} benchmarks: {counts['ok']} timed, {untimed} not timed, "
             f"{counts['mismatch']} mismatches (wrong results, not timed), {counts['error']} errors"]
    groups: dict = {}
    for r in rows:
        if r["status"] in ("unavailable", "over_budget"):
            groups.setdefault((r["backend"], r["status"]), []).append(r)
    for (backend, status), members in groups.items():
        reasons = list(dict.fromkeys(r.get("reason", "") for r in members))
        why = reasons[0] if len(reasons) == 1 else f"{reasons[0]}; ..."
        cases = "every case" if len(members) == len({r["case_id"] for r in rows}) else \
            ", ".join(r["case_id"] for r in members[:3]) + (f" and {len(members) - 3} more" if len(members) > 3 else "")
        lines.append(f"not timed: {backend}, {len(members)} ({cases}): {status.replace('_', ' ')}: {why}")
    lines += [f"{r['status']}: {r['case_id']} on {r['backend']}: {r.get('reason', '')}"
              for r in rows if r["status"] in ("mismatch", "error")]
    unstable = sum(bool(r.get("unstable")) for r in rows if r["status"] == "ok")
    if unstable:
        lines.append(f"unstable: {unstable} timed rows (marked ~ in the table; their 'unstable' column says why)")
    return lines


def summary_lines(rows: list[dict], path, sidecar=None) -> list[str]:
    """Everything after the table: outcomes, who won, and where the files are."""
    lines = outcome_lines(rows) + wins_lines(rows)
    lines.append(f"results: {path} ({len(rows)} rows)")
    if sidecar is not None and sidecar.is_file():
        lines.append(f"raw samples: {sidecar}")
    return lines


class ConsoleReporter:
    """``bench run``'s voice: :meth:`track` around the sweep, then :meth:`finish` with its rows."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(highlight=False)

    def line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, markup=False)

    @contextlib.contextmanager
    def track(self):
        """``with reporter.track() as (line, step):`` a progress bar of the cases for an executor's
        ``progress`` and ``step``; lines are printed above the bar.  Off a terminal only the lines."""
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        if not self.console.is_terminal:  # a log: the lines are the progress
            yield self.line, lambda done, total: None
            return
        with Progress(TextColumn("cases"), BarColumn(), MofNCompleteColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
                      TextColumn("left"), TimeRemainingColumn(), console=self.console, transient=True) as bar:
            task = bar.add_task("cases", total=None)

            def step(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            yield (lambda text: bar.console.print(text, soft_wrap=True, markup=False)), step

    def finish(self, rows: list[dict], path, sidecar=None, interrupted: bool = False) -> None:
        """Print the run's table, outcomes, who won and its files."""
        if rows:
            render(rows, title="per_step in microseconds (* best, ~ unstable)", file=self.console.file)
            for text in summary_lines(rows, path, sidecar):
                self.line(text)
        if interrupted:
            self.line("interrupted: the files hold every benchmark finished")
