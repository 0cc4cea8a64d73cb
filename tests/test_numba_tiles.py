"""The ``blas`` strategy's per-step product through tiles of W_hh^T, for OpenBLAS's small-matrix
kernels (kernels.numba.blas.Route.tiles, kernels.numba.layout.cut_tiles,
kernels.numba.jit.mm_tiles): the rule that sizes them, the cut, and every cell's results and
gradients through them.

Whether a route tiles depends on the OpenBLAS core this machine runs, so the results are checked
through a route whose limit is set small here: the tiles then have several row blocks and ragged
edge tiles at test sizes, on any machine.
"""

import dataclasses

import numpy as np
import pytest

from kernels import CellSpec, get_backend, init_weights
from kernels.numba import blas, layout
from kernels.reference import (
    gradient_mismatches,
    reference_forward,
    reference_forward_backward,
    within_tolerance,
)

#: A route with OpenBLAS's limit (the rule's numbers) and no BLAS behind it: only its rule is asked.
RULE = blas.Route("rule", "", {}, unpacked=dict(blas.SMALL_PRODUCT))


@pytest.mark.parametrize("batch, k, n, tiles", [
    (64, 64, 256, (64, 64)),      # LSTM, H = 64: one row block, four columns of tiles
    (64, 256, 1024, (128, 64)),   # two row blocks of 128
    (64, 1024, 4096, (208, 64)),  # five blocks: ceil(1024 / 5) = 205, rounded up to 208
    (16, 1024, 4096, (512, 64)),
    (64, 64, 192, (64, 64)),      # GRU, H = 64: within the limit whole, yet in tiles 64 wide
    (1, 256, 1024, (256, 64)),
    (512, 64, 256, None),         # a tile within the limit would have 16 rows, below TILE_ROWS_MIN
])
def test_the_tile_rule(batch, k, n, tiles):
    assert RULE.tiles(k, n, batch, "float32") == tiles
    if tiles:
        kb, nb = tiles
        assert batch * kb * nb <= blas.SMALL_PRODUCT["float32"]


def test_no_tiles_without_a_known_unpacked_path():
    """float64 has no limit in the rule, nor has a route without one (MKL, OpenBLAS's Haswell and
    Zen kernels, which packing serves better: docs/numba.md)."""
    assert RULE.tiles(256, 1024, 64, "float64") is None
    assert blas.Route("none", "", {}).tiles(256, 1024, 64, "float32") is None


def test_cut_tiles_gives_the_matrix_back_with_zero_padding():
    w = np.arange(40 * 150, dtype=np.float32).reshape(40, 150) + 1
    grid = layout.tile_grid(40, 150, 32, 64)
    assert grid == (2, 3, 32, 64)
    tiles = np.full(grid, np.nan, np.float32)
    layout.cut_tiles(w, tiles)
    back = np.concatenate([np.concatenate(list(row), axis=1) for row in tiles], axis=0)
    np.testing.assert_array_equal(back[:40, :150], w)
    assert not back[40:].any() and not back[:, 150:].any()


SPECS = [CellSpec("lstm", 7, 40, num_layers=2),
         CellSpec("lstm", 7, 40, bidirectional=True, proj_size=20),
         CellSpec("gru", 7, 40, num_layers=2, bidirectional=True, batch_first=True),
         CellSpec("rnn_tanh", 7, 80, dtype="float64"),  # G*H = 80: three row blocks, two columns
         CellSpec("rnn_relu", 7, 80)]
BATCH = 5


@pytest.fixture
def tiling(monkeypatch):
    """Every route's limit set so that a step's product of ``BATCH`` rows is cut into tiles of 32
    rows (two row blocks for H = 40, the second of 8) and 64 columns (the last ragged), for both
    dtypes."""
    real = blas.route

    def route(name):
        found = real(name)
        if found is None:
            return None
        return dataclasses.replace(found, unpacked={"float32": BATCH * 32 * 64, "float64": BATCH * 32 * 64})

    monkeypatch.setattr(blas, "route", route)
    backend = get_backend("numba:blas@openblas")  # a route that does not pack (MKL's packing comes first)
    if backend.unavailable_reason():
        pytest.skip(backend.unavailable_reason())
    return backend


def _inputs(spec, with_state, seed):
    """``(x, h0, c0)`` for 6 steps of ``BATCH`` rows; the states ``None`` without ``with_state``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(spec.input_shape(6, BATCH)).astype(spec.dtype)
    states = [rng.standard_normal(s).astype(spec.dtype) for s in spec.state_shapes(BATCH)] if with_state else []
    return x, *(states + [None, None])[:2]


def _expected_tiles(spec):
    k, n = spec.h_size, spec.gates * spec.hidden_size
    return dataclasses.replace(RULE, unpacked={spec.dtype: BATCH * 32 * 64}).tiles(k, n, BATCH, spec.dtype)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.mode}-{s.dtype}{'-proj' if s.proj_size else ''}")
@pytest.mark.parametrize("with_state", [False, True], ids=["no-h0", "h0"])
@pytest.mark.parametrize("lengths", [None, np.array([6, 2, 6, 1, 4])], ids=["full", "varlen"])
def test_forward_through_tiles_is_the_reference(tiling, spec, with_state, lengths):
    weights = init_weights(spec, seed=3)
    x, h0, c0 = _inputs(spec, with_state, seed=4)
    hx = (h0, c0) if spec.mode == "lstm" and with_state else h0
    prepared = tiling.prepare(spec, weights)
    call, = prepared.to_device(x, h0, c0, lengths=lengths)
    assert call.tiles == _expected_tiles(spec) and call.tiles is not None
    got = prepared.to_host(prepared.run(call))
    want = reference_forward(spec, weights, x, hx, lengths=lengths)
    assert within_tolerance(spec, got, want)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.mode}-{s.dtype}{'-proj' if s.proj_size else ''}")
@pytest.mark.parametrize("lengths", [None, np.array([6, 2, 6, 1, 4])], ids=["full", "varlen"])
def test_gradients_through_tiles_are_the_reference(tiling, spec, lengths):
    """The forward of forward_backward keeps its gates through the same tiled product."""
    weights = init_weights(spec, seed=5)
    x, h0, c0 = _inputs(spec, True, seed=6)
    hx = (h0, c0) if spec.mode == "lstm" else h0
    grad_output = np.random.default_rng(7).standard_normal(spec.output_shape(6, BATCH)).astype(spec.dtype)
    prepared = tiling.prepare(spec, weights)
    call, = prepared.to_device_backward(x, h0, c0, grad_output, lengths=lengths)
    assert call.tiles == _expected_tiles(spec) and call.tiles is not None
    got = tiling.forward_backward(spec, weights, x, hx, grad_output, lengths=lengths)
    want = reference_forward_backward(spec, weights, x, hx, grad_output, lengths=lengths)
    assert not gradient_mismatches(spec, got, want), gradient_mismatches(spec, got, want)
