"""Any memory layout NumPy can express gives the answer of its C-contiguous copy, on every backend,
for every float argument (x, the states, every weight), through ``forward`` and through the timed
path; and numba's timed ``run`` sees only the types ``prepare`` compiled, whatever the arrays' flags."""

import dataclasses

import numpy as np
import pytest

from kernels import CellSpec, availability, get_backend, init_weights
from kernels.reference import TOLERANCES, flatten

from .conftest import ALL_PATHS, skip_unless_computes, torch_answer


def _strided(a):
    """Every other element of a larger array along every axis."""
    big = np.zeros(tuple(2 * n for n in a.shape), a.dtype)
    view = big[tuple(slice(None, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def _unaligned(a):
    """A writeable array one byte past an aligned address."""
    out = np.frombuffer(bytearray(a.nbytes + 1), a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    return out


#: ``{name: a -> the same values (for "broadcast": values repeated along the last axis) in that layout}``.
LAYOUTS = {
    "reversed": lambda a: np.flip(np.flip(a).copy()),  # negative strides on every axis, as np.flip gives
    "fortran": np.asfortranarray,
    "strided": _strided,
    "read-only": _read_only,
    "broadcast": lambda a: np.broadcast_to(a[..., :1], a.shape),  # zero strides (and read-only)
    "unaligned": _unaligned,
    "byte-swapped": lambda a: a.astype(a.dtype.newbyteorder("S")),
}

#: (spec, unbatched): LSTM (c0; folded biases in numba), GRU in batch_first (unfolded b_hn), an
#: unbatched Elman cell in float32; the first two stacked and bidirectional, so weights of layer 1
#: and of the reverse direction are in every layout too.
CASES = [
    (CellSpec("lstm", 3, 4, num_layers=2, bidirectional=True, dtype="float64"), False),
    (CellSpec("gru", 3, 4, num_layers=2, bidirectional=True, batch_first=True, dtype="float64"), False),
    (CellSpec("rnn_tanh", 3, 4, batch_first=True, dtype="float32"), True),
]


def case_id(case):
    spec, unbatched = case
    return f"{spec.mode}-{'unbatched' if unbatched else 'bf' if spec.batch_first else 'tm'}"


def arguments(spec, unbatched, timesteps=5, batch=2, seed=0):
    """``(weights, x, states)``, C-contiguous: ``states`` is ``[h0]`` or ``[h0, c0]``."""
    rng = np.random.default_rng(seed)
    b = None if unbatched else batch
    x = rng.standard_normal(spec.input_shape(timesteps, b)).astype(spec.dtype)
    states = [rng.standard_normal(spec.state_shape(b)).astype(spec.dtype) for _ in range(1 + (spec.mode == "lstm"))]
    return init_weights(spec, seed), x, states


def as_hx(spec, states):
    return tuple(states) if spec.mode == "lstm" else states[0]


def contiguous(a, spec):
    return np.array(a, dtype=spec.np_dtype, order="C")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_are_not_standard(layout):
    """Each layout really is one the kernels are not compiled for, so the tests below can fail."""
    a = np.random.default_rng(0).standard_normal((3, 2, 4))
    odd = LAYOUTS[layout](a)
    flags = (odd.flags.c_contiguous, odd.flags.aligned, odd.flags.writeable, odd.dtype.isnative)
    assert not all(flags)
    values = np.broadcast_to(a[..., :1], a.shape) if layout == "broadcast" else a
    np.testing.assert_array_equal(contiguous(odd, CASES[0][0]), values)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_argument_in_any_layout_gives_torchs_answer(backend, case, layout):
    """Every float argument at once in ``layout``: torch's answer on the C-contiguous copies, through
    ``forward`` and, for batched input, through ``prepare``/``to_device``/``run``/``to_host``."""
    spec, unbatched = case
    skip_unless_computes(backend, spec)
    weights, x, states = arguments(spec, unbatched)
    to_layout = LAYOUTS[layout]
    odd_weights = {k: to_layout(w) for k, w in weights.items()}
    odd_x, odd_states = to_layout(x), list(map(to_layout, states))
    want = torch_answer(spec, {k: contiguous(w, spec) for k, w in odd_weights.items()}, contiguous(odd_x, spec),
                        as_hx(spec, [contiguous(s, spec) for s in odd_states]))
    got = {"forward": flatten(backend.forward(spec, odd_weights, odd_x, as_hx(spec, odd_states)))}
    if not unbatched:
        prepared = backend.prepare(spec, odd_weights)
        got["timed path"] = flatten(prepared.to_host(prepared.run(*prepared.to_device(odd_x, *odd_states))))
    rtol, atol = TOLERANCES[spec.dtype]
    for path, arrays in got.items():
        for name, g, w in zip(("output", "h_n", "c_n"), arrays, want):
            assert g.shape == w.shape and g.dtype == spec.np_dtype, f"{path} {name}: {g.shape} {g.dtype}"
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{backend.name} {path} {name} ({layout})")


class Spy:
    """A numba dispatcher that records the numba types of the arguments of each call."""

    def __init__(self, dispatcher, calls):
        self.dispatcher, self.calls = dispatcher, calls

    def __getattr__(self, name):  # .stats, .signatures: the dispatcher's
        return getattr(self.dispatcher, name)

    def __call__(self, *args):
        import numba

        self.calls.append(tuple(numba.typeof(a) for a in args))
        return self.dispatcher(*args)


NUMBA_PATHS = ["numba"] + [p for p in ALL_PATHS if p.startswith("numba")]


@pytest.mark.parametrize("path", NUMBA_PATHS)
def test_numba_run_sees_only_the_types_prepare_compiled(path, monkeypatch):
    """After ``prepare``, a timed ``run`` on arrays of every layout (read-only, Fortran, reversed,
    unaligned, ... weights, x and states) calls the kernels with argument types that ``prepare``
    compiled, so no dispatcher gains a signature (a compilation of seconds inside a timing); and
    the answer is the C-contiguous copies' one.  Likewise ``forward`` on unbatched strided views."""
    reason = availability(path)
    if reason is not None:
        pytest.skip(f"{path}: {reason}")
    from kernels.numba import driver

    calls = []
    dispatchers = dict(driver.DRIVERS)
    for name, dispatcher in dispatchers.items():
        monkeypatch.setitem(driver.DRIVERS, name, Spy(dispatcher, calls))
    backend = get_backend(path)

    def assert_compiled(compiled, what):
        assert calls, "the spies saw no call: the kernels are no longer reached through driver.DRIVERS"
        new = set(calls) - compiled
        unseen = {t for sig in new for t in sig} - {t for sig in compiled for t in sig}  # for the message
        assert not new, f"{what}: run passed types prepare did not compile: {unseen or new}"

    for spec in (dataclasses.replace(CASES[0][0], dtype="float32"), CASES[1][0]):
        weights, x, states = arguments(spec, unbatched=False)
        standard = backend.prepare(spec, weights)
        want = flatten(standard.to_host(standard.run(*standard.to_device(x, *states))))
        for layout, to_layout in LAYOUTS.items():
            calls.clear()
            prepared = backend.prepare(spec, {k: to_layout(w) for k, w in weights.items()})
            compiled = set(calls)
            signatures = sum(len(d.signatures) for d in dispatchers.values())
            args = prepared.to_device(to_layout(x), *map(to_layout, states))
            calls.clear()
            got = flatten(prepared.to_host(prepared.run(*args)))
            assert_compiled(compiled, f"{spec.mode} {layout}")
            assert sum(len(d.signatures) for d in dispatchers.values()) == signatures, f"{spec.mode} {layout}"
            if layout != "broadcast":  # its values differ from x's
                rtol, atol = TOLERANCES[spec.dtype]
                for name, g, w in zip(("output", "h_n", "c_n"), got, want):
                    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{path} {spec.mode} {name} ({layout})")
        # forward's prepare and run, on unbatched strided views (batch row 0): the same types
        calls.clear()
        backend.forward(spec, weights, spec.time_major(x)[:, 0], as_hx(spec, [s[:, 0] for s in states]))
        assert_compiled(compiled, f"{spec.mode} unbatched forward")
