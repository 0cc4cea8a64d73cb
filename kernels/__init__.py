"""Recurrent-cell backends behind one interface with PyTorch's semantics.

    from kernels import CellSpec, init_weights, get_backend, available_backends
    spec = CellSpec(mode="gru", input_size=3, hidden_size=4, num_layers=2,
                    bidirectional=True, batch_first=True, dtype="float32")
    w = init_weights(spec, seed=0)
    out, h_n = get_backend("numba").forward(spec, w, x, hx=None)

The registry is a plain dict from name to (module, factory); a backend's
module, and so its library (numba, torch), is imported only when asked for.
"""

from __future__ import annotations

import importlib

from .base import Backend, Prepared
from .spec import DTYPES, MODES, CellSpec
from .weights import init_weights, validate_weights

BACKENDS = {
    "numpy": ("kernels.numpy_backend", "NumpyBackend", ()),
    "numba": ("kernels.numba_backend", "NumbaBackend", ()),
    "torch_cpu": ("kernels.torch_backend", "TorchBackend", ("cpu",)),
    "torch_cuda": ("kernels.torch_backend", "TorchBackend", ("cuda",)),
}

_instances: dict[str, Backend] = {}


#: Backends whose implementation choice can be forced as ``"name:variant"``: numba's strategies, and
#: its ``blas`` strategy on a named BLAS route (kernels.blas) instead of the default one.
VARIANTS = {"numba": ("blas", "fused", "parallel", "blas@mkl", "blas@openblas")}


def is_backend_name(name) -> bool:
    """A registered name, or ``"numba:<variant>"`` for a forced strategy (and BLAS route)."""
    if not isinstance(name, str):
        return False
    base, sep, variant = name.partition(":")
    return base in BACKENDS and (not sep or variant in VARIANTS.get(base, ()))


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; ``"numba:fused"`` (etc.) forces a strategy.

    Raises:
        ValueError: unknown name (the message lists the known ones).
        ImportError: the backend's module could not be imported; use
            :func:`available_backends` to ask without raising.
    """
    if not is_backend_name(name):
        forced = [f"{b}:{v}" for b, vs in VARIANTS.items() for v in vs]
        raise ValueError(f"backend: unknown name {name!r}; known: {list(BACKENDS)} (and {forced})")
    if name not in _instances:
        base, _, variant = name.partition(":")
        module, factory, args = BACKENDS[base]
        _instances[name] = getattr(importlib.import_module(module), factory)(*args, *((variant,) if variant else ()))
    return _instances[name]


def available_backends() -> dict[str, str | None]:
    """``{name: None}`` for backends that can run here, ``{name: reason}`` for the others."""
    status = {}
    for name in BACKENDS:
        try:
            status[name] = get_backend(name).unavailable_reason()
        except ImportError as exc:
            status[name] = f"cannot import: {exc}"
    return status


__all__ = [
    "BACKENDS",
    "DTYPES",
    "MODES",
    "Backend",
    "CellSpec",
    "Prepared",
    "available_backends",
    "get_backend",
    "init_weights",
    "validate_weights",
]
