"""Shared helpers for the correctness tests."""

import numpy as np
import pytest

from kernels import BACKENDS, VARIANTS, available_backends, get_backend

AVAILABILITY = available_backends()
#: Every backend, and every forced strategy of those that have several: each path is tested explicitly.
ALL_PATHS = list(BACKENDS) + [f"{b}:{v}" for b, vs in VARIANTS.items() for v in vs]


@pytest.fixture(params=ALL_PATHS)
def backend(request):
    """Each registered backend and forced strategy; skipped, with its reason, where it cannot run."""
    reason = AVAILABILITY[request.param.partition(":")[0]]
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
