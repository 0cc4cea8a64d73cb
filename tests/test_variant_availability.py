"""A variant's availability is the variant's own, with its reason, wherever names are used.

An absent BLAS route is simulated by taking routes out of :func:`kernels.numba.blas.routes`: in this
process with ``monkeypatch``, and for a run, whose workers are processes of their own, with a
``sitecustomize`` module on ``PYTHONPATH`` that does the same in every process.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.grids import Case
from bench.timing.measure import prepare_case
from bench.timing.policy import TimingPolicy
from bench.results import read_results
from kernels import CellSpec, availability, backend_names
from kernels.numba import blas

ROOT = Path(__file__).resolve().parent.parent
NUMBA_NAMES = [n for n in backend_names(variants=True) if n.partition(":")[0] == "numba"]


def missing(*routes):
    return "no BLAS route here: " + "; ".join(f"{r} {blas.ROUTE_NEEDS[r]}" for r in routes)


def unavailable(present: tuple) -> dict:
    """With only the routes ``present``: the numba names that cannot run, and why.  A name that
    forces a route needs that one; ``numba``, ``numba:blas`` and ``numba:fused`` need any;
    ``numba:parallel`` needs none."""
    out = {}
    for name in NUMBA_NAMES:
        strategy, _, route = name.partition(":")[2].partition("@")
        if route and route not in present:
            out[name] = missing(route)
        elif not route and strategy != "parallel" and not present:
            out[name] = missing(*blas.ROUTE_NAMES)
    return out


#: Per routes present: the numba names that cannot run, and why; every other one can.
UNAVAILABLE = {present: unavailable(present) for present in ((), ("openblas",), ("mkl",))}


@pytest.fixture
def routes_only(monkeypatch):
    """``routes_only(*names)``: from now on only those of this machine's routes are present."""
    real = blas.routes()

    def only(*names):
        for name in names:
            if name not in real:
                pytest.skip(f"route {name} is absent here: nothing to take the others away from")
        monkeypatch.setattr(blas, "route", lambda name: real[name] if name in names else None)

    return only


@pytest.mark.parametrize("present", list(UNAVAILABLE))
def test_every_numba_name_answers_for_its_own_needs(routes_only, present):
    routes_only(*present)
    assert NUMBA_NAMES[0] == "numba" and len(NUMBA_NAMES) == 5 + 3 * len(blas.ROUTE_NAMES)  # numba, 4 strategies, 3 routed ones per route
    assert UNAVAILABLE[()]["numba:blas@openblas"] == missing("openblas")  # the expectation can fail
    assert {name: availability(name) for name in NUMBA_NAMES} == {
        name: UNAVAILABLE[present].get(name) for name in NUMBA_NAMES}


def test_worker_rows_of_absent_variants_are_unavailable_with_the_reason(routes_only):
    """What ``run``, the pytest plugin, the runner and ``ab`` record: the worker's outcome."""
    routes_only()
    case = Case(CellSpec("gru", 3, 4), 5, 2)
    for name in ("numba", "numba:blas@mkl", "numba:fused@openblas"):
        outcome, ready, _ = prepare_case(case, name, TimingPolicy())
        assert (outcome.status, outcome.reason, ready) == ("unavailable", UNAVAILABLE[()][name], None)
        assert outcome.row["backend"] == name and outcome.row["status"] == "unavailable"
    outcome, ready, _ = prepare_case(case, "numba:parallel", TimingPolicy(max_time=0.01))
    assert outcome.status == "ok" and outcome.row["numba_blas"] == "" and ready is not None  # needs no BLAS


def test_check_reports_absent_variants_and_checks_the_rest(routes_only, capsys):
    from bench.__main__ import main

    routes_only()
    names = ["numpy", "numba", "numba:blas@mkl", "numba:fused@openblas", "numba:parallel"]
    assert main(["check", "--grid", "smoke", "--backends", ",".join(names)]) == 0
    out = capsys.readouterr().out
    for name in names[1:4]:
        assert f"{name} unavailable: {UNAVAILABLE[()][name]}" in out
    rows = [line for line in out.splitlines() if "-float32" in line]
    assert len(rows) == 2 and all(line.count("e-0") == 2 for line in rows)  # numpy's and numba:parallel's errors
    header = next(line for line in out.splitlines() if "case" in line)
    assert "numba:parallel" in header and "blas@mkl" not in header  # no column for what could not run
    assert "all within tolerance" in out  # numpy and numba:parallel were checked


class BrokenBackend:
    name, device = "broken", "cpu"

    def unavailable_reason(self):
        return None

    def prepare(self, spec, weights):
        raise RuntimeError("route vanished")


def test_check_reports_a_backend_that_fails_instead_of_dying(monkeypatch, capsys):
    import kernels
    from bench.__main__ import main

    from kernels import registry

    monkeypatch.setitem(kernels.BACKENDS, "broken", (__name__, "BrokenBackend", ()))
    monkeypatch.delitem(registry._instances, "broken", raising=False)  # another test's "broken" may be cached
    assert main(["check", "--grid", "smoke", "--backends", "numpy,broken"]) == 1
    out = capsys.readouterr().out
    assert "error: rnn_tanh-T5-B2-I3-H4-float32 broken: RuntimeError: route vanished" in out
    assert "2 beyond tolerance or failed" in out


def test_a_run_records_absent_variants_with_the_reason(tmp_path):
    """``bench run`` end to end, routes taken away in the parent and in every worker."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import kernels.numba.blas\nkernels.numba.blas.route = lambda name: None\n")
    out = tmp_path / "run.csv"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "smoke", "--where",
                           "case_id=rnn_tanh-T5-B2-I3-H4-float32", "--backends", "numba,numba:blas@mkl",
                           "--processes", "1", "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert [(r["backend"], r["status"], r["reason"]) for r in read_results(out)] == [
        (name, "unavailable", UNAVAILABLE[()][name]) for name in ("numba", "numba:blas@mkl")]
