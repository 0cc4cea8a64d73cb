"""``bench report``: a machine's page from its saved runs (bench/report/document.py)."""

import csv
from pathlib import Path

import pytest

from bench.report.document import machine_document
from bench.results.schema import COLUMNS, SCHEMA_VERSION

CASE = {"mode": "rnn_tanh", "input_size": "8", "hidden_size": "8", "num_layers": "1", "bias": "True",
        "batch_first": "False", "bidirectional": "False", "dtype": "float32", "proj_size": "0", "dropout": "0.0",
        "timesteps": "10", "batch": "1", "pass": "forward", "lengths": "full", "threads": "1", "status": "ok",
        "case_id": "rnn_tanh-T10-B1-H8-float32", "made_by": "saved", "machine_id": "m1", "grid": "quick",
        "schema_version": str(SCHEMA_VERSION)}


def write(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows({c: "" for c in COLUMNS} | CASE | r for r in rows)


@pytest.fixture
def folder(tmp_path):
    machine = tmp_path / "results" / "m1"
    machine.mkdir(parents=True)
    write(machine / "20261205T000000Z-aaaaaaa.csv",
          [{"backend": b, "measure": "time", "median_s": str(10 * s), "per_step_s": str(s)}
           for b, s in (("numpy", 4e-6), ("numba", 1e-6))])
    write(machine / "20261205T010000Z-aaaaaaa.csv",
          [{"backend": b, "measure": "instructions", "instructions": str(10 * n), "instructions_per_step": str(n)}
           for b, n in (("numpy", 123456), ("numba", 2345))])
    return machine


def test_a_count_run_of_a_grid_is_a_section_of_its_own_beside_the_timed_one(folder):
    text = machine_document(folder)
    assert text.count("## Grid `quick`: ") == 1 and text.count("## Grid `quick`, instruction counts: ") == 1
    counts = text.split("Instructions per timestep", 1)[1]
    assert "| rnn_tanh-T10-B1-H8-float32 | 123,456 | 2,345* |" in counts
    timed = text.split("Instructions per timestep", 1)[0]
    assert "numba" in timed and "123,456" not in timed


def test_the_latest_run_of_a_grid_and_measure_wins(folder):
    write(folder / "20261206T000000Z-bbbbbbb.csv",
          [{"backend": "numpy", "measure": "instructions", "instructions": "70", "instructions_per_step": "7"}])
    text = machine_document(folder)
    assert "20261206T000000Z-bbbbbbb.csv" in text and "20261205T010000Z-aaaaaaa.csv" not in text
    assert "20261205T000000Z-aaaaaaa.csv" in text  # the timed run stays


def test_a_folder_without_saved_runs_is_refused(tmp_path):
    (tmp_path / "results" / "m2").mkdir(parents=True)
    with pytest.raises(ValueError, match="no saved run"):
        machine_document(tmp_path / "results" / "m2")
