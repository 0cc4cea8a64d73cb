"""Recurrent-cell backends behind one interface with PyTorch's semantics.

    from kernels import CellSpec, init_weights, get_backend, available_backends
    spec = CellSpec(mode="gru", input_size=3, hidden_size=4, num_layers=2,
                    bidirectional=True, batch_first=True, dtype="float32")
    w = init_weights(spec, seed=0)
    out, h_n = get_backend("numba").forward(spec, w, x, hx=None)
    # a variable-length batch (pack_padded_sequence's semantics), an LSTM with projections:
    out, h_n = get_backend("numba").forward(spec, w, x, lengths=[5, 3])
    lstm = CellSpec("lstm", 3, 8, proj_size=4)      # h and output have 4 features, c has 8

The registry (:mod:`kernels.registry`) is a plain dict from name to
(module, class, args); a backend's module, and so its library (numba,
torch), is imported only when asked for.
"""

from __future__ import annotations

from .base import Backend, Prepared
from .registry import (BACKENDS, ENTRY_POINT_GROUP, BackendName, availability, available_backends, backend_names,
                       backend_passes, get_backend, parse_backend_list, parse_backend_name, register_backend)
from .spec import DTYPES, MODES, CellSpec
from .weights import init_weights, validate_weights

__all__ = [
    "BACKENDS",
    "DTYPES",
    "MODES",
    "Backend",
    "BackendName",
    "backend_passes",
    "ENTRY_POINT_GROUP",
    "CellSpec",
    "Prepared",
    "availability",
    "available_backends",
    "backend_names",
    "get_backend",
    "init_weights",
    "parse_backend_list",
    "parse_backend_name",
    "register_backend",
    "validate_weights",
]
