"""float32 gradients over a million rows (T*B >= 1e6): the sums over every step and batch row.

A weight or bias gradient is a sum over T*B rows.  Summed in one running float32 accumulator its
error grows as sqrt(T*B) ulps (the kind of numba#2855 and #3702): at LSTM I = H = 4, T = 10000,
B = 128 numba's weight_hh gradient was off by 1.2e-4 of its scale, six times the suite's float32
gradient tolerance, in its own loops and through MKL's GEMM alike, and its bias gradients by
1.9e-5.  numba now sums blocks of rows in float32 and the blocks in float64
(kernels.numba.backward.SUM_BLOCK).  The backends whose sums are this suite's own code run here;
torch and jax sum in their libraries (docs: their figures at this size).
"""

import numpy as np
import pytest

from kernels import CellSpec, availability, get_backend, init_weights
from kernels.numba.blas import ROUTE_NAMES
from kernels.reference import gradient_mismatches, reference_forward_backward

SPEC = CellSpec("lstm", input_size=4, hidden_size=4, dtype="float32")
TIMESTEPS, BATCH = 10_000, 128  # 1.28e6 rows; plain numba's rule picks parallel here
#: Largest error of a weight or bias gradient, relative to its array's largest value, that the
#: blocked sums keep to (measured: 7.4e-8 on every numba path, 2.1e-6 for numpy's per-step sums);
#: a running float32 sum over all rows misses it by 4x to 60x.
BOUND = 5e-6

PATHS = ["numpy", "numba", "numba:parallel", "numba:fused", "numba:lanes", *(f"numba:blas@{route}" for route in ROUTE_NAMES)]


@pytest.fixture(scope="module")
def problem():
    """Weights, x, a grad_output of ones (every row's gradient adds with the same sign) and the
    float64 reference's answer, computed once."""
    weights = init_weights(SPEC)
    x = np.random.default_rng(1).standard_normal(SPEC.input_shape(TIMESTEPS, BATCH)).astype(np.float32)
    grad_output = np.ones(SPEC.output_shape(TIMESTEPS, BATCH), np.float32)
    return weights, x, grad_output, reference_forward_backward(SPEC, weights, x, None, grad_output)


@pytest.mark.parametrize("path", PATHS)
def test_float32_weight_and_bias_gradients_over_a_million_rows(path, problem):
    reason = availability(path)
    if reason is not None:
        pytest.skip(f"{path}: {reason}")
    weights, x, grad_output, want = problem
    got = get_backend(path).forward_backward(SPEC, weights, x, None, grad_output)
    assert not gradient_mismatches(SPEC, got, want), gradient_mismatches(SPEC, got, want)
    for name in SPEC.weight_shapes():
        error = np.abs(got[2][name] - want[2][name]).max() / max(1.0, np.abs(want[2][name]).max())
        assert error < BOUND, f"{path}: grad {name} off by {error:.2e} of its scale"
