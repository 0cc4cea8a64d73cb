"""Every backend equals the float64 reference within the tolerance table.

The matrix: 4 modes x num_layers {1, 3} x bidirectional x batch_first x bias
x {float32, float64} x with/without an initial state, plus randomized sizes.
"""

import itertools

import numpy as np
import pytest

from kernels import MODES, CellSpec, init_weights
from kernels.reference import TOLERANCES, flatten, reference_forward

from .conftest import make_inputs, skip_unless_computes

MATRIX = list(itertools.product(MODES, (1, 3), (False, True), (False, True), (True, False), ("float32", "float64"), (False, True)))


def matrix_id(p):
    mode, layers, bi, bf, bias, dtype, state = p
    return f"{mode}-L{layers}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{'bias' if bias else 'nobias'}-{dtype}-{'h0' if state else 'zeros'}"


def assert_matches_reference(backend, spec, timesteps, batch, with_state, seed=0):
    skip_unless_computes(backend, spec)
    weights = init_weights(spec, seed=seed)
    x, hx = make_inputs(spec, timesteps, batch, with_state, seed=seed + 1)
    got = flatten(backend.forward(spec, weights, x, hx))
    want = flatten(reference_forward(spec, weights, x, hx))
    shapes = [spec.output_shape(timesteps, batch)] + [spec.state_shape(batch)] * (len(want) - 1)
    rtol, atol = TOLERANCES[spec.dtype]
    for name, g, w, shape in zip(("output", "h_n", "c_n"), got, want, shapes):
        assert g.shape == shape, name
        assert g.dtype == spec.np_dtype, f"{name}: dtype {g.dtype}, expected {spec.dtype}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{backend.name} {name}")


@pytest.mark.parametrize("params", MATRIX, ids=[matrix_id(p) for p in MATRIX])
def test_matrix(backend, params):
    mode, layers, bi, bf, bias, dtype, state = params
    spec = CellSpec(mode, input_size=5, hidden_size=7, num_layers=layers, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype)
    assert_matches_reference(backend, spec, timesteps=6, batch=3, with_state=state)


RANDOM_SEEDS = range(12)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_randomized_sizes(backend, seed):
    rng = np.random.default_rng(1000 + seed)
    spec = CellSpec(
        mode=str(rng.choice(MODES)),
        input_size=int(rng.integers(1, 40)),
        hidden_size=int(rng.integers(1, 48)),
        num_layers=int(rng.integers(1, 4)),
        bias=bool(rng.integers(2)),
        batch_first=bool(rng.integers(2)),
        bidirectional=bool(rng.integers(2)),
        dtype=str(rng.choice(["float32", "float64"])),
    )
    assert_matches_reference(backend, spec, int(rng.integers(1, 20)), int(rng.integers(1, 9)), bool(rng.integers(2)), seed=seed)


@pytest.mark.parametrize("mode", MODES)
def test_long_sequence_float32(backend, mode):
    """Errors stay within the float32 tolerance over 200 steps at a larger H."""
    spec = CellSpec(mode, input_size=64, hidden_size=96, dtype="float32")
    assert_matches_reference(backend, spec, timesteps=200, batch=4, with_state=True)


@pytest.mark.parametrize("mode", MODES)
def test_nan_propagates_like_torch(backend, mode):
    """A NaN in one batch row's input makes that row's outputs NaN from then on, and no other row's."""
    spec = CellSpec(mode, input_size=3, hidden_size=4)
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 5, 2, False)
    x[2, 0, 1] = np.nan
    if backend.refuses_non_finite:  # never an answer other than torch's
        with pytest.raises(ValueError, match="^x: expected finite values"):
            backend.forward(spec, weights, x)
        return
    out = flatten(backend.forward(spec, weights, x))[0]
    assert np.isnan(out[2:, 0]).all()
    assert not np.isnan(out[:2]).any() and not np.isnan(out[:, 1]).any()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_state_dict_loads_unchanged(backend, dtype):
    """A state_dict taken from real torch modules runs on every backend and gives torch's answer
    (in float32 within the float32 tolerance, for backends without float64)."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    rtol, atol = TOLERANCES[dtype] if dtype == "float32" else (1e-9, 1e-9)
    for module, mode in ((torch.nn.LSTM, "lstm"), (torch.nn.GRU, "gru"), (torch.nn.RNN, "rnn_tanh")):
        spec = CellSpec(mode, 4, 6, num_layers=2, bidirectional=True, batch_first=True, dtype=dtype)
        skip_unless_computes(backend, spec)
        m = module(4, 6, num_layers=2, bidirectional=True, batch_first=True, dtype=getattr(torch, dtype))
        weights = {k: v.numpy() for k, v in m.state_dict().items()}
        x = torch.randn(3, 5, 4, dtype=getattr(torch, dtype))
        with torch.no_grad():
            want = m(x)
        want = [want[0].numpy(), *(s.numpy() for s in want[1])] if mode == "lstm" else [want[0].numpy(), want[1].numpy()]
        got = flatten(backend.forward(spec, weights, x.numpy()))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
