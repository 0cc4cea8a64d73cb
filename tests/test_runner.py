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

from bench.grids import Case, get_grid, no_match, select
from bench.judge.compare import compare
from bench.judge.sides import Unusable
from bench.judge.stats import judge_paired
from bench.measurement import Measurement, ProcessRun
from bench.results import ResultWriter, read_results, write_results
from bench.runner import run_to_files
from bench.timing import sweep as sweeps
from bench.timing.machine import busy_warning
from bench.timing.options import RunOptions
from bench.timing.process import Side, Slot
from bench.timing.sweep import Sweep
from kernels import CellSpec

from .spin_backend import FACTOR_ENV, install_entry_point

REPO = Path(__file__).resolve().parent.parent


def test_schedule_is_seeded_and_holds_every_process_once():
    sides = [Side("base", REPO), Side("new", REPO)]
    order = sweeps.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=7)
    assert order == sweeps.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=7)
    assert order != sweeps.schedule(sides, ["numpy", "numba", "torch_cpu"], 3, seed=8)
    assert sorted((s.side.label, s.backend, s.process) for s in order) == sorted(
        (side, b, k) for side in ("base", "new") for b in ("numpy", "numba", "torch_cpu") for k in range(3))
    for a, b in zip(order[::2], order[1::2]):  # each A/B pair back to back
        assert (a.backend, a.process) == (b.backend, b.process) and {a.side.label, b.side.label} == {"base", "new"}


class FakeWorker:
    def __init__(self, side, backend, process):
        self.slot = Slot(Side(side, REPO), backend, process)


def test_burst_order_keeps_pairs_adjacent_and_varies():
    workers = [FakeWorker(s, b, k) for s in ("base", "new") for b in ("numpy", "numba") for k in range(2)]
    orders = set()
    rng = random.Random(0)
    for _ in range(20):
        order = sweeps.burst_order(workers, rng)
        assert sorted(map(id, order)) == sorted(map(id, workers))
        for a, b in zip(order[::2], order[1::2]):
            assert (a.slot.backend, a.slot.process) == (b.slot.backend, b.slot.process)
        orders.add(tuple(f"{w.slot.side.label}{w.slot.backend}{w.slot.process}" for w in order))
    assert len(orders) > 5  # random, not a fixed rotation


CASE = Case(CellSpec("gru", 3, 4), 10, 2)


def measure(*per_process, status="ok", **fields) -> Measurement:
    """A Measurement of CASE on numpy from ``(times, other_cores)`` per process."""
    runs = [ProcessRun(tuple(times), cores) for times, cores in per_process]
    return Measurement.from_processes({"case_id": CASE.id, "backend": "numpy", **CASE.fields(), "status": status,
                                       "reason": "", "prepare_s": 0.5, "flops": CASE.spec.flops(10, 2), **fields}, runs)


def test_a_measurement_takes_the_median_of_process_medians():
    m = measure(([1.0, 1.1, 0.9], 0), ([2.0, 2.0, 2.1, 1.9], 0), ([1.2, 1.2, 1.3], 0))
    assert m.process_medians == (1.0, 2.0, 1.2) and m.median == 1.2
    stats = m.statistics()
    assert stats["rounds"] == len(m.rounds) == 10 and stats["min_s"] == 0.9 and m.fields["processes"] == 3
    assert stats["process_cv"] == pytest.approx(np.std([1.0, 2.0, 1.2], ddof=1) / np.mean([1.0, 2.0, 1.2]))
    assert "processes disagree: their medians vary by 38%" in stats["unstable"]


def test_busy_is_counted_per_process():
    """Each process's own bursts are metered: a neighbour during one of three processes is
    'busy during 1 of 3', not of all or none."""
    quiet = measure(([1.0, 1.01], 0.0), ([1.0, 1.02], 0.1))
    assert quiet.unstable == ()
    busy = measure(([1.0], 0.0), ([1.0], 0.97), ([1.0], 0.05))
    assert busy.unstable == ("machine busy during 1 of 3 processes (other processes used up to 0.97 cores)",)


def test_a_benchmark_untimed_in_any_process_is_not_timed():
    m = Measurement.from_processes({"case_id": "c", "backend": "numpy", "status": "ok"},
                                   [ProcessRun((1.0,)), ProcessRun(())])
    assert (m.status, m.rounds, m.process_medians) == ("error", (), ())
    m = Measurement.from_processes({"case_id": "c", "status": "mismatch", "reason": "off"}, [ProcessRun(())])
    assert (m.status, m.reason, m.timed) == ("mismatch", "off", False)


def test_a_process_that_loses_its_cpu_counts_as_busy_however_short_its_bursts():
    """The worker's own CPU seconds short of its wall-clock are what other processes took from it,
    to the nanosecond; the parent's tick meter counts only beyond its uncertainty."""
    part = sweeps._Process({"status": "ok"}, worker_wall=0.1, worker_cpu=0.05, wall=0.1, other_cpu=0.0, slack=0.2)
    assert part.other_cores(threads=1) == pytest.approx(0.5)
    part = sweeps._Process({"status": "ok"}, worker_wall=0.1, worker_cpu=0.1, wall=0.1, other_cpu=0.15, slack=0.2)
    assert part.other_cores(threads=1) == 0.0  # within the meter's uncertainty: not claimed
    part = sweeps._Process({"status": "ok"}, worker_wall=2.0, worker_cpu=2.0, wall=2.0, other_cpu=1.2, slack=0.2)
    assert part.other_cores(threads=1) == pytest.approx(0.5)  # a neighbour on another core, seen long enough


def test_worker_protocol_answers_each_request():
    from bench.timing.worker import serve

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
    assert timed["cpu_s"] > 0 and timed["wall_s"] > 0  # what the parent weighs against each other
    assert prepared["row"]["git_commit"] and prepared["row"]["git_worktree"] == str(REPO)  # the code that ran
    assert "thread_pools" in quit_["metadata"]


def start_hog(seconds: int = 60) -> int:
    """Start a CPU-bound process that is not a child of this one (as another user's job is not);
    returns its pid."""
    loop = f"import time\nend = time.time() + {seconds}\nwhile time.time() < end: pass"
    shell = subprocess.run(["sh", "-c", f'{sys.executable} -c "{loop}" >/dev/null 2>&1 & echo $!'],
                           capture_output=True, text=True, timeout=30)
    return int(shell.stdout.strip())


def test_machine_state_sees_a_cpu_bound_process():
    """The hog is named among the busiest, and its core counted: whatever else the machine runs."""
    from bench.environment import machine_state
    from bench.measurement import BUSY_CORES

    pid = start_hog()
    try:
        time.sleep(0.3)
        state = machine_state()
    finally:
        os.kill(pid, 9)
    hog = next(part for part in state["busiest"].split("; ") if f"({pid})" in part)
    assert float(hog.rpartition(" ")[2].rstrip("%")) > 50  # it ran on a core of its own, or shared one
    assert state["other_cores"] > BUSY_CORES
    assert busy_warning(state).startswith("warning: the machine is busy")


def test_select_by_where():
    cases = select(get_grid("default"), ["case_id=gru-T100-B64-H256-float32"])
    assert [c.id for c in cases] == ["gru-T100-B64-H256-float32"]
    assert {c.spec.mode for c in select(get_grid("quick"), ["mode=lstm", "batch=1"])} == {"lstm"}
    with pytest.raises(ValueError, match="--where: unknown column 'speed'; columns: case_id, mode, "):
        select(get_grid("quick"), ["speed=1"])
    with pytest.raises(ValueError, match="--where: unknown column 'T' \\(did you mean 'timesteps'\\?\\)"):
        select(get_grid("quick"), ["T=50"])
    with pytest.raises(ValueError, match="--where: expected COLUMN=VALUE, got 'T'"):
        select(get_grid("quick"), ["T"])
    assert no_match("quick", get_grid("quick"), ["timesteps=999"]) == (
        "--where: no case of grid quick matches timesteps=999; in that grid timesteps takes 1, 20, 50")


def medians(*values) -> Measurement:
    """A Measurement whose processes' medians are ``values``."""
    return Measurement({"status": "ok"}, tuple(values), tuple(values))


def test_paired_judgement():
    slow = judge_paired("x", ("k",), medians(1.0, 1.1, 0.9, 1.05, 1.0), medians(1.1, 1.21, 0.99, 1.155, 1.1), 1.05, 0.01)
    assert slow.verdict == "regression" and slow.ratio == pytest.approx(1.1)
    same = judge_paired("x", ("k",), medians(1.0, 1.1, 0.9), medians(1.01, 1.09, 0.9), 1.05, 0.01)
    assert same.verdict == "unchanged"
    assert judge_paired("x", ("k",), medians(1.0), medians(2.0), 1.05, 0.01).verdict == "not comparable"
    for base, new, why in (([0.0, 1.0], [1.0, 1.0], "not a positive finite time"),
                           ([float("nan"), 1.0], [1.0, 1.0], "not a positive finite time"),
                           ([1.0, 1.0, 1.0], [1.0, 1.0], "3 BASE processes against 2 NEW")):
        pair = judge_paired("x", ("k",), medians(*base), medians(*new), 1.05, 0.01)
        assert pair.verdict == "not comparable" and why in pair.why


def write_measurements(path, measurements, columns):
    write_results(path, [])
    writer = ResultWriter(path, {"run_id": "R"})
    for m in measurements:
        writer.add(m, columns)
    writer.finish({})


def test_compare_tests_process_medians_when_both_files_have_them(tmp_path):
    """A run whose processes are all 1.3x slower is a regression, judged on the processes, even
    when its pooled rounds overlap; the same processes against themselves are unchanged."""
    columns = {"schema_version": 6, "machine_id": "m", "threads": 1}
    for name, scale in (("base", 1.0), ("new", 1.3)):
        per = [(np.array([1.0, 1.02, 0.98]) * m * scale, 0.0) for m in (1.0, 1.05, 0.97)]
        write_measurements(tmp_path / f"{name}.csv", [measure(*per)], columns)
    c = compare(tmp_path / "base.csv", tmp_path / "new.csv")
    assert [p.verdict for p in c.pairs] == ["regression"] and c.pairs[0].ratio == pytest.approx(1.3)
    assert [p.verdict for p in compare(tmp_path / "base.csv", tmp_path / "base.csv").pairs] == ["unchanged"]


def test_one_process_a_side_is_not_comparable(tmp_path):
    """The rounds of one process share its level: they are no replicates, so no test is made."""
    columns = {"schema_version": 6, "machine_id": "m", "threads": 1}
    for name, scale in (("base", 1.0), ("new", 1.3)):
        write_measurements(tmp_path / f"{name}.csv", [measure((np.linspace(1, 1.1, 50) * scale, 0.0))], columns)
    with pytest.raises(Unusable, match="1 vs 1 worker processes; at least 2 a side are needed"):
        compare(tmp_path / "base.csv", tmp_path / "new.csv")


def spin_env(tmp_path):
    site = install_entry_point(tmp_path / "site")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}


def test_an_entry_point_backend_is_listed_without_importing_it(tmp_path):
    script = "import sys, kernels\nprint(kernels.backend_names(), 'bench.timing.spin' in sys.modules)"
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
        assert registry.registered_backends() == {"spin_here": "bench.timing.spin:SpinBackend"}
        with pytest.raises(ValueError, match="name: 'spin_here' is already registered"):
            register_backend("spin_here", SpinBackend)
        with pytest.raises(ValueError, match="without ':'"):
            register_backend("a:b", SpinBackend)
    finally:
        registry.BACKENDS.pop("spin_here", None)
        registry._registered.pop("spin_here", None)


def test_a_calibrated_slowdown_is_caught_by_the_paired_gate(tmp_path, monkeypatch):
    """Two sides that differ only in the spin backend's work (x1.5) through real worker processes:
    every row is a regression near 1.5; the report and the files say so."""
    monkeypatch.setenv("PYTHONPATH", spin_env(tmp_path)["PYTHONPATH"])  # the workers inherit it
    options = RunOptions(grid="smoke", max_time=0.05, processes=5, threads=1)
    outputs = {"base": tmp_path / "base.csv", "new": tmp_path / "new.csv"}
    sides = [Side("base", REPO, ((FACTOR_ENV, "1.0"),)), Side("new", REPO, ((FACTOR_ENV, "1.5"),))]
    lines = []
    run_to_files(Sweep(options, get_grid("smoke"), ["spin"], sides, "RUN", 1), outputs, progress=lines.append)
    c = compare(outputs["base"], outputs["new"], {"default": 1.05}, 0.01, paired=True)
    assert [p.verdict for p in c.pairs] == ["regression", "regression"], [(p.ratio, p.p_value) for p in c.pairs]
    assert all(1.3 < p.ratio < 1.7 for p in c.pairs)
    rows = read_results(outputs["new"])
    assert [r["status"] for r in rows] == ["ok", "ok"] and all(r["processes"] == "5" for r in rows)
    progress = [line for line in lines if line.startswith("[")]  # a busy machine adds a warning first
    assert len(progress) == 2 and progress[0].startswith("[1/2] rnn_tanh-T5-B2-I3-H4-float32:")


def test_bench_ab_of_the_worktree_against_itself(tmp_path):
    env = {**os.environ, "RNN_BENCH_RESULTS": str(tmp_path / "results"), "RNN_BENCH_MACHINE_ID": "m"}
    proc = subprocess.run([sys.executable, "-m", "bench", "ab", "WORKTREE", "WORKTREE", "--grid", "smoke",
                           "--backends", "numpy", "--processes", "2", "--max-time", "0.05", "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode in (0, 1), proc.stderr
    report = json.loads(proc.stdout[proc.stdout.index("{"):proc.stdout.rindex("}") + 1])
    assert len(report["rows"]) == 2 and all(r["ratio"] for r in report["rows"])
    files = [Path(report["base"]), Path(report["new"])]
    assert all(f.parent == tmp_path / "results" / "m" for f in files)
    assert all(len(read_results(f)) == 2 for f in files) and all(r["made_by"] == "ab" for r in read_results(files[0]))
    (kept,) = (tmp_path / "results" / "m").glob("ab-*.json")  # the report, kept beside its files
    doc = json.loads(kept.read_text())
    assert [len(r["paired_ratios"]) for r in doc["rows"]] == [2, 2] and doc["base"] == doc["new"] == "WORKTREE"
    proc = subprocess.run([sys.executable, "-m", "bench", "ab", "no-such-rev", "WORKTREE", "--grid", "smoke"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2 and "no-such-rev: not a revision" in proc.stderr


def test_each_backend_runs_in_processes_of_its_own(tmp_path):
    """The NumPy loop's workers never load torch, and torch's never load numba: each row's thread
    pools are its own backend's (and a run's parent loads neither)."""
    out = tmp_path / "own.csv"
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "smoke", "--backends", "numpy,torch_cpu",
                           "--processes", "1", "--max-time", "0.02", "--out", str(out)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = read_results(out)
    numpy_rows = [r for r in rows if r["backend"] == "numpy"]
    torch_rows = [r for r in rows if r["backend"] == "torch_cpu"]
    assert all("torch" not in r["thread_pools"] and r["torch_threads"] == "0" for r in numpy_rows)
    assert all("(torch)" in r["thread_pools"] and r["numba_threads"] == "0" for r in torch_rows)


def test_each_side_of_an_ab_records_its_own_code(tmp_path):
    """ab BASE NEW from a checkout whose tree is dirty: BASE's rows name BASE's commit, clean; NEW's
    (WORKTREE) name HEAD, dirty; each sidecar header says the same."""
    clone = tmp_path / "clone"
    git = ["git", "-C", str(clone), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(REPO), str(clone)], check=True, timeout=120)
    (clone / "NOTE").write_text("a commit after BASE\n")
    subprocess.run([*git, "add", "NOTE"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "note"], check=True)
    (clone / "NOTE").write_text("uncommitted\n")  # a tracked file changed: the worktree is dirty
    base_sha = subprocess.run([*git, "rev-parse", "HEAD~1"], capture_output=True, text=True).stdout.strip()
    head_sha = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    env = {**os.environ, "PYTHONPATH": str(clone), "RNN_BENCH_RESULTS": str(tmp_path / "results"),
           "RNN_BENCH_MACHINE_ID": "m"}
    proc = subprocess.run([sys.executable, "-m", "bench", "ab", "HEAD~1", "WORKTREE", "--grid", "smoke", "--backends",
                           "numpy", "--processes", "2", "--max-time", "0.01"], cwd=clone, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-2000:]
    (base,) = (tmp_path / "results" / "m").glob("ab-*-base.csv")
    (new,) = (tmp_path / "results" / "m").glob("ab-*-new.csv")
    assert {(r["git_commit"], r["git_dirty"]) for r in read_results(base)} == {(base_sha, "False")}
    assert {(r["git_commit"], r["git_dirty"]) for r in read_results(new)} == {(head_sha, "True")}
    assert {r["git_worktree"] for r in read_results(new)} == {str(clone)}
    from bench.results.sidecar import read_sidecar

    assert read_sidecar(base)[0]["rnn_cell_bench"]["git_commit"] == base_sha
    assert "NEW was made from" in proc.stdout and "uncommitted changes" in proc.stdout
