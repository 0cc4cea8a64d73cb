"""Validation of ``forward`` arguments, shared by every backend.

It runs once, before any backend sees the data, so the same bad input gets
the same error class and message on every backend; backends assume valid
input.  It also brings every array into one memory layout
(:func:`standard_layout`), the sequence lengths of a variable-length batch to
one int64 array (:func:`check_lengths`), and unbatched input to a batch of
one, so that no backend handles any of these.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .lengths import check_lengths  # noqa: F401  (kernels.checks.check_lengths, with the other checks)
from .spec import CellSpec, check_spec
from .weights import validate_weights


class Inputs(NamedTuple):
    """Validated ``forward`` inputs, as :meth:`kernels.Prepared.to_device` takes them.

    Attributes:
        x: 3-D, (T, B, I) or (B, T, I) when ``spec.batch_first``; B = 1 for unbatched input.
        h0, c0: ``h0`` (D*L, B, h_size) and ``c0`` (D*L, B, H) (they differ with ``proj_size``), or
            ``None`` when not given (``c0`` is ``None`` except for LSTM).
        unbatched: ``x`` was given 2-D (T, I) (and the states (D*L, H)): the caller wants
            unbatched outputs back (:meth:`kernels.CellSpec.unbatched`).
        lengths: ``None`` (every sequence has T steps), or :func:`check_lengths`' int64 (B,).

    Every array is in :func:`standard_layout`.
    """

    x: np.ndarray
    h0: np.ndarray | None
    c0: np.ndarray | None
    unbatched: bool
    lengths: np.ndarray | None = None


def standard_layout(a: np.ndarray | None, dtype) -> np.ndarray | None:
    """``a`` as the kernels are compiled for it: C-contiguous, aligned, writeable, native byte order.

    ``a`` itself when it is so already; otherwise a copy (of a reversed or strided view, a
    Fortran-ordered, broadcast, read-only, unaligned or byte-swapped array) with the same values.
    Every backend then sees one memory layout, and numba's dispatchers (whose array types carry
    layout, ``readonly`` and ``aligned``) see the types ``prepare`` compiled.

    Args:
        a: an array of ``dtype`` in any byte order, or ``None`` (returned as is: an absent state).
        dtype: the spec's dtype (``float32`` or ``float64``).
    """
    return None if a is None else np.require(a, dtype, "CAW")


def _check_array(name, value, spec, shape, why=""):
    if type(value) is not np.ndarray:  # subclasses (masked arrays, matrix) would be treated differently per backend
        raise TypeError(f"{name}: expected a numpy.ndarray (not a subclass), got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating dtype ({spec.dtype}), got {value.dtype}")
    if not spec.accepts_dtype(value.dtype):
        raise TypeError(f"{name}: expected dtype {spec.dtype} (the spec's dtype), got {value.dtype}")
    if shape is not None and value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}{why}, got {value.shape}")


def check_inputs(spec: CellSpec, x, hx=None, lengths=None) -> Inputs:
    """Validate ``x``, ``hx`` and ``lengths`` against ``spec``, split ``hx`` and bring every array
    into :func:`standard_layout`, with a batch axis (B = 1) added to unbatched input.

    Args:
        spec: the problem.
        x: (T, B, I), or (B, T, I) when ``spec.batch_first``; or unbatched (T, I), to which
            ``batch_first`` does not apply (as in ``torch.nn.RNN``).  dtype ``spec.dtype`` in
            any byte order; any memory layout.
        hx: ``None`` (zeros), ``h0`` of shape (D*L, B, h_size) -- (D*L, h_size) for unbatched
            ``x`` -- or for LSTM the pair ``(h0, c0)``, ``c0`` (D*L, B, H); ``batch_first`` never
            applies to them.  ``h_size`` is ``spec.h_size``: P with ``proj_size``, else H.
        lengths: ``None``, or the sequence lengths (B,) of a variable-length batch
            (:func:`check_lengths`); batched ``x`` only.

    Returns:
        :class:`Inputs`: ``x`` 3-D, ``h0``/``c0`` or ``None`` when not given, whether ``x`` was
        unbatched, and ``lengths`` (int64) or ``None``.

    Raises:
        TypeError: an argument that is not a NumPy array, a non-floating
            dtype, or a dtype other than ``spec.dtype``; an LSTM ``hx`` that is
            not a pair.
        ValueError: ``x`` not 2-D or 3-D, a last dimension other than I, T = 0,
            a state of the wrong shape (the message gives the expected one;
            states of unbatched ``x`` are 2-D, as torch requires), or bad ``lengths``
            (:func:`check_lengths`, naming ``lengths``).

    Empty cases: T = 0 raises ValueError, as ``torch.nn.RNN`` does; B = 0 is
    valid and gives empty outputs on every backend.
    """
    _check_array("x", x, spec, None)
    if x.ndim not in (2, 3):
        raise ValueError(f"x: expected a 3-D array {spec.input_layout} or an unbatched 2-D one (T, I), "
                         f"got {x.ndim}-D shape {x.shape}")
    unbatched = x.ndim == 2
    layout = "(T, I)" if unbatched else spec.input_layout
    if x.shape[-1] != spec.input_size:
        raise ValueError(f"x: expected last dimension input_size={spec.input_size} in {layout}, got shape {x.shape}")
    timesteps, batch = (x.shape[0], None) if unbatched else spec.timesteps_batch(x)
    if timesteps == 0:
        raise ValueError(f"x: expected at least one timestep in {layout}, got shape {x.shape}")
    state, cell = spec.state_shape(batch), spec.state_shape(batch, cell=True)
    why = " (D*L, H), since x is unbatched (T, I)" if unbatched else ""
    h0 = c0 = None
    if spec.mode == "lstm":
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected None or a pair (h0, c0) for lstm, got {type(hx).__name__}")
            h0, c0 = hx
            _check_array("hx[0] (h0)", h0, spec, state, why)
            _check_array("hx[1] (c0)", c0, spec, cell, why)
    elif hx is not None:
        h0 = hx
        _check_array("hx (h0)", h0, spec, state, why)
    if lengths is not None:
        lengths = check_lengths(lengths, timesteps, batch)
    x, h0, c0 = (standard_layout(a, spec.np_dtype) for a in (x, h0, c0))
    if unbatched:
        x = spec.batched(x)
        h0, c0 = (None if s is None else s[:, None, :] for s in (h0, c0))
    return Inputs(x, h0, c0, unbatched, lengths)


def check_forward_args(spec, weights, x, hx=None, lengths=None) -> tuple[dict[str, np.ndarray], Inputs]:
    """:func:`check_spec`, :func:`kernels.weights.validate_weights` and :func:`check_inputs` in one call.

    Returns:
        ``(weights, inputs)``: the weights in :func:`standard_layout` (same names and order; an
        array already so is passed through, not copied) and :func:`check_inputs`' answer.
    """
    check_spec(spec)
    validate_weights(spec, weights)
    weights = {name: standard_layout(w, spec.np_dtype) for name, w in weights.items()}
    return weights, check_inputs(spec, x, hx, lengths)



def check_grad_args(spec: CellSpec, inputs: Inputs, grad_output=None, grad_h_n=None):
    """Validate the gradient seeds of ``forward_backward`` against ``spec`` and the checked input,
    and bring them into :func:`standard_layout`, with the batch axis of unbatched input added.

    Args:
        spec: the problem.
        inputs: :func:`check_inputs`' answer for ``x`` and ``hx``.
        grad_output: ``None`` (zeros) or d(loss)/d(output), the shape of ``output``:
            (T, B, D*h_size), or (B, T, D*h_size) when ``spec.batch_first``; (T, D*h_size) for
            unbatched ``x``; dtype ``spec.dtype``, any layout.  With ``lengths``, its values
            past each sequence's end are ignored (``output`` there is padding).
        grad_h_n: ``None`` (zeros) or d(loss)/d(h_n), (D*L, B, h_size) ((D*L, h_size) for
            unbatched ``x``); for LSTM also the pair ``(grad_h_n, grad_c_n)``, ``grad_c_n``
            (D*L, B, H), either of which may be ``None``.

    Returns:
        ``(grad_output, grad_h_n, grad_c_n)``, each a 3-D array or ``None`` (zeros); ``grad_c_n``
        is ``None`` except for an LSTM given a pair.

    Raises:
        TypeError: a seed that is not a NumPy array of ``spec.dtype``, or a non-LSTM pair.
        ValueError: a seed of the wrong shape (the message gives the expected one).
    """
    timesteps, batch = spec.timesteps_batch(inputs.x)
    batch = None if inputs.unbatched else batch
    why = " (unbatched, since x is (T, I))" if inputs.unbatched else ""
    if grad_output is not None:
        _check_array("grad_output", grad_output, spec, spec.output_shape(timesteps, batch), why)
    state, cell = spec.state_shape(batch), spec.state_shape(batch, cell=True)
    grad_c_n = None
    if isinstance(grad_h_n, (tuple, list)):
        if spec.mode != "lstm" or len(grad_h_n) != 2:
            expected = "None, an array or a pair (grad_h_n, grad_c_n)" if spec.mode == "lstm" else "None or an array"
            raise TypeError(f"grad_h_n: expected {expected} for {spec.mode}, got a {type(grad_h_n).__name__} "
                            f"of {len(grad_h_n)}")
        grad_h_n, grad_c_n = grad_h_n
        if grad_c_n is not None:
            _check_array("grad_h_n[1] (grad_c_n)", grad_c_n, spec, cell, why)
        if grad_h_n is not None:
            _check_array("grad_h_n[0] (grad_h_n)", grad_h_n, spec, state, why)
    elif grad_h_n is not None:
        _check_array("grad_h_n", grad_h_n, spec, state, why)
    seeds = [standard_layout(a, spec.np_dtype) for a in (grad_output, grad_h_n, grad_c_n)]
    if inputs.unbatched:
        seeds = [None if seeds[0] is None else spec.batched(seeds[0]),
                 *(None if s is None else s[:, None, :] for s in seeds[1:])]
    return tuple(seeds)
