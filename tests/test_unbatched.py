"""Unbatched input, as torch accepts it since 1.11: x (T, I), states (D*L, H), output (T, D*H);
``batch_first`` does not apply.  Every backend against torch itself on the same 2-D arrays."""

import dataclasses

import numpy as np
import pytest

from kernels import MODES, CellSpec, init_weights
from kernels.reference import TOLERANCES, flatten

from .conftest import skip_unless_computes, torch_answer

#: Every mode, stacked and bidirectional (D*L = 4), in both layouts ``batch_first`` would choose
#: between (it must change nothing) and both dtypes.
SPECS = [CellSpec(mode, input_size=3, hidden_size=4, num_layers=2, bidirectional=True, batch_first=bf, dtype=dtype)
         for mode in MODES for bf, dtype in ((False, "float64"), (True, "float32"))]


def unbatched_inputs(spec, timesteps, seed=0):
    """``x`` (T, I) and ``hx`` with states (D*L, H): ``h0``, or ``(h0, c0)`` for LSTM."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape(timesteps, None)).astype(spec.dtype)
    states = [rng.standard_normal(spec.state_shape(None)).astype(spec.dtype) for _ in range(1 + (spec.mode == "lstm"))]
    return x, (tuple(states) if spec.mode == "lstm" else states[0])


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.mode}-{'bf' if s.batch_first else 'tm'}-{s.dtype}")
def test_unbatched_matches_torch(backend, spec):
    skip_unless_computes(backend, spec)
    weights = init_weights(spec)
    x, hx = unbatched_inputs(spec, timesteps=5)
    rtol, atol = TOLERANCES[spec.dtype]
    for given in (None, hx):
        got = flatten(backend.forward(spec, weights, x, given))
        want = torch_answer(spec, weights, x, given)
        assert [g.shape for g in got] == [w.shape for w in want] == [(5, 8)] + [(4, 4)] * (len(want) - 1)
        for name, g, w in zip(("output", "h_n", "c_n"), got, want):
            assert g.dtype == spec.np_dtype, name
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol,
                                       err_msg=f"{backend.name} {name}, hx {'None' if given is None else 'given'}")


def test_unbatched_shapes_from_the_spec():
    spec = dataclasses.replace(SPECS[-1], batch_first=True)
    assert (spec.input_shape(5, None), spec.output_shape(5, None), spec.state_shape(None)) == ((5, 3), (5, 8), (4, 4))
    x = np.arange(15.0).reshape(5, 3)
    assert spec.batched(x).shape == (1, 5, 3)
    np.testing.assert_array_equal(spec.unbatched(spec.batched(x)), x)
    assert dataclasses.replace(spec, batch_first=False).batched(x).shape == (5, 1, 3)


def torch_gradients(spec, weights, x, hx, grad_output, grad_state):
    """torch autograd's ``forward_backward`` answer in float64 on unbatched arrays: output, states,
    then the gradients of every state_dict name, ``input``, ``h0`` (and ``c0``)."""
    torch = pytest.importorskip("torch")
    from kernels.torch_backend import torch_module

    def leaf(a):
        return torch.tensor(np.array(a, np.float64), requires_grad=True)

    module = torch_module(dataclasses.replace(spec, dtype="float64"),
                          {k: np.array(v, np.float64) for k, v in weights.items()}).requires_grad_(True)
    xs, states = leaf(x), [leaf(s) for s in (hx if spec.mode == "lstm" else (hx,))]
    output, state = module(xs, tuple(states) if spec.mode == "lstm" else states[0])
    outs = [output, *(state if spec.mode == "lstm" else (state,))]
    loss = sum((o * torch.tensor(np.array(g, np.float64))).sum() for o, g in zip(outs, [grad_output, *grad_state]))
    loss.backward()
    grads = {name: p.grad.numpy() for name, p in module.named_parameters()}
    grads.update(input=xs.grad.numpy(), h0=states[0].grad.numpy(), **({"c0": states[1].grad.numpy()} if len(states) > 1 else {}))
    return [o.detach().numpy() for o in outs], grads


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.mode}-{'bf' if s.batch_first else 'tm'}-{s.dtype}")
def test_unbatched_forward_backward_matches_torch(backend, spec):
    """2-D x, states and seeds through ``forward_backward``: outputs and every gradient in torch's
    unbatched shapes and values."""
    if "forward_backward" not in backend.passes():
        pytest.skip(f"{backend.name}: no forward_backward pass")
    skip_unless_computes(backend, spec)
    weights = init_weights(spec)
    x, hx = unbatched_inputs(spec, timesteps=5)
    rng = np.random.default_rng(7)
    grad_output = rng.standard_normal(spec.output_shape(5, None)).astype(spec.dtype)
    grad_state = [rng.standard_normal(spec.state_shape(None)).astype(spec.dtype) for _ in range(1 + (spec.mode == "lstm"))]
    output, state, grads = backend.forward_backward(spec, weights, x, hx, grad_output,
                                                    tuple(grad_state) if spec.mode == "lstm" else grad_state[0])
    want_outs, want_grads = torch_gradients(spec, weights, x, hx, grad_output, grad_state)
    rtol, atol = {"float64": (1e-9, 1e-9), "float32": (1e-4, 1e-4)}[spec.dtype]
    for got, want in zip([output, *(state if spec.mode == "lstm" else (state,))], want_outs):
        assert got.shape == want.shape and got.dtype == spec.np_dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)
    assert sorted(grads) == sorted(want_grads)
    for name, want in want_grads.items():
        assert grads[name].shape == want.shape, name
        np.testing.assert_allclose(grads[name], want, rtol=rtol, atol=atol * max(1.0, np.abs(want).max()), err_msg=name)
