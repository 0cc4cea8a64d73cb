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
from bench.measure import MIN_USEFUL_ROUNDS, Outcome, TimingPolicy, measure
from bench.results import COLUMNS, ResultFile, read_results
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


def test_default_grid_is_the_issue_grid():
    cases = get_grid("default")
    assert len(cases) == 4 * 4 * 4 * 2
    assert {c.timesteps for c in cases} == {1, 10, 100, 1000}
    assert {c.spec.hidden_size for c in cases} == {8, 64, 256, 1024}
    assert {c.batch for c in cases} == {1, 64}
    assert all(c.spec.input_size == c.spec.hidden_size and c.spec.dtype == "float32" for c in cases)


def test_deepbench_grid_reads_the_workload_file():
    cases = get_grid("deepbench")
    assert Case(CellSpec("rnn_relu", 1760, 1760), 50, 16) in cases  # "vanilla" is rnn_relu
    assert {c.spec.mode for c in cases} == {"rnn_relu", "lstm", "gru"}


def test_unknown_grid():
    with pytest.raises(ValueError, match="grid: unknown name 'huge'; known: .*quick"):
        get_grid("huge")


@pytest.mark.parametrize(
    "call_s, expected",
    [
        (1e-6, (1000, 100)),  # short calls: repeated within a round, rounds capped
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
    assert MIN_USEFUL_ROUNDS == 3


def test_result_file_is_complete_after_every_row(tmp_path):
    path = tmp_path / "r.csv"
    f = ResultFile(path)
    for i in range(3):
        f.add({"case_id": f"c{i}", "backend": "numpy", "status": "ok", "schema_version": 1})
        with open(path) as fh:
            rows = list(csv.DictReader(fh))
        assert [r["case_id"] for r in rows] == [f"c{j}" for j in range(i + 1)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.csv"]  # no temporary left
    with pytest.raises(ValueError, match="unknown columns"):
        f.add({"speed": 1})


def test_read_results_rejects_foreign_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not an rnn-cell-bench result file"):
        read_results(bad)
    other = tmp_path / "v0.csv"
    ResultFile(other).add({"case_id": "x", "schema_version": 0})
    with pytest.raises(ValueError, match="schema_version"):
        read_results(other)


class FakeBenchmark:
    """Stands in for pytest-benchmark's fixture where a test needs no timing."""

    def __init__(self):
        self.group, self.extra_info, self.calls = None, {}, 0

    def pedantic(self, target, args=(), rounds=1, iterations=1, warmup_rounds=0):
        self.calls += 1


class WrongBackend(NumpyBackend):
    name = "wrong"

    def prepare(self, spec, weights):
        prepared = super().prepare(spec, weights)
        run = prepared.run
        prepared.run = lambda *a: tuple(None if o is None else o + 1e-3 for o in run(*a))
        return prepared


def test_a_wrong_backend_is_reported_and_not_timed(monkeypatch):
    monkeypatch.setitem(kernels._instances, "wrong", WrongBackend())
    monkeypatch.setitem(kernels.BACKENDS, "wrong", None)
    case = Case(CellSpec("rnn_tanh", 3, 4), 5, 2)
    bench = FakeBenchmark()
    with pytest.raises(Outcome) as info:
        measure(bench, case, "wrong", TimingPolicy(), case.inputs(), {})
    row = info.value.row
    assert row["status"] == "mismatch" and "beyond rtol" in row["reason"]
    assert row["max_abs_err"] == pytest.approx(1e-3, rel=1e-3) and row["tolerance_ok"] is False
    assert bench.calls == 0


def test_an_over_budget_case_is_reported_and_not_timed():
    case = Case(CellSpec("gru", 3, 4), 50, 2)
    bench = FakeBenchmark()
    with pytest.raises(Outcome) as info:
        measure(bench, case, "numpy", TimingPolicy(budget=1e-9), case.inputs(), {})
    assert info.value.row["status"] == "over_budget" and "exceed the budget" in info.value.row["reason"]
    assert bench.calls == 0


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
        assert 0 < lo <= median and int(r["rounds"]) >= 10
        assert float(r["per_step_s"]) == pytest.approx(median / int(r["timesteps"]))
        assert float(r["max_abs_err"]) < 1e-4 and r["tolerance_ok"] == "True"
        assert r["machine_id"] and r["numpy_version"] == np.__version__ and int(r["blas_threads"]) >= 1
    sidecar = json.loads(path.with_suffix(".json").read_text())
    timed = [r for r in rows if r["status"] == "ok"]
    assert len(sidecar["benchmarks"]) == len(timed)
    for b in sidecar["benchmarks"]:
        assert len(b["stats"]["data"]) == b["stats"]["rounds"] >= 10
        assert b["extra_info"]["case_id"] in b["name"] and b["group"] == b["extra_info"]["case_id"]
    return rows


def test_cli_run_writes_csv_and_sidecar(tmp_path):
    out = tmp_path / "smoke.csv"
    proc = run_cli("run", "--grid", "smoke", "--out", str(out), "--max-time", "0.05")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    check_result_file(out, "smoke")
    assert "median per timestep" in proc.stdout and "rnn_tanh-T5-B2-I3-H4-float32" in proc.stdout
    assert not list(tmp_path.glob(".*"))  # no partial files left


def test_pytest_benchmark_only_writes_the_same_schema(tmp_path):
    out = tmp_path / "pt.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--benchmark-only", "--grid", "smoke", "--out", str(out), "--max-time", "0.05",
         "-q", "-p", "no:cacheprovider"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = check_result_file(out, "smoke")
    names = [b["name"] for b in json.loads(out.with_suffix(".json").read_text())["benchmarks"]]
    assert "test_forward[lstm-T4-B3-I3-H4-L2-bi-bf-float32-numba]" in names
    assert {r["case_id"] for r in rows} == {c.id for c in get_grid("smoke")}


def test_cli_over_budget_rows_say_so(tmp_path):
    out = tmp_path / "b.csv"
    proc = run_cli("run", "--grid", "smoke", "--backends", "numpy", "--out", str(out), "--budget", "1e-9")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_results(out)
    assert [r["status"] for r in rows] == ["over_budget"] * 2
    assert all("budget" in r["reason"] and r["median_s"] == "" for r in rows)


def test_cli_rejects_bad_arguments(tmp_path):
    proc = run_cli("run", "--grid", "nope")
    assert proc.returncode == 2 and "invalid choice: 'nope'" in proc.stderr
    proc = run_cli("run", "--backends", "numpy,fortran")
    assert proc.returncode == 2 and "--backends: unknown ['fortran']" in proc.stderr
    proc = run_cli("run", "--grid", "smoke", "--out", str(tmp_path / "x.txt"))
    assert proc.returncode != 0 and "--out: expected a path ending in .csv" in proc.stdout + proc.stderr


def test_cli_check_reports_errors():
    proc = run_cli("check", "--grid", "seed", "--backends", "numpy,numba,torch_cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "all within tolerance" in proc.stdout and "lstm-T10-B1-I5-H8-float32" in proc.stdout


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
