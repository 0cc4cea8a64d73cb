"""The sweep harness: grids, timing plan, result files, CLI and pytest runs end to end."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import kernels
from bench.grids import GRIDS, Case, get_grid
from bench.measurement import Measurement, ProcessRun
from bench.results import COLUMNS, ResultWriter, read_results, write_results
from bench.results.sidecar import read_sidecar
from bench.timing.measure import prepare_case
from bench.timing.policy import MIN_USEFUL_ROUNDS, TimingPolicy
from kernels import CellSpec
from kernels.numpy_backend import NumpyBackend

REPO = Path(__file__).resolve().parent.parent


def test_grid_ids_are_unique_and_readable():
    for name in GRIDS:
        cases = get_grid(name)
        assert len({c.id for c in cases}) == len(cases), name
    assert Case(CellSpec("lstm", 256, 256), 100, 1).id == "lstm-T100-B1-H256-float32"
    spec = CellSpec("rnn_tanh", 5, 8, num_layers=3, bidirectional=True, batch_first=True, bias=False, dtype="float64")
    assert Case(spec, 10, 1).id == "rnn_tanh-T10-B1-I5-H8-L3-bi-bf-nobias-float64"


def test_every_grid_doc_line_names_its_case_count_or_sizes():
    """``bench grids`` prints each grid's doc line: the sizes it names are the sizes it has."""
    import re

    for name, make in GRIDS.items():
        doc = make.__doc__.strip().splitlines()[0]
        cases = make()
        for letter, values in (("T", {c.timesteps for c in cases}), ("H", {c.spec.hidden_size for c in cases}),
                               ("B", {c.batch for c in cases})):
            named = re.search(rf"\b{letter} in \{{([\d, ]+)\}}", doc)
            if named:
                assert {int(v) for v in named.group(1).split(",")} == values, (name, letter)


def test_deepbench_grid_reads_the_workload_file():
    cases = get_grid("deepbench")
    assert Case(CellSpec("rnn_relu", 1760, 1760), 50, 16, "forward_backward") in cases  # "vanilla" is rnn_relu
    assert {c.spec.mode for c in cases} == {"rnn_relu", "lstm", "gru"}


def test_unknown_grid():
    with pytest.raises(ValueError, match="grid: unknown name 'huge'; known: .*quick"):
        get_grid("huge")


@pytest.mark.parametrize(
    "call_s, expected",
    [
        (1e-6, (1000, 1000)),  # short calls: rounds capped at 1000, so each round repeats the call 1000 times
        (5e-4, (1000, 2)),  # 2000 rounds of one call would be needed: 1000 of two
        (0.01, (100, 1)),  # max_time / call
        (0.5, (10, 1)),  # min_rounds
        (5.0, (6, 1)),  # cut by the 30 s budget
        (11.0, (0, 1)),  # fewer than MIN_USEFUL_ROUNDS fit: over budget
    ],
)
def test_timing_plan(call_s, expected):
    rounds, iterations, note = TimingPolicy().plan(call_s)
    assert (rounds, iterations) == expected
    assert ("budget" in note) == (call_s >= 5.0)


@pytest.mark.parametrize("max_time", [0.05, 1.0, 10.0])
def test_rounds_fill_max_time_whatever_the_call_length(max_time):
    """The 1000-round cap bounds the samples kept, not the time: the rounds of a fast call still
    last max_time (within one round), in at most max_rounds rounds."""
    policy = TimingPolicy(max_time=max_time, budget=100.0)
    for call_s in (2e-8, 1e-6, 3e-5, 1e-4, 7e-4, 1e-3, 0.02):
        rounds, iterations, _ = policy.plan(call_s)
        timed = rounds * iterations * call_s
        assert policy.min_rounds <= rounds <= policy.max_rounds and iterations * call_s >= policy.min_round_s * (1 - 1e-9)
        assert max_time * (1 - 1e-9) <= timed or rounds == policy.min_rounds, (call_s, rounds, iterations)
        assert timed < max_time + 2 * iterations * call_s or rounds == policy.min_rounds, (call_s, rounds, iterations)


def test_a_case_is_timed_exactly_when_its_useful_rounds_fit_the_budget():
    policy = TimingPolicy(budget=1.0)
    fits, _, _ = policy.plan(1.0 / MIN_USEFUL_ROUNDS)
    assert fits == MIN_USEFUL_ROUNDS
    short, _, note = policy.plan(1.0 / MIN_USEFUL_ROUNDS * 1.01)
    assert short == 0 and "exceed the budget" in note


def measured(case_id: str, times=(1e-3, 1.1e-3, 0.9e-3)) -> Measurement:
    case = Case(CellSpec("rnn_tanh", 4, 4), 10, 1)
    fields = {**case.fields(), "case_id": case_id, "backend": "numpy", "status": "ok", "reason": "", "flops": 100}
    return Measurement.from_processes(fields, [ProcessRun(tuple(times)), ProcessRun(tuple(times))])


def test_result_file_is_complete_after_every_row(tmp_path):
    path = tmp_path / "r.csv"
    write_results(path, [])
    writer = ResultWriter(path, {"run_id": "R"})
    for i in range(3):
        writer.add(measured(f"c{i}"), {"schema_version": 6})
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        assert [r["case_id"] for r in rows] == [f"c{j}" for j in range(i + 1)]
        _, entries = read_sidecar(path)
        assert [e["extra_info"]["case_id"] for e in entries] == [f"c{j}" for j in range(i + 1)]
        assert entries[-1]["extra_info"]["process_medians"] == [1e-3, 1e-3]
    writer.finish({"load_avg_end": 0.5})
    assert [r["load_avg_end"] for r in read_results(path)] == ["0.5"] * 3  # the end state on every row
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv", "r.jsonl"]  # no temporary left
    with pytest.raises(ValueError, match="unknown columns"):
        write_results(path, [{"speed": 1}])


def test_a_torn_last_line_is_dropped_with_a_warning(tmp_path):
    """A kill mid-write leaves a row or a sample line cut short: both read back to the finished rows."""
    from bench.results import TornLineWarning

    path = tmp_path / "r.csv"
    write_results(path, [])
    writer = ResultWriter(path, {"run_id": "R"})
    for i in range(2):
        writer.add(measured(f"c{i}"), {"schema_version": 6})
    writer.close()
    with open(path, "a") as f:
        f.write("c2,numpy,,rnn_tanh,4")  # a row cut short
    with open(path.with_suffix(".jsonl"), "a") as f:
        f.write('{"extra_info": {"case_id": "c2"')  # and its samples
    with pytest.warns(TornLineWarning, match="cut short"):
        assert [r["case_id"] for r in read_results(path)] == ["c0", "c1"]
    with pytest.warns(TornLineWarning, match="cut short"):
        assert len(read_sidecar(path)[1]) == 2


def test_a_spreadsheet_saved_csv_reads_as_written(tmp_path):
    """Re-saved as "CSV UTF-8": a byte-order mark and CRLF line ends."""
    path = tmp_path / "r.csv"
    write_results(path, [{"case_id": "c0", "backend": "numpy", "status": "ok", "schema_version": 6}])
    saved = tmp_path / "saved.csv"
    saved.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    assert read_results(saved) == read_results(path)


def test_read_results_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an rnn-cell-bench result file"):
        read_results(bad)
    other = tmp_path / "v0.csv"
    write_results(other, [{"case_id": "x", "schema_version": 0}])
    with pytest.raises(ValueError, match="schema_version"):
        read_results(other)
    old = read_results(REPO / "results" / "intel-xeon-processor-2-80ghz-2c-24g" / "quick-aa-1.csv")  # schema 1: read, with the later columns empty
    assert old[0]["schema_version"] == "1" and old[0]["gflops"] == "" and old[0]["median_s"]


class WrongBackend(NumpyBackend):
    name = "wrong"

    def prepare(self, spec, weights):
        prepared = super().prepare(spec, weights)
        run = prepared.run
        prepared.run = lambda *a: tuple(None if o is None else o + 1e-3 for o in run(*a))
        return prepared


def register_wrong(monkeypatch):
    """Register :class:`WrongBackend` as ``"wrong"``, for this test only."""
    monkeypatch.setitem(kernels.BACKENDS, "wrong", ("tests.test_harness", "WrongBackend", ()))


def test_a_wrong_backend_is_reported_and_not_timed(monkeypatch):
    register_wrong(monkeypatch)
    case = Case(CellSpec("rnn_tanh", 3, 4), 5, 2)
    outcome, ready, _ = prepare_case(case, "wrong", TimingPolicy())
    row = outcome.row
    assert outcome.status == row["status"] == "mismatch" and "beyond rtol" in row["reason"] == outcome.reason
    assert row["max_abs_err"] == pytest.approx(1e-3, rel=1e-3) and row["tolerance_ok"] is False
    assert ready is None  # not timed


def test_an_over_budget_case_is_reported_and_not_timed():
    case = Case(CellSpec("gru", 3, 4), 50, 2)
    outcome, ready, _ = prepare_case(case, "numpy", TimingPolicy(budget=1e-9))
    assert outcome.row["status"] == "over_budget" and "exceed the budget" in outcome.row["reason"]
    assert ready is None


def test_a_ready_case_times_real_calls():
    from bench.timing.measure import time_rounds

    case = Case(CellSpec("gru", 3, 4), 5, 2)
    outcome, ready, _ = prepare_case(case, "numpy", TimingPolicy(max_time=0.01))
    assert outcome.status == "ok" and ready.rounds >= 10 and ready.iterations >= 1
    assert outcome.row["prepare_s"] > 0 and outcome.row["jit_cache"] == "" and outcome.row["tolerance_ok"] is True
    calls = []
    times = time_rounds(lambda: calls.append(time.sleep(0.001)), rounds=3, iterations=2)
    assert len(calls) == 6 and len(times) == 3 and all(0.001 <= t < 0.05 for t in times)


class BrokenBackend(NumpyBackend):
    name = "broken"

    def prepare(self, spec, weights):
        raise ZeroDivisionError("deep inside a kernel")


def test_an_exception_is_an_error_outcome_with_its_row(monkeypatch):
    monkeypatch.setitem(kernels.BACKENDS, "broken", ("tests.test_harness", "BrokenBackend", ()))
    monkeypatch.delitem(kernels.registry._instances, "broken", raising=False)  # another test's "broken" may be cached
    case = Case(CellSpec("gru", 3, 4), 5, 2)
    outcome, _, _ = prepare_case(case, "broken", TimingPolicy())
    assert outcome.status == outcome.row["status"] == "error"
    assert outcome.reason == "ZeroDivisionError: deep inside a kernel" and isinstance(outcome.error, ZeroDivisionError)
    assert outcome.row["case_id"] == case.id and outcome.row["flops"] == case.spec.flops(5, 2)


def available_cuda() -> bool:
    return kernels.availability("torch_cuda") is None


def run_cli(*args, timeout=300, **kwargs):
    return subprocess.run([sys.executable, "-m", "bench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def check_result_file(path: Path, grid: str):
    rows = read_results(path)
    with open(path) as f:
        assert next(csv.reader(f)) == COLUMNS
    cases = get_grid(grid)
    assert [(r["case_id"], r["backend"]) for r in rows] == [(c.id, b) for c in cases for b in kernels.BACKENDS]
    available = kernels.available_backends()
    for r in rows:
        if available[r["backend"]] is not None:
            assert r["status"] == "unavailable" and r["reason"] == available[r["backend"]]
            continue
        assert r["status"] == "ok", r
        median, lo = float(r["median_s"]), float(r["min_s"])
        assert 0 < lo <= median and int(r["rounds"]) >= 10 * int(r["processes"])
        assert float(r["per_step_s"]) == pytest.approx(median / int(r["timesteps"]))
        assert float(r["max_abs_err"]) < 1e-4 and r["tolerance_ok"] == "True"
        assert r["machine_id"] and r["numpy_version"] == np.__version__ and r["blas_threads"] == r["threads"] == "1"
        assert r["seed"] and float(r["prepare_s"]) > 0 and float(r["load_avg_start"]) >= 0
    _, benchmarks = read_sidecar(path)
    timed = [r for r in rows if r["status"] == "ok"]
    assert len(benchmarks) == len(timed)
    for b, r in zip(benchmarks, timed):
        assert len(b["stats"]["data"]) == b["stats"]["rounds"] == int(r["rounds"])
        medians = b["extra_info"]["process_medians"]
        assert len(medians) == int(r["processes"]) and float(r["median_s"]) == pytest.approx(np.median(medians))
        assert b["extra_info"]["case_id"] in b["name"] and b["group"] == b["extra_info"]["case_id"]
    return rows


def test_cli_run_writes_csv_and_sidecar(tmp_path):
    out = tmp_path / "smoke.csv"
    proc = run_cli("run", "--grid", "smoke", "--out", str(out), "--max-time", "0.05", "--processes", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = check_result_file(out, "smoke")
    assert "per_step in microseconds (* best, ~ unstable)" in proc.stdout and "rnn_tanh-T5-B2-I3-H4-float32" in proc.stdout
    header = next(line for line in proc.stdout.splitlines() if "case" in line and "numpy" in line)
    assert ("torch_cuda" in header) == available_cuda()  # a backend that cannot run gets no column, no worker
    timed = sum(r["status"] == "ok" for r in rows)
    assert f"{len(rows)} benchmarks: {timed} timed, {len(rows) - timed} not timed, 0 mismatches" in proc.stdout
    assert " passed" not in proc.stdout and "skipped" not in proc.stdout  # a sweep, not a test session
    assert not list(tmp_path.glob(".*"))  # no partial files left


def test_pytest_benchmark_only_writes_the_same_schema(tmp_path):
    out = tmp_path / "pt.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--benchmark-only", "--grid", "smoke", "--out", str(out), "--max-time", "0.05",
         "--processes", "1", "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = check_result_file(out, "smoke")
    names = [b["name"] for b in read_sidecar(out)[1]]
    assert "test_forward[lstm-T4-B3-I3-H4-L2-bi-bf-float32-numba]" in names
    assert {r["case_id"] for r in rows} == {c.id for c in get_grid("smoke")}
    assert f"{len(rows)} benchmarks: " in proc.stdout and "fastest in " in proc.stdout  # bench run's summary too


def test_pytest_k_times_only_the_benchmarks_it_selects(tmp_path):
    """-k and -m select what is timed, and pytest-benchmark's own JSON holds the workers' rounds."""
    out = tmp_path / "k.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "bench", "--benchmark-only", "--grid", "smoke", "--backends", "numpy,numba",
         "--out", str(out), "--max-time", "0.02", "--processes", "1", "-q", "-p", "no:cacheprovider", "-k", "lstm",
         "-m", "numba", "--benchmark-json", str(tmp_path / "pb.json")],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_results(out)
    assert [(r["case_id"], r["backend"]) for r in rows] == [("lstm-T4-B3-I3-H4-L2-bi-bf-float32", "numba")]
    (bench,) = json.loads((tmp_path / "pb.json").read_text())["benchmarks"]
    _, (entry,) = read_sidecar(out)
    assert bench["stats"]["data"] == pytest.approx(entry["stats"]["data"], rel=1e-9)  # the same rounds, replayed


def test_cli_over_budget_rows_say_so(tmp_path):
    out = tmp_path / "b.csv"
    proc = run_cli("run", "--grid", "smoke", "--backends", "numpy", "--out", str(out), "--budget", "1e-9",
                   "--processes", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_results(out)
    assert [r["status"] for r in rows] == ["over_budget"] * 2
    assert all("budget" in r["reason"] and r["median_s"] == "" for r in rows)


def test_cli_rejects_bad_arguments(tmp_path):
    proc = run_cli("run", "--grid", "nope")
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr
    proc = run_cli("run", "--backends", "numpy,fortran")
    assert proc.returncode == 2 and "--backends: unknown ['fortran']" in proc.stderr
    proc = run_cli("run", "--grid", "smoke", "--where", "timesteps=999", "--out", str(tmp_path / "none.csv"))
    assert proc.returncode == 2 and "--where: no case of grid smoke matches timesteps=999" in proc.stdout + proc.stderr
    proc = run_cli("ab", "WORKTREE", "WORKTREE", "--grid", "smoke", "--processes", "0")
    assert proc.returncode == 2 and "--processes: expected a positive number, got 0" in proc.stderr
    proc = run_cli("run", "--grid", "smoke", "--out", str(tmp_path / "x.txt"))
    assert proc.returncode != 0 and "--out: expected a path to a .csv file" in proc.stdout + proc.stderr


def test_cli_check_reports_errors(monkeypatch, capsys):
    from bench.__main__ import main

    assert main(["check", "--grid", "seed", "--backends", "numpy,numba,torch_cpu"]) == 0
    out = capsys.readouterr().out
    assert "all within tolerance" in out and "lstm-T10-B1-I5-H8-float32" in out
    register_wrong(monkeypatch)
    assert main(["check", "--grid", "smoke", "--backends", "numpy,wrong"]) == 1
    out = capsys.readouterr().out
    assert "2 beyond tolerance" in out and out.count("FAIL: max abs error") == 2


def test_interrupted_sweep_keeps_finished_rows(tmp_path):
    """Ctrl-C in the middle of a sweep leaves a valid CSV of the rows done and no partial files."""
    out = tmp_path / "int.csv"
    proc = subprocess.Popen([sys.executable, "-m", "bench", "run", "--grid", "quick", "--backends", "numpy",
                             "--out", str(out), "--max-time", "0.2"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not out.exists() or len(read_results(out)) < 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=60)
    rows = read_results(out)
    assert 2 <= len(rows) < len(get_grid("quick")), output
    assert all(r["status"] == "ok" for r in rows)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert proc.returncode != 0 or os.name != "posix"


def test_resume_runs_only_missing_rows(tmp_path):
    out = tmp_path / "r.csv"
    assert run_cli("run", "--grid", "smoke", "--backends", "numpy,numba", "--out", str(out), "--max-time", "0.02",
                   "--processes", "1").returncode == 0
    rows = read_results(out)
    first = {(r["case_id"], r["backend"]): r["run_id"] for r in rows}
    # keep the first two rows, as an interrupted run would have; mark one as an error to be retried
    rows[1]["status"] = "error"
    write_results(tmp_path / "r2.csv", rows[:2])
    (tmp_path / "r.jsonl").rename(tmp_path / "r2.jsonl")
    proc = run_cli("run", "--resume", str(tmp_path / "r2.csv"), "--max-time", "0.02", "--processes", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 benchmarks to time (1 already in" in proc.stdout  # grid and backends taken from the file
    resumed = read_results(tmp_path / "r2.csv")
    assert sorted((r["case_id"], r["backend"]) for r in resumed) == sorted(first)
    assert resumed[0]["run_id"] == first[(resumed[0]["case_id"], resumed[0]["backend"])]  # kept as measured
    assert all(r["status"] == "ok" for r in resumed)
    names = [b["name"] for b in read_sidecar(tmp_path / "r2.csv")[1]]
    assert sorted(names) == sorted(f"test_forward[{c}-{b}]" for c, b in first)  # each once: the error's dropped
    proc = run_cli("run", "--resume", str(tmp_path / "r2.csv"))
    assert proc.returncode == 0 and "complete, nothing to resume" in proc.stdout


def test_resume_of_an_empty_file_asks_for_its_grid(tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_text(",".join(COLUMNS) + "\n")
    proc = run_cli("run", "--resume", str(empty))
    assert proc.returncode == 2 and "--resume: the file has no rows to tell its grid; pass --grid" in proc.stdout + proc.stderr


def test_resume_rejects_a_foreign_file(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    proc = run_cli("run", "--resume", str(bad))
    assert proc.returncode != 0 and "--resume: " in proc.stdout + proc.stderr


def test_save_history_and_plots(tmp_path):
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))  # bench importable from tmp_path
    env = {**os.environ, "RNN_BENCH_MACHINE_ID": "test-machine", "PYTHONPATH": path}
    for _ in range(2):
        proc = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "smoke", "--backends", "numpy",
                               "--save", "--max-time", "0.02", "--processes", "1"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        time.sleep(1.1)  # run ids are per second
    saved = sorted((tmp_path / "results" / "test-machine").glob("*.csv"))
    assert len(saved) == 2 and all(p.with_suffix(".jsonl").is_file() for p in saved)
    proc = subprocess.run([sys.executable, "-m", "bench", "history", "--plot"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("test-machine: 2 saved runs, 2 benchmarks")
    assert (tmp_path / "results" / "test-machine" / "history.png").stat().st_size > 10_000
    assert all(r["made_by"] == "saved" for r in read_results(saved[0]))
    proc = subprocess.run([sys.executable, "-m", "bench", "history", "--machine", "nope"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "no saved runs for machine 'nope'" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "bench", "plot", str(saved[0])], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    pngs = proc.stdout.split()
    assert [Path(p).name.split(".")[1] for p in pngs] == ["per_step_vs_hidden", "time_vs_timesteps", "pct_peak_vs_hidden"]
    assert all(Path(p).stat().st_size > 10_000 for p in pngs)


def test_check_catches_broken_output_contract():
    """Broadcasting must not hide wrong shapes, dtypes or missing outputs."""
    from bench.timing.measure import check

    case = Case(CellSpec("lstm", 8, 8), 20, 4)
    weights, x = case.inputs()
    prepared = NumpyBackend().prepare(case.spec, weights)
    honest = prepared.to_host
    for broken, problem in [
        (lambda r: (honest(r)[0].astype(np.float64), honest(r)[1]), "output has dtype float64"),
        (lambda r: (honest(r)[0], (honest(r)[1][0][0], honest(r)[1][1])), "h_n has shape (4, 8)"),
        (lambda r: (honest(r)[0], (honest(r)[1][0],)), "2 output arrays, expected 3"),
    ]:
        prepared.to_host = broken
        err, found, _, _ = check(prepared, case, weights, x, 16)
        assert found is not None and problem in found
    prepared.to_host = honest
    err, found, _, _ = check(prepared, case, weights, x, 16)
    assert found is None and err < 1e-5


def test_a_backend_that_cannot_be_imported_still_gets_a_row(monkeypatch):
    monkeypatch.setitem(kernels.BACKENDS, "ghost", ("kernels.no_such_module", "X", ()))
    case = Case(CellSpec("rnn_tanh", 3, 4), 5, 2)
    outcome, _, _ = prepare_case(case, "ghost", TimingPolicy())
    assert outcome.row["status"] == "unavailable" and "cannot import" in outcome.row["reason"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(max_time=float("nan")), "--max-time: expected a positive finite number"),
        (dict(budget=float("inf")), "--budget: expected a positive finite number"),
        (dict(min_rounds=1), "--min-rounds: expected 3 to 1000"),
        (dict(check_steps=0), "--check-steps: expected a positive number"),
    ],
)
def test_timing_policy_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TimingPolicy(**kwargs)


def test_warm_up_is_not_fooled_by_a_slow_first_call():
    delays = iter([0.05] + [0.001] * 200)
    calls = []

    def call():
        calls.append(1)
        time.sleep(next(delays))

    estimate = TimingPolicy(max_time=0.1).warm_up(call)
    assert 0.001 <= estimate < 0.01 and len(calls) >= 3


def test_output_files_are_never_overwritten(tmp_path):
    out = tmp_path / "a.csv"
    assert run_cli("run", "--grid", "smoke", "--backends", "numpy", "--out", str(out), "--processes", "1").returncode == 0
    before = out.read_bytes()
    proc = run_cli("run", "--grid", "smoke", "--backends", "numpy", "--out", str(out))
    assert proc.returncode == 2 and "exists; pick a new name" in proc.stdout + proc.stderr
    assert out.read_bytes() == before
    proc = run_cli("run", "--grid", "smoke", "--out", str(tmp_path))
    assert proc.returncode == 2 and "--out: expected a path to a .csv file" in proc.stdout + proc.stderr


def test_default_names_do_not_collide(tmp_path):
    from bench.results import claim

    first = claim(tmp_path / "quick-X.csv", unique=True)
    second = claim(tmp_path / "quick-X.csv", unique=True)
    assert (first.name, second.name) == ("quick-X.csv", "quick-X-2.csv")
    assert read_results(second) == []  # a valid, empty result file until the first row


def test_show_reports_bad_columns_and_empty_selections():
    from bench.__main__ import main

    assert main(["show", str(REPO / "results" / "intel-xeon-processor-2-80ghz-2c-24g" / "default.csv"), "--column", "nope"]) == 2
    assert main(["show", str(REPO / "results" / "intel-xeon-processor-2-80ghz-2c-24g" / "default.csv"), "--where", "bias=true"]) == 1
    with pytest.raises(SystemExit):
        main(["check", "--max-timesteps", "0"])


def test_a_run_writes_its_files_once_and_loads_no_pytest(tmp_path):
    """Rows are appended, not rewritten: the parent's write calls (with its workers', which
    /proc/self/io adds once reaped) add up to its files once, the sidecar once more (lines, then
    the end state on every row in one rewrite), plus its terminal output; and ``bench run`` never
    imports pytest."""
    out = tmp_path / "w.csv"
    args = ["run", "--grid", "smoke", "--passes", "forward,forward_backward", "--backends", "numpy,numba",
            "--processes", "1", "--max-time", "0.01"]
    # first a run that fills numba's cache: /proc/self/io adds the writes of the children a process has
    # reaped, and workers compiling into a cold cache write megabytes that are not the parent's
    warm = subprocess.run([sys.executable, "-m", "bench", *args, "--out", str(tmp_path / "warm.csv")], cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert warm.returncode == 0, warm.stdout + warm.stderr
    script = ("import sys\nfrom bench.commands import main\ncode = main(sys.argv[1:])\n"
              "print('WCHAR', dict(l.split(': ') for l in open('/proc/self/io').read().splitlines())['wchar'])\n"
              "print('PYTEST', any(m == 'pytest' or m.startswith('_pytest') for m in sys.modules))\nsys.exit(code)")
    proc = subprocess.run([sys.executable, "-c", script, *args, "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})  # a fresh clone's .pyc files are no rows
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = dict(line.split(" ", 1) for line in proc.stdout.splitlines() if line.startswith(("WCHAR", "PYTEST")))
    files = out.stat().st_size + out.with_suffix(".jsonl").stat().st_size
    terminal = len(proc.stdout.encode()) + len(proc.stderr.encode())
    assert len(read_results(out)) == 8 and lines["PYTEST"] == "False"
    assert int(lines["WCHAR"]) <= 2 * files + terminal + 64 * 1024, (lines, files, terminal)
