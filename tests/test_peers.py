"""The ONNX Runtime and JAX backends beyond the shared matrix (tests/test_equivalence.py): specs a
runtime cannot compute are refused with its reason, never answered; threads reach the runtimes;
the timed JAX call never compiles.  Each test skips, with the reason, where its package is missing."""

import dataclasses
import os

import numpy as np
import pytest

from bench.environment import thread_env
from bench.grids import Case
from bench.timing.measure import prepare_case
from bench.timing.policy import TimingPolicy
from kernels import BACKENDS, MODES, Backend, CellSpec, availability, get_backend, init_weights
from kernels import registry

from .conftest import make_inputs


def backend_or_skip(name):
    reason = availability(name)
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    return get_backend(name)


class Float32Only(Backend):
    """A backend that computes nothing in float64: the per-spec refusal, without any runtime."""

    name = "float32_only"

    def unavailable_for(self, spec):
        return "no float64 here" if spec.dtype == "float64" else None

    def prepare(self, spec, weights):
        return get_backend("numpy").prepare(spec, weights)


@pytest.fixture
def float32_only(monkeypatch):
    monkeypatch.setitem(BACKENDS, "float32_only", (__name__, "Float32Only", ()))
    yield "float32_only"
    registry._instances.pop("float32_only", None)


def test_a_spec_the_backend_refuses_is_unavailable_everywhere(float32_only):
    """forward raises with the reason; availability names it; a benchmark row says 'unavailable'
    with it and is not timed; the same backend's float32 spec runs."""
    spec64 = CellSpec("gru", 3, 4, dtype="float64")
    x, _ = make_inputs(spec64, 5, 2, False)
    with pytest.raises(RuntimeError, match="unavailable for this spec: no float64 here"):
        get_backend(float32_only).forward(spec64, init_weights(spec64), x)
    assert availability(float32_only, spec64) == "no float64 here"
    assert availability(float32_only) is None and availability(float32_only, dataclasses.replace(spec64, dtype="float32")) is None
    policy = TimingPolicy(max_time=0.01, min_rounds=3)
    outcome, ready, _ = prepare_case(Case(spec64, 5, 2), float32_only, policy)
    assert (outcome.status, outcome.reason, ready) == ("unavailable", "no float64 here", None)
    outcome, ready, _ = prepare_case(Case(dataclasses.replace(spec64, dtype="float32"), 5, 2), float32_only, policy)
    assert outcome.status == "ok" and ready is not None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_onnxruntime_refuses_what_it_cannot_run_and_runs_the_rest(mode, dtype):
    """Every mode in float32 runs (so the matrix skips no float32 case); where the runtime reports
    a dtype missing, forward refuses with that reason instead of computing in another dtype."""
    backend = backend_or_skip("onnxruntime")
    spec = CellSpec(mode, 3, 4, dtype=dtype)
    reason = backend.unavailable_for(spec)
    if dtype == "float32":
        assert reason is None
        return
    x, _ = make_inputs(spec, 5, 2, False)
    if reason is None:  # a runtime with float64: the matrix checks its answers
        assert backend.forward(spec, init_weights(spec), x)[0].dtype == np.float64
    else:
        assert "float64" in reason
        with pytest.raises(RuntimeError, match="unavailable for this spec"):
            backend.forward(spec, init_weights(spec), x)


def test_onnxruntime_threads_set_the_session_and_the_row(monkeypatch):
    """use_threads (the harness passes --threads) sizes the session's intra-op pool, and describe
    records it; a fresh backend uses the CPUs this process may run on."""
    backend = backend_or_skip("onnxruntime")
    monkeypatch.setattr(backend, "threads", None)
    assert backend.describe() == {"onnxruntime_threads": len(os.sched_getaffinity(0))}
    backend.use_threads(3)
    spec = CellSpec("lstm", 3, 4)
    prepared = backend.prepare(spec, init_weights(spec))
    assert prepared.session.get_session_options().intra_op_num_threads == 3
    assert prepared.session.get_session_options().inter_op_num_threads == 1
    assert backend.describe() == {"onnxruntime_threads": 3}


def test_onnxruntime_graph_holds_one_recurrent_node_per_layer():
    """Both directions of a layer in one node of ONNX's own operator, linear_before_reset=1 for GRU."""
    backend_or_skip("onnxruntime")
    from kernels.onnxruntime_backend import onnx_model

    spec = CellSpec("gru", 3, 4, num_layers=3, bidirectional=True)
    nodes = [n for n in onnx_model(spec, init_weights(spec)).graph.node if n.op_type == "GRU"]
    assert len(nodes) == 3
    for n in nodes:
        attrs = {a.name: a for a in n.attribute}
        assert attrs["direction"].s == b"bidirectional" and attrs["linear_before_reset"].i == 1


def test_jax_timed_call_never_compiles():
    """to_device compiles for its shape (jit_cache 'compiled', then 'in memory' for the same
    shape, also with other weights); the executable refuses another shape rather than compile."""
    backend = backend_or_skip("jax")
    spec = CellSpec("lstm", 3, 5, num_layers=2, bidirectional=True, batch_first=True)
    first = backend.prepare(spec, init_weights(spec, seed=0))
    x, _ = make_inputs(spec, 7, 2, False)
    args = first.to_device(x)
    again = backend.prepare(spec, init_weights(spec, seed=1))
    args_again = again.to_device(x)
    assert (first.jit_cache, again.jit_cache) == ("compiled", "in memory")
    assert args_again[0] is args[0]
    out_first, out_again = first.to_host(first.run(*args))[0], again.to_host(again.run(*args_again))[0]
    assert not np.allclose(out_first, out_again)  # the weights are arguments, not baked in
    x_other, _ = make_inputs(spec, 8, 2, False)
    other = first.to_device(x_other)
    with pytest.raises(TypeError):
        first.run(args[0], *other[1:])


def test_jax_keeps_float32_with_x64_on():
    """x64 is on once the backend ran (float64 is float64), and float32 stays float32 under it."""
    backend = backend_or_skip("jax")
    for dtype in ("float64", "float32"):
        spec = CellSpec("gru", 3, 4, dtype=dtype)
        out, h_n = backend.forward(spec, init_weights(spec), make_inputs(spec, 4, 2, False)[0])
        assert out.dtype == h_n.dtype == np.dtype(dtype)
    import jax

    assert jax.config.jax_enable_x64


def test_thread_env_limits_xla_for_one_thread(monkeypatch):
    """One thread: XLA's Eigen calls single-threaded, the caller's XLA_FLAGS kept; more threads:
    XLA_FLAGS untouched (XLA's pool follows the workers' CPU affinity)."""
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    assert thread_env(1)["XLA_FLAGS"] == "--xla_dump_to=/tmp/x --xla_cpu_multi_thread_eigen=false"
    assert "XLA_FLAGS" not in thread_env(2)
    monkeypatch.delenv("XLA_FLAGS")
    assert thread_env(1)["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"


def test_onnxruntime_refuses_non_finite_weights_and_states():
    """NaN or inf in weights (at prepare) or in c0 gets a ValueError naming it, not an answer."""
    backend = backend_or_skip("onnxruntime")
    spec = CellSpec("lstm", 3, 4)
    weights = init_weights(spec)
    x, (h0, c0) = make_inputs(spec, 5, 2, True)
    c0[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="^c0: expected finite values"):
        backend.forward(spec, weights, x, (h0, c0))
    weights["weight_hh_l0"] = weights["weight_hh_l0"].copy()
    weights["weight_hh_l0"][0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^weights\['weight_hh_l0'\]: expected finite values"):
        backend.prepare(spec, weights)


def test_naming_and_asking_availability_loads_neither_runtime():
    """The parent of the workers may parse these names and ask whether they run without loading
    onnxruntime, onnx or jax (the per-spec question does load them: it asks the runtime)."""
    import subprocess
    import sys

    script = ("import sys, kernels\n"
              "kernels.parse_backend_list('onnxruntime,jax')\n"
              "print([kernels.availability(n) for n in ('onnxruntime', 'jax')])\n"
              "print(sorted(m for m in ('onnx', 'onnxruntime', 'jax', 'jaxlib') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.parametrize("name", ["onnxruntime", "jax"])
def test_strided_views_of_the_first_timesteps_are_read_right(name):
    """The harness checks on a view of the first timesteps (CellSpec.first_timesteps, strided for
    batch_first); the prepared path gives the same as the whole copied sequence's first steps."""
    backend = backend_or_skip(name)
    spec = CellSpec("gru", 3, 4, batch_first=True, bidirectional=True)
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 9, 2, False)
    view = spec.first_timesteps(x, 4)
    assert not view.flags.c_contiguous
    prepared = backend.prepare(spec, weights)
    got = prepared.to_host(prepared.run(*prepared.to_device(view)))
    want = backend.forward(spec, weights, np.ascontiguousarray(view))
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
