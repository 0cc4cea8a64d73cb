"""Shared helpers for the correctness tests."""

import numpy as np
import pytest

from kernels import BACKENDS, VARIANTS, get_backend

#: Every backend, and every forced strategy of those that have several: each path is tested explicitly.
ALL_PATHS = list(BACKENDS) + [f"{b}:{v}" for b, vs in VARIANTS.items() for v in vs]


def _unavailable(name):
    try:
        return get_backend(name).unavailable_reason()
    except ImportError as exc:
        return f"cannot import: {exc}"


#: ``{path: None or why it cannot run here}``, per path: a forced BLAS route may be absent alone.
AVAILABILITY = {name: _unavailable(name) for name in ALL_PATHS}


@pytest.fixture(params=ALL_PATHS)
def backend(request):
    """Each registered backend and forced strategy; skipped, with its reason, where it cannot run."""
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
