"""Bad input gets the same clear error on every backend, before any kernel runs."""

import dataclasses

import numpy as np
import pytest

from kernels import CellSpec, init_weights

from .conftest import make_inputs

GRU = CellSpec("gru", input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
LSTM = dataclasses.replace(GRU, mode="lstm")


def call(backend, spec=GRU, weights=None, x=None, hx=None):
    weights = init_weights(spec) if weights is None else weights
    x = make_inputs(spec, 5, 2, False)[0] if x is None else x
    return backend.forward(spec, weights, x, hx)


@pytest.mark.parametrize("shape", [(5,), (5, 2, 1, 3)])
def test_x_rank(backend, shape):
    with pytest.raises(ValueError, match=r"x: expected a 3-D array \(T, B, I\) or an unbatched 2-D one \(T, I\), got"):
        call(backend, x=np.zeros(shape, np.float32))


def test_unbatched_x_wants_unbatched_states(backend):
    """As torch: 2-D x takes 2-D states (D*L, H) only, and 3-D x 3-D ones; the message says why."""
    x2 = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match=r"hx \(h0\): expected shape \(4, 4\) \(D\*L, H\), since x is unbatched"):
        call(backend, x=x2, hx=np.zeros((4, 1, 4), np.float32))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c0\): expected shape \(4, 4\) .*got \(4, 1, 4\)"):
        call(backend, spec=LSTM, x=x2, hx=(np.zeros((4, 4), np.float32), np.zeros((4, 1, 4), np.float32)))
    with pytest.raises(ValueError, match=r"hx \(h0\): expected shape \(4, 2, 4\), got \(4, 4\)"):
        call(backend, hx=np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match=r"x: expected last dimension input_size=3 in \(T, I\)"):
        call(backend, spec=dataclasses.replace(GRU, batch_first=True), x=np.zeros((5, 2), np.float32))
    with pytest.raises(ValueError, match=r"x: expected at least one timestep in \(T, I\)"):
        call(backend, x=np.zeros((0, 3), np.float32))


def test_x_last_dimension(backend):
    with pytest.raises(ValueError, match="x: expected last dimension input_size=3"):
        call(backend, x=np.zeros((5, 2, 4), np.float32))


def test_x_batch_first_layout_named(backend):
    spec = dataclasses.replace(GRU, batch_first=True)
    with pytest.raises(ValueError, match=r"\(B, T, I\)"):
        call(backend, spec=spec, x=np.zeros((2, 5, 7), np.float32))


def test_x_not_array(backend):
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray \(not a subclass\), got list"):
        call(backend, x=[[[0.0] * 3]])


def test_x_integer_dtype(backend):
    with pytest.raises(TypeError, match="x: expected a floating dtype"):
        call(backend, x=np.zeros((5, 2, 3), np.int64))


def test_x_dtype_mismatch(backend):
    with pytest.raises(TypeError, match="x: expected dtype float32 .*got float64"):
        call(backend, x=np.zeros((5, 2, 3), np.float64))


def test_zero_timesteps(backend):
    with pytest.raises(ValueError, match="x: expected at least one timestep"):
        call(backend, x=np.zeros((0, 2, 3), np.float32))


def test_h0_shape_message_gives_expected_shape(backend):
    with pytest.raises(ValueError, match=r"hx \(h0\): expected shape \(4, 2, 4\), got \(2, 2, 4\)"):
        call(backend, hx=np.zeros((2, 2, 4), np.float32))


def test_h0_batch_first_does_not_apply(backend):
    spec = dataclasses.replace(GRU, batch_first=True)
    x = np.zeros((2, 5, 3), np.float32)
    with pytest.raises(ValueError, match=r"expected shape \(4, 2, 4\)"):
        call(backend, spec=spec, x=x, hx=np.zeros((2, 4, 4), np.float32))


def test_h0_dtype(backend):
    with pytest.raises(TypeError, match=r"hx \(h0\): expected dtype float32"):
        call(backend, hx=np.zeros((4, 2, 4), np.float64))


def test_lstm_hx_must_be_pair(backend):
    with pytest.raises(TypeError, match=r"hx: expected None or a pair \(h0, c0\)"):
        call(backend, spec=LSTM, hx=np.zeros((4, 2, 4), np.float32))


def test_lstm_c0_shape(backend):
    h0 = np.zeros((4, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"hx\[1\] \(c0\): expected shape \(4, 2, 4\), got \(4, 2, 5\)"):
        call(backend, spec=LSTM, hx=(h0, np.zeros((4, 2, 5), np.float32)))


def test_missing_weight(backend):
    weights = init_weights(GRU)
    del weights["bias_hh_l1_reverse"]
    with pytest.raises(ValueError, match=r"weights: .*missing \['bias_hh_l1_reverse'\]"):
        call(backend, weights=weights)


def test_extra_weight(backend):
    weights = init_weights(GRU)
    weights["weight_ih_l2"] = np.zeros((12, 8), np.float32)
    with pytest.raises(ValueError, match=r"unexpected \['weight_ih_l2'\]"):
        call(backend, weights=weights)


def test_misshapen_weight(backend):
    weights = init_weights(GRU)
    weights["weight_hh_l0"] = np.zeros((12, 5), np.float32)
    with pytest.raises(ValueError, match=r"weights\['weight_hh_l0'\]: expected shape \(12, 4\), got \(12, 5\)"):
        call(backend, weights=weights)


def test_weight_dtype(backend):
    weights = init_weights(GRU)
    weights["weight_ih_l0"] = weights["weight_ih_l0"].astype(np.float64)
    with pytest.raises(TypeError, match=r"weights\['weight_ih_l0'\]: expected dtype float32"):
        call(backend, weights=weights)


def test_weights_not_mapping(backend):
    with pytest.raises(TypeError, match="weights: expected a mapping"):
        call(backend, weights=[1, 2])


def test_spec_not_cellspec(backend):
    with pytest.raises(TypeError, match="spec: expected a kernels.CellSpec"):
        backend.forward({"mode": "gru"}, {}, np.zeros((1, 1, 1)))


def test_empty_batch_gives_empty_outputs(backend):
    """B = 0 is valid: outputs (T, 0, D*H) and h_n (D*L, 0, H), as torch returns them."""
    for spec in (GRU, LSTM):
        out, state = call(backend, spec=spec, x=np.zeros((5, 0, 3), np.float32))
        assert out.shape == (5, 0, 8) and out.dtype == np.float32
        states = state if spec.mode == "lstm" else (state,)
        assert all(s.shape == (4, 0, 4) and s.dtype == np.float32 for s in states)


def test_empty_batch_shapes_are_torchs(backend):
    """B = 0 on every backend gives the shapes torch itself returns, for the layouts that differ."""
    torch = pytest.importorskip("torch")
    from kernels.torch_backend import torch_module

    for spec in (GRU, dataclasses.replace(LSTM, batch_first=True)):
        x = np.zeros(spec.input_shape(5, 0), np.float32)
        with torch.no_grad():
            want = torch_module(spec)(torch.from_numpy(x))
        got = call(backend, spec=spec, x=x)
        want_states = want[1] if spec.mode == "lstm" else (want[1],)
        got_states = got[1] if spec.mode == "lstm" else (got[1],)
        assert got[0].shape == tuple(want[0].shape)
        assert [s.shape for s in got_states] == [tuple(s.shape) for s in want_states]


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(mode="lstmx"), ValueError, "mode: expected one of"),
        (dict(hidden_size=0), ValueError, "hidden_size: expected an int >= 1, got 0"),
        (dict(input_size=-1), ValueError, "input_size: expected an int >= 1"),
        (dict(num_layers=0), ValueError, "num_layers: expected an int >= 1"),
        (dict(hidden_size=2.5), TypeError, "hidden_size: expected an int"),
        (dict(num_layers=True), TypeError, "num_layers: expected an int"),
        (dict(dtype="float16"), ValueError, "dtype: expected one of"),
        (dict(dtype="floaty"), ValueError, "dtype: expected one of"),
        (dict(bidirectional="yes"), TypeError, "bidirectional: expected a bool"),
    ],
)
def test_spec_validation(kwargs, error, message):
    base = dict(mode="gru", input_size=3, hidden_size=4)
    with pytest.raises(error, match=message):
        CellSpec(**{**base, **kwargs})


def test_spec_accepts_numpy_dtype():
    assert CellSpec("gru", 3, 4, dtype=np.float64).dtype == "float64"


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix's own warning
def test_array_subclasses_are_rejected(backend):
    """Masked arrays would lose their mask on some backends: refused everywhere, not half-supported."""
    x = np.ma.masked_array(make_inputs(GRU, 5, 2, False)[0])
    with pytest.raises(TypeError, match=r"x: expected a numpy.ndarray \(not a subclass\), got MaskedArray"):
        call(backend, x=x)
    weights = init_weights(GRU)
    weights["weight_hh_l0"] = np.asmatrix(weights["weight_hh_l0"])
    with pytest.raises(TypeError, match=r"weights\['weight_hh_l0'\]: expected a numpy.ndarray \(not a subclass\)"):
        call(backend, weights=weights)


def test_numpy_scalars_in_spec_work_everywhere(backend):
    spec = CellSpec("lstm", np.int64(3), np.int32(4), num_layers=np.int16(1), bias=np.False_)
    assert type(spec.input_size) is int and type(spec.bias) is bool
    out, (h_n, c_n) = call(backend, spec=spec)
    assert out.shape == (5, 2, 4)


def test_flops_do_not_overflow_with_numpy_sizes():
    spec = CellSpec("lstm", np.int32(4096), np.int32(4096))
    assert spec.flops(1000, 64) == CellSpec("lstm", 4096, 4096).flops(1000, 64) > 2**40


def test_infinite_state_is_handled_silently_like_torch(backend):
    """inf in h0 gives torch's non-finite results on every backend, in output and h_n, without
    warnings: the same NaN where torch has NaN, and finite values within tolerance elsewhere."""
    import warnings

    torch = pytest.importorskip("torch")
    from kernels.reference import TOLERANCES
    from kernels.torch_backend import torch_module

    nan_seen = set()
    for mode in ("gru", "lstm", "rnn_tanh"):
        spec = CellSpec(mode, 3, 4)
        weights = init_weights(spec)
        x, hx = make_inputs(spec, 3, 2, True)
        h0 = hx[0] if mode == "lstm" else hx
        h0[0, 0, 0] = np.inf
        h0[0, 1, 1] = -np.inf
        if backend.refuses_non_finite:  # never an answer other than torch's
            with pytest.raises(ValueError, match="^h0: expected finite values"):
                call(backend, spec=spec, weights=weights, x=x, hx=hx)
            nan_seen.add("refused")
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = call(backend, spec=spec, weights=weights, x=x, hx=hx)
        with torch.no_grad():
            thx = tuple(map(torch.from_numpy, hx)) if mode == "lstm" else torch.from_numpy(hx)
            want = torch_module(spec, weights)(torch.from_numpy(x), thx)
        got = [got[0], *got[1]] if mode == "lstm" else list(got)
        want = [want[0], *want[1]] if mode == "lstm" else list(want)
        rtol, atol = TOLERANCES[spec.dtype]
        for name, g, w in zip(("output", "h_n", "c_n"), got, want):
            w = w.numpy()
            if np.isnan(w).any():
                nan_seen.add(f"{mode} {name}")
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True, err_msg=f"{mode} {name}")
    assert nan_seen, "the inputs must reach NaN somewhere, or this checks finite values only"


def test_read_only_inputs_without_warnings(backend):
    import warnings

    weights = {k: v.copy() for k, v in init_weights(GRU).items()}
    x = make_inputs(GRU, 5, 2, False)[0]
    for a in (x, *weights.values()):
        a.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        call(backend, weights=weights, x=x)


@pytest.mark.parametrize(
    "call_, error, message",
    [
        (lambda: CellSpec("gru", 3, 4, dtype=None), ValueError, "dtype: expected one of"),
        (lambda: CellSpec(["gru"], 3, 4), ValueError, "mode: expected one of"),
        (lambda: init_weights("gru"), TypeError, "spec: expected a kernels.CellSpec"),
    ],
)
def test_more_bad_arguments(call_, error, message):
    with pytest.raises(error, match=message):
        call_()


def test_get_backend_rejects_non_strings():
    from kernels import get_backend

    with pytest.raises(ValueError, match="backend: unknown name"):
        get_backend(["numba"])
