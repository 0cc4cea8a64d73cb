"""The numba backend's single compiled call per pass (kernels.numba.driver): one dispatch whatever
the stack, the gates kept by the forward or recomputed by the backward alike, the first step's
product skipped only where that is exact, each pass following its own plan entry, and results that
the caller owns.

(Every strategy also runs the whole equivalence and gradient matrices through the driver:
tests/conftest.py's ``backend`` fixture.)
"""

import json

import numpy as np
import pytest

from kernels import CellSpec, get_backend, init_weights
from kernels.numba import layout
from kernels.numba import plan as plans
from kernels.numba.backend import STRATEGIES
from kernels.reference import flatten, gradient_mismatches, reference_forward, reference_forward_backward

from .conftest import make_inputs

SPECS = [CellSpec("lstm", 3, 6, num_layers=2, bidirectional=True, proj_size=4),
         CellSpec("gru", 3, 6, num_layers=3, bidirectional=True, batch_first=True),
         CellSpec("rnn_tanh", 3, 6, num_layers=2, bidirectional=True, dtype="float64")]


def _backward(backend, spec, lengths=None, seed=0):
    weights = init_weights(spec, seed=seed)
    batch = 5 if lengths is None else len(lengths)
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal(spec.input_shape(7, batch)).astype(spec.dtype)
    states = [rng.standard_normal(s).astype(spec.dtype) for s in spec.state_shapes(batch)]
    hx = tuple(states) if spec.mode == "lstm" else states[0]
    grad_output = rng.standard_normal(spec.output_shape(7, batch)).astype(spec.dtype)
    seeds = [rng.standard_normal(s).astype(spec.dtype) for s in spec.state_shapes(batch)]
    grad_h_n = tuple(seeds) if spec.mode == "lstm" else seeds[0]
    got = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
    want = reference_forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
    return got, want


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.mode)
@pytest.mark.parametrize("lengths", [None, np.array([7, 3, 5, 1])], ids=["full", "varlen"])
def test_recomputed_gates_give_the_kept_gates_bits(strategy, spec, lengths, monkeypatch):
    """With no memory for gates beyond the first pair's, every other pair recomputes its gates in
    the backward (its forward again, into one shared buffer): the very bits of keeping them all,
    and the reference's gradients.  A backward that read another pair's gates, or stale ones, fails."""
    backend = get_backend(f"numba:{strategy}")
    kept, want = _backward(backend, spec, lengths)
    assert not gradient_mismatches(spec, kept, want), gradient_mismatches(spec, kept, want)
    monkeypatch.setattr(layout, "GATE_BUDGET", 0)
    assert layout.kept_pairs(spec, 7, 5) == (4 if spec.mode == "rnn_tanh" else 1)  # the Elman cells keep nothing
    recomputed, _ = _backward(backend, spec, lengths)
    for a, b in zip(flatten(kept[:2]) + list(kept[2].values()), flatten(recomputed[:2]) + list(recomputed[2].values())):
        np.testing.assert_array_equal(a, b)


def test_the_budget_rule():
    """All pairs keep their gates within the budget, the first always; the bytes are those of the
    gates, c_t, tanh(c_t) (LSTM), W_hn h + b_hn (GRU) and the projection's input."""
    spec = CellSpec("lstm", 8, 16, num_layers=3, bidirectional=True, proj_size=4)
    per_pair = 10 * 2 * (4 * 16 + 16 + 16 + 16) * 4  # T = 10, B = 2
    assert layout.kept_pairs(spec, 10, 2, budget=6 * per_pair) == 6
    assert layout.kept_pairs(spec, 10, 2, budget=3 * per_pair + 1) == 3
    assert layout.kept_pairs(spec, 10, 2, budget=0) == 1
    assert layout.kept_pairs(CellSpec("rnn_relu", 8, 16, num_layers=3), 10, 2, budget=0) == 3


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("mode", ["rnn_relu", "lstm", "gru"])
def test_without_h0_the_first_product_is_skipped_exactly(strategy, mode):
    """hx=None skips step 0's recurrent product (h = 0): the same answer as explicit zeros, bit for
    bit; with inf in W_hh it is not skipped, and 0 * inf gives torch's NaN as the reference does."""
    spec = CellSpec(mode, 4, 8, num_layers=2)
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 5, 3, False)
    zeros = tuple(np.zeros(s, np.float32) for s in spec.state_shapes(3))
    backend = get_backend(f"numba:{strategy}")
    skipped = backend.forward(spec, weights, x)
    explicit = backend.forward(spec, weights, x, zeros if mode == "lstm" else zeros[0])
    for a, b in zip(flatten(skipped), flatten(explicit)):
        np.testing.assert_array_equal(a, b)
    bad = {**weights, "weight_hh_l0": weights["weight_hh_l0"].copy()}
    bad["weight_hh_l0"][0, 0] = np.inf
    got, want = backend.forward(spec, bad, x), reference_forward(spec, bad, x)
    assert np.isnan(want[0]).any()
    for a, b in zip(flatten(got), flatten(want)):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.mode)
def test_one_dispatch_per_pass_whatever_the_stack(spec, monkeypatch):
    from kernels.numba import driver

    calls = []

    class Counted:
        def __init__(self, name, kernel):
            self.name, self.kernel = name, kernel

        def __getattr__(self, attr):  # .stats: the dispatcher's
            return getattr(self.kernel, attr)

        def __call__(self, *args):
            calls.append(self.name)
            return self.kernel(*args)

    for name, kernel in dict(driver.DRIVERS).items():
        monkeypatch.setitem(driver.DRIVERS, name, Counted(name, kernel))
    prepared = get_backend("numba").prepare(spec, init_weights(spec))
    x, _ = make_inputs(spec, 4, 3, False)
    args = prepared.to_device(x)
    calls.clear()
    prepared.run(*args)
    assert calls == ["forward"]
    args = prepared.to_device_backward(x)
    calls.clear()
    prepared.run_backward(*args)
    assert calls == ["forward_backward"]


def test_results_are_the_callers_and_runs_reuse_their_buffers():
    """``run`` returns views of its workspace (valid until the next run on the same arguments, no
    allocation per call); ``to_host`` copies them out, so a later run changes nothing the caller
    holds."""
    spec = CellSpec("lstm", 3, 5)
    weights = init_weights(spec)
    prepared = get_backend("numba").prepare(spec, weights)
    x, _ = make_inputs(spec, 4, 2, False)
    args = prepared.to_device(x)
    first = prepared.run(*args)
    held = prepared.to_host(first)
    held_copy = [a.copy() for a in flatten(held)]
    again = prepared.run(*args)
    assert all(a is b for a, b in zip(first[0], again[0]))  # the same buffers
    other = prepared.to_device(x * 2)  # other arguments, other buffers
    prepared.run(*other)
    for a, b in zip(flatten(held), held_copy):
        np.testing.assert_array_equal(a, b)
    assert not any(np.shares_memory(a, b) for a in flatten(held) for b in first[0] if b is not None)


def test_each_pass_follows_its_own_plan_entry(tmp_path, monkeypatch):
    """A plan whose forward and forward_backward entries differ: run and run_backward each call
    their pass's variant and say so."""
    path = tmp_path / "plan.json"
    entries = [{"mode": "gru", "dtype": "float32", "pass": "forward", "timesteps": 5, "batch": 3, "hidden_size": 8,
                "variant": "parallel"},
               {"mode": "gru", "dtype": "float32", "pass": "forward_backward", "timesteps": 5, "batch": 3,
                "hidden_size": 8, "variant": "fused@openblas"}]
    path.write_text(json.dumps({"format": plans.FORMAT, "version": plans.VERSION, "machine_id": "m-1c-1g",
                                "entries": entries}))
    monkeypatch.setenv(plans.MACHINE_ENV, "m-1c-1g")
    monkeypatch.setenv(plans.PLAN_ENV, str(path))
    plans._load.cache_clear()
    try:
        spec = CellSpec("gru", 4, 8)
        weights = init_weights(spec)
        x, _ = make_inputs(spec, 5, 3, False)
        prepared = get_backend("numba").prepare(spec, weights)
        prepared.run(*prepared.to_device(x))
        assert prepared.ran()["variant"] == "parallel"
        args = prepared.to_device_backward(x, grad_output=np.ones(spec.output_shape(5, 3), np.float32))
        got = prepared.backward_to_host(prepared.run_backward(*args))
        assert prepared.ran()["variant"] == "fused@openblas" and prepared.ran()["plan"].startswith(str(path))
        want = get_backend("numba:fused@openblas").forward_backward(spec, weights, x, None,
                                                                  np.ones(spec.output_shape(5, 3), np.float32))
        for name in want[2]:
            np.testing.assert_array_equal(got[2][name], want[2][name])
    finally:
        plans._load.cache_clear()
