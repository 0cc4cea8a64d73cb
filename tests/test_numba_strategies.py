"""The numba backend's strategies: the selection rule, forcing, determinism.

(Every strategy also runs the whole equivalence matrix: tests/conftest.py's
``backend`` fixture includes ``numba:parallel``, ``numba:fused``, ``numba:lanes`` and
``numba:blas`` on each BLAS route.)
"""

import numpy as np
import pytest

from kernels import CellSpec, get_backend, init_weights
from kernels.numba.backend import ROUTED, STRATEGIES, choose_strategy, recurrent_tiles, rule_route
from kernels.reference import contract_problem, flatten, max_abs_error, reference_forward, within_tolerance

from .conftest import make_inputs


@pytest.mark.parametrize(
    "hidden, batch, expected",
    [(8, 1, "parallel"), (64, 4, "fused"), (8, 4, "parallel"), (8, 8, "parallel"), (8, 16, "lanes"),
     (8, 64, "lanes"), (32, 64, "lanes"), (64, 8, "parallel"), (64, 16, "parallel"), (64, 64, "blas"),
     (256, 1, "fused"), (1024, 1, "fused"), (256, 8, "blas"), (1024, 64, "blas")],
)
def test_selection_rule(hidden, batch, expected):
    assert choose_strategy(CellSpec("lstm", hidden, hidden), batch) == expected


@pytest.mark.parametrize(
    "hidden, batch, pass_, expected",
    [(256, 1, "forward", "blas"), (1024, 4, "forward", "blas"), (64, 1, "forward", "fused"),
     (8, 1, "forward", "parallel"), (256, 1, "forward_backward", "fused"), (8, 64, "forward", "lanes")],
)
def test_selection_rule_where_the_route_tiles(hidden, batch, pass_, expected):
    """A forward of a few rows goes to ``blas`` from H = 256 where the route multiplies tiles
    unpacked; the backward's products are not tiled, so forward_backward keeps ``fused``."""
    assert choose_strategy(CellSpec("lstm", hidden, hidden), batch, 10, pass_, tiles=True) == expected


def test_forcing_a_strategy_by_name():
    for s in STRATEGIES:
        backend = get_backend(f"numba:{s}")
        assert backend.strategy == s and backend.name == f"numba:{s}"
    assert get_backend("numba").strategy == "auto"
    with pytest.raises(ValueError, match=r"backend: unknown name 'numba:turbo'.*numba:fused"):
        get_backend("numba:turbo")
    with pytest.raises(ValueError, match="backend: unknown name 'numpy:fused'"):
        get_backend("numpy:fused")


@pytest.mark.parametrize("hidden, batch", [(8, 3), (64, 64), (256, 1)])
def test_plain_numba_runs_the_strategy_the_rule_chooses(hidden, batch, monkeypatch):
    """Without a plan, ``numba`` (auto) gives the very bits of the strategy :func:`choose_strategy`
    names, and not those of every other strategy: it dispatches by the rule.  (The forced
    strategies, not plain ``numba``, run the equivalence matrix; tests/test_plan.py, the plan.)"""
    monkeypatch.setenv("RNN_BENCH_PLAN", "off")
    spec = CellSpec("gru", 5, hidden)
    weights = init_weights(spec)
    x, hx = make_inputs(spec, 4, batch, True)
    auto = get_backend("numba").forward(spec, weights, x, hx)[0]
    route = rule_route()  # where it tiles (an OpenBLAS of AVX-512 kernels), B = 1 at H = 256 runs blas
    tiles = route is not None and recurrent_tiles(route, spec, batch) is not None
    chosen = choose_strategy(spec, batch, 4, "forward", tiles)
    forced = f"{chosen}@{route.name}" if chosen in ROUTED else chosen  # on the rule's route
    np.testing.assert_array_equal(auto, get_backend(f"numba:{forced}").forward(spec, weights, x, hx)[0])
    others = [get_backend(f"numba:{s}").forward(spec, weights, x, hx)[0] for s in STRATEGIES if s != chosen]
    assert any(not np.array_equal(auto, o) for o in others), "strategies agree bitwise here: the test proves nothing"


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_bitwise_deterministic(strategy, mode):
    """Run to run, every strategy gives identical bits (no shared accumulators in prange)."""
    spec = CellSpec(mode, 12, 24, num_layers=2, bidirectional=True)
    weights = init_weights(spec)
    x, hx = make_inputs(spec, 30, 16, True)
    backend = get_backend(f"numba:{strategy}")
    first = backend.forward(spec, weights, x, hx)
    for _ in range(3):
        again = backend.forward(spec, weights, x, hx)
        np.testing.assert_array_equal(again[0], first[0])


def test_float32_tanh_approximation_accuracy():
    """The float32 activation stays within 4e-7 of float64 tanh over [-10, 10] and passes NaN and +-inf."""
    spec = CellSpec("rnn_tanh", 1, 1, bias=False)
    weights = {"weight_ih_l0": np.ones((1, 1), np.float32), "weight_hh_l0": np.zeros((1, 1), np.float32)}
    # NaN last: once in h it stays there (0 * NaN)
    v = np.concatenate([np.linspace(-10, 10, 20001), [np.inf, -np.inf, np.nan]]).astype(np.float32)
    out, _ = get_backend("numba:fused").forward(spec, weights, v.reshape(-1, 1, 1))
    want = np.tanh(v.astype(np.float64))
    assert np.nanmax(np.abs(out.ravel() - want)) < 4e-7
    assert out.ravel()[-3] == pytest.approx(1, abs=4e-7) and out.ravel()[-2] == pytest.approx(-1, abs=4e-7)
    assert np.isnan(out.ravel()[-1])


@pytest.mark.parametrize("mode", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("variant", ["blas", "blas@openblas", "blas@scipy-openblas32"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_blas_with_rows_over_threads_matches_the_reference(mode, variant, dtype):
    """B * H >= 4096 takes the path that spreads the rows' updates over threads (MKL route) and,
    in float32 with MKL, the packed W_hh: equal to the float64 reference, and the same bits again."""
    backend = get_backend(f"numba:{variant}")
    if backend.unavailable_reason():
        pytest.skip(backend.unavailable_reason())
    spec = CellSpec(mode, 20, 64, num_layers=2, bidirectional=True, dtype=dtype)
    weights = init_weights(spec)
    x, hx = make_inputs(spec, 5, 64, True)
    got = backend.forward(spec, weights, x, hx)
    want = reference_forward(spec, weights, x, hx)
    assert contract_problem(spec, got, want) is None
    assert within_tolerance(spec, got, want), max_abs_error(got, want)
    again = backend.forward(spec, weights, x, hx)
    for a, b in zip(flatten(got), flatten(again)):
        np.testing.assert_array_equal(a, b)
