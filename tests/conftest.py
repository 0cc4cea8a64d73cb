"""Shared helpers for the correctness tests."""

import numpy as np
import pytest

from kernels import BACKENDS, available_backends, get_backend

AVAILABILITY = available_backends()


@pytest.fixture(params=list(BACKENDS))
def backend(request):
    """Each registered backend; skipped, with its reason, where it cannot run."""
    reason = AVAILABILITY[request.param]
    if reason is not None:
        pytest.skip(f"{request.param}: {reason}")
    return get_backend(request.param)


def make_inputs(spec, timesteps, batch, with_state, seed=0):
    """``(x, hx)`` for ``spec``: standard normal, ``hx`` None or random states."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape(timesteps, batch)).astype(spec.dtype)
    if not with_state:
        return x, None
    h0 = rng.standard_normal(spec.state_shape(batch)).astype(spec.dtype)
    if spec.mode == "lstm":
        return x, (h0, rng.standard_normal(spec.state_shape(batch)).astype(spec.dtype))
    return x, h0
