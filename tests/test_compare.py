"""compare and history on small checked-in fixture files (tests/fixtures/make_fixtures.py)."""

import json
from pathlib import Path

import pytest

from bench.__main__ import main
from bench.judge.compare import compare
from bench.judge.formats import format_comparison
from bench.judge.history import trends
from bench.judge.sides import Unusable, load
from bench.judge.stats import min_p_value, parse_thresholds

FIX = Path(__file__).resolve().parent / "fixtures"


def verdicts(c):
    return [p.verdict for p in c.pairs]


def test_aa_identical_distributions_rarely_regress():
    c = compare(FIX / "aa_base.csv", FIX / "aa_new.csv")
    assert len(c.pairs) == 200
    assert verdicts(c).count("regression") <= 4  # at most 2%
    assert c.geomean() == pytest.approx(1.0, abs=0.02)


def test_twenty_percent_slowdown_is_detected():
    c = compare(FIX / "slow20_base.csv", FIX / "slow20_new.csv")
    assert len(c.pairs) == 100
    assert verdicts(c).count("regression") >= 95
    assert c.geomean() == pytest.approx(1.2, abs=0.03)
    assert c.geomean("numba") == pytest.approx(1.2, abs=0.04)


def test_per_group_threshold_applies_to_its_backend():
    loose = compare(FIX / "slow20_base.csv", FIX / "slow20_new.csv", parse_thresholds(["numba=1.5"]))
    flagged = {p.key[0] for p in loose.pairs if p.verdict == "regression"}
    assert flagged == {"numpy"}
    assert all(p.threshold == 1.5 for p in loose.pairs if p.key[0] == "numba")


def test_one_outlier_round_is_not_a_regression():
    c = compare(FIX / "outlier_base.csv", FIX / "outlier_new.csv")
    base = json.loads((FIX / "outlier_base.json").read_text())["benchmarks"][0]["stats"]["data"]
    new = json.loads((FIX / "outlier_new.json").read_text())["benchmarks"][0]["stats"]["data"]
    assert sum(new) / sum(base) == pytest.approx(1.2, abs=0.03)  # the fixture is what it claims
    assert verdicts(c) == ["unchanged"]


def test_too_few_rounds_and_untimed_rows_are_not_comparable():
    c = compare(FIX / "few_base.csv", FIX / "few_new.csv")
    why = sorted(p.why for p in c.pairs if p.verdict == "not comparable")
    assert verdicts(c) == ["unchanged"] + ["not comparable"] * 3
    assert why[0] == "status over_budget in NEW"
    assert all(w.startswith("too few rounds (3 vs 3)") for w in why[1:])
    assert any("cpu_model differs" in w for w in c.warnings)
    assert not any("timestamp" in w or "run_id" in w for w in c.warnings)  # drifting metadata is not compared


def test_min_p_value():
    assert min_p_value(3, 3) == pytest.approx(1 / 20)
    assert min_p_value(5, 5) < 0.01 < min_p_value(4, 4)
    assert min_p_value(1000, 1000) == 0.0


def test_pytest_benchmark_json_with_null_params(tmp_path):
    """Anyone's pytest-benchmark JSON pairs by full name, ``params: null`` or not: a benchmark
    made 1.5x slower is a regression, the untouched one is unchanged."""
    doc = json.loads((FIX / "params_null.json").read_text())
    slow = doc["benchmarks"][1]
    slow["stats"]["data"] = [1.5 * v for v in slow["stats"]["data"]]
    slow["stats"]["median"] *= 1.5
    (tmp_path / "new.json").write_text(json.dumps(doc))
    c = compare(FIX / "params_null.json", tmp_path / "new.json")
    got = {p.label: (p.verdict, round(p.ratio, 6)) for p in c.pairs}
    assert got == {"tests/test_x.py::test_prod[3]": ("regression", 1.5), "tests/test_x.py::test_sum": ("unchanged", 1.0)}


def test_csv_against_json_pairs_on_the_spec():
    c = compare(FIX / "slow20_base.json", FIX / "slow20_new.csv")
    assert len(c.pairs) == 100 and verdicts(c).count("regression") >= 95


@pytest.mark.parametrize(
    "base, new, message",
    [
        ("missing.csv", "aa_new.csv", "missing.csv: no such file"),
        ("empty.csv", "aa_new.csv", "not an rnn-cell-bench result file"),
        ("foreign.csv", "aa_new.csv", "missing columns"),
        ("broken.json", "aa_new.csv", "unreadable JSON"),
        ("aa_base.csv", "schema_next.csv", "schema_version"),
        ("params_null.json", "aa_new.csv", "no benchmarks in common"),
        ("make_fixtures.py", "aa_new.csv", "expected a result .csv"),
    ],
)
def test_unusable_inputs_exit_2_with_one_line_reason(base, new, message, capsys):
    with pytest.raises(Unusable, match=message):
        compare(FIX / base, FIX / new)
    assert main(["compare", str(FIX / base), str(FIX / new)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_cli_exit_status_and_formats(capsys):
    assert main(["compare", str(FIX / "aa_base.csv"), str(FIX / "aa_base.csv")]) == 0
    assert main(["compare", str(FIX / "slow20_base.csv"), str(FIX / "slow20_new.csv"), "--format", "json"]) == 1
    out = capsys.readouterr().out
    doc = json.loads(out[out.index("{"):])
    assert doc["summary"]["counts"]["regression"] >= 95
    assert doc["rows"][0]["ratio"] >= doc["rows"][-1]["ratio"]  # worst first
    assert main(["compare", str(FIX / "slow20_base.csv"), str(FIX / "slow20_new.csv"), "--format", "markdown"]) == 1
    md = capsys.readouterr().out
    assert md.startswith("| benchmark |") and "geometric mean ratio NEW/BASE: 1.2" in md
    assert main(["compare", str(FIX / "slow20_base.csv"), str(FIX / "slow20_new.csv"), "--format", "csv"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("benchmark,base_median_s,new_median_s,ratio,p_value") and len(lines) == 101


def test_threshold_parsing():
    assert parse_thresholds(["numba=1.05", "default=1.2"]) == {"default": 1.2, "numba": 1.05, "instructions": 1.2}
    assert parse_thresholds(["1.3"]) == {"default": 1.3, "instructions": 1.3}
    assert parse_thresholds([]) == {"default": 1.10, "instructions": 1.01}  # counts: see test_instructions.py
    assert parse_thresholds(["instructions=1.02", "1.3"]) == {"default": 1.3, "instructions": 1.02}
    for bad in (["numba=0.9"], ["x=abc"], ["1"]):
        with pytest.raises(ValueError, match="--threshold"):
            parse_thresholds(bad)


def test_table_lists_rows_in_one_file_only():
    text = format_comparison(compare(FIX / "aa_base.csv", FIX / "slow20_new.csv"))
    assert "only in BASE (100):" in text and "... and 80 more" in text


def test_history_finds_the_step():
    runs = sorted((FIX / "history" / "fixture-machine").glob("*.csv"))
    ts = trends([load(p) for p in runs])
    assert len(ts) == 3
    for t in ts:
        assert len(t.medians) == 6
        assert [(s.index, s.verdict) for s in t.steps] == [(3, "regression")]
        assert t.steps[0].run.startswith("20260104T000000Z")
        assert 1.2 < t.steps[0].ratio < 1.45  # a 1.3x step seen through sigma=0.1 noise


def test_history_without_steps_reports_none():
    runs = sorted((FIX / "history" / "fixture-machine").glob("*.csv"))[:3]
    assert all(t.steps == [] for t in trends([load(p) for p in runs]))


def test_real_aa_files_of_schema_1_still_compare():
    """The committed A/A (schema 1) reproduces the README's figures with today's code."""
    c = compare(FIX / "../../results/intel-xeon-processor-2-80ghz-2c-24g/quick-aa-1.csv", FIX / "../../results/intel-xeon-processor-2-80ghz-2c-24g/quick-aa-2.csv")
    assert (verdicts(c).count("regression"), verdicts(c).count("improvement")) == (28, 31)
    assert c.geomean() == pytest.approx(0.9656, abs=1e-4)


def test_nothing_comparable_is_unusable(tmp_path, capsys):
    """Without raw samples no pair can be judged: exit 2, so a CI gate cannot pass on nothing."""
    import shutil

    shutil.copy(FIX / "aa_new.csv", tmp_path / "nosamples.csv")  # no .json beside it
    assert main(["compare", str(FIX / "aa_base.csv"), str(tmp_path / "nosamples.csv")]) == 2
    assert "none of the 200 common benchmarks is comparable (200 of them: no raw samples in NEW)" in capsys.readouterr().err


def test_show_scales_only_seconds(tmp_path, capsys):
    """``*_s`` columns are shown in microseconds with the lowest starred; others (``pct_peak``) as
    stored, with the highest starred; an untimed row shows its status."""
    from bench.results import write_results

    path = tmp_path / "r.csv"
    write_results(path, [{"case_id": c, "backend": backend, "status": status, "per_step_s": per_step_s,
                          "pct_peak": pct, "schema_version": 3}
                         for c in ("lstm-T10-B1-H8-float32", "gru-T10-B1-H8-float32")
                         for backend, per_step_s, pct, status in (
                             ("numpy", 2e-6, 10.5, "ok"), ("numba", 1e-6, 42.0, "ok"), ("torch_cpu", 3e-6, 7.25, "ok"),
                             ("torch_cuda", "", "", "unavailable" if c.startswith("lstm") else "error"))])
    assert main(["show", str(path), "--format", "markdown"]) == 0
    assert capsys.readouterr().out.splitlines()[-2] == "| lstm-T10-B1-H8-float32 | 2 | 1* | 3 | unavailable |"
    assert main(["show", str(path), "--column", "pct_peak", "--format", "markdown"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "| gru-T10-B1-H8-float32 | 10.5 | 42* | 7.25 | error |"
