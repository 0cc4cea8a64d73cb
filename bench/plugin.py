"""The pytest plugin behind ``pytest --benchmark-only`` and ``python -m bench run``.

It parametrizes ``bench/bench_forward.py`` with a grid's (case, backend)
pairs, keeps benchmarks and unit tests apart (plain ``pytest`` deselects the
benchmarks; ``--benchmark-only`` deselects the rest), and after every
benchmark rewrites the result CSV and its JSON sidecar (pytest-benchmark's
format, raw rounds included) by atomic replace, so an interrupted sweep
keeps every finished row.  ``--resume FILE`` runs only the rows FILE lacks;
``--save`` stores the run under ``results/<machine_id>/``.  Loaded with
``-p bench.plugin`` (pyproject.toml's addopts).

The options are :class:`bench.options.RunOptions` (declared once there, for
this plugin and the CLI alike); each benchmark's :class:`bench.measure.Outcome`
is recorded as a row and then reported to pytest.  The plugin keeps its state
in ``config.stash``.
"""

from __future__ import annotations

import dataclasses
import datetime
import io
from pathlib import Path

import pytest

from .grids import GRIDS, get_grid, select
from .runner import Side, Sweep, new_seed
from .options import OPTIONS, RunOptions, add_options
from .report import REPORTER
from .results import COLUMNS, SCHEMA_VERSION, ResultFile, file_problem, read_results, save_path, sidecar_path

#: This plugin's state in pytest's own stash (the options are under bench.options.OPTIONS): the
#: sweep's (case, backend) pairs, the run.
PAIRS = pytest.StashKey[list]()
RUN = pytest.StashKey["SweepRun | None"]()
#: The result row of a benchmark item, for its report line.
ROW = pytest.StashKey[dict]()


def pytest_addoption(parser):
    group = parser.getgroup("rnn-cell-bench", "rnn-cell-bench sweeps (with --benchmark-only)")
    add_options(group.addoption)


def _backend_names(options: RunOptions, existing: list[dict]) -> list[str]:
    """--backends, else the backends of the file being resumed, else all registered."""
    from kernels import backend_names, parse_backend_list

    if options.backends is None:
        return list(dict.fromkeys(r["backend"] for r in existing)) or backend_names()
    try:
        return parse_backend_list(options.backends)
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def _resume_grid(options: RunOptions, rows: list[dict]) -> tuple[str, RunOptions]:
    """The grid of a file being resumed: --grid when given (checked), else the smallest grid holding
    all its cases; with its own passes, or (without --passes) the passes of the file's rows."""
    ids = {r["case_id"] for r in rows}
    recorded = {r.get("grid") for r in rows} - {None, ""}
    named = options.grid or (recorded.pop() if len(recorded) == 1 else None)
    if not ids and not named:
        raise pytest.UsageError("--resume: the file has no rows to tell its grid; pass --grid")
    candidates = [named] if named else sorted(GRIDS, key=lambda g: len(GRIDS[g]()))
    file_passes = ",".join(dict.fromkeys(r["pass"] for r in rows))
    tries = [options.passes] if options.passes is not None else [None, file_passes or None]
    for name in candidates:
        for passes in tries:
            if ids <= {c.id for c in get_grid(name, passes)}:
                return name, dataclasses.replace(options, passes=passes)
    raise pytest.UsageError(f"--resume: the file's cases are not all in grid {named or 'any named grid'}; pass the right --grid")


def _resume_counts(options: RunOptions, rows: list[dict]) -> RunOptions:
    """The file's --threads, --processes and --shard for a resumed run (threads are part of the key, a
    row's median means the same number of processes, a part stays its part); a different value given
    is a usage error."""
    for name in ("threads", "processes", "shard"):
        found = {r[name] for r in rows if r.get(name)}
        if len(found) == 1:
            value = found.pop()
            value = value if name == "shard" else int(value)
            given = getattr(options, name)
            if given is not None and given != value:
                raise pytest.UsageError(f"--resume: the file was run with --{name} {value}; got --{name} {given}")
            options = dataclasses.replace(options, **{name: value})
    return options


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    options = config.stash.get(OPTIONS, None) or RunOptions.read(config.getoption)
    config.stash[OPTIONS] = options
    config.stash[RUN] = None
    existing: list[dict] = []
    if options.resume:
        if options.out or options.save:
            raise pytest.UsageError("--resume: writes back to its own FILE; drop --out/--save")
        try:
            existing = read_results(options.resume)
        except (OSError, ValueError) as exc:
            raise pytest.UsageError(file_problem("--resume", exc)) from None
        if existing and existing[0]["schema_version"] != str(SCHEMA_VERSION):
            raise pytest.UsageError(f"--resume: {options.resume} has schema_version {existing[0]['schema_version']}; "
                                    f"this code writes {SCHEMA_VERSION}, so rerun it whole")
        grid, options = _resume_grid(options, existing)
        options = _resume_counts(options, existing)
    else:
        grid = options.grid or "quick"
    try:
        cases = select(get_grid(grid, options.passes), options.where)
        if options.shard:
            from .shards import parse_shard, shard

            cases = shard(cases, *parse_shard(options.shard))
        options.policy(grid)  # validated now: a bad value is a usage error before any worker starts
        options.counts()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[PAIRS] = [(c, b) for c in cases for b in _backend_names(options, existing)]
    if not config.getoption("benchmark_only"):
        return
    if not cases and options.shard:
        raise pytest.UsageError(f"--shard {options.shard}: no case of grid {grid} falls in this part")
    if not cases:
        raise pytest.UsageError(f"--where: no case of grid {grid} matches {' '.join(options.where or [])}")
    if options.dask:
        from .cluster import connect

        try:
            connect(options.dask).close()
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    run_id = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    # the benchmark fixture is requested so pytest-benchmark keeps these items under --benchmark-only,
    # but the parent times nothing: its workers do (bench.runner, bench.worker)
    config.addinivalue_line("filterwarnings", "ignore:Benchmark fixture was not used")
    if options.resume:
        out = Path(options.resume)
    elif options.save:
        if options.out:
            raise pytest.UsageError("--save: chooses the file name itself; drop --out")
        from .environment import run_metadata

        out = claim(save_path(Path("results"), run_metadata(run_id)), unique=True)
    elif options.out:
        out = claim(Path(options.out), unique=False)
    else:
        out = claim(Path(f"results/local/{grid}-{run_id}.csv"), unique=True)
    seed = new_seed() if options.seed is None else options.seed
    backends = list(dict.fromkeys(b for _, b in config.stash[PAIRS]))
    options = dataclasses.replace(options, grid=grid)
    from kernels.registry import registered_backends

    sweep = Sweep(options, cases, backends, [Side("", Path(__file__).resolve().parent.parent)], {"": out}, run_id,
                  seed, {"": [r for r in existing if r["status"] != "error"]}, registered_backends())
    config.stash[RUN] = ParentRun(config, sweep)


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
        pairs = metafunc.config.stash[PAIRS]
        metafunc.parametrize(("bench_case", "backend_name"), pairs, ids=[f"{c.id}-{b}" for c, b in pairs])


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    only = config.getoption("benchmark_only")
    run = config.stash[RUN]
    done = run.done if run is not None else set()
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
    run = pytestconfig.stash[RUN]
    if run is None:
        pytest.skip("sweep benchmarks run with --benchmark-only")
    return run


def pytest_benchmark_update_machine_info(config, machine_info):
    run = config.stash.get(RUN, None)
    if run is not None:
        machine_info["rnn_cell_bench"] = run.metadata()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    row = item.stash.get(ROW, None)
    if row is not None and report.when == "call":
        report.user_properties.append(("rnn_row", row))


def pytest_report_teststatus(report, config):
    """In verbose mode, a finished benchmark's line shows its median per timestep."""
    if report.when == "call" and report.passed:
        row = dict(report.user_properties).get("rnn_row")
        if row and row.get("status") == "ok":
            return "passed", ".", f"{format_seconds(float(row['per_step_s']))}/step"
    return None


def pytest_terminal_summary(terminalreporter):
    run = terminalreporter.config.stash.get(RUN, None)
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


class ParentRun:
    """A sweep run the isolated way (:class:`bench.runner.Sweep`): on the first benchmark item
    every worker runs, interleaved; each item then reports its row's outcome to pytest."""

    def __init__(self, config, sweep: Sweep):
        self.config, self.sweep = config, sweep
        self.rows: dict | None = None
        self.done = {(r["case_id"], r["backend"]) for r in sweep.existing.get("", [])}
        self.file = ResultFile(sweep.outputs[""])
        self.sidecar = sidecar_path(sweep.outputs[""])

    def metadata(self) -> dict:
        return {"run_id": self.sweep.run_id, "seed": self.sweep.seed}

    def _execute(self) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        capture = self.config.pluginmanager.get_plugin("capturemanager")

        def write(line):  # progress goes to the terminal now, not into the item's captured output
            with capture.global_and_fixture_disabled():
                (reporter.write_line if reporter is not None else print)(line)
        threads, processes = self.sweep.options.counts()
        header = (f"rnn-cell-bench: {len(self.sweep.cases)} cases x {len(self.sweep.backends)} backends, "
                  f"{processes} worker processes each, {threads} thread(s), seed {self.sweep.seed}")
        voice = self.config.stash.get(REPORTER, None)  # bench run's own reporter (bench.report)
        if voice is None:
            write(header)
            rows = self.sweep.run(progress=write)[""]
        else:
            done = f" ({voice.already} already in {self.file.path})" if voice.already else ""
            with capture.global_and_fixture_disabled(), voice.track() as (line, step):
                line(f"{header}: {voice.to_run} benchmarks to time{done}")
                rows = self.sweep.run(progress=line, step=step)[""]
        self.file.rows = rows
        self.rows = {(r["case_id"], r["backend"]): r for r in rows}

    def run(self, item, benchmark, case, backend_name: str) -> None:
        if self.rows is None:
            self._execute()
        row = self.rows.get((case.id, backend_name))
        if row is None:
            pytest.fail("no worker reported this benchmark", pytrace=False)
        item.stash[ROW] = row
        if row["status"] in ("unavailable", "over_budget"):
            pytest.skip(row["reason"])
        if row["status"] != "ok":
            pytest.fail(f"{row['status']}: {row['reason']}", pytrace=False)
