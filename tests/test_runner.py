"""The isolated runner: schedule, worker protocol, aggregation, busy machines, A/B, outside backends."""

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench import runner
from bench.compare import compare, judge_paired
from bench.grids import Case, get_grid, select
from bench.results import read_results
from kernels import CellSpec

from .spin_backend import FACTOR_ENV, install_entry_point

REPO = Path(__file__).resolve().parent.parent


def test_schedule_is_seeded_and_holds_every_process_once():
    sides = [runner.Side("base", REPO), runner.Side("new", REPO)]
    order = runner.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=7)
    assert order == runner.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=7)
    assert order != runner.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=8)
    assert sorted((s.side.label, s.backend, s.process) for s in order) == sorted(
        (side, b, k) for side in ("base", "new") for b in ("numpy", "numba", "torch_cpu") for k in range(3))
    for a, b in zip(order[::2], order[1::2]):  # each A/B pair back to back
        assert (a.backend, a.process) == (b.backend, b.process) and {a.side.label, b.side.label} == {"base", "new"}


class FakeWorker:
    def __init__(self, side, backend, process):
        self.slot = runner.Slot(runner.Side(side, REPO), backend, process)


def test_burst_order_keeps_pairs_adjacent_and_varies():
    workers = [FakeWorker(s, b, k) for s in ("base", "new") for b in ("numpy", "numba") for k in range(2)]
    orders = set()
    rng = random.Random(0)
    for _ in range(20):
        order = runner.burst_order(workers, rng)
        assert sorted(map(id, order)) == sorted(map(id, workers))
        for a, b in zip(order[::2], order[1::2]):
            assert (a.slot.backend, a.slot.process) == (b.slot.backend, b.slot.process)
        orders.add(tuple(f"{w.slot.side.label}{w.slot.backend}{w.slot.process}" for w in order))
    assert len(orders) > 5  # random, not a fixed rotation


def result(times, status="ok", other_cores=0.0, **row):
    return runner.ProcessResult({"case_id": "c", "backend": "numpy", "status": status, "reason": "",
                                 "prepare_s": 0.5, **row}, list(times), 1000, other_cores)


def test_aggregate_takes_the_median_of_process_medians():
    case = Case(CellSpec("gru", 3, 4), 10, 2)
    per_process = [result([1.0, 1.1, 0.9]), result([2.0, 2.0, 2.1, 1.9]), result([1.2, 1.2, 1.3])]
    row, rounds, medians = runner.aggregate(case, "numpy", per_process)
    assert medians == [1.0, 2.0, 1.2] and row["median_s"] == 1.2 and row["per_step_s"] == pytest.approx(0.12)
    assert row["rounds"] == len(rounds) == 10 and row["min_s"] == 0.9 and row["processes"] == 3
    assert row["process_cv"] == pytest.approx(np.std(medians, ddof=1) / np.mean(medians))
    assert "processes disagree: their medians vary by 38%" in row["unstable"]


def test_aggregate_says_a_busy_machine_and_keeps_quiet_rows_stable():
    case = Case(CellSpec("gru", 3, 4), 10, 2)
    quiet, _, _ = runner.aggregate(case, "numpy", [result([1.0, 1.01]), result([1.0, 1.02])])
    assert quiet["unstable"] == ""
    busy, _, _ = runner.aggregate(case, "numpy", [result([1.0]), result([1.0], other_cores=0.97)])
    assert busy["unstable"] == "machine busy during 1 of 2 processes (other processes used up to 0.97 cores)"


def test_a_row_untimed_in_any_process_is_not_timed():
    case = Case(CellSpec("gru", 3, 4), 10, 2)
    row, rounds, medians = runner.aggregate(case, "numpy", [result([1.0]), result([], "error", reason="boom")])
    assert (row["status"], row["reason"], rounds, medians) == ("error", "boom", [], [])


def test_worker_protocol_answers_each_request():
    from bench.worker import serve

    answers = []
    job = {"backend": "numpy", "grid": "smoke", "threads": 1,
           "policy": {"max_time": 0.01, "min_rounds": 3, "max_rounds": 10, "budget": 1.0, "min_round_s": 1e-4,
                      "check_steps": 4}}
    case = get_grid("smoke")[0].id
    serve(job, iter([{"cmd": "prepare", "case": case}, {"cmd": "time", "rounds": 4}, {"cmd": "quit"}]),
          answers.append)
    prepared, timed, quit_ = answers
    assert prepared["row"]["status"] == "ok" and prepared["row"]["case_id"] == case and 3 <= prepared["rounds"] <= 10
    assert prepared["row"]["blas_threads"] >= 1 and "thread_pools" in prepared["row"]
    assert len(timed["times"]) == 4 and all(t > 0 for t in timed["times"])
    assert "thread_pools" in quit_["metadata"]


def start_hog(seconds: int = 60) -> int:
    """Start a CPU-bound process that is not a child of this one (as another user's job is not);
    returns its pid."""
    loop = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    shell = subprocess.run(["sh", "-c", f'{sys.executable} -c "{loop}" >/dev/null 2>&1 & echo $!'],
                           capture_output=True, text=True, timeout=30)
    return int(shell.stdout.strip())


def test_machine_state_sees_a_cpu_bound_process():
    from bench.environment import BUSY_CORES, machine_state

    quiet = machine_state()
    pid = start_hog()
    try:
        time.sleep(0.3)
        state = machine_state()
    finally:
        os.kill(pid, 9)
    assert state["other_cores"] > BUSY_CORES and f"({pid})" in state["busiest"]
    assert runner.busy_warning(state).startswith("warning: the machine is busy")
    assert quiet["other_cores"] < state["other_cores"]


def test_select_by_where():
    cases = select(get_grid("default"), ["case_id=gru-T100-B64-H256-float32"])
    assert [c.id for c in cases] == ["gru-T100-B64-H256-float32"]
    assert {c.spec.mode for c in select(get_grid("quick"), ["mode=lstm", "batch=1"])} == {"lstm"}
    with pytest.raises(ValueError, match="--where: expected COLUMN=VALUE"):
        select(get_grid("quick"), ["speed=1"])


def test_paired_judgement():
    slow = judge_paired("x", ("k",), [1.0, 1.1, 0.9, 1.05, 1.0], [1.1, 1.21, 0.99, 1.155, 1.1], 1.05, 0.01)
    assert slow.verdict == "regression" and slow.ratio == pytest.approx(1.1)
    same = judge_paired("x", ("k",), [1.0, 1.1, 0.9], [1.01, 1.09, 0.9], 1.05, 0.01)
    assert same.verdict == "unchanged"
    assert judge_paired("x", ("k",), [1.0], [2.0], 1.05, 0.01).verdict == "not comparable"
    for base, new, why in (([0.0, 1.0], [1.0, 1.0], "not a positive finite time"),
                           ([float("nan"), 1.0], [1.0, 1.0], "not a positive finite time"),
                           ([1.0, 1.0, 1.0], [1.0, 1.0], "3 BASE processes against 2 NEW")):
        pair = judge_paired("x", ("k",), base, new, 1.05, 0.01)
        assert pair.verdict == "not comparable" and why in pair.why


def test_compare_tests_process_medians_when_both_files_have_them(tmp_path):
    """A run whose processes are all 1.3x slower is a regression, judged on the processes, even
    when its pooled rounds overlap; the same processes against themselves are unchanged."""
    case = Case(CellSpec("lstm", 8, 8), 10, 1)
    meta = {"schema_version": 4, "machine_id": "m", "threads": 1}
    for name, scale in (("base", 1.0), ("new", 1.3)):
        out = runner.Output(tmp_path / f"{name}.csv", meta)
        per = [result(np.array([1.0, 1.02, 0.98]) * m * scale) for m in (1.0, 1.05, 0.97)]
        row, rounds, medians = runner.aggregate(case, "numpy", per)
        out.add({**row, **case.fields(), **meta}, rounds, medians)
    c = compare(tmp_path / "base.csv", tmp_path / "new.csv")
    assert [p.verdict for p in c.pairs] == ["regression"] and c.pairs[0].ratio == pytest.approx(1.3)
    assert [p.verdict for p in compare(tmp_path / "base.csv", tmp_path / "base.csv").pairs] == ["unchanged"]


def test_one_process_a_side_is_not_comparable(tmp_path):
    """The rounds of one process share its level: they are no replicates, so no test is made."""
    case = Case(CellSpec("lstm", 8, 8), 10, 1)
    meta = {"schema_version": 4, "machine_id": "m", "threads": 1}
    for name, scale in (("base", 1.0), ("new", 1.3)):
        out = runner.Output(tmp_path / f"{name}.csv", meta)
        row, rounds, medians = runner.aggregate(case, "numpy", [result(np.linspace(1, 1.1, 50) * scale)])
        out.add({**row, **case.fields(), **meta}, rounds, medians)
    from bench.compare import Unusable

    with pytest.raises(Unusable, match="1 vs 1 worker processes; at least 2 a side are needed"):
        compare(tmp_path / "base.csv", tmp_path / "new.csv")


def spin_env(tmp_path):
    site = install_entry_point(tmp_path / "site")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def test_an_entry_point_backend_is_listed_without_importing_it(tmp_path):
    script = "import sys, kernels\nprint(kernels.backend_names(), 'bench.calibration' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", script], env=spin_env(tmp_path), capture_output=True, text=True,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    from kernels import registry

    builtin = [n for n in registry.BACKENDS if registry.BACKENDS[n][0].startswith("kernels.")]
    assert proc.stdout.strip() == f"{builtin + ['spin']} False"


def test_register_backend_in_process():
    from kernels import get_backend, init_weights, register_backend, registry
    from kernels.reference import reference_forward, within_tolerance

    from .spin_backend import SpinBackend

    try:
        register_backend("spin_here", SpinBackend)
        spec = CellSpec("gru", 3, 4)
        x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
        w = init_weights(spec)
        assert within_tolerance(spec, get_backend("spin_here").forward(spec, w, x), reference_forward(spec, w, x))
        assert registry.registered_backends() == {"spin_here": "bench.calibration:SpinBackend"}
        with pytest.raises(ValueError, match="name: 'spin_here' is already registered"):
            register_backend("spin_here", SpinBackend)
        with pytest.raises(ValueError, match="without ':'"):
            register_backend("a:b", SpinBackend)
    finally:
        registry.BACKENDS.pop("spin_here", None)
        registry._registered.pop("spin_here", None)


def test_a_calibrated_slowdown_is_caught_by_the_paired_gate(tmp_path):
    """Two sides that differ only in the spin backend's work (x1.5) through real worker processes:
    every row is a regression near 1.5; the report and the files say so."""
    from bench.ab import judge_files
    from bench.options import RunOptions

    os.environ["PYTHONPATH"] = spin_env(tmp_path)["PYTHONPATH"]  # the workers inherit it
    try:
        options = RunOptions(grid="smoke", max_time=0.05, processes=5, threads=1)
        outputs = {"base": tmp_path / "base.csv", "new": tmp_path / "new.csv"}
        sides = [runner.Side("base", REPO, ((FACTOR_ENV, "1.0"),)), runner.Side("new", REPO, ((FACTOR_ENV, "1.5"),))]
        lines = []
        runner.Sweep(options, get_grid("smoke"), ["spin"], sides, outputs, "RUN", 1).run(lines.append)
    finally:
        del os.environ["PYTHONPATH"]
    c = judge_files(outputs["base"], outputs["new"], {"default": 1.05}, 0.01)
    assert [p.verdict for p in c.pairs] == ["regression", "regression"], [(p.ratio, p.p_value) for p in c.pairs]
    assert all(1.3 < p.ratio < 1.7 for p in c.pairs)
    rows = read_results(outputs["new"])
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["processes"] == "5" for r in rows)
    progress = [line for line in lines if line.startswith("[")]  # a busy machine adds a warning first
    assert len(progress) == 2 and progress[0].startswith("[1/2] rnn_tanh-T5-B2-I3-H4-float32:")


def test_bench_ab_of_the_worktree_against_itself(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bench", "ab", "WORKTREE", "WORKTREE", "--grid", "smoke",
                           "--backends", "numpy", "--processes", "2", "--max-time", "0.05", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    assert len(report["rows"]) == 2 and all(r["ratio"] for r in report["rows"])
    files = [Path(REPO / report["base"]), Path(REPO / report["new"])]
    try:
        assert all(len(read_results(f)) == 2 for f in files)
    finally:
        for f in files:
            f.unlink(missing_ok=True)
            f.with_suffix(".json").unlink(missing_ok=True)
    proc = subprocess.run([sys.executable, "-m", "bench", "ab", "no-such-rev", "WORKTREE", "--grid", "smoke"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no-such-rev: not a revision" in proc.stderr


def test_order_of_backends_does_not_move_a_timing():
    """GRU B = 64, H = 256, T = 100 on torch_cpu after the NumPy loop is within 1.3x of torch_cpu alone:
    each backend runs in its own processes."""
    case = "case_id=gru-T100-B64-H256-float32"
    medians = {}
    for backends in ("numpy,torch_cpu", "torch_cpu"):
        out = REPO / "results" / "local" / f"order-{backends.replace(',', '_')}-{os.getpid()}.csv"
        try:
            proc = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "default", "--where", case,
                                   "--backends", backends, "--processes", "2", "--max-time", "0.2", "--out", str(out)],
                                  cwd=REPO, capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
            medians[backends] = float(next(r for r in read_results(out) if r["backend"] == "torch_cpu")["median_s"])
        finally:
            out.unlink(missing_ok=True)
            out.with_suffix(".json").unlink(missing_ok=True)
    ratio = medians["numpy,torch_cpu"] / medians["torch_cpu"]
    assert 1 / 1.3 < ratio < 1.3, medians
