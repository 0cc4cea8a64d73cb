"""The pytest plugin behind ``pytest --benchmark-only`` (loaded with ``-p bench.plugin``, pyproject's addopts).

It parametrizes ``bench/bench_forward.py`` with a grid's (case, backend) pairs: one pytest item
per benchmark, with ids like ``lstm-T100-B1-H256-float32-numba`` and markers of its mode, pass and
backend, so that ``-k`` and ``-m`` select which benchmarks are timed.  Plain ``pytest`` deselects
them; ``--benchmark-only`` deselects everything else.

The selected benchmarks are timed as ``bench run`` times them (:mod:`bench.runner`: isolated
worker processes, interleaved), case by case as the items reach them: an item waits for its case
to be timed (with every other selected backend of that case), then hands its worker-measured
rounds to pytest-benchmark's own fixture through ``benchmark.pedantic`` and a replaying timer
(:class:`ReplayClock`, given with the documented ``benchmark(timer=...)`` marker), so
pytest-benchmark's table, ``--benchmark-json``, ``--benchmark-autosave`` and
``--benchmark-compare`` hold the real rounds.  The result CSV and its samples are written as by
``bench run``, and the terminal summary is ``bench run``'s: the table, what became of every
benchmark, and who won.  The plugin keeps its state in ``config.stash``.
"""

from __future__ import annotations

import io

import pytest

from kernels import MODES, backend_names
from kernels.base import PASSES

from .environment import REPO, run_metadata
from .report.console import summary_lines
from .report.table import render
from .results.paths import sidecar_path
from .results.writer import ResultWriter
from .runner import UsageError, claim_output, executor_of, resolve, run_header, sweep_of
from .timing.executors import LocalExecutor
from .timing.options import RunOptions, add_options
from .timing.process import Side

#: This plugin's state in pytest's stash: the run's options and resolution, and the live run.
RESOLVED = pytest.StashKey["object"]()
RUN = pytest.StashKey["BenchmarkRun | None"]()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-cell-bench", "rnn-cell-bench sweeps (with --benchmark-only)")
    add_options(group.addoption)


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config.stash[RUN] = None
    for marker in (*MODES, *PASSES, *(b for b in backend_names() if b.isidentifier())):
        config.addinivalue_line("markers", f"{marker}: a sweep benchmark of that mode, pass or backend")
    options = RunOptions.read(config.getoption)
    try:
        resolved = resolve(options)
    except UsageError as exc:
        if config.getoption("benchmark_only"):
            raise pytest.UsageError(str(exc)) from None
        resolved = None  # plain pytest: the benchmarks are deselected anyway
    config.stash[RESOLVED] = resolved


def pytest_generate_tests(metafunc):
    if "bench_case" in metafunc.fixturenames:
        resolved = metafunc.config.stash[RESOLVED]
        pairs = [(c, b) for c in resolved.cases for b in resolved.backends] if resolved else []
        done = {(r["case_id"], r["backend"]) for r in resolved.existing} if resolved else set()
        pairs = [(c, b) for c, b in pairs if (c.id, b) not in done]
        marks = [[getattr(pytest.mark, c.spec.mode), getattr(pytest.mark, c.pass_),
                  *([getattr(pytest.mark, b)] if b.isidentifier() else [])] for c, b in pairs]
        metafunc.parametrize(("bench_case", "backend_name"),
                             [pytest.param(c, b, marks=m) for (c, b), m in zip(pairs, marks)],
                             ids=[f"{c.id}-{b}" for c, b in pairs])


def _is_sweep(item) -> bool:
    return "bench_case" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    only = config.getoption("benchmark_only")
    keep = [i for i in items if (only and _is_sweep(i)) or (not only and not _is_sweep(i))
            or (only and "benchmark" in getattr(i, "fixturenames", ()))]
    drop = [i for i in items if i not in keep]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    for item in items:
        if _is_sweep(item):
            item.add_marker(pytest.mark.benchmark(timer=CLOCK, group=item.callspec.params["bench_case"].id))


def pytest_collection_finish(session):
    """After ``-k`` and ``-m`` have deselected: the run of exactly the benchmarks left."""
    config = session.config
    items = [i for i in session.items if _is_sweep(i)]
    if not config.getoption("benchmark_only") or not items:
        return
    resolved = config.stash[RESOLVED]
    pairs = {(i.callspec.params["bench_case"].id, i.callspec.params["backend_name"]) for i in items}
    if resolved.options.dask:
        raise pytest.UsageError("--dask: runs with `python -m bench run --dask ADDRESS`")
    sweep = sweep_of(resolved, [Side("", REPO)], "saved" if resolved.options.save else "run", pairs=pairs)
    try:
        out = claim_output(resolved.options, sweep.run_id)
    except UsageError as exc:
        raise pytest.UsageError(str(exc)) from None
    metadata = {**run_metadata(sweep.run_id), "seed": sweep.seed, **sweep.run_columns()}
    config.stash[RUN] = BenchmarkRun(config, sweep, ResultWriter(out, metadata, resolved.existing or None))


@pytest.fixture(scope="session")
def bench_run(pytestconfig):
    run = pytestconfig.stash[RUN]
    if run is None:
        pytest.skip("sweep benchmarks run with --benchmark-only")
    return run


class ReplayClock:
    """A timer that replays samples measured elsewhere: each call of :meth:`advance` moves it by the
    next sample, so ``benchmark.pedantic(clock.advance, rounds=len(samples))`` with this timer
    records exactly those samples as its rounds."""

    def __init__(self):
        self.now, self.samples = 0.0, iter(())

    def __call__(self) -> float:
        return self.now

    def __repr__(self) -> str:
        return "bench.plugin.CLOCK (worker-measured rounds replayed)"

    def load(self, samples) -> None:
        self.samples = iter(samples)

    def advance(self) -> None:
        self.now += next(self.samples)


CLOCK = ReplayClock()


class BenchmarkRun:
    """The benchmarks selected for this session, timed case by case as their items reach them."""

    def __init__(self, config, sweep, writer: ResultWriter):
        self.config, self.sweep, self.writer = config, sweep, writer
        self.measured: dict = {}
        self.cases = None
        self.end: dict = {}

    def _write(self, line: str) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled():
            (reporter.write_line if reporter is not None else print)(line)

    def _next(self) -> bool:
        """Time the next case and write its rows; False when every case is done."""
        try:
            timed, measured, columns = next(self.cases)
        except StopIteration as done:
            self.end = done.value or {}
            return False
        for m in measured:
            self.writer.add(m, columns)
            self.measured[(m.case_id, m.backend)] = m
        self._write(f"timed {timed.id}")
        return True

    def measurement(self, case, backend: str):
        """The Measurement of ``backend`` on ``case``: its case is timed now if it has not been."""
        if self.cases is None:
            self._write(f"{run_header(self.sweep)}: {self.sweep.benchmarks()} benchmarks to time")
            self.cases = executor_of(self.sweep.options, LocalExecutor()).cases(self.sweep, self._write)
        while (case.id, backend) not in self.measured and self._next():
            pass
        return self.measured.get((case.id, backend))

    def run(self, benchmark, case, backend: str) -> None:
        m = self.measurement(case, backend)
        if m is None:
            pytest.fail("no worker reported this benchmark", pytrace=False)
        benchmark.extra_info.update({k: v for k, v in m.fields.items() if isinstance(v, (str, int, float, bool))})
        if m.status in ("unavailable", "over_budget"):
            pytest.skip(m.reason)
        if m.status != "ok":
            pytest.fail(f"{m.status}: {m.reason}", pytrace=False)
        benchmark.extra_info["process_medians"] = list(m.process_medians)
        CLOCK.load(m.rounds)
        benchmark.pedantic(CLOCK.advance, rounds=len(m.rounds), iterations=1, warmup_rounds=0)

    def finish(self, interrupted: bool) -> None:
        """End the workers and complete the files: after the last case (its state at the end on
        every row), or at once when the session was interrupted (the files hold every finished row)."""
        if self.cases is not None:
            if interrupted:
                self.cases.close()
                self.writer.close()
                return
            while self._next():  # normally none is left: every selected case was reached
                pass
        self.writer.finish(self.end)


def pytest_sessionfinish(session, exitstatus):
    run = session.config.stash.get(RUN, None)
    if run is not None:
        run.finish(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter):
    run = terminalreporter.config.stash.get(RUN, None)
    if run is None:
        return
    rows = run.writer.rows
    if not rows:
        terminalreporter.write_line("rnn-cell-bench: no rows to report")
        return
    buf = io.StringIO()
    render(rows, title="per_step in microseconds (* best, ~ unstable)", file=buf)
    terminalreporter.write_sep("=", "rnn-cell-bench")
    terminalreporter.write(buf.getvalue())
    for line in summary_lines(rows, run.writer.path, sidecar_path(run.writer.path)):
        terminalreporter.write_line(line)
