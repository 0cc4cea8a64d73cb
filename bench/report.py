"""What ``python -m bench run`` prints: a sweep of benchmarks, not a test session.

``bench run`` goes through pytest (:mod:`bench.plugin`) with pytest's own
terminal reporter off (``-p no:terminal``); :class:`SweepReporter`, a plugin
object handed to ``pytest.main``, speaks instead: a progress bar of the cases
with an estimate of the time left (``rich.progress``) while the workers run,
each case's line above it, and at the end the table and what became of every
benchmark -- timed, not timed and why, mismatches, errors
(:func:`outcome_lines`).  ``pytest --benchmark-only`` keeps pytest's reporter.
"""

from __future__ import annotations

import contextlib
from collections import Counter

import pytest

#: Where the plugin finds this reporter in pytest's stash (absent under plain ``pytest``).
REPORTER = pytest.StashKey["SweepReporter"]()


def outcome_lines(rows: list[dict]) -> list[str]:
    """What became of each benchmark of ``rows`` (a result file's rows), in words: a count line
    (timed, not timed, mismatches, errors), then the untimed grouped by backend, status and
    reason, then every mismatch and error with its reason."""
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
        lines.append(f"unstable: {unstable} timed rows (their 'unstable' column says why)")
    return lines


class SweepReporter:
    """``bench run``'s voice, as a pytest plugin object: ``pytest.main(argv, plugins=[reporter])``
    with ``-p no:terminal``.  The plugin asks it for :meth:`track` around the sweep; after
    ``pytest.main`` returns, :meth:`finish` prints the table and the outcomes."""

    def __init__(self, console=None):
        from rich.console import Console

        self.console = console or Console(highlight=False)
        self.config = None
        self.to_run = 0
        self.already = 0
        self.failures: list = []  # (nodeid, text) of failures that are no row's outcome

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(self, config):
        self.config = config
        config.stash[REPORTER] = self

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items):
        self.to_run = len(items)

    def pytest_deselected(self, items):
        self.already += len(items)

    def pytest_runtest_logreport(self, report):
        if report.failed and "rnn_row" not in dict(report.user_properties):
            self.failures.append((report.nodeid, report.longreprtext))

    def line(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, markup=False)

    @contextlib.contextmanager
    def track(self):
        """``with reporter.track() as (line, step):`` a progress bar of the cases (rich.progress:
        done, elapsed, time left) for :meth:`bench.runner.Sweep.run`'s ``progress`` and ``step``;
        lines are printed above the bar.  Off a terminal only the lines are printed."""
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

    def finish(self, code: int) -> None:
        """Print the run's table, outcomes and files (what pytest's summary would have been)."""
        from .plugin import RUN
        from .table import render

        run = self.config.stash.get(RUN, None) if self.config is not None else None
        for nodeid, text in self.failures:
            self.line(f"failed: {nodeid}\n{text}")
        if run is None or not run.file.rows:
            return
        render(run.file.rows, title="per_step in microseconds (* best)", file=self.console.file)
        for text in outcome_lines(run.file.rows):
            self.line(text)
        self.line(f"results: {run.file.path} ({len(run.file.rows)} rows)")
        if run.sidecar.is_file():
            self.line(f"raw samples: {run.sidecar}")
        if code == pytest.ExitCode.INTERRUPTED:
            self.line("interrupted: the files hold every benchmark finished")
