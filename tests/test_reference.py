"""The float64 reference agrees with torch.nn in float64, over the same matrix."""

import numpy as np
import pytest

from kernels import CellSpec, init_weights
from kernels.reference import TOLERANCES, flatten, max_abs_error, reference_forward

from .conftest import make_inputs
from .test_equivalence import MATRIX, matrix_id

torch = pytest.importorskip("torch")
from kernels.torch_backend import torch_module  # noqa: E402


def torch_forward(spec, weights, x, hx):
    module = torch_module(spec, weights)
    if hx is not None:
        hx = tuple(torch.from_numpy(a) for a in hx) if spec.mode == "lstm" else torch.from_numpy(hx)
    with torch.no_grad():
        out, state = module(torch.from_numpy(x), hx)
    return [out.numpy(), *(s.numpy() for s in state)] if spec.mode == "lstm" else [out.numpy(), state.numpy()]


@pytest.mark.parametrize("params", [p for p in MATRIX if p[5] == "float64"], ids=lambda p: matrix_id(p))
def test_reference_equals_torch_float64(params):
    mode, layers, bi, bf, bias, dtype, state = params
    spec = CellSpec(mode, 5, 7, num_layers=layers, bias=bias, batch_first=bf, bidirectional=bi, dtype=dtype)
    weights = init_weights(spec, seed=3)
    x, hx = make_inputs(spec, 6, 3, state, seed=4)
    want = torch_forward(spec, weights, x, hx)
    got = flatten(reference_forward(spec, weights, x, hx))
    rtol, atol = TOLERANCES["float64"]
    for g, w in zip(got, want):
        assert g.dtype == np.float64
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_reference_promotes_float32_inputs():
    spec = CellSpec("gru", 3, 4, dtype="float32")
    weights = init_weights(spec)
    x, _ = make_inputs(spec, 4, 2, False)
    ref = reference_forward(spec, weights, x)
    assert all(a.dtype == np.float64 for a in flatten(ref))
    assert max_abs_error(ref, ref) == 0.0


def test_weight_shapes_and_order_match_torch():
    for mode in ("rnn_tanh", "rnn_relu", "lstm", "gru"):
        for bias in (True, False):
            spec = CellSpec(mode, 3, 5, num_layers=3, bias=bias, bidirectional=True)
            module = torch_module(spec)
            assert list(spec.weight_shapes().items()) == [(k, tuple(v.shape)) for k, v in module.state_dict().items()]


def test_init_weights_range_and_dtype():
    spec = CellSpec("lstm", 3, 16, num_layers=2, dtype="float64")
    weights = init_weights(spec, seed=1)
    k = 1 / np.sqrt(16)
    assert all(w.dtype == np.float64 and np.abs(w).max() <= k for w in weights.values())
    assert np.abs(weights["weight_hh_l1"]).max() > 0.9 * k  # drawn over the whole range
    assert not np.array_equal(init_weights(spec, seed=2)["weight_ih_l0"], weights["weight_ih_l0"])
