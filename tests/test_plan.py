"""The tuned plan (kernels/plan.py, bench/tune.py): lookup, fallbacks, what numba runs, what rows record.

Every plan here is written by hand: these tests check the plan's use, not any timing.
"""

import hashlib
import json

import numpy as np
import pytest

from bench.grids import Case
from bench.timing.measure import prepare_case
from bench.timing.policy import TimingPolicy
from bench.timing.options import RunOptions
from bench.roofline import place
from bench.commands.tune import build_plan, tune_backends, tune_options
from kernels import CellSpec, get_backend, init_weights
from kernels.numba import blas
from kernels.numba import plan as plans
from kernels.numba.backend import NumbaBackend, rule_route

from .conftest import make_inputs

MACHINE = "test-machine-1c-1g"


def entry(mode, steps, batch, hidden, variant, dtype="float32", **extra):
    return {"mode": mode, "dtype": dtype, "timesteps": steps, "batch": batch, "hidden_size": hidden,
            "variant": variant, **extra}


def write_plan(path, entries, machine=MACHINE, **top):
    doc = {"format": plans.FORMAT, "version": plans.VERSION, "machine_id": machine, "entries": entries, **top}
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def this_machine(monkeypatch):
    """This process's machine id is MACHINE (bench.environment.machine_id reads the override)."""
    monkeypatch.setenv("RNN_BENCH_MACHINE_ID", MACHINE)
    plans._load.cache_clear()
    yield
    plans._load.cache_clear()


@pytest.fixture
def use_plan(monkeypatch, this_machine):
    """``use_plan(path)``: this process follows the plan file at ``path``."""
    return lambda path: monkeypatch.setenv(plans.PLAN_ENV, str(path))


def test_lookup_takes_the_nearest_size_in_log_space_per_mode_dtype_and_pass(tmp_path):
    plan = plans.read_plan(write_plan(tmp_path / "p.json", [
        entry("lstm", 100, 1, 8, "parallel"),
        entry("lstm", 100, 1, 1024, "blas@mkl"),
        entry("lstm", 100, 64, 1024, "blas@openblas"),
        entry("lstm", 100, 64, 1024, "fused@mkl", dtype="float64"),
        entry("gru", 100, 1, 8, "fused@openblas", **{"pass": "forward_backward"}),
    ]))
    assert plan.choose("lstm", "float32", 100, 1, 512, "forward") == "blas@mkl"  # log2(1024/512) < log2(512/8)
    assert plan.choose("lstm", "float32", 100, 1, 64, "forward") == "parallel"  # 64 is 3 octaves from 8, 4 from 1024
    assert plan.choose("lstm", "float32", 10, 32, 1024) == "blas@openblas"  # B = 32 is nearer 64 than 1 in log space
    assert plan.choose("lstm", "float32", 1000, 2, 1024) == "blas@mkl"  # B = 2 is nearer 1 than 64
    assert plan.choose("lstm", "float64", 1, 1, 8) == "fused@mkl"  # the only float64 entry, however far
    assert plan.choose("gru", "float32", 100, 1, 8) is None  # its only entry is of another pass
    assert plan.choose("gru", "float32", 100, 1, 8, "forward_backward") == "fused@openblas"
    assert plan.choose("rnn_tanh", "float32", 100, 1, 8) is None
    digest = hashlib.sha256((tmp_path / "p.json").read_bytes()).hexdigest()
    assert plan.label == f"{tmp_path / 'p.json'} sha256:{digest[:12]}"


def test_a_plan_of_this_machine_is_used_and_one_of_another_machine_is_not(tmp_path, use_plan):
    use_plan(write_plan(tmp_path / "here.json", [entry("gru", 4, 3, 8, "fused@openblas")]))
    assert plans.current().choose("gru", "float32", 4, 3, 8) == "fused@openblas"
    use_plan(write_plan(tmp_path / "there.json", [entry("gru", 4, 3, 8, "fused@openblas")], machine="other-2c-8g"))
    with pytest.warns(plans.PlanWarning, match="made on machine 'other-2c-8g', this is 'test-machine-1c-1g'"):
        assert plans.current() is None


@pytest.mark.parametrize("text, problem", [
    ("{not json", "cannot be read as JSON"),
    (json.dumps({"format": "something else", "version": 1, "machine_id": MACHINE, "entries": []}),
     "expected an object with format"),
    (json.dumps({"format": plans.FORMAT, "version": 1, "machine_id": MACHINE, "entries": [{"mode": "gru"}]}),
     "entry 0: expected mode, dtype"),
    (json.dumps({"format": plans.FORMAT, "version": 1, "machine_id": MACHINE,
                 "entries": [entry("gru", 0, 3, 8, "parallel")]}),
     "entry 0: timesteps, batch and hidden_size must be positive"),
    (json.dumps({"format": plans.FORMAT, "version": 1, "machine_id": MACHINE,
                 "entries": [entry("gru", 4, 3, 8, "turbo@mkl")]}), "entry 0: unknown variant 'turbo@mkl'"),
])
def test_a_malformed_plan_warns_with_the_file_and_the_problem_and_the_rule_runs(tmp_path, use_plan, text, problem):
    path = tmp_path / "bad.json"
    path.write_text(text)
    use_plan(path)
    with pytest.warns(plans.PlanWarning, match=problem) as caught:
        assert plans.current(NumbaBackend.variants()) is None
    assert str(path) in str(caught[0].message) and "using the rule" in str(caught[0].message)
    # and the backend runs by the rule, recording no plan
    spec = CellSpec("gru", 3, 8)
    prepared = get_backend("numba").prepare(spec, init_weights(spec))
    prepared.run(*prepared.to_device(*make_inputs(spec, 4, 3, False)[:1]))
    assert prepared.ran()["plan"] == "" and prepared.ran()["variant"] == "parallel"


def test_no_plan_when_switched_off_and_a_warning_when_the_named_file_is_missing(tmp_path, monkeypatch, this_machine):
    monkeypatch.setenv(plans.PLAN_ENV, "off")
    assert plans.plan_path() is None and plans.current() is None
    monkeypatch.setenv(plans.PLAN_ENV, str(tmp_path / "absent.json"))
    with pytest.warns(plans.PlanWarning, match="absent.json: no such file"):
        assert plans.current() is None


def _run(backend_name, spec, steps, batch):
    weights = init_weights(spec)
    x, hx = make_inputs(spec, steps, batch, True)
    prepared = get_backend(backend_name).prepare(spec, weights)
    out = prepared.to_host(prepared.run(*prepared.to_device(x, *(hx if isinstance(hx, tuple) else (hx,)))))
    return out, prepared.ran()


@pytest.mark.parametrize("variant", ["fused@openblas", "blas@openblas", "parallel"])
def test_plain_numba_runs_the_variant_the_plan_names_and_says_so(tmp_path, use_plan, variant):
    """The bits of ``numba`` under a plan are those of the variant the plan names for the nearest
    size, and its run records that variant and the plan's label."""
    path = write_plan(tmp_path / "p.json", [entry("lstm", 50, 16, 16, variant), entry("lstm", 5, 2, 16, "blas@mkl")])
    use_plan(path)
    spec = CellSpec("lstm", 5, 16)
    (out, state), ran = _run("numba", spec, 40, 10)  # nearest: (50, 16, 16)
    (want, want_state), forced = _run(f"numba:{variant}", spec, 40, 10)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(state[1], want_state[1])
    assert ran["variant"] == variant and ran["plan"] == plans.current().label
    assert ran["plan"].startswith(f"{path} sha256:")
    assert forced["variant"] == variant and forced["plan"] == ""  # a forced variant is not the plan's choice
    assert ran["numba_blas"] == ("" if variant == "parallel" else blas.routes()["openblas"].description)


def test_a_plan_naming_a_route_not_here_falls_back_to_the_rule(tmp_path, use_plan, monkeypatch):
    use_plan(write_plan(tmp_path / "p.json", [entry("rnn_tanh", 10, 1, 300, "blas@mkl")]))
    real = blas.route
    monkeypatch.setattr(blas, "route", lambda name: None if name.startswith("mkl") else real(name))
    _, ran = _run("numba", CellSpec("rnn_tanh", 4, 128), 3, 1)
    rule = f"fused@{rule_route().name}"  # the rule (fused from H = 64 at B = 1, below 256), on the rule's route here
    assert not rule.endswith(("@mkl", "@mkl-wheel")) and (ran["variant"], ran["plan"]) == (rule, "")


def test_without_a_plan_the_rule_runs_and_records_its_variant(monkeypatch):
    monkeypatch.setenv(plans.PLAN_ENV, "off")
    _, small = _run("numba", CellSpec("gru", 4, 8), 3, 2)
    _, large = _run("numba", CellSpec("gru", 4, 128), 3, 2)  # fused from H = 64 at B <= 4, below 256
    assert small == {"variant": "parallel", "plan": "", "numba_blas": ""}
    assert large["variant"] == f"fused@{rule_route().name}" and large["plan"] == ""


def test_rows_record_the_variant_and_the_plan(tmp_path, use_plan):
    """A row of plain ``numba`` under a plan, of a forced variant, and of another backend."""
    use_plan(write_plan(tmp_path / "p.json", [entry("rnn_tanh", 5, 2, 4, "fused@openblas")]))
    case = Case(CellSpec("rnn_tanh", 3, 4), 5, 2)
    policy = TimingPolicy(max_time=0.01, min_rounds=3)
    rows = {name: prepare_case(case, name, policy)[0].row for name in ("numba", "numba:blas@openblas", "numpy")}
    assert rows["numba"]["status"] == "ok" and rows["numba"]["variant"] == "fused@openblas"
    assert rows["numba"]["plan"] == plans.current().label
    assert (rows["numba:blas@openblas"]["variant"], rows["numba:blas@openblas"]["plan"]) == ("blas@openblas", "")
    assert "variant" not in rows["numpy"] and "plan" not in rows["numpy"]


def test_build_plan_keeps_the_fastest_variant_that_ran_ok_per_case():
    def row(backend, median, status="ok", steps=10, batch=1):
        return {"backend": backend, "status": status, "median_s": median, "mode": "gru", "dtype": "float32",
                "timesteps": steps, "batch": batch, "hidden_size": 64}

    rows = [row("numba:parallel", 3e-6), row("numba:blas@mkl", 2e-6), row("numba:blas@openblas", 1e-6, "mismatch"),
            row("numba:fused@mkl", "", "unavailable"), row("numba:parallel", 5e-6, batch=64),
            row("numba:blas@mkl", 4e-6, batch=64), row("numba:parallel", "", "over_budget", steps=1000)]
    doc = build_plan(rows, {"machine_id": MACHINE, "grid": "g", "threads": 1})
    got = {(e["timesteps"], e["batch"]): (e["variant"], e["median_s"], list(e["candidates"])) for e in doc["entries"]}
    assert got == {(10, 1): ("blas@mkl", 2e-6, ["blas@mkl", "parallel"]),
                   (10, 64): ("blas@mkl", 4e-6, ["blas@mkl", "parallel"])}
    assert all(e["pass"] == "forward" for e in doc["entries"])


def test_a_written_plan_reads_back(tmp_path):
    rows = [{"backend": "numba:fused@openblas", "status": "ok", "median_s": 1e-5, "mode": "lstm", "dtype": "float64",
             "timesteps": 7, "batch": 3, "hidden_size": 32}]
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(build_plan(rows, {"machine_id": MACHINE})))
    plan = plans.read_plan(path, NumbaBackend.variants())
    assert plan.machine_id == MACHINE and plan.choose("lstm", "float64", 1, 1, 1) == "fused@openblas"


def test_a_tune_times_every_strategy_on_every_route_and_shares_its_budget():
    names = tune_backends()
    assert names[0] == "numba:parallel" and len(names) == 1 + 3 * len(blas.ROUTE_NAMES)  # blas, fused, lanes per route
    assert {"numba:blas@scipy-openblas32", "numba:fused@mkl"} <= set(names)
    options = tune_options(RunOptions(processes=2), cases=5, variants=4, budget=80)
    assert options.budget == 2.0 and options.max_time == 1.0  # 80 s / (5 x 4 x 2) benchmarks
    with pytest.raises(ValueError, match="--budget: expected a positive"):
        tune_options(RunOptions(), 1, 1, 0)


def test_weight_gbps_is_recurrent_weight_bytes_per_second_at_batch_one():
    row = {"status": "ok", "median_s": 1e-3, "flops": 2e6, "dtype": "float32", "timesteps": "10", "batch": "1",
           "mode": "lstm", "input_size": "1024", "hidden_size": "1024", "num_layers": "1", "bias": "True",
           "batch_first": "False", "bidirectional": "False"}
    placed = place(row, {"peak_sgemm_gflops": 100.0})
    # W_hh of an LSTM at H = 1024: 4 * 1024 * 1024 float32 = 16 MiB, read at each of 10 steps in 1 ms
    assert placed["weight_gbps"] == pytest.approx(4 * 1024 * 1024 * 4 * 10 / 1e-3 / 1e9)
    assert placed["gflops"] == pytest.approx(2.0) and placed["pct_peak"] == pytest.approx(2.0)
    assert place({**row, "batch": "64"}, {})["weight_gbps"] == ""
    assert place({**row, "bidirectional": "True", "num_layers": "2"}, {})["weight_gbps"] == pytest.approx(
        4 * placed["weight_gbps"])  # four W_hh


def test_a_run_hands_its_workers_this_machines_plan_or_the_named_one(tmp_path, monkeypatch, this_machine):
    """Kernels never look for a plan: the harness hands each worker the plan of its machine in the
    results folder (or the file $RNN_BENCH_PLAN names), with the machine's id."""
    from bench.timing.machine import plan_in_use, worker_environment

    monkeypatch.setenv("RNN_BENCH_RESULTS", str(tmp_path / "results"))
    monkeypatch.delenv(plans.PLAN_ENV, raising=False)
    assert worker_environment() == {plans.MACHINE_ENV: MACHINE, plans.PLAN_ENV: "off"}  # no plan there yet
    here = write_plan((tmp_path / "results" / MACHINE).mkdir(parents=True) or tmp_path / "results" / MACHINE / "plan.json",
                      [entry("gru", 4, 3, 8, "parallel")])
    env = worker_environment()
    assert plan_in_use(env) == here.resolve() and env[plans.MACHINE_ENV] == MACHINE
    monkeypatch.setenv(plans.PLAN_ENV, str(tmp_path / "mine.json"))
    assert plan_in_use(worker_environment()) == tmp_path / "mine.json"  # the user's choice passes through


def test_tune_writes_the_plan_from_its_sweep_and_never_an_empty_one(tmp_path, monkeypatch, this_machine):
    """bench tune's wiring, with the sweep replaced by hand-made rows: the plan lands at --out,
    reads back, names the sweep's file as its source; a sweep with nothing ok writes nothing."""
    from bench.commands import tune as tune_module
    from bench.grids import get_grid

    cases = get_grid("smoke")
    made = {}

    def fake_run(sweep, outputs, executor=None, progress=print):
        made.update(backends=sweep.backends, csv=outputs[""], budget=sweep.options.budget, made_by=sweep.made_by)
        fields = cases[0].fields()
        return {"": [{"backend": b, "status": "ok" if made["ok"] else "error", "median_s": 1e-3 * (i + 1),
                      "machine_id": MACHINE, "git_commit": "abc", "case_id": cases[0].id, "reason": "",
                      **fields} for i, b in enumerate(reversed(made["backends"]))]}

    monkeypatch.setattr(tune_module, "run_to_files", fake_run)
    out = tmp_path / "plan.json"
    said = []
    made["ok"] = True
    options, budget = RunOptions(grid="smoke", processes=1), 2.0 * len(tune_backends())
    path, plan = tune_module.tune(options, cases, budget, out, "RUN", 1, said.append)
    assert path == out and made["csv"] == tmp_path / "tune-RUN.csv" and made["made_by"] == "tune"
    assert made["budget"] == pytest.approx(1.0)  # shared by 2 cases x every variant x 1 process
    read = plans.read_plan(out, NumbaBackend.variants())
    assert read.choose("rnn_tanh", "float32", 5, 2, 4) == made["backends"][-1].partition(":")[2]  # the fastest
    assert plan["source"].endswith("tune-RUN.csv") and plan["machine_id"] == MACHINE
    assert any(line.startswith(cases[0].id) for line in said)
    made["ok"] = False
    before = out.read_bytes()
    path, plan = tune_module.tune(options, cases, budget, out, "RUN2", 1, said.append)
    assert plan["entries"] == [] and out.read_bytes() == before and "not written" in said[-1]


@pytest.mark.parametrize("argv, message", [
    (["tune", "--budget", "0"], "--budget: expected a positive"),
    (["tune", "--out", "plan.txt"], "--out: expected a path to a .json plan file"),
    (["tune", "--grid", "smoke", "--where", "batch=999"], "--where: no case of grid smoke"),
    (["tune", "--processes", "0"], "--processes: expected a positive number"),
])
def test_tune_refuses_bad_arguments_before_timing_anything(argv, message, capsys):
    from bench.__main__ import main

    assert main(argv) == 2
    assert message in capsys.readouterr().err
