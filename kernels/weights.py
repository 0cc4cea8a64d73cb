"""Weights in the one format every backend reads: PyTorch's ``state_dict``
layout as NumPy arrays (``weight_ih_l0``, ``bias_hh_l1_reverse``, ...; with
``proj_size``, ``weight_hr_l0`` (P, H) and ``weight_hr_l0_reverse`` too, and
``weight_hh`` (G*H, P))."""

from __future__ import annotations

import numpy as np

from .spec import CellSpec, check_spec


def init_weights(spec: CellSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """Draw parameters as ``torch.nn.RNN``/``LSTM``/``GRU`` initialize them.

    Every parameter, ``weight_hr`` of a projection included, is drawn from U(-k, k) with
    ``k = 1/sqrt(hidden_size)`` (PyTorch docs, "Variables" of ``nn.RNN``/``nn.LSTM``/``nn.GRU``),
    with NumPy's ``default_rng(seed)`` instead of torch's generator.

    Returns:
        ``{name: array}`` in ``state_dict`` order; shapes from
        :meth:`CellSpec.weight_shapes`, dtype ``spec.dtype``, C-contiguous.
    """
    check_spec(spec)
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(spec.hidden_size)
    return {
        name: rng.uniform(-k, k, size=shape).astype(spec.dtype)
        for name, shape in spec.weight_shapes().items()
    }


def validate_weights(spec: CellSpec, weights) -> None:
    """Check that ``weights`` has exactly the spec's names, shapes and dtype
    (:meth:`CellSpec.weight_shapes`: ``weight_hr`` exactly when ``proj_size`` is set).

    Raises:
        TypeError: ``weights`` is not a mapping, an entry is not a NumPy array,
            or its dtype is not ``spec.dtype`` (in any byte order; any memory layout is fine).
        ValueError: names missing or extra, or a shape that differs.
    """
    check_spec(spec)
    if not hasattr(weights, "keys"):
        raise TypeError(f"weights: expected a mapping of state_dict names to arrays, got {type(weights).__name__}")
    expected = spec.weight_shapes()
    missing = [n for n in expected if n not in weights]
    extra = [n for n in weights if n not in expected]
    if missing or extra:
        raise ValueError(f"weights: names do not match the spec; missing {missing}, unexpected {extra}")
    for name, shape in expected.items():
        w = weights[name]
        if type(w) is not np.ndarray:
            raise TypeError(f"weights[{name!r}]: expected a numpy.ndarray (not a subclass), got {type(w).__name__}")
        if w.shape != shape:
            raise ValueError(f"weights[{name!r}]: expected shape {shape}, got {w.shape}")
        if not spec.accepts_dtype(w.dtype):
            raise TypeError(f"weights[{name!r}]: expected dtype {spec.dtype}, got {w.dtype}")
