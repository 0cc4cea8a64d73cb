"""Backpropagation through time: the float64 reference against torch.autograd, every backend
against the reference, and the validation of the gradient seeds.

The matrix is the forward's (tests/test_equivalence.py): 4 modes x num_layers {1, 3} x
bidirectional x batch_first x bias x {float32, float64} x with/without an initial state, plus
randomized sizes and a 200-step sequence; tolerances in kernels.reference.GRAD_TOLERANCES.
"""

import numpy as np
import pytest

from kernels import MODES, CellSpec, get_backend, init_weights
from kernels.reference import (backward_arrays, backward_problem, gradient_mismatches, reference_forward,
                               reference_forward_backward)

from .conftest import make_inputs
from .test_equivalence import MATRIX, matrix_id


def make_seeds(spec, timesteps, batch, seed=7):
    """Random ``(grad_output, grad_h_n)``; for LSTM ``grad_h_n`` is the pair (grad_h_n, grad_c_n)."""
    rng = np.random.default_rng(seed)
    grad_output = rng.standard_normal(spec.output_shape(timesteps, batch)).astype(spec.dtype)
    grad_h_n = rng.standard_normal(spec.state_shape(batch)).astype(spec.dtype)
    if spec.mode == "lstm":
        grad_h_n = (grad_h_n, rng.standard_normal(spec.state_shape(batch)).astype(spec.dtype))
    return grad_output, grad_h_n


@pytest.fixture
def backend(backend):
    """The conftest's backend paths that run the ``forward_backward`` pass; the others skipped with
    their reason (tests/test_passes.py checks that they refuse it)."""
    if "forward_backward" not in backend.passes():
        pytest.skip(f"{backend.name}: no forward_backward pass (it runs {', '.join(backend.passes())})")
    return backend


def assert_gradients_match(backend, spec, timesteps, batch, with_state, seed=0):
    weights = init_weights(spec, seed=seed)
    x, hx = make_inputs(spec, timesteps, batch, with_state, seed=seed + 1)
    grad_output, grad_h_n = make_seeds(spec, timesteps, batch, seed=seed + 2)
    got = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n)
    want = reference_forward_backward(spec, weights, x, hx, grad_output, grad_h_n)
    assert backward_problem(spec, got, want) is None, backward_problem(spec, got, want)
    assert not gradient_mismatches(spec, got, want), f"{backend.name}: {gradient_mismatches(spec, got, want)}"


# --- the reference against torch.autograd ----------------------------------------------------

def autograd(spec, weights, x, hx, grad_output, grad_h_n):
    """``forward_backward`` written directly with torch.autograd on a torch.nn module (float64)."""
    torch = pytest.importorskip("torch")
    from kernels.torch_backend import torch_module

    module = torch_module(spec, weights).requires_grad_(True)
    xt = torch.tensor(x, requires_grad=True)
    states = [torch.zeros(spec.state_shape(x.shape[0 if spec.batch_first else 1]), dtype=torch.float64)
              for _ in range(2 if spec.mode == "lstm" else 1)]
    if hx is not None:
        states = [torch.tensor(a) for a in (hx if spec.mode == "lstm" else (hx,))]
    states = [s.requires_grad_(True) for s in states]
    out, h_n = module(xt, tuple(states) if spec.mode == "lstm" else states[0])
    outs = [out, *h_n] if spec.mode == "lstm" else [out, h_n]
    seeds = [grad_output, *(grad_h_n if spec.mode == "lstm" else (grad_h_n,))]
    loss = sum((o * torch.tensor(s)).sum() for o, s in zip(outs, seeds))
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad(loss, [*params, xt, *states])
    return dict(zip([*names, "input", "h0", "c0"], (g.numpy() for g in grads)))


@pytest.mark.parametrize("params", [p for p in MATRIX if p[5] == "float64"], ids=lambda p: matrix_id(p))
def test_reference_backward_equals_autograd_float64(params):
    mode, layers, bi, bf, bias, dtype, state = params
    spec = CellSpec(mode, 3, 4, num_layers=layers, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype)
    weights = init_weights(spec, seed=3)
    x, hx = make_inputs(spec, 5, 2, state, seed=4)
    grad_output, grad_h_n = make_seeds(spec, 5, 2)
    want = autograd(spec, weights, x, hx, grad_output, grad_h_n)
    output, h_n, grads = reference_forward_backward(spec, weights, x, hx, grad_output, grad_h_n)
    assert list(grads) == list(want)
    for name, g in grads.items():
        assert g.dtype == np.float64 and g.shape == want[name].shape, name
        np.testing.assert_allclose(g, want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    forward = reference_forward(spec, weights, x, hx)
    np.testing.assert_array_equal(output, forward[0])  # the same forward pass


def test_reference_backward_passes_gradcheck():
    """torch.autograd.gradcheck's finite differences agree with autograd on the same function,
    and the reference equals autograd: so the reference is the derivative of the forward."""
    torch = pytest.importorskip("torch")
    spec = CellSpec("gru", 2, 3, num_layers=2, bidirectional=True, dtype="float64")
    weights = init_weights(spec, seed=5)
    x, hx = make_inputs(spec, 3, 2, True, seed=6)
    grad_output, grad_h_n = make_seeds(spec, 3, 2)
    want = autograd(spec, weights, x, hx, grad_output, grad_h_n)
    got = reference_forward_backward(spec, weights, x, hx, grad_output, grad_h_n)[2]
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-10, atol=1e-12, err_msg=name)
    from kernels.torch_backend import torch_module

    module = torch_module(spec, weights)
    assert torch.autograd.gradcheck(lambda xt, h: module(xt, h)[0], (torch.tensor(x, requires_grad=True),
                                                                      torch.tensor(hx, requires_grad=True)))


# --- every backend against the reference --------------------------------------------------

@pytest.mark.parametrize("params", MATRIX, ids=[matrix_id(p) for p in MATRIX])
def test_gradient_matrix(backend, params):
    mode, layers, bi, bf, bias, dtype, state = params
    spec = CellSpec(mode, input_size=3, hidden_size=5, num_layers=layers, bias=bias, batch_first=bf,
                    bidirectional=bi, dtype=dtype)
    assert_gradients_match(backend, spec, timesteps=4, batch=2, with_state=state)


@pytest.mark.parametrize("seed", range(6))
def test_gradient_randomized_sizes(backend, seed):
    rng = np.random.default_rng(2000 + seed)
    spec = CellSpec(
        mode=str(rng.choice(MODES)),
        input_size=int(rng.integers(1, 24)),
        hidden_size=int(rng.integers(1, 32)),
        num_layers=int(rng.integers(1, 4)),
        bias=bool(rng.integers(2)),
        batch_first=bool(rng.integers(2)),
        bidirectional=bool(rng.integers(2)),
        dtype=str(rng.choice(["float32", "float64"])),
    )
    assert_gradients_match(backend, spec, int(rng.integers(1, 12)), int(rng.integers(1, 7)), bool(rng.integers(2)),
                           seed=seed)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("mode", MODES)
def test_gradient_long_sequence(backend, mode, dtype):
    """200 steps: the backward recurrence carries errors as far as the forward does."""
    spec = CellSpec(mode, input_size=8, hidden_size=16, dtype=dtype)
    assert_gradients_match(backend, spec, timesteps=200, batch=2, with_state=True)


def test_output_and_states_equal_forward(backend):
    """forward_backward's output and h_n are the forward pass's."""
    spec = CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, dtype="float64")
    weights = init_weights(spec)
    x, hx = make_inputs(spec, 5, 2, True)
    output, (h_n, c_n), _ = backend.forward_backward(spec, weights, x, hx)
    want = reference_forward(spec, weights, x, hx)
    for g, w in zip((output, h_n, c_n), (want[0], *want[1])):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9)


def test_zero_seeds_give_zero_gradients(backend):
    spec = CellSpec("gru", 3, 4, dtype="float64")
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 4, 2, False)
    _, _, grads = backend.forward_backward(spec, weights, x)
    assert all(not g.any() for g in grads.values())
    assert set(grads) == {*spec.weight_shapes(), "input", "h0"}


def test_empty_batch(backend):
    spec = CellSpec("lstm", 3, 4, num_layers=2, batch_first=True, dtype="float32")
    x = np.zeros(spec.input_shape(5, 0), np.float32)
    output, (h_n, c_n), grads = backend.forward_backward(spec, init_weights(spec), x)
    assert output.shape == (0, 5, 4) and h_n.shape == c_n.shape == (2, 0, 4)
    assert grads["input"].shape == x.shape and grads["c0"].shape == (2, 0, 4)
    assert all(not g.any() and g.dtype == np.float32 for g in grads.values())


# --- validation of the seeds ---------------------------------------------------------------

SPEC = CellSpec("rnn_tanh", 3, 4, num_layers=2, batch_first=True)
LSTM = CellSpec("lstm", 3, 4)
X = np.zeros((2, 5, 3), np.float32)  # (B, T, I) for SPEC
XL = np.zeros((5, 2, 3), np.float32)  # (T, B, I) for LSTM


@pytest.mark.parametrize("spec, x, kwargs, error, message", [
    (SPEC, X, {"grad_output": np.zeros((5, 2, 4), np.float32)}, ValueError,
     r"grad_output: expected shape \(2, 5, 4\)"),
    (SPEC, X, {"grad_output": np.zeros((2, 5, 4), np.float64)}, TypeError, "grad_output: expected dtype float32"),
    (SPEC, X, {"grad_output": [[0.0]]}, TypeError, "grad_output: expected a numpy.ndarray"),
    (SPEC, X, {"grad_h_n": np.zeros((2, 5, 4), np.float32)}, ValueError, r"grad_h_n: expected shape \(2, 2, 4\)"),
    (SPEC, X, {"grad_h_n": (np.zeros((2, 2, 4), np.float32),) * 2}, TypeError, "grad_h_n: expected None or an array"),
    (LSTM, XL, {"grad_h_n": (np.zeros((1, 2, 4), np.float32), np.zeros((1, 3, 4), np.float32))}, ValueError,
     r"grad_h_n\[1\] \(grad_c_n\): expected shape \(1, 2, 4\)"),
    (LSTM, XL, {"grad_h_n": (None, None, None)}, TypeError, "grad_h_n: expected None, an array or a pair"),
])
def test_bad_seeds_are_named(backend, spec, x, kwargs, error, message):
    with pytest.raises(error, match=message):
        backend.forward_backward(spec, init_weights(spec), x, **kwargs)


def test_lstm_seed_pair_with_none_and_array_alone():
    """For LSTM a lone array is grad_h_n (grad_c_n zeros), and either member of the pair may be None."""
    spec = CellSpec("lstm", 3, 4, dtype="float64")
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 4, 2, False)
    g = np.random.default_rng(0).standard_normal(spec.state_shape(2))
    numpy = get_backend("numpy")
    alone = numpy.forward_backward(spec, weights, x, grad_h_n=g)[2]
    pair = numpy.forward_backward(spec, weights, x, grad_h_n=(g, None))[2]
    only_c = numpy.forward_backward(spec, weights, x, grad_h_n=(None, g))[2]
    np.testing.assert_array_equal(alone["input"], pair["input"])
    assert alone["input"].any() and only_c["input"].any()
    assert not np.allclose(alone["input"], only_c["input"])


def test_a_backend_without_the_pass_says_so():
    from bench.timing.spin import SpinBackend

    spin = SpinBackend()
    assert "forward_backward" not in spin.passes()
    with pytest.raises(RuntimeError, match="no forward_backward pass"):
        spin.forward_backward(SPEC, init_weights(SPEC), X)


def test_backward_arrays_names():
    spec = CellSpec("lstm", 2, 3, dtype="float64")
    x, _ = make_inputs(spec, 2, 1, False)
    names = list(backward_arrays(reference_forward_backward(spec, init_weights(spec), x)))
    assert names == ["output", "h_n", "c_n", *(f"grad {n}" for n in spec.weight_shapes()), "grad input", "grad h0",
                     "grad c0"]
