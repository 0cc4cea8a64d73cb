"""The float64 reference and the tolerance tables.

The reference is the ``numpy`` backend's textbook formulas evaluated in
float64 on float64 copies of the weights and inputs, for the forward pass
and for backpropagation through time; the test suite checks both against
``torch.nn`` and ``torch.autograd`` in float64 (tests/test_reference.py,
tests/test_backward.py).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .numpy_backend import NumpyBackend

#: (rtol, atol) per dtype for ``|got - ref| <= atol + rtol*|ref|``, elementwise.
#: float64: products of length I+H <= a few thousand accumulate ~1e-14
#: relative error in any summation order; 1e-9 leaves room for growth over
#: T steps and L layers.  float32: unit roundoff is 6e-8; a dot product of
#: n terms in an unknown BLAS order errs by up to ~n*eps*sum|terms| (typically
#: ~sqrt(n)*eps), and the error is carried through the recurrence, so
#: atol 2e-5 (values are O(1) after tanh/sigmoid) with rtol 1e-4 (relu cells
#: are unbounded) covers I, H <= 1024 over tens of steps with margin.
TOLERANCES = {"float64": (1e-9, 1e-9), "float32": (1e-4, 2e-5)}


#: (rtol, atol) per dtype for gradients and the forward_backward pass's outputs:
#: ``|got - ref| <= atol * scale + rtol * |ref|`` elementwise, ``scale`` the array's largest
#: ``|ref|`` (at least 1).  A weight gradient is a sum over T*B steps and rows of products of
#: O(1) terms, so it grows with T*B, and its small entries are differences of large ones: an
#: error relative to the array's scale, not to each entry, is what any summation order leaves.
#: float64: ~1e-15 relative per operation; 1e-9 of the scale leaves room for T, L and the
#: recurrence.  float32: the forward's error (TOLERANCES) enters every step's gate derivatives,
#: the backward recurrence carries it as the forward does, and BLAS sums of I+H or T*B terms add
#: ~sqrt(n)*eps; the forward's figures, taken relative to the scale, hold it: measured, every
#: backend's float32 error over the test sizes (up to T = 200, H = 96) stayed below 1.1e-6 of the
#: scale, a twentieth of atol.
GRAD_TOLERANCES = {"float64": (1e-9, 1e-9), "float32": (1e-4, 2e-5)}


def _up(a):
    return None if a is None else np.asarray(a, np.float64)


def _up_pair(a):
    return tuple(_up(v) for v in a) if isinstance(a, (tuple, list)) else _up(a)


def reference_forward(spec, weights, x, hx=None, lengths=None):
    """The forward pass in float64: same arguments and layout as
    :meth:`kernels.base.Backend.forward`; every input is cast to float64 and
    every output is float64."""
    spec64 = dataclasses.replace(spec, dtype="float64")
    weights64 = {k: _up(v) for k, v in weights.items()}
    return NumpyBackend().forward(spec64, weights64, _up(x), _up_pair(hx), lengths)


def reference_forward_backward(spec, weights, x, hx=None, grad_output=None, grad_h_n=None, lengths=None):
    """The forward pass and backpropagation through time in float64: same arguments and results as
    :meth:`kernels.base.Backend.forward_backward`, every input cast to float64, every result float64."""
    spec64 = dataclasses.replace(spec, dtype="float64")
    weights64 = {k: _up(v) for k, v in weights.items()}
    return NumpyBackend().forward_backward(spec64, weights64, _up(x), _up_pair(hx), _up(grad_output),
                                           _up_pair(grad_h_n), lengths)


def backward_arrays(result) -> dict[str, np.ndarray]:
    """``(output, h_n, grads)`` of ``forward_backward`` as one ``{name: array}``: ``output``,
    ``h_n`` (and ``c_n``), then ``grad <name>`` for each gradient."""
    output, state, grads = result
    named = dict(zip(("output", "h_n", "c_n"), flatten((output, state))))
    return {**named, **{f"grad {k}": v for k, v in grads.items()}}


def backward_problem(spec, result, reference) -> str | None:
    """Why ``result`` (of ``forward_backward``) breaks the contract -- names, shapes, dtype --
    judged against the reference's; ``None`` when it keeps it."""
    try:
        got = backward_arrays(result)
    except (TypeError, ValueError) as exc:
        return f"not (output, h_n, grads): {exc}"
    want = backward_arrays(reference)
    if list(got) != list(want):
        return f"arrays {list(got)}, expected {list(want)}"
    for name, g in got.items():
        if not isinstance(g, np.ndarray):
            return f"{name} is a {type(g).__name__}, expected a numpy.ndarray"
        if g.shape != want[name].shape:
            return f"{name} has shape {g.shape}, expected {want[name].shape}"
        if g.dtype != spec.np_dtype:
            return f"{name} has dtype {g.dtype}, expected {spec.dtype}"
    return None


def gradient_mismatches(spec, result, reference) -> list[str]:
    """Names of the arrays of ``result`` (``forward_backward``'s) outside :data:`GRAD_TOLERANCES`
    of ``reference``, each with its largest error relative to the array's scale; empty when all
    are within (NaN where the reference has NaN)."""
    rtol, atol = GRAD_TOLERANCES[spec.dtype]
    got, want = backward_arrays(result), backward_arrays(reference)
    bad = []
    for name, w in want.items():
        g = np.asarray(got[name], np.float64)
        scale = max(1.0, float(np.max(np.abs(w), initial=0.0, where=np.isfinite(w))))
        if not np.allclose(g, w, rtol=rtol, atol=atol * scale, equal_nan=True):
            bad.append(f"{name} (max abs error {float(np.nanmax(np.abs(g - w), initial=0.0)):.3g}, scale {scale:.3g})")
    return bad


def max_abs_error_backward(result, reference) -> float:
    """Largest absolute difference over every array of two ``forward_backward`` results, in float64."""
    got, want = backward_arrays(result), backward_arrays(reference)
    return max(float(np.max(np.abs(np.asarray(got[k], np.float64) - w), initial=0.0)) for k, w in want.items())


def flatten(result) -> list[np.ndarray]:
    """``(output, h_n)`` or ``(output, (h_n, c_n))`` as a flat list of arrays."""
    output, state = result
    return [output, *state] if isinstance(state, tuple) else [output, state]


def contract_problem(spec, result, reference) -> str | None:
    """Why ``result`` breaks the output contract -- number of arrays, shapes, dtype
    -- judged against the reference's structure; ``None`` when it keeps it."""
    got, want = flatten(result), flatten(reference)
    if len(got) != len(want):
        return f"{len(got)} output arrays, expected {len(want)}"
    for name, g, w in zip(("output", "h_n", "c_n"), got, want):
        if not isinstance(g, np.ndarray):
            return f"{name} is a {type(g).__name__}, expected a numpy.ndarray"
        if g.shape != w.shape:
            return f"{name} has shape {g.shape}, expected {w.shape}"
        if g.dtype != spec.np_dtype:
            return f"{name} has dtype {g.dtype}, expected {spec.dtype}"
    return None


def within_tolerance(spec, result, reference) -> bool:
    """Every array of ``result`` within :data:`TOLERANCES` of ``reference`` (NaN where the reference has NaN)."""
    rtol, atol = TOLERANCES[spec.dtype]
    return all(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True) for a, b in zip(flatten(result), flatten(reference)))


def max_abs_error(result, reference) -> float:
    """Largest absolute difference over output, h_n (and c_n), in float64."""
    return max(
        float(np.max(np.abs(np.asarray(a, np.float64) - b), initial=0.0))
        for a, b in zip(flatten(result), flatten(reference))
    )
