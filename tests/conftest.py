"""Shared helpers for the correctness tests."""

import numpy as np
import pytest

from kernels import availability, backend_names, get_backend
from kernels.numba.blas import ROUTE_NAMES

#: Each distinct code path once: every backend without variants; numba's ``parallel`` (no BLAS), ``lanes`` and
#: ``fused`` (its one BLAS call, the projection, on the default route), and ``blas`` once per BLAS
#: route, since every product goes through the route.  Plain ``numba`` runs one of these, chosen per
#: size; tests/test_numba_strategies.py checks that choice.
ALL_PATHS = [n for n in backend_names() if n != "numba"] + [
    "numba:parallel", "numba:fused", "numba:lanes", *(f"numba:blas@{route}" for route in ROUTE_NAMES)]

#: ``{path: None or why it cannot run here}``, per path: a forced BLAS route may be absent alone.
AVAILABILITY = {name: availability(name) for name in ALL_PATHS}


@pytest.fixture(params=ALL_PATHS)
def backend(request):
    """Each registered backend and forced strategy; skipped, with its reason, where it cannot run."""
    reason = AVAILABILITY[request.param]
    if reason is not None:
        pytest.skip(f"{request.param}: {reason}")
    return get_backend(request.param)


def skip_unless_computes(backend, spec):
    """Skip, with the backend's reason, a spec it reports it cannot compute (tests/test_peers.py
    checks that such a spec is refused, never answered)."""
    reason = backend.unavailable_for(spec)
    if reason is not None:
        pytest.skip(f"{backend.name}: {reason}")


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


def torch_answer(spec, weights, x, hx=None):
    """``torch.nn``'s answer in float64 for ``spec``'s arguments (upcast), as a flat list of arrays
    (``output``, ``h_n``, then ``c_n`` for LSTM); skipped where torch is absent.  ``x`` and
    ``hx`` may be unbatched, which torch defines."""
    torch = pytest.importorskip("torch")
    import dataclasses

    from kernels.torch_backend import torch_module

    def up(a):
        return torch.tensor(np.array(a, np.float64))

    weights64 = {k: np.array(v, np.float64) for k, v in weights.items()}
    module = torch_module(dataclasses.replace(spec, dtype="float64"), weights64)
    if hx is not None:
        hx = tuple(map(up, hx)) if spec.mode == "lstm" else up(hx)
    with torch.no_grad():
        output, state = module(up(x), hx)
    return [output.numpy(), *(s.numpy() for s in (state if spec.mode == "lstm" else (state,)))]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by Selenium (bench.publish.browser), one per test module; skipped,
    with the reason, where Selenium, Chromium or chromedriver is missing."""
    from bench.publish.browser import chromium, unavailable

    reason = unavailable()
    if reason is not None:
        pytest.skip(f"no headless browser: {reason}")
    with chromium(width=1280, height=900) as driver:
        yield driver
