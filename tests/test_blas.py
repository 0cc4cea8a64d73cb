"""The BLAS routes of kernels.numba.blas: products, packing, forcing one, and what a run records."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.roofline import measure_peaks
from kernels import CellSpec, get_backend
from kernels.numba import blas
from kernels.numba.backend import NumbaBackend

ROUTES = list(blas.routes())


def test_at_least_one_route_and_the_default_prefers_mkl():
    assert ROUTES, "scipy is a dependency, so its OpenBLAS is always a route"
    assert blas.default_route().name == ROUTES[0] and ROUTES == [n for n in blas.ROUTE_NAMES if n in ROUTES]


@pytest.mark.parametrize("name", ROUTES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("m, k, n", [(1, 1, 1), (3, 5, 7), (64, 33, 130)])
def test_gemm_is_the_row_major_product(name, dtype, m, k, n):
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((m, k)).astype(dtype), rng.standard_normal((k, n)).astype(dtype)
    out = np.full((m, n), np.nan, dtype)
    blas.gemm(blas.routes()[name], a, b, out)
    np.testing.assert_allclose(out, a.astype(np.float64) @ b, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


@pytest.mark.parametrize("name", ROUTES)
def test_packing_only_where_the_blas_can(name):
    route = blas.routes()[name]
    w = np.ones((16, 64), np.float32)
    packed = route.pack(w, batch=8)
    assert (packed.size > 0) == name.startswith("mkl")
    can_pack_f64 = "float64" in route.packing  # torch 2.13 exports packing for float32 only
    assert (route.pack(w.astype(np.float64), batch=8).size > 0) == can_pack_f64
    assert (route.compute(np.float64) is route.gemm(np.float64)) == (not can_pack_f64)


def test_a_forced_route_that_is_absent_is_unavailable_with_the_reason(monkeypatch):
    real = blas.route
    monkeypatch.setattr(blas, "route", lambda name: None if name == "mkl" else real(name))
    monkeypatch.setattr(blas, "_discover", lambda name: (None, None))  # absent, not dropped
    backend = NumbaBackend("blas@mkl")
    reason = backend.unavailable_reason()
    assert reason and "mkl" in reason and "torch built with MKL" in reason
    with pytest.raises(RuntimeError, match="numba:blas@mkl: no BLAS route"):
        backend.prepare(CellSpec("rnn_tanh", 2, 3), {})


def test_unknown_routes_and_strategies_are_refused_by_name():
    with pytest.raises(ValueError, match="variant: expected 'auto' or one of"):
        NumbaBackend("blas@turbo")
    with pytest.raises(ValueError, match="variant: expected"):
        NumbaBackend("turbo@mkl")
    with pytest.raises(ValueError, match="variant: expected"):
        NumbaBackend("parallel@mkl")  # calls no BLAS: no route to force
    with pytest.raises(ValueError, match="backend: unknown name 'numba:fused@turbo'"):
        get_backend("numba:fused@turbo")


def test_the_name_grammar_is_the_backends_own_variants():
    """Every variant NumbaBackend accepts is a registered name, and nothing else is."""
    from kernels import backend_names, parse_backend_name

    forced = [n for n in backend_names(variants=True) if n.startswith("numba:")]
    assert "numba:fused@mkl" in forced and "numba:blas@openblas" in forced
    for name in forced:
        assert get_backend(name).name == name == str(parse_backend_name(name))
    assert sorted(n.partition(":")[2] for n in forced) == sorted(NumbaBackend.variants())


def test_peaks_name_the_blas_behind_them():
    peaks = measure_peaks(n=64, copy_mib=1)
    assert peaks["peak_sgemm_gflops"] > 0 and peaks["peak_dgemm_gflops"] > 0 and peaks["mem_bandwidth_gbs"] > 0
    assert peaks["sgemv_gbps"] > 0
    f32, f64 = peaks["peak_blas"].split(", ")
    assert f32.split()[0] == "float32" and f32.split()[1] in ["numpy", *ROUTES]
    assert f64.split()[0] == "float64" and f64.split()[1] in ["numpy", *ROUTES]


@pytest.mark.parametrize("name", ROUTES)
def test_a_row_records_the_route_its_backend_calls(name):
    """A forced route shows in the row's ``numba_blas`` with the library that serves it and its
    threads; ``parallel`` calls no BLAS and records none; other backends record no numba route."""
    kind, library = {"mkl": ("mkl", "(torch)"), "mkl-wheel": ("mkl", "(mkl wheel)"), "openblas": ("openblas", "(scipy)"),
                     "scipy-openblas32": ("openblas", "(scipy-openblas32)")}[name]
    for variant in (f"numba:blas@{name}", f"numba:fused@{name}"):
        described = get_backend(variant).describe()["numba_blas"]
        assert described.startswith(kind) and library in described and "threads" in described, described
    assert get_backend("numba:parallel").describe() == {"numba_blas": ""}
    assert "numba_blas" not in get_backend("numpy").describe()


def test_blas_arguments_outlive_the_call(tmp_path):
    """The BLAS reads transa, m/n/k and alpha/beta through pointers: with numba's debug allocator,
    which fills freed memory, a pointer into an array freed before the call gives rejected calls
    and wrong numbers (it did, when _gemm made those arrays itself)."""
    script = (
        "import numpy as np\n"
        "from kernels import CellSpec, get_backend, init_weights\n"
        "from kernels.reference import reference_forward, within_tolerance\n"
        "for variant in ('numba:blas', 'numba:blas@openblas'):\n"
        "    spec = CellSpec('gru', 4, 8); w = init_weights(spec)\n"
        "    x = np.random.default_rng(0).standard_normal((3, 2, 4)).astype(np.float32)\n"
        "    print('RESULT', variant, within_tolerance(spec, get_backend(variant).forward(spec, w, x),\n"
        "                                             reference_forward(spec, w, x)))\n"
    )
    env = {**os.environ, "NUMBA_DEBUG_NRT": "1", "NUMBA_CACHE_DIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    results = [line for line in proc.stdout.splitlines() if line.startswith("RESULT")]
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert results == ["RESULT numba:blas True", "RESULT numba:blas@openblas True"], results
    assert "illegal value" not in proc.stdout + proc.stderr and "ERROR" not in proc.stdout + proc.stderr


def test_every_route_present_here_is_verified_and_none_dropped():
    """The routes of this environment pass their own check (a failing one would be dropped, and
    its equivalence tests skipped with the reason, so say so loudly here)."""
    assert blas.dropped() == {}
    for name, route in blas.routes().items():
        assert blas.verify(route) is None and blas.why_not(name) is None


def _numpy_ilp64_route():
    """NumPy's own OpenBLAS (scipy-openblas64: 64-bit integers, symbols ``scipy_?gemm_64_``) as a
    route, from its private library file: a real ILP64 BLAS, which no route may be."""
    import ctypes
    import glob

    found = glob.glob(os.path.join(os.path.dirname(np.__file__) + ".libs", "libscipy_openblas64_*.so"))
    if not found:
        pytest.skip("this NumPy does not ship scipy-openblas64 (an ILP64 OpenBLAS) to test against")
    lib = ctypes.CDLL(found[0])
    return blas.Route("ilp64", "numpy's openblas64", {"float32": blas.GEMM(("scipy_sgemm_64_", lib)),
                                                       "float64": blas.GEMM(("scipy_dgemm_64_", lib))})


def test_an_ilp64_blas_is_told_apart_and_dropped(monkeypatch):
    route = _numpy_ilp64_route()
    problem = blas.verify(route)
    assert problem is not None and "64-bit (an ILP64 BLAS)" in problem and "LP64" in problem
    # discovery drops it with that reason, and the forced variant is unavailable with it
    monkeypatch.setitem(blas.FINDERS, "openblas", lambda: dataclasses.replace(route, name="openblas"))
    blas._discover.cache_clear()
    try:
        assert "openblas" not in blas.routes()
        assert blas.dropped()["openblas"].startswith("present but dropped: float32 GEMM reads its integers as 64-bit")
        reason = NumbaBackend("blas@openblas").unavailable_reason()
        assert reason and "present but dropped" in reason and "ILP64" in reason
    finally:
        monkeypatch.undo()
        blas._discover.cache_clear()
    assert "openblas" in blas.routes()


def _fake_route(product):
    """A route whose ``?gemm_`` is Python: ``product(a, b, c, beta)`` gets the column-major operands
    of the call as NumPy views of their memory, so that ``c[...] = b @ a + beta * c`` is the right
    answer; it reads 32-bit integers, as an LP64 BLAS does."""
    import ctypes

    def make(ctype):
        def call(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
            m, n, k = (ctypes.cast(p, ctypes.POINTER(ctypes.c_int32))[0] for p in (m, n, k))
            ptr = ctypes.POINTER(ctype)
            view = lambda p, rows, cols: np.ctypeslib.as_array(ctypes.cast(p, ptr), (cols, rows))
            product(view(a, m, k), view(b, k, n), view(c, m, n), ctypes.cast(beta, ptr)[0])
        return blas.GEMM(call)

    return blas.Route("fake", "fake", {"float32": make(ctypes.c_float), "float64": make(ctypes.c_double)})


def _right(a, b, c, beta):
    c[...] = b @ a + (beta * c if beta else 0)  # beta = 0: c is not read (BLAS's rule; it holds NaN)


@pytest.mark.parametrize("product, message", [
    (lambda a, b, c, beta: None, "float32 GEMM answers wrong"),  # does nothing
    (lambda a, b, c, beta: _right(a, b, c, beta) or c.__imul__(2), "float32 GEMM answers wrong"),  # twice the product
    (lambda a, b, c, beta: c.__setitem__(..., b @ a), "float32 GEMM with beta = 1 answers wrong"),  # ignores beta
])
def test_a_route_that_answers_wrong_is_dropped_with_the_reason(product, message):
    problem = blas.verify(_fake_route(product))
    assert problem is not None and problem.startswith(message), problem


def test_the_check_passes_a_route_that_answers_right():
    """The fake of the test above, given the right product, passes: the check is of the answer."""
    assert blas.verify(_fake_route(_right)) is None


def test_mkl_asked_for_ilp64_is_dropped_as_such(tmp_path):
    """Intel's mkl_rt told (by MKL_INTERFACE_LAYER) to take 64-bit integers is dropped with that
    reason, in a fresh process; as it comes (LP64) it is a route."""
    if blas.why_not("mkl-wheel") == blas.ROUTE_NEEDS["mkl-wheel"]:
        pytest.skip(f"mkl-wheel: {blas.ROUTE_NEEDS['mkl-wheel']}")
    script = "from kernels.numba import blas; print('WHY', blas.why_not('mkl-wheel'))"
    env = {**os.environ, "MKL_INTERFACE_LAYER": "ILP64"}
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    why = next(line for line in proc.stdout.splitlines() if line.startswith("WHY"))
    assert "present but dropped" in why and "ILP64" in why, why
    assert blas.why_not("mkl-wheel") is None
