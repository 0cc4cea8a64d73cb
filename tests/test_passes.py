"""The forward_backward pass in the harness: grids, the key, FLOPs, the worker's check and timed call,
compare, plots and a run end to end."""

import json

import numpy as np
import pytest

import kernels
from bench.grids import Case, get_grid, parse_passes
from bench.judge.compare import compare
from bench.judge.sides import Unusable
from bench.results import read_results, write_results
from bench.timing.measure import prepare_case, time_rounds
from bench.timing.policy import TimingPolicy
from kernels import CellSpec
from kernels.numpy_backend import NumpyBackend, NumpyPrepared

from .test_harness import run_cli


def test_grids_say_their_passes():
    default = get_grid("default")
    assert len(default) == 256 and {c.pass_ for c in default} == {"forward", "forward_backward"}
    assert len({c.id for c in default}) == 256
    deep = get_grid("deepbench")
    training = Case(CellSpec("rnn_relu", 1760, 1760), 50, 16, "forward_backward")  # a training row of the file
    inference = Case(CellSpec("lstm", 1536, 1536), 50, 4, "forward")  # an inference_server row
    assert training in deep and inference in deep
    assert {c.pass_ for c in get_grid("quick")} == {"forward"}


def test_passes_option_gives_every_size_each_pass():
    quick = get_grid("quick")
    both = get_grid("quick", "forward,forward_backward")
    assert len(both) == 2 * len(quick) and [c.id for c in both[:2]] == [quick[0].id, quick[0].id + "-fb"]
    assert [c.pass_ for c in get_grid("deepbench", ["forward"])] == ["forward"] * len(get_grid("deepbench", ["forward"]))
    with pytest.raises(ValueError, match="--passes: expected a comma-separated list of forward, forward_backward"):
        parse_passes("forward,backward")
    with pytest.raises(ValueError, match="--passes"):
        get_grid("smoke", "")


def test_backward_flops():
    """rnn_tanh, I = 2, H = 3, bias, T = 5, B = 4: forward per row 2*3*(2+3) + 3 + 2*3 = 39;
    backward adds 2*30 (products) + 2*3 (pointwise) + 6 (bias gradients) = 72."""
    spec = CellSpec("rnn_tanh", 2, 3)
    assert spec.flops(5, 4) == 39 * 20
    assert spec.flops(5, 4, "forward_backward") == (39 + 72) * 20
    with pytest.raises(ValueError, match="pass_"):
        spec.flops(5, 4, "backward")


def test_prepare_case_checks_and_times_the_backward():
    case = Case(CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True), 6, 2, "forward_backward")
    outcome, ready, reference = prepare_case(case, "numpy", TimingPolicy(max_time=0.01))
    row = outcome.row
    assert outcome.status == "ok" and row["pass"] == "forward_backward" and row["tolerance_ok"] is True
    assert row["flops"] == case.spec.flops(6, 2, "forward_backward") > case.spec.flops(6, 2)
    assert 0 < row["max_abs_err"] < 1e-4  # float32 arithmetic against the float64 reference
    assert len(reference) == 3 and "weight_hh_l1_reverse" in reference[2]  # (output, state, grads)
    result = ready.call()
    assert len(result) == 5 and "input" in result[3]  # the timed call is run_backward (output, h_n, c_n, grads, packing)
    assert len(time_rounds(ready.call, 2, 1)) == 2


class WrongBackward(NumpyBackend):
    """Right forward, a weight gradient off by 0.1%."""

    name = "wrong_backward"

    def prepare(self, spec, weights):
        return WrongPrepared(spec, weights)


class WrongPrepared(NumpyPrepared):
    def layer_backward(self, *args):
        dx, dh, dc, (dw_ih, dw_hh, *rest) = super().layer_backward(*args)
        return dx, dh, dc, (dw_ih, dw_hh * 1.001, *rest)


def test_a_wrong_gradient_is_a_mismatch(monkeypatch):
    monkeypatch.setitem(kernels.BACKENDS, "wrong_backward", ("tests.test_passes", "WrongBackward", ()))
    spec = CellSpec("gru", 3, 4, dtype="float64")
    forward, _, _ = prepare_case(Case(spec, 5, 2), "wrong_backward", TimingPolicy(max_time=0.01))
    assert forward.status == "ok"
    outcome, ready, _ = prepare_case(Case(spec, 5, 2, "forward_backward"), "wrong_backward", TimingPolicy())
    assert outcome.status == "mismatch" and "grad weight_hh_l0" in outcome.reason and ready is None


def test_a_backend_without_the_pass_is_unavailable_with_the_reason(monkeypatch):
    monkeypatch.setitem(kernels.BACKENDS, "spin", ("bench.timing.spin", "SpinBackend", ()))
    outcome, ready, _ = prepare_case(Case(CellSpec("gru", 3, 4), 5, 2, "forward_backward"), "spin", TimingPolicy())
    assert outcome.status == "unavailable" and outcome.reason == "spin has no forward_backward pass (it runs forward)"
    assert ready is None


def _result_file(path, passes):
    """A result file of one size timed in ``passes``, with raw samples of 3 processes."""
    rows, benchmarks = [], []
    for k, p in enumerate(passes):
        case = Case(CellSpec("rnn_tanh", 4, 4), 10, 1, p)
        row = {"case_id": case.id, "backend": "numpy", **case.fields(), "threads": 1, "status": "ok",
               "median_s": 1e-3 * (k + 1), "schema_version": 5, "processes": 3}
        rows.append(row)
        data = list(np.full(10, 1e-3 * (k + 1)) * np.linspace(0.99, 1.01, 10))
        benchmarks.append({"extra_info": {**row, "process_medians": [1e-3 * (k + 1)] * 3},
                           "stats": {"median": row["median_s"], "data": data}})
    write_results(path, rows)
    path.with_suffix(".json").write_text(json.dumps({"benchmarks": benchmarks}))
    return path


def test_compare_keeps_the_passes_apart(tmp_path):
    forward = _result_file(tmp_path / "f.csv", ["forward"])
    backward = _result_file(tmp_path / "b.csv", ["forward_backward"])
    with pytest.raises(Unusable, match="no benchmarks in common"):
        compare(forward, backward)
    both = _result_file(tmp_path / "both.csv", ["forward", "forward_backward"])
    result = compare(both, both)
    assert sorted(p.label for p in result.pairs) == ["rnn_tanh-T10-B1-H4-float32-fb-numpy",
                                                     "rnn_tanh-T10-B1-H4-float32-numpy"]
    from bench.results import KEY_COLUMNS

    assert {p.key[KEY_COLUMNS.index("pass")] for p in result.pairs} == {"forward", "forward_backward"}


def test_files_before_the_pass_column_read_as_forward(tmp_path):
    path = _result_file(tmp_path / "old.csv", ["forward"])
    text = path.read_text().replace(",forward,", ",,").replace(",5,", ",4,")
    path.write_text(text)
    rows = read_results(path)
    assert rows[0]["pass"] == "forward" and rows[0]["schema_version"] == "4"


def test_plots_draw_a_line_per_pass(tmp_path):
    from bench.report.plots import plot_file

    path = _result_file(tmp_path / "p.csv", ["forward", "forward_backward"])
    rows = read_results(path)
    for r in rows:
        r["per_step_s"] = float(r["median_s"]) / 10
    write_results(path, rows)
    import matplotlib.pyplot as plt

    written = plot_file(path)
    assert any(p.name.endswith("per_step_vs_hidden.png") for p in written)
    plt.close("all")


def test_run_times_both_passes_end_to_end(tmp_path):
    out = tmp_path / "fb.csv"
    proc = run_cli("run", "--grid", "smoke", "--backends", "numpy,torch_cpu", "--passes", "forward,forward_backward",
                   "--out", str(out), "--max-time", "0.02", "--processes", "1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = read_results(out)
    assert [(r["case_id"].endswith("-fb"), r["pass"]) for r in rows] == [(False, "forward")] * 2 + [
        (True, "forward_backward")] * 2 + [(False, "forward")] * 2 + [(True, "forward_backward")] * 2
    available = kernels.available_backends()
    for r in rows:
        assert r["status"] == ("ok" if available[r["backend"]] is None else "unavailable"), r
    fb = [r for r in rows if r["pass"] == "forward_backward" and r["status"] == "ok"]
    assert fb and all(float(r["pct_peak"]) > 0 and r["tolerance_ok"] == "True" for r in fb)
