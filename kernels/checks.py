"""Validation of ``forward`` arguments, shared by every backend.

It runs once, before any backend sees the data, so the same bad input gets
the same error class and message on every backend; backends assume valid
input.
"""

from __future__ import annotations

import numpy as np

from .spec import CellSpec, check_spec
from .weights import validate_weights


def _check_array(name, value, spec, shape):
    if type(value) is not np.ndarray:  # subclasses (masked arrays, matrix) would be treated differently per backend
        raise TypeError(f"{name}: expected a numpy.ndarray (not a subclass), got {type(value).__name__}")
    if not np.issubdtype(value.dtype, np.floating):
        raise TypeError(f"{name}: expected a floating dtype ({spec.dtype}), got {value.dtype}")
    if value.dtype != spec.np_dtype:
        raise TypeError(f"{name}: expected dtype {spec.dtype} (the spec's dtype), got {value.dtype}")
    if shape is not None and value.shape != shape:
        raise ValueError(f"{name}: expected shape {shape}, got {value.shape}")


def check_inputs(spec: CellSpec, x, hx=None):
    """Validate ``x`` and ``hx`` against ``spec`` and split ``hx``.

    Args:
        spec: the problem.
        x: (T, B, I), or (B, T, I) when ``spec.batch_first``; dtype ``spec.dtype``.
        hx: ``None`` (zeros), ``h0`` of shape (D*L, B, H), or for LSTM the
            pair ``(h0, c0)``; ``batch_first`` never applies to it.

    Returns:
        ``(x, h0, c0)`` where ``h0``/``c0`` are ``None`` when not given
        (``c0`` is always ``None`` except for LSTM).

    Raises:
        TypeError: an argument that is not a NumPy array, a non-floating
            dtype, or a dtype other than ``spec.dtype``; an LSTM ``hx`` that is
            not a pair.
        ValueError: ``x`` not 3-D, a last dimension other than I, T = 0, or a
            state of the wrong shape (the message gives the expected one).

    Empty cases: T = 0 raises ValueError, as ``torch.nn.RNN`` does; B = 0 is
    valid and gives empty outputs on every backend.
    """
    _check_array("x", x, spec, None)
    layout = spec.input_layout
    if x.ndim != 3:
        raise ValueError(f"x: expected a 3-D array {layout}, got {x.ndim}-D shape {x.shape}")
    if x.shape[2] != spec.input_size:
        raise ValueError(f"x: expected last dimension input_size={spec.input_size} in {layout}, got shape {x.shape}")
    timesteps, batch = spec.timesteps_batch(x)
    if timesteps == 0:
        raise ValueError(f"x: expected at least one timestep in {layout}, got shape {x.shape}")
    state = spec.state_shape(batch)
    h0 = c0 = None
    if spec.mode == "lstm":
        if hx is not None:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"hx: expected None or a pair (h0, c0) for lstm, got {type(hx).__name__}")
            h0, c0 = hx
            _check_array("hx[0] (h0)", h0, spec, state)
            _check_array("hx[1] (c0)", c0, spec, state)
    elif hx is not None:
        h0 = hx
        _check_array("hx (h0)", h0, spec, state)
    return x, h0, c0


def check_forward_args(spec, weights, x, hx=None):
    """:func:`check_spec`, :func:`kernels.weights.validate_weights` and :func:`check_inputs` in one call."""
    check_spec(spec)
    validate_weights(spec, weights)
    return check_inputs(spec, x, hx)



def check_grad_args(spec: CellSpec, x, grad_output=None, grad_h_n=None):
    """Validate the gradient seeds of ``forward_backward`` against ``spec`` and the checked ``x``.

    Args:
        spec: the problem.
        x: the input as :func:`check_inputs` returned it.
        grad_output: ``None`` (zeros) or d(loss)/d(output), the shape of ``output``:
            (T, B, D*H), or (B, T, D*H) when ``spec.batch_first``; dtype ``spec.dtype``.
        grad_h_n: ``None`` (zeros) or d(loss)/d(h_n), (D*L, B, H); for LSTM also the pair
            ``(grad_h_n, grad_c_n)``, either of which may be ``None``.

    Returns:
        ``(grad_output, grad_h_n, grad_c_n)``, each an array or ``None`` (zeros); ``grad_c_n`` is
        ``None`` except for an LSTM given a pair.

    Raises:
        TypeError: a seed that is not a NumPy array of ``spec.dtype``, or a non-LSTM pair.
        ValueError: a seed of the wrong shape (the message gives the expected one).
    """
    timesteps, batch = spec.timesteps_batch(x)
    if grad_output is not None:
        _check_array("grad_output", grad_output, spec, spec.output_shape(timesteps, batch))
    state = spec.state_shape(batch)
    grad_c_n = None
    if isinstance(grad_h_n, (tuple, list)):
        if spec.mode != "lstm" or len(grad_h_n) != 2:
            expected = "None, an array or a pair (grad_h_n, grad_c_n)" if spec.mode == "lstm" else "None or an array"
            raise TypeError(f"grad_h_n: expected {expected} for {spec.mode}, got a {type(grad_h_n).__name__} "
                            f"of {len(grad_h_n)}")
        grad_h_n, grad_c_n = grad_h_n
        if grad_c_n is not None:
            _check_array("grad_h_n[1] (grad_c_n)", grad_c_n, spec, state)
        if grad_h_n is not None:
            _check_array("grad_h_n[0] (grad_h_n)", grad_h_n, spec, state)
    elif grad_h_n is not None:
        _check_array("grad_h_n", grad_h_n, spec, state)
    return grad_output, grad_h_n, grad_c_n
