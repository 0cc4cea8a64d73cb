"""The float64 reference and the tolerance table.

The reference is the ``numpy`` backend's textbook formulas evaluated in
float64 on float64 copies of the weights and inputs; the test suite checks it
against ``torch.nn`` in float64 (tests/test_reference.py).
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


def reference_forward(spec, weights, x, hx=None):
    """The forward pass in float64: same arguments and layout as
    :meth:`kernels.base.Backend.forward`; every input is cast to float64 and
    every output is float64."""
    spec64 = dataclasses.replace(spec, dtype="float64")

    def up(a):
        return None if a is None else np.asarray(a, np.float64)

    weights64 = {k: up(v) for k, v in weights.items()}
    if isinstance(hx, (tuple, list)):
        hx = tuple(up(a) for a in hx)
    else:
        hx = up(hx)
    return NumpyBackend().forward(spec64, weights64, up(x), hx)


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
