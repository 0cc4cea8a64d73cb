"""Sweeps bigger than one machine: shards and merge, runs on a dask.distributed cluster, machines kept apart."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.grids import Case, case_cost, get_grid, parse_shard, shard
from bench.judge.compare import compare
from bench.measurement import Measurement, ProcessRun
from bench.results import KEY_COLUMNS, ResultWriter, read_results, write_results
from bench.results.sidecar import read_sidecar
from bench.runner import run_to_files
from bench.timing.options import RunOptions
from bench.timing.process import Side
from bench.timing.sweep import Sweep
from kernels import CellSpec

REPO = Path(__file__).resolve().parent.parent


def keys(rows):
    return sorted(tuple(r[c] for c in KEY_COLUMNS) for r in rows)


@pytest.mark.parametrize("grid", ["quick", "deepbench", "calibration"])
def test_shards_split_a_grid_exactly_stably_and_balanced(grid):
    cases = get_grid(grid)
    shuffled = random.Random(1).sample(cases, len(cases))
    for n in (1, 2, 3, 7):
        parts = [shard(cases, k, n) for k in range(1, n + 1)]
        ids = [c.id for p in parts for c in p]
        assert sorted(ids) == sorted(c.id for c in cases) and len(set(ids)) == len(ids)  # each case exactly once
        assert [c.id for c in shard(shuffled, 1, n)] == [c.id for c in shuffled if c in parts[0]]  # order-free
        loads = [sum(case_cost(c) for c in p) for p in parts]
        assert max(loads) - min(loads) <= max(map(case_cost, cases)) + 1e-9  # LPT: within one case's cost


def test_lpt_gives_the_largest_cases_to_different_shards():
    big = Case(CellSpec("lstm", 1024, 1024), 1000, 64)
    bigger = Case(CellSpec("lstm", 1024, 1024), 2000, 64)
    small = [Case(CellSpec("rnn_tanh", 4, 4), t, 1) for t in (1, 2, 3, 4)]
    cases = small + [big, bigger]
    assert case_cost(bigger) > case_cost(big) > case_cost(small[0]) == case_cost(small[3])
    first, second = shard(cases, 1, 2), shard(cases, 2, 2)
    assert first == [bigger] and second == small + [big]  # bigger alone outweighs big and the small ones


def test_parse_shard_names_the_option():
    assert parse_shard("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b", "1/0"):
        with pytest.raises(ValueError, match="--shard: expected K/N"):
            parse_shard(bad)


def sweep(out: Path, grid: str, shard_text=None, **options):
    """A run of ``grid``'s numpy rows through the runner, as the CLI makes it (cases as --shard picks them)."""
    opts = RunOptions(**{"grid": grid, "shard": shard_text, "processes": 1, "max_time": 0.01, **options})
    cases = get_grid(grid) if shard_text is None else shard(get_grid(grid), *parse_shard(shard_text))
    run_to_files(Sweep(opts, cases, ["numpy"], [Side("", REPO)], "RUN", 1), {"": out}, progress=lambda line: None)
    return read_results(out)


def test_shards_merged_are_the_unsharded_run(tmp_path, capsys):
    whole = sweep(tmp_path / "whole.csv", "seed")
    parts = [tmp_path / f"part{k}.csv" for k in (1, 2, 3)]
    for k, part in enumerate(parts, 1):
        rows = sweep(part, "seed", f"{k}/3")
        assert rows and {r["shard"] for r in rows} == {f"{k}/3"} and {r["grid"] for r in rows} == {"seed"}
    out = tmp_path / "all.csv"
    assert main(["merge", *map(str, parts), "--out", str(out)]) == 0
    assert "merged 5 rows of 3 parts (shards 1/3, 2/3, 3/3)" in capsys.readouterr().out
    merged = read_results(out)
    assert keys(merged) == keys(whole)
    _, benchmarks = read_sidecar(out)
    assert sorted(b["extra_info"]["case_id"] for b in benchmarks) == sorted(r["case_id"] for r in merged)
    assert all(r["status"] == "ok" and float(r["median_s"]) > 0 for r in merged)

    def refused(*paths, reason):
        target = tmp_path / f"refused-{len(list(tmp_path.iterdir()))}.csv"
        assert main(["merge", *map(str, paths), "--out", str(target)]) == 2
        assert reason in capsys.readouterr().err
        assert not target.exists() and not target.with_suffix(".jsonl").exists()

    refused(parts[0], parts[0], reason="overlapping rows: ")
    refused(parts[0], tmp_path / "whole.csv", reason="overlapping rows: ")
    for column, value, reason in (("grid", "quick", "parts of different grids"),
                                  ("git_commit", "f" * 40, "parts of different commits"),
                                  ("schema_version", "4", "parts of different schema versions"),
                                  ("shard", "1/4", "parts of different splits")):
        odd = tmp_path / f"odd-{column}.csv"
        write_results(odd, [{**r, column: value} for r in read_results(parts[1])])
        odd.with_suffix(".jsonl").write_text(parts[1].with_suffix(".jsonl").read_text())
        refused(parts[0], odd, reason=reason)
    assert main(["merge", str(parts[0]), "--out", str(out)]) == 2 and "exists" in capsys.readouterr().err


# --- dask.distributed --------------------------------------------------------------------------


try:
    from distributed import WorkerPlugin
except ImportError:  # the dask extra is not installed: the cluster tests skip
    WorkerPlugin = object


class NoPeaks(WorkerPlugin):
    """A dask worker plugin (setup on every worker, restarted ones too) that skips the GEMM peaks:
    their measurement (tens of seconds on a loaded 2-core machine, per cluster worker process) is
    tested with local runs; here rows have empty peak columns."""

    def setup(self, worker):
        import bench.timing.machine

        bench.timing.machine.peaks = lambda threads: ()


@pytest.fixture(scope="module")
def cluster():
    """A real LocalCluster: worker processes with one thread each and the resource bench=1."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, resources={"bench": 1},
                                  dashboard_address=None) as c, distributed.Client(c) as client:
        client.register_plugin(NoPeaks())
        yield c, client


def bench_cli(*args):
    return [sys.executable, "-m", "bench", "run", *args]


def assert_no_overlap(rows):
    """Rows of one cluster worker were timed one after another."""
    by_worker = {}
    for r in rows:
        by_worker.setdefault(r["dask_worker"], []).append((r["started"], r["finished"]))
    for spans in by_worker.values():
        spans.sort()
        assert all(start < end for start, end in spans)
        assert all(prev_end <= start for (_, prev_end), (start, _) in zip(spans, spans[1:])), spans


def test_dask_run_gives_the_local_rows(cluster, tmp_path):
    c, client = cluster
    out = tmp_path / "dask.csv"
    proc = subprocess.run(bench_cli("--grid", "smoke", "--backends", "numpy", "--processes", "2", "--max-time", "0.02",
                                    "--dask", c.scheduler_address, "--out", str(out)),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = read_results(out)
    local = sweep(tmp_path / "local.csv", "smoke", processes=2)
    assert keys(rows) == keys(local) and len(rows) == 2
    addresses = set(client.scheduler_info()["workers"])
    for r in rows:
        assert r["status"] == "ok" and r["processes"] == "2" and r["grid"] == "smoke"
        assert 0 < float(r["min_s"]) <= float(r["median_s"]) and int(r["rounds"]) >= 2 * 10
        assert r["dask_worker"] in addresses and r["hostname"] and r["machine_id"] == local[0]["machine_id"]
        assert r["thread_pools"] and r["blas_threads"] == "1"  # collected in the cluster's worker processes
    assert_no_overlap(rows)
    _, benchmarks = read_sidecar(out)
    assert len(benchmarks) == 2 and all(len(b["extra_info"]["process_medians"]) == 2 for b in benchmarks)


def kill_a_busy_worker(client, proc, ready=lambda: True, timeout=300):
    """SIGKILL the process of a cluster worker that is running a benchmark, once ``ready()``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        busy = [w for w, tasks in client.processing().items() if any(str(t).startswith("bench-") for t in tasks)]
        if busy and ready():
            os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
            return busy[0]
    raise AssertionError("no benchmark was running")


def test_a_lost_cluster_worker_loses_no_finished_row(cluster, tmp_path):
    """A cluster worker killed while it times a benchmark: the rows written before stay as they were,
    the killed benchmark is run again, and every row of the grid ends up in the file."""
    c, client = cluster
    out = tmp_path / "lost.csv"
    proc = subprocess.Popen(bench_cli("--grid", "seed", "--backends", "numpy", "--processes", "1", "--max-time", "0.3",
                                      "--dask", c.scheduler_address, "--out", str(out)),
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    before = []

    def a_row_is_written():
        before[:] = read_results(out) if out.exists() else []
        return bool(before)

    try:
        kill_a_busy_worker(client, proc, a_row_is_written)
        output, _ = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 0, output[-3000:]
    rows = read_results(out)
    assert keys(rows) == keys([{"backend": "numpy", "threads": "1", "measure": "time", **{k: str(v) for k, v in c.fields().items()}}
                               for c in get_grid("seed")])
    after = {(r["case_id"], r["backend"]): r for r in rows}
    for r in before:  # nothing finished is lost or changed
        assert {k: after[(r["case_id"], r["backend"])][k] for k in ("started", "median_s", "dask_worker")} == \
               {k: r[k] for k in ("started", "median_s", "dask_worker")}
    assert all(r["status"] == "ok" for r in rows), [(r["case_id"], r["status"], r["reason"]) for r in rows]
    assert_no_overlap(rows)


def test_a_benchmark_whose_workers_keep_dying_is_an_error_and_resume_runs_it(cluster, tmp_path):
    c, client = cluster
    out = tmp_path / "error.csv"
    c.scheduler.allowed_failures = 0  # the first lost worker is one too many
    try:
        proc = subprocess.Popen(bench_cli("--grid", "smoke", "--backends", "numpy", "--processes", "1", "--max-time",
                                          "0.5", "--dask", c.scheduler_address, "--out", str(out)),
                                cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            kill_a_busy_worker(client, proc)
            output, _ = proc.communicate(timeout=600)
        finally:
            proc.kill()
    finally:
        c.scheduler.allowed_failures = 3
    rows = read_results(out)
    assert len(rows) == 2 and proc.returncode == 1, output[-3000:]  # an error row fails its benchmark item
    errors = [r for r in rows if r["status"] == "error"]  # the killed worker's (it may have held both)
    assert errors and all(r["reason"].startswith("KilledWorker: ") for r in errors), rows
    assert all(r["grid"] == "smoke" and r["run_id"] and r["machine_id"] == "" for r in errors)
    proc = subprocess.run(bench_cli("--resume", str(out), "--dask", c.scheduler_address), cwd=REPO,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    resumed = read_results(out)
    assert sorted(r["case_id"] for r in resumed) == sorted(r["case_id"] for r in rows)
    assert all(r["status"] == "ok" for r in resumed)
    for kept in (r for r in rows if r["status"] == "ok"):  # as measured, not run again
        assert next(r for r in resumed if r["case_id"] == kept["case_id"])["started"] == kept["started"]


def test_an_empty_shard_is_a_valid_file_that_merge_accepts(tmp_path, capsys):
    """A CI matrix with more jobs than cases: the parts with no case write a file with no rows,
    exit 0 with a note, and merge takes them beside the others."""
    parts = []
    for k in (1, 2, 3):
        part = tmp_path / f"part{k}.csv"
        proc = subprocess.run(bench_cli("--grid", "smoke", "--backends", "numpy", "--shard", f"{k}/3", "--processes",
                                        "1", "--max-time", "0.01", "--out", str(part)),
                              cwd=REPO, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        parts.append(part)
    assert "--shard 3/3: no case of grid smoke falls in this part" in proc.stdout
    assert read_results(parts[2]) == [] and read_sidecar(parts[2])[1] == []
    out = tmp_path / "all.csv"
    assert main(["merge", *map(str, parts), "--out", str(out)]) == 0
    assert "merged 2 rows of 3 parts (shards 1/3, 2/3, 3/3)" in capsys.readouterr().out  # none missing


def test_cli_refuses_unreachable_clusters(tmp_path):
    message = "--dask: cannot reach a dask scheduler" if WorkerPlugin is not object else "--dask: needs dask.distributed"
    proc = subprocess.run(bench_cli("--grid", "smoke", "--dask", "tcp://127.0.0.1:9", "--out", str(tmp_path / "x.csv")),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    assert not (tmp_path / "x.csv").exists()  # refused before anything was written


# --- machines kept apart -----------------------------------------------------------------------


def two_machine_file(path: Path, machines: list, scale: float = 1.0):
    """A result file whose benchmark i ran on ``machines[i]``: 3 processes each, times x ``scale``."""
    write_results(path, [])
    out = ResultWriter(path, {"run_id": path.stem})
    for i, machine in enumerate(machines):
        case = Case(CellSpec("lstm", 8, 8), 10 + i, 1)
        per = [ProcessRun(tuple(np.array([1.0, 1.02, 0.98]) * m * scale)) for m in (1.0, 1.05, 0.97)]
        fields = {"case_id": case.id, "backend": "numpy", **case.fields(), "status": "ok", "prepare_s": 0.1,
                  "flops": case.spec.flops(10 + i, 1)}
        out.add(Measurement.from_processes(fields, per), {"schema_version": 6, "threads": 1, "run_id": path.stem,
                                                         "machine_id": machine, "made_by": "saved"})
    out.finish({})


def test_compare_history_and_show_keep_machines_apart(tmp_path, capsys):
    two_machine_file(tmp_path / "base.csv", ["m1", "m2"])
    two_machine_file(tmp_path / "new.csv", ["m2", "m2"], scale=1.3)
    c = compare(tmp_path / "base.csv", tmp_path / "new.csv")
    verdicts = {p.label: (p.verdict, p.why) for p in c.pairs}
    assert verdicts == {"lstm-T10-B1-H8-float32-numpy": ("not comparable", "machines differ: m1 in BASE, m2 in NEW"),
                        "lstm-T11-B1-H8-float32-numpy": ("regression", "")}
    assert any("BASE holds rows of 2 machines (m1, m2)" in w for w in c.warnings)

    saved = tmp_path / "results" / "m1"
    saved.mkdir(parents=True)
    for name in ("20260101T000000Z-a", "20260102T000000Z-b"):
        two_machine_file(saved / f"{name}.csv", ["m1", "m2"])
    from bench.judge.history import trends
    from bench.judge.sides import load
    from bench.results.catalog import machines, saved_runs

    assert machines(tmp_path / "results") == ["m1", "m2"]
    runs, _ = saved_runs(tmp_path / "results", "m2")
    assert [p.stem for p in runs] == ["20260101T000000Z-a", "20260102T000000Z-b"]
    assert [t.label for t in trends([load(p) for p in runs], machine="m2")] == ["lstm-T11-B1-H8-float32-numpy"]
    assert main(["history", "--results", str(tmp_path / "results"), "--machine", "m1"]) == 0
    text = capsys.readouterr().out
    assert "m1: 2 saved runs, 1 benchmarks" in text and "T11" not in text

    assert main(["show", str(tmp_path / "base.csv")]) == 0
    text = capsys.readouterr().out
    assert "per_step in microseconds on m1" in text and "per_step in microseconds on m2" in text
