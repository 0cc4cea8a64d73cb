"""PyTorch's whole recurrent surface on every backend: LSTM projections (``proj_size``),
variable-length batches (``lengths``, as ``pack_padded_sequence``/``pad_packed_sequence``), and
``dropout`` (evaluation semantics), forward and forward_backward, against torch itself in float64
(its own modules, packing and autograd), plus their validation.

The matrix (:data:`CASES`) is a covering array, not a product: every pair of values of any two of
its factors -- mode, layers {1, 2}, bidirectional, batch_first, initial state, lengths pattern,
proj_size, dtype -- appears in some row (:func:`test_cases_cover_every_pair` keeps it so), and
each row runs on every backend path of tests/conftest.py in both passes.
"""

import dataclasses
import itertools

import numpy as np
import pytest

from kernels import MODES, Backend, CellSpec, availability, get_backend, init_weights
from kernels.checks import check_lengths
from kernels.reference import GRAD_TOLERANCES, TOLERANCES, flatten, gradient_mismatches, reference_forward

from .conftest import skip_unless_computes

#: torch's own note, once per process, that its CPU LSTM with projections takes its native path
pytestmark = pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")

TIMESTEPS = 5

#: Lengths patterns over T = 5: ``None`` (every sequence full), sorted (decreasing, with a tie),
#: unsorted (a sequence of length 1 in the middle), all equal (and shorter than T, so every row
#: has padding), and a batch of one sequence of length 1.
LENGTHS = {"full": None, "sorted": [5, 4, 2, 2], "unsorted": [2, 5, 1, 3], "equal": [3, 3, 3, 3], "single": [1]}

#: (mode, layers, bidirectional, batch_first, initial state, lengths, proj_size, dtype): a pairwise
#: covering array of those factors (proj_size only for LSTM), plus two LSTM rows without a
#: projection (unsorted in float32, which onnxruntime runs; a single short sequence, stacked).
CASES = [
    ("rnn_tanh", 1, True, False, True, "full", 0, "float32"),
    ("rnn_tanh", 1, True, False, False, "sorted", 0, "float32"),
    ("rnn_tanh", 1, False, True, False, "unsorted", 0, "float64"),
    ("rnn_tanh", 2, True, False, True, "equal", 0, "float32"),
    ("rnn_tanh", 2, False, True, False, "single", 0, "float32"),
    ("rnn_relu", 1, True, True, True, "full", 0, "float64"),
    ("rnn_relu", 1, False, True, False, "sorted", 0, "float64"),
    ("rnn_relu", 2, True, False, True, "unsorted", 0, "float32"),
    ("rnn_relu", 2, False, False, False, "equal", 0, "float32"),
    ("rnn_relu", 1, True, True, True, "single", 0, "float32"),
    ("lstm", 2, True, False, True, "sorted", 0, "float32"),
    ("lstm", 1, False, False, True, "unsorted", 0, "float32"),
    ("lstm", 2, True, True, True, "single", 0, "float64"),
    ("lstm", 2, False, True, False, "full", 2, "float64"),
    ("lstm", 2, True, True, False, "sorted", 2, "float64"),
    ("lstm", 2, True, True, True, "unsorted", 2, "float64"),
    ("lstm", 1, True, True, False, "equal", 2, "float32"),
    ("lstm", 2, False, False, True, "single", 2, "float64"),
    ("gru", 2, False, False, False, "full", 0, "float32"),
    ("gru", 1, True, False, True, "sorted", 0, "float32"),
    ("gru", 2, False, True, True, "unsorted", 0, "float64"),
    ("gru", 1, False, False, True, "equal", 0, "float64"),
    ("gru", 1, True, True, True, "single", 0, "float32"),
]
FACTORS = ("mode", "layers", "bi", "bf", "state", "lengths", "proj", "dtype")


def case_id(case):
    mode, layers, bi, bf, state, lengths, proj, dtype = case
    return (f"{mode}-L{layers}-{'bi' if bi else 'uni'}-{'bf' if bf else 'tm'}-{'h0' if state else 'zeros'}"
            f"-{lengths}{f'-P{proj}' if proj else ''}-{dtype}")


def spec_of(case):
    mode, layers, bi, bf, _, _, proj, dtype = case
    return CellSpec(mode, input_size=3, hidden_size=4, num_layers=layers, bidirectional=bi, batch_first=bf,
                    proj_size=proj, dtype=dtype)


def arguments(spec, lengths, with_state, seed=0):
    """``(weights, x, hx, lengths, grad_output, grad_h_n)`` in ``spec.dtype``: standard normal, the
    batch size that of ``lengths`` (4 when ``None``)."""
    rng = np.random.default_rng(seed)
    batch = 4 if lengths is None else len(lengths)

    def draw(shape):
        return rng.standard_normal(shape).astype(spec.dtype)

    x = draw(spec.input_shape(TIMESTEPS, batch))
    states = [draw(s) for s in spec.state_shapes(batch)]
    hx = (tuple(states) if spec.mode == "lstm" else states[0]) if with_state else None
    grad_output = draw(spec.output_shape(TIMESTEPS, batch))
    seeds = [draw(s) for s in spec.state_shapes(batch)]
    grad_h_n = tuple(seeds) if spec.mode == "lstm" else seeds[0]
    lengths = None if lengths is None else np.array(lengths)
    return init_weights(spec, seed), x, hx, lengths, grad_output, grad_h_n


def torch_packed(spec, weights, x, hx=None, lengths=None, grad_output=None, grad_h_n=None):
    """torch's own answer in float64: ``pack_padded_sequence(enforce_sorted=False)`` (with
    ``lengths``), the ``nn`` module, ``pad_packed_sequence(total_length=T)``, and with seeds
    ``torch.autograd.grad`` of ``sum(output * grad_output) + sum(states * seeds)``.  Returns
    ``(output, state)`` as ``forward`` does, or ``(output, state, grads)`` with seeds."""
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    from kernels.torch_backend import torch_module

    spec64 = dataclasses.replace(spec, dtype="float64")
    module = torch_module(spec64, {k: np.array(v, np.float64) for k, v in weights.items()}).requires_grad_(True)

    def leaf(a):
        return torch.tensor(np.array(a, np.float64), requires_grad=True)

    timesteps, batch = (x.shape[0], None) if x.ndim == 2 else spec.timesteps_batch(x)
    xt = leaf(x)
    given = hx is not None
    states = [leaf(s) for s in ((hx if spec.mode == "lstm" else (hx,)) if given else
                                (np.zeros(s) for s in spec.state_shapes(batch)))]
    inputs = xt if lengths is None else pack_padded_sequence(
        xt, torch.as_tensor(np.asarray(lengths), dtype=torch.int64), batch_first=spec.batch_first, enforce_sorted=False)
    output, state = module(inputs, tuple(states) if spec.mode == "lstm" else states[0])
    if lengths is not None:
        output, _ = pad_packed_sequence(output, batch_first=spec.batch_first, total_length=timesteps)
    outs = [output, *(state if spec.mode == "lstm" else (state,))]
    arrays = [o.detach().numpy() for o in outs]
    result = (arrays[0], tuple(arrays[1:]) if spec.mode == "lstm" else arrays[1])
    if grad_output is None:
        return result
    seeds = [grad_output, *(grad_h_n if spec.mode == "lstm" else (grad_h_n,))]
    loss = sum((o * torch.tensor(np.array(s, np.float64))).sum() for o, s in zip(outs, seeds))
    names, params = zip(*module.named_parameters())
    grads = torch.autograd.grad(loss, [*params, xt, *states])
    return (*result, dict(zip([*names, "input", "h0", "c0"], (g.numpy() for g in grads))))


def assert_forward_matches(spec, got, want, what):
    rtol, atol = TOLERANCES[spec.dtype]
    got, want = flatten(got), flatten(want)
    assert len(got) == len(want), what
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        assert g.shape == w.shape and g.dtype == spec.np_dtype, f"{what} {name}: {g.shape} {g.dtype}"
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{what} {name}")


def assert_backward_matches(spec, got, want, what):
    """``forward_backward``'s result against torch's, as the suite judges gradients
    (:func:`kernels.reference.gradient_mismatches`: relative to each array's scale)."""
    assert list(got[2]) == list(want[2]), what
    for name, g in got[2].items():
        assert g.shape == want[2][name].shape and g.dtype == spec.np_dtype, f"{what} grad {name}"
    assert not gradient_mismatches(spec, got, want), f"{what}: {gradient_mismatches(spec, got, want)}"


def test_cases_cover_every_pair():
    """Every pair of values of two factors appears in some row (proj_size > 0 with LSTM only)."""
    values = {f: sorted({c[i] for c in CASES}, key=str) for i, f in enumerate(FACTORS)}
    assert values["layers"] == [1, 2] and values["proj"] == [0, 2] and set(values["lengths"]) == set(LENGTHS)
    assert set(values["mode"]) == set(MODES) and values["dtype"] == ["float32", "float64"]
    for (i, a), (j, b) in itertools.combinations(enumerate(FACTORS), 2):
        for va, vb in itertools.product(values[a], values[b]):
            if (a, va, b) == ("mode", va, "proj") and va != "lstm" and vb:
                continue
            assert any(c[i] == va and c[j] == vb for c in CASES), f"no row with {a}={va!r} and {b}={vb!r}"


# --- every backend against torch in float64 ------------------------------------------------

@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_matches_torch(backend, case):
    spec = spec_of(case)
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, _, _ = arguments(spec, LENGTHS[case[5]], case[4])
    got = backend.forward(spec, weights, x, hx, lengths=lengths)
    assert_forward_matches(spec, got, torch_packed(spec, weights, x, hx, lengths), f"{backend.name} {case_id(case)}")


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_backward_matches_torch_autograd(backend, case):
    if "forward_backward" not in backend.passes():
        pytest.skip(f"{backend.name}: no forward_backward pass (it runs {', '.join(backend.passes())})")
    spec = spec_of(case)
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS[case[5]], case[4])
    got = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
    want = torch_packed(spec, weights, x, hx, lengths, grad_output, grad_h_n)
    what = f"{backend.name} {case_id(case)}"
    assert_forward_matches(spec, got[:2], want[:2], what)
    assert_backward_matches(spec, got, want, what)


def test_torch_oracle_packs_what_the_module_alone_computes_on_each_sequence():
    """The oracle itself: each sequence of a packed batch gets what the module gives it alone
    (its first lengths[b] steps), zero output past its end, and the reverse direction's state of
    that sequence alone -- the semantics the backends are held to."""
    spec = CellSpec("gru", 3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype="float64")
    weights, x, hx, lengths, _, _ = arguments(spec, LENGTHS["unsorted"], True)
    output, h_n = torch_packed(spec, weights, x, hx, lengths)
    for b, n in enumerate(lengths):
        alone_out, alone_h = torch_packed(spec, weights, x[b:b + 1, :n], hx[:, b:b + 1])
        np.testing.assert_allclose(output[b, :n], alone_out[0], rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(output[b, n:], 0)
        np.testing.assert_allclose(h_n[:, b], alone_h[:, 0], rtol=1e-12, atol=1e-12)


# --- padding -----------------------------------------------------------------------------

PADDED = [CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, proj_size=2, dtype="float64"),
          CellSpec("gru", 3, 4, batch_first=True, bidirectional=True, dtype="float32")]


@pytest.mark.parametrize("spec", PADDED, ids=lambda s: f"{s.mode}-P{s.proj_size}-{s.dtype}")
def test_padding_is_never_read(backend, spec):
    """NaN in the padding of x (and of grad_output) changes nothing, in both passes, bit for bit:
    the answer is that of the same batch with other values there."""
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS["unsorted"], True)
    padding = np.arange(TIMESTEPS)[:, None] >= lengths[None, :]  # (T, B)
    noisy_x, noisy_grad = x.copy(), grad_output.copy()
    spec.time_major(noisy_x)[padding] = np.nan
    spec.time_major(noisy_grad)[padding] = np.nan
    spec.time_major(x)[padding] = 7.0
    clean = flatten(backend.forward(spec, weights, x, hx, lengths=lengths))
    noisy = flatten(backend.forward(spec, weights, noisy_x, hx, lengths=lengths))
    for c, n in zip(clean, noisy):
        assert not np.isnan(n).any()
        np.testing.assert_array_equal(n, c)
    if "forward_backward" not in backend.passes():
        return
    clean = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
    noisy = backend.forward_backward(spec, weights, noisy_x, hx, noisy_grad, grad_h_n, lengths=lengths)
    for c, n in zip(flatten(clean[:2]) + list(clean[2].values()), flatten(noisy[:2]) + list(noisy[2].values())):
        assert not np.isnan(n).any()
        np.testing.assert_array_equal(n, c)


@pytest.mark.parametrize("spec", PADDED, ids=lambda s: f"{s.mode}-P{s.proj_size}-{s.dtype}")
def test_padding_gets_zero_output_and_zero_gradients(backend, spec):
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS["unsorted"], True)
    padding = np.arange(TIMESTEPS)[:, None] >= lengths[None, :]
    output = backend.forward(spec, weights, x, hx, lengths=lengths)[0]
    assert not spec.time_major(output)[padding].any() and spec.time_major(output)[~padding].all()
    if "forward_backward" in backend.passes():
        output, _, grads = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
        assert not spec.time_major(output)[padding].any()
        assert not spec.time_major(grads["input"])[padding].any()
        assert spec.time_major(grads["input"])[~padding].all()


def test_lengths_all_t_equal_no_lengths(backend):
    """lengths all T is the padded computation: the same answer as no lengths, in both passes."""
    spec = CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, dtype="float32")
    skip_unless_computes(backend, spec)
    weights, x, hx, _, grad_output, grad_h_n = arguments(spec, None, True)
    full = np.full(4, TIMESTEPS)
    rtol, atol = TOLERANCES[spec.dtype]
    for a, b in zip(flatten(backend.forward(spec, weights, x, hx)),
                    flatten(backend.forward(spec, weights, x, hx, lengths=full))):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol)
    if "forward_backward" in backend.passes():
        plain = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n)
        packed = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=full)
        assert not gradient_mismatches(spec, packed, plain)


def test_empty_batch_with_lengths(backend):
    spec = CellSpec("lstm", 3, 4, proj_size=2, batch_first=True)
    skip_unless_computes(backend, spec)
    x = np.zeros(spec.input_shape(5, 0), np.float32)
    output, (h_n, c_n) = backend.forward(spec, init_weights(spec), x, lengths=np.zeros(0, np.int64))
    assert output.shape == (0, 5, 2) and h_n.shape == (1, 0, 2) and c_n.shape == (1, 0, 4)


# --- projections -------------------------------------------------------------------------

def test_projection_shapes_are_torchs():
    torch = pytest.importorskip("torch")
    for bias, layers, bi in ((True, 2, True), (False, 3, False)):
        spec = CellSpec("lstm", 3, 5, num_layers=layers, bidirectional=bi, bias=bias, proj_size=2, batch_first=True)
        module = torch.nn.LSTM(3, 5, num_layers=layers, bidirectional=bi, bias=bias, proj_size=2, batch_first=True)
        assert spec.weight_shapes() == {k: tuple(v.shape) for k, v in module.state_dict().items()}
        x = torch.zeros(spec.input_shape(7, 6))
        with torch.no_grad():
            output, (h_n, c_n) = module(x)
        assert (spec.output_shape(7, 6), spec.state_shape(6), spec.state_shape(6, cell=True)) == (
            tuple(output.shape), tuple(h_n.shape), tuple(c_n.shape))
        assert spec.state_shapes(6) == [tuple(h_n.shape), tuple(c_n.shape)] and spec.h_size == 2
    weights = init_weights(spec)
    assert list(weights) == list(spec.weight_shapes()) and np.abs(weights["weight_hr_l2"]).max() <= 1 / np.sqrt(5)


def test_unbatched_projection_matches_torch(backend):
    """2-D x with projections: output (T, D*P), h_n (D*L, P), c_n (D*L, H), and the gradients."""
    spec = CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, proj_size=3, dtype="float64")
    skip_unless_computes(backend, spec)
    rng = np.random.default_rng(5)
    weights = init_weights(spec)
    x, grad_output = rng.standard_normal((TIMESTEPS, 3)), rng.standard_normal(spec.output_shape(TIMESTEPS, None))
    hx, grad_h_n = (tuple(rng.standard_normal(s) for s in spec.state_shapes(None)) for _ in range(2))
    want = torch_packed(spec, weights, x, hx, None, grad_output, grad_h_n)
    assert_forward_matches(spec, backend.forward(spec, weights, x, hx), want[:2], backend.name)
    if "forward_backward" in backend.passes():
        got = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n)
        assert_backward_matches(spec, got, want, backend.name)
        assert got[2]["h0"].shape == (4, 3) and got[2]["c0"].shape == (4, 4) and got[2]["input"].shape == x.shape


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_torch_state_dict_with_projections_loads_unchanged(backend, dtype):
    """A state_dict of a real nn.LSTM(proj_size=...) runs on every backend that computes
    projections and gives torch's answer; the others refuse it with their reason."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    spec = CellSpec("lstm", 4, 6, num_layers=2, bidirectional=True, batch_first=True, proj_size=3, dtype=dtype)
    skip_unless_computes(backend, spec)
    module = torch.nn.LSTM(4, 6, num_layers=2, bidirectional=True, batch_first=True, proj_size=3,
                           dtype=getattr(torch, dtype))
    x = torch.randn(3, 5, 4, dtype=getattr(torch, dtype))
    with torch.no_grad():
        want = module(x)
    got = backend.forward(spec, {k: v.numpy() for k, v in module.state_dict().items()}, x.numpy())
    rtol, atol = TOLERANCES[dtype] if dtype == "float32" else (1e-9, 1e-9)
    for g, w in zip(flatten(got), [want[0].numpy(), *(s.numpy() for s in want[1])]):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)


def test_onnxruntime_refuses_projections_with_the_reason():
    if availability("onnxruntime") is not None:
        pytest.skip(f"onnxruntime: {availability('onnxruntime')}")
    spec = CellSpec("lstm", 3, 4, proj_size=2)
    reason = availability("onnxruntime", spec)
    assert reason.startswith("ONNX's LSTM operator has no projection")
    assert availability("onnxruntime", dataclasses.replace(spec, proj_size=0), lengths=True) is None
    with pytest.raises(RuntimeError, match="unavailable for this spec: ONNX's LSTM operator has no projection"):
        get_backend("onnxruntime").forward(spec, init_weights(spec), np.zeros((5, 2, 3), np.float32))


def test_numba_rows_over_threads_with_lengths_and_packed_weights():
    """B * H >= 4096: the blas strategy's rows over threads and, with MKL in float32, packed W_hh,
    for the steps the whole batch runs, unpacked for the others; with a projection too."""
    for variant in ("blas", "blas@openblas", "fused", "parallel"):
        backend = get_backend(f"numba:{variant}")
        if backend.unavailable_reason():
            continue
        for proj in (0, 16):
            spec = CellSpec("lstm", 8, 64, proj_size=proj, bidirectional=True)
            weights, x, hx, _, _, _ = arguments(spec, None, True)
            x = np.random.default_rng(1).standard_normal(spec.input_shape(TIMESTEPS, 64)).astype(spec.dtype)
            hx = tuple(np.random.default_rng(2).standard_normal(s).astype(spec.dtype) for s in spec.state_shapes(64))
            lengths = np.random.default_rng(3).integers(1, TIMESTEPS + 1, 64)
            lengths[:8] = TIMESTEPS  # the whole batch runs the first steps
            got = backend.forward(spec, weights, x, hx, lengths=lengths)
            assert_forward_matches(spec, got, reference_forward(spec, weights, x, hx, lengths), f"{variant} P{proj}")


# --- dropout: evaluation semantics everywhere ---------------------------------------------

def test_dropout_changes_no_answer(backend):
    """dropout = 0.5 between two layers gives bit for bit the answers of dropout = 0, in both passes
    (torch's forward_backward runs a training-mode copy: with dropout there, it would differ)."""
    spec = CellSpec("gru", 3, 4, num_layers=2, bidirectional=True, dtype="float32")
    dropped = dataclasses.replace(spec, dropout=0.5)
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS["sorted"], True)
    for with_lengths in (None, lengths):
        for a, b in zip(flatten(backend.forward(spec, weights, x, hx, lengths=with_lengths)),
                        flatten(backend.forward(dropped, weights, x, hx, lengths=with_lengths))):
            np.testing.assert_array_equal(a, b)
        if "forward_backward" in backend.passes():
            plain = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=with_lengths)
            drop = backend.forward_backward(dropped, weights, x, hx, grad_output, grad_h_n, lengths=with_lengths)
            for a, b in zip(flatten(plain[:2]) + list(plain[2].values()), flatten(drop[:2]) + list(drop[2].values())):
                np.testing.assert_array_equal(a, b)


def test_torch_training_copy_has_no_dropout():
    """The copy torch's forward_backward trains is built without dropout, whatever the spec's,
    while the module the forward pass runs keeps the spec's (and is in evaluation mode)."""
    if availability("torch_cpu") is not None:
        pytest.skip(f"torch_cpu: {availability('torch_cpu')}")
    spec = CellSpec("lstm", 3, 4, num_layers=3, dropout=0.9)
    prepared = get_backend("torch_cpu").prepare(spec, init_weights(spec))
    x = np.random.default_rng(0).standard_normal((6, 2, 3)).astype(np.float32)
    prepared.to_device_backward(x)
    assert prepared.module.dropout == 0.9 and not prepared.module.training
    assert prepared.train_module.dropout == 0.0 and prepared.train_module.training


# --- the timed path ----------------------------------------------------------------------

def test_timed_path_takes_lengths(backend):
    """prepare / to_device(lengths=...) / run / to_host, and the backward's, give forward's answers."""
    spec = CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype="float32")
    skip_unless_computes(backend, spec)
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS["unsorted"], True)
    assert backend.unavailable_for_lengths(spec) is None and availability(backend.name, spec, lengths=True) is None
    prepared = backend.prepare(spec, weights)
    got = prepared.to_host(prepared.run(*prepared.to_device(x, *hx, lengths=lengths)))
    for a, b in zip(flatten(got), flatten(backend.forward(spec, weights, x, hx, lengths=lengths))):
        np.testing.assert_array_equal(a, b)
    if "forward_backward" in backend.passes():
        args = prepared.to_device_backward(x, *hx, grad_output, *grad_h_n, lengths=lengths)
        got = prepared.backward_to_host(prepared.run_backward(*args))
        want = backend.forward_backward(spec, weights, x, hx, grad_output, grad_h_n, lengths=lengths)
        for a, b in zip(flatten(got[:2]) + list(got[2].values()), flatten(want[:2]) + list(want[2].values())):
            np.testing.assert_array_equal(a, b)


def test_jax_forward_backward_compiles_outside_the_timed_call():
    """jax declares the pass; to_device_backward compiles (then finds it in memory for the same
    shapes), and its executable refuses another shape rather than compile inside run_backward."""
    if availability("jax") is not None:
        pytest.skip(f"jax: {availability('jax')}")
    backend = get_backend("jax")
    assert "forward_backward" in backend.passes()
    spec = CellSpec("gru", 3, 5, num_layers=2, bidirectional=True, dtype="float32")
    weights, x, hx, lengths, grad_output, grad_h_n = arguments(spec, LENGTHS["sorted"], True, seed=11)
    first = backend.prepare(spec, weights)
    args = first.to_device_backward(x, hx, None, grad_output, grad_h_n, lengths=lengths)
    again = backend.prepare(spec, init_weights(spec, seed=1)).to_device_backward(
        x, hx, None, grad_output, grad_h_n, lengths=lengths)
    assert first.jit_cache == "compiled" and again[0] is args[0]
    other = first.to_device_backward(x[:4], hx, None, grad_output[:4], grad_h_n, lengths=np.minimum(lengths, 4))
    with pytest.raises(TypeError):
        first.run_backward(args[0], *other[1:])


class OldContract(Backend):
    """A backend written before lengths: its ``to_device`` has no ``lengths`` argument."""

    name = "old_contract"

    def prepare(self, spec, weights):
        numpy = get_backend("numpy").prepare(spec, weights)

        class Prepared(type(numpy)):
            def to_device(self, x, h0=None, c0=None):
                return super().to_device(x, h0, c0)

        return Prepared(spec, weights)


def test_a_backend_that_does_not_declare_lengths_refuses_them():
    """A backend derived from Backend elsewhere is taken not to take lengths: availability says
    why, and forward raises with it rather than ignore them; without lengths it runs as before."""
    spec = CellSpec("gru", 3, 4)
    old = OldContract()
    assert "old_contract does not declare variable-length batches" in old.unavailable_for_lengths(spec)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(RuntimeError, match="unavailable for lengths: .*does not declare variable-length batches"):
        old.forward(spec, init_weights(spec), x, lengths=[5, 2])
    assert old.forward(spec, init_weights(spec), x)[0].shape == (5, 2, 4)
    with pytest.raises(ValueError, match="lengths: availability for lengths is asked of a spec"):
        availability("numpy", lengths=True)


# --- the FLOP model ------------------------------------------------------------------------

def test_flops_count_only_valid_steps_and_the_projection():
    spec = CellSpec("lstm", 2, 3, bias=False)
    per_row = spec.flops(1, 1)
    assert spec.flops(5, 3, lengths=[5, 2, 1]) == 8 * per_row
    assert spec.flops(5, 3, "forward_backward", lengths=np.array([5, 5, 5])) == spec.flops(5, 3, "forward_backward")
    # proj_size = 2: products 2*4*3*(2 + 2) = 96 plus the projection 2*2*3 = 12; pointwise 9*3 = 27
    projected = dataclasses.replace(spec, proj_size=2)
    assert projected.flops(1, 1) == 96 + 12 + 27
    assert projected.flops(1, 1, "forward_backward") == 3 * (96 + 12) + 3 * 27
    # a second layer reads D * P features
    stacked = CellSpec("lstm", 2, 3, num_layers=2, bidirectional=True, bias=False, proj_size=2)
    assert stacked.flops(1, 1) == 2 * (96 + 12 + 27) + 2 * (2 * 4 * 3 * (4 + 2) + 12 + 27)
    with pytest.raises(ValueError, match=r"lengths: expected each length in 1\.\.5"):
        spec.flops(5, 3, lengths=[6, 1, 1])


# --- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, error, message", [
    (dict(mode="gru", proj_size=2), ValueError, "proj_size: projections exist for lstm only"),
    (dict(proj_size=4), ValueError, "proj_size: expected 0 .* below hidden_size=4, got 4"),
    (dict(proj_size=-1), ValueError, "proj_size: expected an int >= 0, got -1"),
    (dict(proj_size=1.5), TypeError, "proj_size: expected an int >= 0"),
    (dict(proj_size=True), TypeError, "proj_size: expected an int >= 0"),
    (dict(dropout=1.5), ValueError, r"dropout: expected a probability in \[0, 1\], got 1.5"),
    (dict(dropout=-0.1), ValueError, "dropout: expected a probability"),
    (dict(dropout=float("nan")), ValueError, "dropout: expected a probability"),
    (dict(dropout="0.5"), TypeError, r"dropout: expected a float in \[0, 1\], got '0.5'"),
    (dict(dropout=True), TypeError, "dropout: expected a float"),
    (dict(dropout=None), TypeError, "dropout: expected a float"),
])
def test_bad_proj_size_and_dropout_are_named(kwargs, error, message):
    with pytest.raises(error, match=message):
        CellSpec(**{"mode": "lstm", "input_size": 3, "hidden_size": 4, **kwargs})


def test_proj_size_and_dropout_accept_numpy_scalars():
    spec = CellSpec("lstm", 3, 4, proj_size=np.int64(2), dropout=np.float32(0.25), num_layers=2)
    assert (type(spec.proj_size), type(spec.dropout), spec.proj_size, spec.dropout) == (int, float, 2, 0.25)
    assert CellSpec("lstm", 3, 4, dropout=1).dropout == 1.0


BAD_LENGTHS = [
    ([5, 0], r"lengths: expected each length in 1\.\.5 \(1\.\.T\), got \[0\]"),
    ([6, 2], r"lengths: expected each length in 1\.\.5 \(1\.\.T\), got \[6\]"),
    ([5, 2, 1], r"lengths: expected shape \(2,\) \(B,\), got \(3,\)"),
    ([[5, 2]], r"lengths: expected shape \(2,\) \(B,\), got \(1, 2\)"),
    (5, r"lengths: expected shape \(2,\) \(B,\), got \(\)"),
    ([5.0, 2.0], "lengths: expected integers, got dtype float64"),
    ([True, True], "lengths: expected integers, got dtype bool"),
    (["5", "2"], "lengths: expected integers, got dtype <U1"),
    ([[5], [2, 1]], r"lengths: expected an integer array of shape \(2,\)"),
    (np.array([5, 2], np.uint8) * 0, r"lengths: expected each length in 1\.\.5"),
]


@pytest.mark.parametrize("lengths, message", BAD_LENGTHS, ids=[m.split(",")[0][:40] for _, m in BAD_LENGTHS])
def test_bad_lengths_are_named(backend, lengths, message):
    spec = CellSpec("lstm", 3, 4, proj_size=2)
    x = np.zeros((5, 2, 3), np.float32)
    with pytest.raises(ValueError, match=message):
        backend.forward(spec, init_weights(spec), x, lengths=lengths)
    with pytest.raises(ValueError, match=message):
        backend.forward_backward(spec, init_weights(spec), x, lengths=lengths)


def test_lengths_of_unbatched_input_are_refused(backend):
    spec = CellSpec("gru", 3, 4)
    with pytest.raises(ValueError, match=r"lengths: variable-length batches take batched input .* x is unbatched"):
        backend.forward(spec, init_weights(spec), np.zeros((5, 3), np.float32), lengths=[5])


def test_states_of_projections_are_checked_by_their_own_shapes():
    spec = CellSpec("lstm", 3, 4, proj_size=2, num_layers=2)
    x, numpy = np.zeros((5, 2, 3), np.float32), get_backend("numpy")
    h0, c0 = (np.zeros(s, np.float32) for s in spec.state_shapes(2))
    with pytest.raises(ValueError, match=r"hx\[0\] \(h0\): expected shape \(2, 2, 2\), got \(2, 2, 4\)"):
        numpy.forward(spec, init_weights(spec), x, (c0, c0))
    with pytest.raises(ValueError, match=r"hx\[1\] \(c0\): expected shape \(2, 2, 4\), got \(2, 2, 2\)"):
        numpy.forward(spec, init_weights(spec), x, (h0, h0))
    with pytest.raises(ValueError, match=r"grad_h_n\[1\] \(grad_c_n\): expected shape \(2, 2, 4\)"):
        numpy.forward_backward(spec, init_weights(spec), x, grad_h_n=(h0, h0))
    weights = init_weights(spec)
    weights["weight_hr_l1"] = weights["weight_hr_l1"].T.copy()
    with pytest.raises(ValueError, match=r"weights\['weight_hr_l1'\]: expected shape \(2, 4\), got \(4, 2\)"):
        numpy.forward(spec, weights, x)
    del weights["weight_hr_l1"]
    with pytest.raises(ValueError, match=r"missing \['weight_hr_l1'\]"):
        numpy.forward(spec, weights, x)


@pytest.mark.parametrize("given", [
    [2, 5, 1], np.array([2, 5, 1], np.int32), np.array([2, 5, 1], ">i8"), np.array([1, 5, 2])[::-1],
    np.array([2, 9, 5, 7, 1])[::2], np.array([2, 5, 1], np.uint16)])
def test_lengths_in_any_integer_form_give_one_array(given):
    lengths = check_lengths(given, 5, 3)
    assert lengths.dtype == np.int64 and lengths.dtype.isnative and lengths.flags.c_contiguous
    np.testing.assert_array_equal(lengths, [2, 5, 1])
    spec = CellSpec("lstm", 3, 4, proj_size=2, dtype="float64")
    weights, x, _, _, _, _ = arguments(spec, [2, 5, 1], False)
    want = get_backend("numpy").forward(spec, weights, x, lengths=np.array([2, 5, 1]))
    for a, b in zip(flatten(get_backend("numpy").forward(spec, weights, x, lengths=given)), flatten(want)):
        np.testing.assert_array_equal(a, b)
