"""The pytest plugin behind ``pytest --benchmark-only`` and ``python -m bench run``.

It parametrizes ``bench/bench_forward.py`` with a grid's (case, backend)
pairs, keeps benchmarks and unit tests apart (plain ``pytest`` deselects the
benchmarks; ``--benchmark-only`` deselects the rest), records one result row
per benchmark in the CSV as soon as it finishes, keeps pytest-benchmark's
JSON (with raw samples) next to it, and prints a side-by-side table.
Loaded with ``-p bench.plugin`` (pyproject.toml's addopts).
"""

from __future__ import annotations

import datetime
import io
from pathlib import Path

import pytest

from .grids import GRIDS, get_grid
from .measure import Outcome, TimingPolicy, measure
from .results import ResultFile, sidecar_path

_defaults = TimingPolicy()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-cell-bench", "rnn-cell-bench sweeps (with --benchmark-only)")
    group.addoption("--grid", default="quick", help=f"grid to time: {', '.join(GRIDS)} (default: quick)")
    group.addoption("--backends", default=None, help="comma-separated backends (default: all registered)")
    group.addoption("--out", default=None, help="result CSV (default: results/local/<grid>-<run id>.csv)")
    group.addoption("--max-time", type=float, default=_defaults.max_time, help="seconds of timed rounds to aim for per benchmark")
    group.addoption("--min-rounds", type=int, default=_defaults.min_rounds, help="timed rounds at least, budget permitting")
    group.addoption("--budget", type=float, default=_defaults.budget, help="seconds of timed rounds per benchmark at most")
    group.addoption("--check-steps", type=int, default=_defaults.check_steps, help="timesteps of the accuracy check")


def _backend_names(config) -> list[str]:
    from kernels import BACKENDS

    raw = config.getoption("backends")
    if raw is None:
        return list(BACKENDS)
    names = [n.strip() for n in raw.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown or not names:
        raise pytest.UsageError(f"--backends: unknown {unknown or raw!r}; known: {', '.join(BACKENDS)}")
    return names


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    try:
        config._rnn_cases = get_grid(config.getoption("grid"))
        policy = TimingPolicy(
            max_time=config.getoption("max_time"),
            min_rounds=config.getoption("min_rounds"),
            budget=config.getoption("budget"),
            check_steps=config.getoption("check_steps"),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    for name in ("max_time", "min_rounds", "budget", "check_steps"):
        if getattr(policy, name) <= 0:
            raise pytest.UsageError(f"--{name.replace('_', '-')}: expected a positive number, got {getattr(policy, name)}")
    config._rnn_backends = _backend_names(config)
    config._rnn_run = None
    if not config.getoption("benchmark_only"):
        return
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = Path(config.getoption("out") or f"results/local/{config.getoption('grid')}-{run_id}.csv")
    if out.suffix != ".csv":
        raise pytest.UsageError(f"--out: expected a path ending in .csv, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    run = config._rnn_run = SweepRun(config, out, run_id, policy)
    if config.getoption("benchmark_json") is None:
        # pytest-benchmark writes the JSON at the end; it goes to a partial name
        # and is renamed in pytest_sessionfinish, so no half-written sidecar remains
        run.json_partial = out.with_name(f".{out.stem}.json.partial")
        config.option.benchmark_json = open(run.json_partial, "wb")


def pytest_generate_tests(metafunc):
    if "bench_case" in metafunc.fixturenames:
        config = metafunc.config
        pairs = [(c, b) for c in config._rnn_cases for b in config._rnn_backends]
        metafunc.parametrize(("bench_case", "backend_name"), pairs, ids=[f"{c.id}-{b}" for c, b in pairs])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    only = config.getoption("benchmark_only")
    keep, drop = [], []
    for item in items:
        is_sweep = "bench_case" in getattr(item, "fixturenames", ())
        is_bench = "benchmark" in getattr(item, "fixturenames", ())
        (drop if (is_sweep and not only) or (only and not is_bench) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(scope="session")
def bench_run(pytestconfig):
    run = pytestconfig._rnn_run
    if run is None:
        pytest.skip("sweep benchmarks run with --benchmark-only")
    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    if getattr(config, "_rnn_run", None) is not None:
        machine_info["rnn_cell_bench"] = config._rnn_run.metadata()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    row = getattr(item, "_rnn_row", None)
    if row is not None and report.when == "call":
        report.user_properties.append(("rnn_row", row))


def pytest_report_teststatus(report, config):
    """In verbose mode, a finished benchmark's line shows its median per timestep."""
    if report.when == "call" and report.passed:
        row = dict(report.user_properties).get("rnn_row")
        if row and row.get("status") == "ok":
            return "passed", ".", f"{format_seconds(row['per_step_s'])}/step"
    return None


def pytest_terminal_summary(terminalreporter):
    run = getattr(terminalreporter.config, "_rnn_run", None)
    if run is None or not run.file.rows:
        return
    from .table import render

    buf = io.StringIO()
    render(run.file.rows, title="median per timestep, microseconds (* fastest)", file=buf)
    terminalreporter.write_sep("=", "rnn-cell-bench")
    terminalreporter.write(buf.getvalue())
    terminalreporter.write_line(f"results: {run.file.path} ({len(run.file.rows)} rows)")
    if run.json_final is not None:
        terminalreporter.write_line(f"raw samples: {run.json_final}")


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    run = getattr(session.config, "_rnn_run", None)
    if run is not None:
        run.finish()


def format_seconds(seconds: float) -> str:
    """``1.23 ms``-style: three significant digits in s, ms, us or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


class SweepRun:
    """State of one sweep: the result file, the metadata, the caches."""

    def __init__(self, config, out: Path, run_id: str, policy: TimingPolicy):
        self.config = config
        self.file = ResultFile(out)
        self.run_id = run_id
        self.policy = policy
        self.json_partial: Path | None = None
        self.json_final: Path | None = None
        self._metadata = None
        self._inputs = (None, None)  # (case, inputs) of the last case: backends of a case run together
        self.references: dict = {}

    def metadata(self) -> dict:
        if self._metadata is None:
            from kernels import available_backends

            from .environment import collect

            available_backends()  # import the libraries so their versions and thread pools are seen
            self._metadata = collect(self.run_id)
        return self._metadata

    def inputs(self, case):
        if self._inputs[0] != case:
            self.references.clear()
            self._inputs = (case, case.inputs())
        return self._inputs[1]

    def record(self, item, row: dict) -> None:
        row = {**row, **self.metadata()}
        item._rnn_row = row
        self.file.add(row)

    def run(self, item, benchmark, case, backend_name: str) -> None:
        try:
            row = measure(benchmark, case, backend_name, self.policy, self.inputs(case), self.references)
        except Outcome as outcome:
            self.record(item, outcome.row)
            if outcome.status == "mismatch":
                pytest.fail(outcome.reason, pytrace=False)
            pytest.skip(outcome.reason)
        except Exception as exc:
            if hasattr(exc, "row"):
                self.record(item, exc.row)
            raise
        self.record(item, row)

    def finish(self) -> None:
        if self.json_partial is None:
            return
        handle = self.config.option.benchmark_json
        if not handle.closed:
            handle.close()
        if self.json_partial.stat().st_size > 0:
            self.json_final = sidecar_path(self.file.path)
            self.json_partial.replace(self.json_final)
        else:
            self.json_partial.unlink()
