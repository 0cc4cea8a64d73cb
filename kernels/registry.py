"""The backend registry: names, the one name grammar, and the one availability probe.

A backend name is ``"<base>"`` or ``"<base>:<variant>"``, where ``base`` is a
key of :data:`BACKENDS` and ``variant`` one of that backend class's
:meth:`~kernels.base.Backend.variants` (numba's strategies and BLAS routes).
Every caller -- the CLI, the pytest plugin, the tests -- parses names with
:func:`parse_backend_name` and asks availability with :func:`availability`.

:data:`BACKENDS` is a plain dict from base name to ``(module, class, args)``;
a backend's module is imported only when its name is parsed or it is asked
for, and a backend module imports its own library (numba, torch) only to run,
so parsing a name and probing availability load neither.
"""

from __future__ import annotations

import dataclasses
import importlib

from .base import Backend

BACKENDS = {
    "numpy": ("kernels.numpy_backend", "NumpyBackend", ()),
    "numba": ("kernels.numba_backend", "NumbaBackend", ()),
    "torch_cpu": ("kernels.torch_backend", "TorchBackend", ("cpu",)),
    "torch_cuda": ("kernels.torch_backend", "TorchBackend", ("cuda",)),
}

_instances: dict[str, Backend] = {}


@dataclasses.dataclass(frozen=True)
class BackendName:
    """A parsed backend name: ``base`` (a key of :data:`BACKENDS`) and ``variant`` ("" for none)."""

    base: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.base}:{self.variant}" if self.variant else self.base


def backend_class(base: str) -> type[Backend]:
    """The class registered as ``base`` (its module is imported now).

    Raises:
        KeyError: ``base`` is not registered.
        ImportError: the module cannot be imported.
    """
    module, cls, _ = BACKENDS[base]
    return getattr(importlib.import_module(module), cls)


def _variants(base: str) -> tuple[str, ...]:
    try:
        return tuple(backend_class(base).variants())
    except ImportError:  # its module is broken: the base name still parses, and availability says why
        return ()


def backend_names(variants: bool = False) -> list[str]:
    """Every registered base name, and with ``variants`` every ``"base:variant"`` after them."""
    names = list(BACKENDS)
    if variants:
        names += [f"{b}:{v}" for b in BACKENDS for v in _variants(b)]
    return names


def parse_backend_name(name) -> BackendName:
    """``"numba:blas@mkl"`` -> ``BackendName("numba", "blas@mkl")``.

    Raises:
        ValueError: not a string, an unknown base, or a variant the backend does not
            declare; the message names the argument and lists the known names.
    """
    base, sep, variant = name.partition(":") if isinstance(name, str) else ("", "", "")
    if base not in BACKENDS or (sep and variant not in _variants(base)):
        forced = [n for n in backend_names(variants=True) if ":" in n]
        raise ValueError(f"backend: unknown name {name!r}; known: {list(BACKENDS)} (and {forced})")
    return BackendName(base, variant)


def parse_backend_list(text: str) -> list[str]:
    """``"numpy, numba:fused"`` -> ``["numpy", "numba:fused"]``: comma-separated, duplicates dropped.

    Raises:
        ValueError: an empty list, or a name :func:`parse_backend_name` rejects (every unknown
            one is named).
    """
    names = list(dict.fromkeys(n.strip() for n in str(text).split(",") if n.strip()))
    unknown = []
    for n in names:
        try:
            parse_backend_name(n)
        except ValueError:
            unknown.append(n)
    if unknown or not names:
        known = ", ".join(backend_names(variants=True))
        raise ValueError(f"--backends: unknown {unknown or repr(text)}; known: {known}")
    return names


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; ``"numba:fused"`` (etc.) forces a variant.

    Raises:
        ValueError: unknown name (the message lists the known ones).
        ImportError: the backend's module could not be imported; use
            :func:`availability` to ask without raising.
    """
    parsed = parse_backend_name(name)
    key = str(parsed)
    if key not in _instances:
        _, _, args = BACKENDS[parsed.base]
        _instances[key] = backend_class(parsed.base)(*args, *((parsed.variant,) if parsed.variant else ()))
    return _instances[key]


def availability(name: str) -> str | None:
    """``None`` when backend ``name`` can run here, else why not (one line); never raises for a
    registered name, whatever is missing (a module that cannot be imported is a reason).

    Raises:
        ValueError: ``name`` does not parse (:func:`parse_backend_name`).
    """
    parse_backend_name(name)
    try:
        return get_backend(name).unavailable_reason()
    except ImportError as exc:
        return f"cannot import: {exc}"


def available_backends(names=None) -> dict[str, str | None]:
    """``{name: None}`` for backends that can run here, ``{name: reason}`` for the others;
    ``names`` defaults to every registered base name."""
    return {name: availability(name) for name in (backend_names() if names is None else names)}
