"""compare, ab, history and show on inputs that break the arithmetic, on files of other machines,
and on files of older schema versions (issue 10, points 7 to 9)."""

import csv
import io
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from bench.__main__ import main
from bench.grids import Case
from bench.judge.compare import compare
from bench.judge.formats import format_comparison
from bench.judge.history import format_trends, trends
from bench.judge.sides import Unusable, load
from bench.measurement import Measurement, ProcessRun
from bench.results import COLUMNS, ResultWriter, write_results
from bench.results.schema import ADDED
from kernels import CellSpec

FIX = Path(__file__).resolve().parent / "fixtures"
OK = [float(v) for v in np.linspace(1e-6, 1.19e-6, 20)]
ZERO = "median of the rounds is 0 s (20 of 20 are 0; no time resolved)"


def no_constant(token):
    raise ValueError(f"not JSON: {token}")


def strict(text: str) -> dict:
    """``text`` parsed as strict JSON (NaN, Infinity and -Infinity refused), and proved
    re-encodable with ``allow_nan=False``."""
    doc = json.loads(text, parse_constant=no_constant)
    json.dumps(doc, allow_nan=False)
    return doc


def pytest_benchmark_json(path: Path, data: dict, machine_info=None, commit_info=None) -> Path:
    """A plain pytest-benchmark JSON (anyone's benchmarks, keyed by full name) with rounds ``data``."""
    doc = {"machine_info": machine_info or {}, "commit_info": commit_info or {}, "version": "5.2.3", "benchmarks": [
        {"group": None, "name": name, "fullname": f"tests/test_x.py::{name}", "params": None, "param": None,
         "extra_info": {}, "options": {}, "stats": {"median": float(np.median(rounds)), "rounds": len(rounds),
                                                    "data": rounds}}
        for name, rounds in data.items()]}
    path.write_text(json.dumps(doc))  # NaN rounds are written as NaN tokens, as a hand-made file may hold them
    return path


def degenerate_pair(tmp_path):
    base = {"zero_zero": [0.0] * 20, "zero_one": [0.0] * 20, "one_zero": OK, "nonfinite": OK, "slower": OK}
    new = {"zero_zero": [0.0] * 20, "zero_one": [1e-6] * 20, "one_zero": [0.0] * 20,
           "nonfinite": OK[:-1] + [math.nan], "slower": [1.5 * v for v in OK]}
    return pytest_benchmark_json(tmp_path / "base.json", base), pytest_benchmark_json(tmp_path / "new.json", new)


def test_rounds_of_zero_seconds_are_not_comparable(tmp_path):
    """0 vs 0 is not 'unchanged' (NaN) and 0 vs 1 us is not a 'regression' (inf): both are not
    comparable with the reason, and the geometric means are of the comparable pair only."""
    c = compare(*degenerate_pair(tmp_path))
    got = {p.label.split("::")[1]: (p.verdict, p.ratio, p.why) for p in c.pairs}
    assert got == {
        "slower": ("regression", pytest.approx(1.5), ""),
        "zero_zero": ("not comparable", None, f"BASE: {ZERO}"),
        "zero_one": ("not comparable", None, f"BASE: {ZERO}"),
        "one_zero": ("not comparable", None, f"NEW: {ZERO}"),
        "nonfinite": ("not comparable", None, "NEW: rounds hold a value that is not finite (nan)"),
    }
    assert c.geomean() == pytest.approx(1.5)
    assert [p.base for p in c.pairs if p.label.endswith("zero_zero")] == [0.0]


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_every_compare_format_is_finite(tmp_path, capsys, fmt):
    base, new = degenerate_pair(tmp_path)
    assert main(["compare", str(base), str(new), "--format", fmt]) == 1  # the slower pair
    out = capsys.readouterr().out
    if fmt == "json":
        doc = strict(out)
        rows = {r["benchmark"].split("::")[1]: r for r in doc["rows"]}
        assert rows["zero_one"]["ratio"] is None and rows["zero_one"]["verdict"] == "not comparable"
        assert doc["summary"]["geomean_ratio"] == pytest.approx(1.5)
        assert doc["summary"]["counts"] == {"regression": 1, "improvement": 0, "unchanged": 0, "not comparable": 4}
    elif fmt == "csv":
        rows = {r["benchmark"].split("::")[1]: r for r in csv.DictReader(io.StringIO(out))}
        assert rows["zero_zero"]["ratio"] == "" and rows["zero_zero"]["why"] == f"BASE: {ZERO}"
        assert float(rows["slower"]["ratio"]) == pytest.approx(1.5)
    else:
        assert f"not comparable (BASE: {ZERO})" in out and "geometric mean ratio NEW/BASE: 1.5000" in out
    assert "nan" not in out.lower().replace("(nan)", "") and "inf" not in out.lower()


def runner_file(path: Path, per_benchmark: dict) -> Path:
    """A result CSV + sidecar of this runner: ``{backend: [rounds per process]}`` on one case."""
    case = Case(CellSpec("lstm", 8, 8), 10, 1)
    columns = {"schema_version": 6, "machine_id": "m", "threads": 1}
    write_results(path, [])
    out = ResultWriter(path, columns)
    for backend, processes in per_benchmark.items():
        fields = {"case_id": case.id, "backend": backend, **case.fields(), "status": "ok", "reason": "",
                  "prepare_s": 0.5, "flops": case.spec.flops(10, 1)}
        out.add(Measurement.from_processes(fields, [ProcessRun(tuple(times)) for times in processes]), columns)
    out.finish({})
    return path


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "markdown"])
def test_ab_judgement_of_zero_process_medians_is_finite_in_every_format(tmp_path, fmt):
    """``bench ab`` judges paired process medians; a side of 0 s is not comparable and every
    format it prints (compare's) stays finite."""
    ok = [np.full(5, 1e-6) * m for m in (1.0, 1.02, 0.99)]
    base = runner_file(tmp_path / "base.csv", {"numpy": ok, "numba": ok})
    new = runner_file(tmp_path / "new.csv", {"numpy": [np.zeros(5)] * 3, "numba": [t * 1.3 for t in ok]})
    c = compare(base, new, {"default": 1.05}, 0.01, paired=True)
    got = {p.key[0]: (p.verdict, p.why) for p in c.pairs}
    assert got == {"numba": ("regression", ""),
                   "numpy": ("not comparable", "a process median that is not a positive finite time")}
    assert c.geomean() == pytest.approx(1.3)
    out = format_comparison(c, fmt)
    if fmt == "json":
        assert strict(out)["rows"][1]["ratio"] is None
    assert "nan" not in out.lower() and "inf" not in out.lower()


def test_compare_of_runner_files_with_zero_process_medians(tmp_path):
    ok = [np.full(5, 1e-6) * m for m in (1.0, 1.02, 0.99)]
    base = runner_file(tmp_path / "base.csv", {"numpy": [np.zeros(5)] * 3, "numba": ok})
    new = runner_file(tmp_path / "new.csv", {"numpy": ok, "numba": ok})
    got = {p.key[0]: (p.verdict, p.why) for p in compare(base, new).pairs}
    assert got == {"numba": ("unchanged", ""),
                   "numpy": ("not comparable", "BASE: median of the rounds is 0 s (15 of 15 are 0; no time resolved)")}


def test_history_leaves_out_runs_of_zero_seconds(tmp_path):
    ok = [np.full(5, 1e-6) * m for m in (1.0, 1.02, 0.99)]
    paths = [runner_file(tmp_path / f"2026010{k}T000000Z-abc.csv", {"numpy": p}) for k, p in
             enumerate((ok, [np.zeros(5)] * 3, ok), 1)]
    (t,) = trends([load(p) for p in paths])
    assert t.runs == [paths[0].stem, paths[2].stem] and t.steps == []
    text = format_trends([t], "m", 3)
    assert "nan" not in text.lower() and "inf" not in text.lower() and " -> " in text
    from bench.report.plots import plot_history

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division by 0 s, no singular axis
        assert plot_history([t], tmp_path / "history.png", "m").stat().st_size > 0


@pytest.mark.parametrize("fmt", ["table", "markdown"])
def test_show_prints_degenerate_cells_as_stored_and_never_stars_them(tmp_path, capsys, fmt):
    path = tmp_path / "r.csv"
    write_results(path, [{"case_id": "lstm-T10-B1-H8-float32", "backend": backend, "status": "ok",
                          "per_step_s": per_step_s, "schema_version": 4}
                         for backend, per_step_s in (("numpy", "nan"), ("numba", 2e-6), ("torch_cpu", 3e-6))])
    assert main(["show", str(path), "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert "nan" in out and "2*" in out and "nan*" not in out


# --- point 8: machines of plain pytest-benchmark JSON ---------------------------------------------

MACHINE = {"node": "a", "machine": "x86_64", "system": "Linux", "python_implementation": "CPython",
           "python_version": "3.11.7", "cpu": {"brand_raw": "Intel(R) Xeon(R) @ 2.80GHz", "count": 2}}


def test_plain_pytest_benchmark_files_of_different_machines_warn(tmp_path):
    base = pytest_benchmark_json(tmp_path / "b.json", {"t": OK}, MACHINE, {"id": "a" * 40, "dirty": False, "project": "p"})
    other = {**MACHINE, "node": "b", "cpu": {"brand_raw": "AMD EPYC 7B13", "count": 8}}
    new = pytest_benchmark_json(tmp_path / "n.json", {"t": OK}, other, {"id": "b" * 40, "dirty": True, "project": "q"})
    assert compare(base, new).warnings == [
        "machine_info.cpu.brand_raw differs: BASE 'Intel(R) Xeon(R) @ 2.80GHz', NEW 'AMD EPYC 7B13'",
        "machine_info.cpu.count differs: BASE '2', NEW '8'",
        "commit_info.project differs: BASE 'p', NEW 'q'",
        "NEW was made from bbbbbbb with uncommitted changes: its code is not that commit's",
    ]
    # the same machine (another host name, another commit) is quiet
    same = pytest_benchmark_json(tmp_path / "s.json", {"t": OK}, {**MACHINE, "node": "c"}, {"id": "c" * 40, "project": "p"})
    assert compare(base, same).warnings == []


def test_our_sidecar_json_of_another_machine_warns(tmp_path):
    for name, cpu in (("b", "Fixture CPU"), ("n", "Other CPU")):
        doc = json.loads((FIX / "aa_base.json").read_text())
        for b in doc["benchmarks"]:
            b["extra_info"].update(cpu_model=cpu, cores=2)
        (tmp_path / f"{name}.json").write_text(json.dumps(doc))
    assert compare(tmp_path / "b.json", tmp_path / "n.json").warnings == [
        "cpu_model differs: BASE 'Fixture CPU', NEW 'Other CPU'"]


# --- point 9: files of older schema versions --------------------------------------------------------

def older(src: Path, dst: Path, version: int) -> Path:
    """``src`` (a schema-4 CSV and sidecar) rewritten as a file of schema ``version``."""
    later = {c for v, cols in ADDED.items() if v > version for c in cols}
    with open(src, newline="") as f:
        rows = list(csv.DictReader(f))
    fields = [c for c in COLUMNS if c not in later]
    with open(dst, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows({**r, "schema_version": version} for r in rows)
    dst.with_suffix(".json").write_text(src.with_suffix(".json").read_text())
    return dst


def test_older_schema_compares_on_the_common_columns(tmp_path, capsys):
    old = older(FIX / "slow20_base.csv", tmp_path / "old.csv", 1)
    c = compare(old, FIX / "slow20_new.csv")
    assert len(c.pairs) == 100 and [p.verdict for p in c.pairs].count("regression") >= 95
    note = c.warnings[0]
    assert note.startswith("schema versions differ (BASE 1, NEW 4): compared on the columns both have; BASE lacks "
                           "weight_bytes, gflops, pct_peak,")
    assert note.endswith("(benchmarks paired without threads)") and "peak_blas" in note
    assert not any("numba_blas differs" in w for w in c.warnings)  # a column one side lacks is not 'different'
    assert main(["compare", str(old), str(FIX / "slow20_new.csv")]) == 1
    assert "warning: schema versions differ (BASE 1, NEW 4)" in capsys.readouterr().out


def test_rows_made_ambiguous_by_an_older_schema_are_unusable(tmp_path):
    old = older(FIX / "aa_base.csv", tmp_path / "old.csv", 3)
    with open(FIX / "aa_new.csv", newline="") as f:
        rows = list(csv.DictReader(f))[:2]
    write_results(tmp_path / "new.csv", [{**rows[0], "threads": threads} for threads in ("1", "2")])
    with pytest.raises(Unusable, match=r"NEW has several rows of .* once \['threads'\] .* is left out of the key"):
        compare(old, tmp_path / "new.csv")
