"""``--measure instructions``: refusals and missing tools, the judge of counts, and -- where valgrind
and gcc are installed (CI installs them) -- counts that repeat exactly and see added work.

The counting tests run the smallest case of the smoke grid on numpy and the ``spin`` backend, one
valgrind process per side: the file takes about a minute on two cores."""

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.commands import main
from bench.grids import get_grid
from bench.judge.compare import compare
from bench.judge.history import find_steps
from bench.judge.stats import COUNT_THRESHOLD, judge, judge_paired, parse_thresholds
from bench.measurement import COUNT_TOLERANCE, Measurement, ProcessRun
from bench.results import read_results
from bench.results.schema import KEY_COLUMNS, key
from bench.runner import UsageError, resolve
from bench.timing.options import RunOptions

REPO = Path(__file__).resolve().parent.parent
SMALL = "rnn_tanh-T5-B2-I3-H4-float32"


def counts(*per_process, fields=None, status="ok") -> Measurement:
    """A Measurement of instruction counts: one tuple of per-call counts per process."""
    fields = {"case_id": "c", "backend": "numpy", "status": status, "measure": "instructions", **(fields or {})}
    return Measurement.from_processes(fields, [ProcessRun(tuple(p)) for p in per_process], "instructions")


# --- refusals and missing tools (no valgrind needed) ---------------------------------------------------


def test_more_than_one_thread_is_refused_with_the_reason(capsys):
    with pytest.raises(ValueError, match="one thread .*valgrind runs a process's threads one at a time"):
        RunOptions(measure="instructions", threads=2).counts()
    assert RunOptions(measure="instructions").counts() == (1, 1)  # one counting process per backend by default
    assert main(["run", "--grid", "smoke", "--measure", "instructions", "--threads", "2"]) == 2
    assert "--threads: instruction counts run with one thread (got 2)" in capsys.readouterr().err


def test_dask_is_refused():
    with pytest.raises(UsageError, match="--dask: instruction counts run on this machine"):
        resolve(RunOptions(grid="smoke", measure="instructions", dask="tcp://127.0.0.1:1"))


def test_missing_valgrind_names_the_package_to_install(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))  # no valgrind (nor anything else) on PATH
    out = tmp_path / "x.csv"
    assert main(["run", "--grid", "smoke", "--measure", "instructions", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "valgrind, which is not on PATH" in err and "apt-get install valgrind" in err
    assert not out.exists()  # refused before anything was written
    assert main(["calibrate", "--measure", "instructions", "--out-dir", str(tmp_path)]) == 2
    assert "apt-get install valgrind" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_missing_compiler_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # no helper built yet
    monkeypatch.setenv("CC", "no-such-compiler")
    assert main(["run", "--grid", "smoke", "--measure", "instructions", "--out", str(tmp_path / "x.csv")]) == 2
    assert "needs a C compiler (gcc, or $CC)" in capsys.readouterr().err


# --- the key and the judge of counts -------------------------------------------------------------------


def test_measure_is_in_the_key_and_older_files_read_as_time():
    assert "measure" in KEY_COLUMNS
    row = {"backend": "numpy", "threads": 1, "pass": "forward"}
    assert key(row) == key({**row, "measure": "time"}) != key({**row, "measure": "instructions"})


def test_counts_are_judged_by_their_ratio():
    base = counts([1000.0, 1001.0], [1000.0, 1000.0])
    assert judge("c", (), base, counts([1000.0], [1000.0]), COUNT_THRESHOLD, 0.01).verdict == "unchanged"
    slower = judge("c", (), base, counts([1020.0], [1020.0]), COUNT_THRESHOLD, 0.01)
    assert slower.verdict == "regression" and slower.ratio == pytest.approx(1.02, rel=1e-3) and slower.p_value is None
    assert judge_paired("c", (), base, counts([980.0], [980.0]), COUNT_THRESHOLD, 0.01).verdict == "improvement"
    # one process a side is enough: a count has no noise to average away
    assert judge_paired("c", (), counts([1000.0]), counts([1015.0]), COUNT_THRESHOLD, 0.01).verdict == "regression"
    assert judge("c", (), counts([1000.0]), counts([1005.0]), COUNT_THRESHOLD, 0.01).verdict == "unchanged"


def test_counts_whose_processes_disagree_are_not_comparable():
    apart = 1 + 2 * COUNT_TOLERANCE
    disagree = counts([1000.0], [1000.0 * apart])
    assert disagree.unstable and "processes disagree" in disagree.unstable[0]
    pair = judge("c", (), disagree, counts([1000.0], [1000.0]), COUNT_THRESHOLD, 0.01)
    assert pair.verdict == "not comparable" and "disagree" in pair.why
    time = Measurement.from_processes({"case_id": "c", "backend": "numpy", "status": "ok"},
                                      [ProcessRun((1e-3,)), ProcessRun((1e-3,))])
    assert "a time is no baseline for a count" in judge("c", (), time, counts([1e3], [1e3]), 1.1, 0.01).why


def test_thresholds_of_counts():
    assert parse_thresholds([])["instructions"] == COUNT_THRESHOLD
    assert parse_thresholds(["1.05"])["instructions"] == 1.05  # a plain RATIO is every benchmark's
    assert parse_thresholds(["instructions=1.02", "1.2"]) == {"default": 1.2, "instructions": 1.02}


def test_count_statistics_have_no_seconds():
    stats = counts([1000.0, 1002.0, 1000.0]).statistics()
    assert stats["instructions"] == 1000.0 and "median_s" not in stats and stats["unstable"] == ""


def test_history_steps_of_counts_need_no_test():
    runs = [counts([1000.0])] * 3 + [counts([1015.0])] * 3
    steps = find_steps(runs, COUNT_THRESHOLD)
    assert [k for k, _ in steps] == [3] and steps[0][1].verdict == "regression"
    assert find_steps([counts([1000.0])] * 3 + [counts([1005.0])] * 3, COUNT_THRESHOLD) == []


# --- counting under valgrind ---------------------------------------------------------------------------

needs_valgrind = pytest.mark.skipif(shutil.which("valgrind") is None or shutil.which("gcc") is None,
                                    reason="needs valgrind and gcc (CI: apt-get install valgrind gcc)")


@needs_valgrind
def test_two_processes_count_a_small_case_alike(tmp_path):
    out = tmp_path / "aa.csv"
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "smoke", "--backends", "numpy",
                           "--where", f"case_id={SMALL}", "--measure", "instructions", "--processes", "2",
                           "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "instructions per step" in proc.stdout and "machine is busy" not in proc.stdout
    [row] = read_results(out)
    assert row["measure"] == "instructions" and row["status"] == "ok" and row["median_s"] == ""
    assert float(row["instructions"]) > 1e4 and float(row["instructions_per_step"]) == float(row["instructions"]) / 5
    assert row["valgrind_cpu"] and "openblas" in row["valgrind_kernels"] and row["unstable"] == ""
    from bench.results.rows import read_measurements

    [m] = read_measurements(out)[1]
    assert m.unit == "instructions" and len(m.process_medians) == 2
    # the same count in both processes: exact on a quiet machine; once, with another valgrind job
    # running, 30 of 331,133 instructions apart, so 50 times tighter than the judging tolerance
    assert m.process_medians[0] == pytest.approx(m.process_medians[1], rel=COUNT_TOLERANCE / 50)


@needs_valgrind
def test_added_work_is_detected_and_none_is_not(tmp_path):
    """The spin backend's work times 1.03 on one side is a regression at the 1% threshold; the
    same work on both sides (A/A, the other case) is unchanged, exactly."""
    from bench.commands.ab import run_ab
    from bench.environment import REPO as ROOT
    from bench.timing.process import Side
    from bench.timing.spin import FACTOR_ENV
    from bench.timing.sweep import Sweep

    options = RunOptions(grid="smoke", measure="instructions", processes=1, seed=1)
    cases = [c for c in get_grid("smoke") if c.id == SMALL]
    outputs = {}
    for name, factor in (("aa", "1.00"), ("ab", "1.03")):
        files = {side: tmp_path / f"{name}-{side}.csv" for side in ("base", "new")}
        sweep = Sweep(options, cases, ["spin"], [Side("base", ROOT), Side("new", ROOT)], f"t{name}", 1,
                      extra_backends={"spin": "bench.timing.spin:SpinBackend"}, made_by="calibration")
        run_ab("WORKTREE", "WORKTREE", sweep, files, progress=lambda line: None,
               sides_env=(((FACTOR_ENV, "1.00"),), ((FACTOR_ENV, factor),)))
        outputs[name] = compare(files["base"], files["new"], {"default": COUNT_THRESHOLD}, 0.01, paired=True)
    [aa], [ab] = outputs["aa"].pairs, outputs["ab"].pairs
    assert aa.verdict == "unchanged" and aa.ratio == 1.0 and aa.unit == "instructions"
    assert ab.verdict == "regression" and ab.ratio == pytest.approx(1.03, abs=0.005)
    assert not outputs["ab"].warnings or not any("busy" in w for w in outputs["ab"].warnings)
    assert np.isfinite(ab.base) and ab.p_value is None
