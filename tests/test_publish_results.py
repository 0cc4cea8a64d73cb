"""bench publish and bench history on results folders: made-up saved runs with a known step, the
files that are not saved runs beside them, and the repository's own committed results in a real
browser (skipped, with the reason, where there is none)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.grids import Case
from bench.measurement import Measurement, ProcessRun
from bench.publish.browser import open_page, requested_urls
from bench.report.dashboard import site_model
from bench.results import ResultWriter, read_results, write_results
from bench.results.catalog import saved_runs
from kernels import CellSpec

REPO = Path(__file__).resolve().parent.parent
MACHINE = "made-up-2c-8g"
CASES = [Case(CellSpec("lstm", 8, 8), 10, 1), Case(CellSpec("gru", 8, 8), 10, 1)]
COMMITS = ["a" * 40, "b" * 40, "c" * 40, "d" * 40]


def saved_run(folder: Path, k: int, slow: float = 1.0, made_by: str = "saved", name: str | None = None) -> Path:
    """Saved run ``k`` (commit COMMITS[k]) of MACHINE: numpy on CASES, 3 processes each; the LSTM's
    times multiplied by ``slow``."""
    path = folder / (name or f"2026010{k + 1}T000000Z-{COMMITS[k][:7]}.csv")
    write_results(path, [])
    out = ResultWriter(path, {"run_id": path.stem})
    rng = np.random.default_rng(k)
    for case in CASES:
        scale = slow if case.spec.mode == "lstm" else 1.0
        runs = [ProcessRun(tuple(1e-4 * scale * (1 + 0.01 * rng.standard_normal(20)))) for _ in range(3)]
        fields = {"case_id": case.id, "backend": "numpy", **case.fields(), "status": "ok", "flops": 100}
        out.add(Measurement.from_processes(fields, runs), {"schema_version": 6, "machine_id": MACHINE, "threads": 1,
                                                           "git_commit": COMMITS[k], "git_dirty": False,
                                                           "timestamp": f"2026-01-0{k + 1}T00:00:00+00:00",
                                                           "made_by": made_by, "grid": "made-up"})
    out.finish({})
    return path


@pytest.fixture
def results(tmp_path):
    """Four saved runs with a 1.5x LSTM step at the third (commit c...), and beside them what is no
    saved run: a tune sweep, a calibration's sides, an unsaved run, a character-RNN table."""
    folder = tmp_path / "results" / MACHINE
    folder.mkdir(parents=True)
    for k in range(4):
        saved_run(folder, k, slow=1.5 if k >= 2 else 1.0)
    saved_run(folder, 3, made_by="tune", name="tune-20260105T000000Z.csv")
    saved_run(folder, 3, made_by="calibration", name="calibration-20260105T000000Z-aa-base.csv")
    saved_run(folder, 3, slow=3.0, made_by="run", name="20260106T000000Z-unsaved.csv")
    with open(folder / "charrnn-float32.csv", "w", newline="") as f:
        csv.writer(f).writerows([["backend", "dtype", "epoch", "loss", "prediction", "seconds"],
                                 ["numpy", "float32", "0", "2.1", "nnnnnnnnn", "0.001"]])
    return tmp_path / "results"


def test_history_reads_saved_runs_only_and_finds_the_step(results, capsys):
    runs, others = saved_runs(results, MACHINE)
    assert [p.stem[:9] for p in runs] == ["20260101T", "20260102T", "20260103T", "20260104T"]
    assert sorted(f.kind for f in others) == ["calibration", "other", "run", "tune"]
    assert main(["history", "--results", str(results), "--machine", MACHINE]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{MACHINE}: 4 saved runs, 2 benchmarks, 1 with step changes")
    assert "skipped (not saved runs): " in out and "1 tune sweep" in out and "1 not a result file" in out
    assert "step (regression) at 20260103T000000Z-ccccccc: x1.5" in out


def test_the_model_places_the_step_at_its_commit(results):
    (machine,) = site_model(results)["machines"]
    assert machine["machine_id"] == MACHINE and [r["commit"] for r in machine["runs"]] == COMMITS
    (step,) = machine["steps"]
    assert (step["verdict"], step["commit_before"], step["commit_after"]) == ("regression", COMMITS[1], COMMITS[2])
    assert step["factor"] == pytest.approx(1.5, rel=0.02)
    lstm = next(b for b in machine["benchmarks"] if b["fields"]["mode"] == "lstm")
    assert [len(p["process_medians"]) for p in lstm["points"]] == [3, 3, 3, 3] and lstm["in_latest"]
    assert lstm["step"]["run_after"].endswith(COMMITS[2][:7])


def test_publish_refuses_a_folder_without_saved_runs_and_an_out_that_is_a_file(tmp_path, capsys):
    assert main(["publish", "--results", str(tmp_path), "--out", str(tmp_path / "site")]) == 2
    assert "--results: no saved runs under" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["publish", "--out", str(tmp_path / "file")]) == 2
    assert capsys.readouterr().err == f"error: --out: {tmp_path / 'file'} is a file; expected a folder\n"



def test_the_repositorys_results_render_offline(browser, tmp_path):
    """The committed results published and opened from file://: every machine named, every benchmark
    of each machine's latest saved run listed, nothing requested but files."""
    out = tmp_path / "site"
    assert main(["publish", "--results", str(REPO / "results"), "--out", str(out)]) == 0
    model = site_model(REPO / "results")
    requested_urls(browser)
    open_page(browser, out / "index.html")
    names = browser.execute_script(
        "return Array.from(document.querySelectorAll('#machines .machine h2')).map(h => h.innerText)")
    assert names == [m["machine_id"] for m in model["machines"]]
    for machine in model["machines"]:
        runs, _ = saved_runs(REPO / "results", machine["machine_id"])
        latest = [r for r in read_results(runs[-1]) if r["status"] == "ok"]
        open_page(browser, out / machine["machine_id"] / "index.html")
        shown = browser.execute_script(
            "return Array.from(document.querySelectorAll('#benchmarks tbody tr'))"
            ".filter(r => r.offsetParent !== null).map(r => r.cells[0].innerText)")
        assert len(shown) == len(latest), machine["machine_id"]
    assert all(u.startswith(("file:", "data:", "blob:")) for u in requested_urls(browser))
