"""The pytest plugin behind ``pytest --benchmark-only`` and ``python -m bench run``.

It parametrizes ``bench/bench_forward.py`` with a grid's (case, backend)
pairs, keeps benchmarks and unit tests apart (plain ``pytest`` deselects the
benchmarks; ``--benchmark-only`` deselects the rest), and after every
benchmark rewrites the result CSV and its JSON sidecar (pytest-benchmark's
format, raw rounds included) by atomic replace, so an interrupted sweep
keeps every finished row.  ``--resume FILE`` runs only the rows FILE lacks;
``--save`` stores the run under ``results/<machine_id>/``.  Loaded with
``-p bench.plugin`` (pyproject.toml's addopts).
"""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path

import pytest

from .environment import SCHEMA_VERSION
from .grids import GRIDS, MAX_TIME, get_grid
from .measure import Outcome, TimingPolicy, measure
from .results import COLUMNS, ResultFile, atomic_write_text, read_results, sidecar_path

_defaults = TimingPolicy()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-cell-bench", "rnn-cell-bench sweeps (with --benchmark-only)")
    group.addoption("--grid", default=None, help=f"grid to time: {', '.join(GRIDS)} (default: quick, or the grid of --resume's file)")
    group.addoption("--backends", default=None, help="comma-separated backends (default: all registered)")
    group.addoption("--out", default=None, help="result CSV (default: results/local/<grid>-<run id>.csv)")
    group.addoption("--save", action="store_true", help="store the result under results/<machine_id>/<run id>-<commit>.csv (for history)")
    group.addoption("--resume", default=None, metavar="FILE",
                    help="complete result CSV FILE: run only the rows it lacks and rows that errored "
                         "(grid and backends default to the file's)")
    group.addoption("--max-time", type=float, default=None,
                    help=f"seconds of timed rounds to aim for per benchmark (default {_defaults.max_time}; quick: {MAX_TIME['quick']})")
    group.addoption("--min-rounds", type=int, default=_defaults.min_rounds, help="timed rounds at least, budget permitting")
    group.addoption("--budget", type=float, default=_defaults.budget, help="seconds of timed rounds per benchmark at most")
    group.addoption("--check-steps", type=int, default=_defaults.check_steps, help="timesteps of the accuracy check")


def _backend_names(config, existing: list[dict]) -> list[str]:
    """--backends, else the backends of the file being resumed, else all registered."""
    from kernels import BACKENDS, is_backend_name

    raw = config.getoption("backends")
    if raw is None:
        return list(dict.fromkeys(r["backend"] for r in existing)) or list(BACKENDS)
    names = list(dict.fromkeys(n.strip() for n in raw.split(",") if n.strip()))
    unknown = [n for n in names if not is_backend_name(n)]
    if unknown or not names:
        raise pytest.UsageError(f"--backends: unknown {unknown or raw!r}; known: {', '.join(BACKENDS)}")
    return names


def _policy(config, grid: str) -> TimingPolicy:
    max_time = config.getoption("max_time")
    min_rounds = config.getoption("min_rounds")
    try:
        return TimingPolicy(
            max_time=MAX_TIME.get(grid, _defaults.max_time) if max_time is None else max_time,
            min_rounds=min_rounds,
            max_rounds=max(_defaults.max_rounds, min_rounds),
            budget=config.getoption("budget"),
            check_steps=config.getoption("check_steps"),
        )
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _resume_grid(config, rows: list[dict]) -> str:
    """The grid of a file being resumed: --grid when given (checked), else the smallest grid holding all its cases."""
    ids = {r["case_id"] for r in rows}
    named = config.getoption("grid")
    candidates = [named] if named else sorted(GRIDS, key=lambda g: len(GRIDS[g]()))
    for name in candidates:
        if ids <= {c.id for c in get_grid(name)}:
            return name
    raise pytest.UsageError(f"--resume: the file's cases are not all in grid {named or 'any named grid'}; pass the right --grid")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    config._rnn_run = None
    resume = config.getoption("resume")
    existing: list[dict] = []
    if resume:
        if config.getoption("out") or config.getoption("save"):
            raise pytest.UsageError("--resume: writes back to its own FILE; drop --out/--save")
        try:
            existing = read_results(resume)
        except (OSError, ValueError) as exc:
            raise pytest.UsageError(f"--resume: {exc}") from None
        if existing and existing[0]["schema_version"] != str(SCHEMA_VERSION):
            raise pytest.UsageError(f"--resume: {resume} has schema_version {existing[0]['schema_version']}; "
                                    f"this code writes {SCHEMA_VERSION}, so rerun it whole")
        grid = _resume_grid(config, existing)
    else:
        grid = config.getoption("grid") or "quick"
    try:
        config._rnn_cases = get_grid(grid)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    policy = _policy(config, grid)
    config._rnn_backends = _backend_names(config, existing)
    if not config.getoption("benchmark_only"):
        return
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    run = SweepRun(config, run_id, policy)
    if resume:
        out = Path(resume)
    elif config.getoption("save"):
        if config.getoption("out"):
            raise pytest.UsageError("--save: chooses the file name itself; drop --out")
        from .history import save_path

        out = claim(save_path(Path("results"), run.metadata()), unique=True)
    elif config.getoption("out"):
        out = claim(Path(config.getoption("out")), unique=False)
    else:
        out = claim(Path(f"results/local/{grid}-{run_id}.csv"), unique=True)
    config._rnn_run = run
    run.open(out, [r for r in existing if r["status"] != "error"])


def claim(path: Path, unique: bool) -> Path:
    """Create ``path`` (an empty placeholder, filled by the first row) so no other run writes it.

    An existing file is never overwritten: with ``unique`` a free name
    ``<stem>-2.csv``, ``-3``, ... is taken instead; without, it is a usage error.
    """
    if path.suffix != ".csv":
        raise pytest.UsageError(f"--out: expected a path to a .csv file, got {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):
            candidate = path if k == 1 else path.with_name(f"{path.stem}-{k}.csv")
            try:
                with open(candidate, "x") as f:
                    f.write(",".join(COLUMNS) + "\n")  # a valid result file with no rows yet
                    return candidate
            except FileExistsError:
                if not unique:
                    raise pytest.UsageError(
                        f"--out: {path} exists; pick a new name, delete it, or complete it with --resume") from None
    except OSError as exc:
        raise pytest.UsageError(f"--out: cannot write {path}: {exc}") from None
    raise pytest.UsageError(f"--out: no free name next to {path}")


def pytest_generate_tests(metafunc):
    if "bench_case" in metafunc.fixturenames:
        config = metafunc.config
        pairs = [(c, b) for c in config._rnn_cases for b in config._rnn_backends]
        metafunc.parametrize(("bench_case", "backend_name"), pairs, ids=[f"{c.id}-{b}" for c, b in pairs])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    only = config.getoption("benchmark_only")
    done = config._rnn_run.done if config._rnn_run is not None else set()
    keep, drop = [], []
    for item in items:
        names = getattr(item, "fixturenames", ())
        is_sweep = "bench_case" in names
        if is_sweep and only:
            params = item.callspec.params
            is_done = (params["bench_case"].id, params["backend_name"]) in done
        else:
            is_done = False
        wanted = (only and "benchmark" in names and not is_done) or (not only and not is_sweep)
        (keep if wanted else drop).append(item)
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
    if run is None:
        return
    if not run.file.rows:
        terminalreporter.write_line("rnn-cell-bench: no rows to report")
        return
    from .table import render

    buf = io.StringIO()
    render(run.file.rows, title="per_step in microseconds (* best)", file=buf)
    terminalreporter.write_sep("=", "rnn-cell-bench")
    terminalreporter.write(buf.getvalue())
    terminalreporter.write_line(f"results: {run.file.path} ({len(run.file.rows)} rows)")
    if run.sidecar.is_file():
        terminalreporter.write_line(f"raw samples: {run.sidecar}")


def format_seconds(seconds: float) -> str:
    """``1.23 ms``-style: three significant digits in s, ms, us or ns."""
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


class SweepRun:
    """State of one sweep: the result file and its sidecar, the metadata, the caches."""

    def __init__(self, config, run_id: str, policy: TimingPolicy):
        self.config = config
        self.run_id = run_id
        self.policy = policy
        self.done: set[tuple[str, str]] = set()
        self._metadata = None
        self._inputs = (None, None)  # (case, inputs) of the last case: backends of a case run together
        self.references: dict = {}

    def open(self, out: Path, rows: list[dict]) -> None:
        """Start (or, with ``rows`` from an earlier run, continue) the CSV ``out`` and its sidecar."""
        self.file = ResultFile(out)
        self.file.rows = list(rows)
        self.done = {(r["case_id"], r["backend"]) for r in rows}
        self.sidecar = sidecar_path(out)
        hook = self.config.hook
        machine_info = hook.pytest_benchmark_generate_machine_info(config=self.config)
        hook.pytest_benchmark_update_machine_info(config=self.config, machine_info=machine_info)
        commit_info = hook.pytest_benchmark_generate_commit_info(config=self.config)
        self.json = hook.pytest_benchmark_generate_json(
            config=self.config, benchmarks=[], include_data=True, machine_info=machine_info, commit_info=commit_info
        )
        if rows and self.sidecar.is_file():
            keep = {f"{case}-{backend}" for case, backend in self.done}
            old = json.loads(self.sidecar.read_text()).get("benchmarks", [])
            self.json["benchmarks"] = [b for b in old if b.get("name", "").partition("[")[2].rstrip("]") in keep]

    def metadata(self) -> dict:
        if self._metadata is None:
            from kernels import available_backends

            from .environment import collect
            from .roofline import measure_peaks

            available_backends()  # import the libraries so their versions and thread pools are seen
            self._metadata = {**collect(self.run_id), **measure_peaks()}
        return self._metadata

    def inputs(self, case):
        if self._inputs[0] != case:
            self.references.clear()
            self._inputs = (case, case.inputs())
        return self._inputs[1]

    def record(self, item, row: dict, benchmark=None) -> None:
        from .roofline import place

        row = {**row, **self.metadata()}
        row.update(place(row, row))
        item._rnn_row = row
        if benchmark is not None:
            self.json["benchmarks"].append(benchmark.stats.as_dict(include_data=True))
            atomic_write_text(self.sidecar, json.dumps(self.json, default=str))  # params hold Case objects
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
        self.record(item, row, benchmark)
