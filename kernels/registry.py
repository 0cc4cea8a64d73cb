"""The backend registry: names, the one name grammar, and the one availability probe.

A backend name is ``"<base>"`` or ``"<base>:<variant>"``, where ``base`` is a
key of :data:`BACKENDS` and ``variant`` one of that backend class's
:meth:`~kernels.base.Backend.variants` (numba's strategies and BLAS routes).
Every caller -- the CLI, the pytest plugin, the tests -- parses names with
:func:`parse_backend_name` and asks availability with :func:`availability`.

:data:`BACKENDS` is a plain dict from base name to ``(module, attribute,
args)``; a backend's module is imported only when its name is parsed or it
is asked for, and a backend module imports its own library (numba, torch)
only to run, so parsing a name and probing availability load neither.

Backends from outside this package join the same dict, and are then treated
like any other (isolated workers, checks, the A/B gate): through the entry
point group :data:`ENTRY_POINT_GROUP` of an installed distribution, read on
first use in every process, or through :func:`register_backend` for a class
or factory at module level of an importable module (the runner hands such
registrations to its worker processes by that module path).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from importlib import metadata

from .base import Backend

#: Entry-point group through which installed distributions add backends:
#: ``[project.entry-points."rnn_cell_bench.backends"] mykernel = "mypkg.backend:MyBackend"``.
ENTRY_POINT_GROUP = "rnn_cell_bench.backends"

BACKENDS = {
    "numpy": ("kernels.numpy_backend", "NumpyBackend", ()),
    "numba": ("kernels.numba", "NumbaBackend", ()),
    "torch_cpu": ("kernels.torch_backend", "TorchBackend", ("cpu",)),
    "torch_cuda": ("kernels.torch_backend", "TorchBackend", ("cuda",)),
    "onnxruntime": ("kernels.onnxruntime_backend", "OnnxRuntimeBackend", ()),
    "jax": ("kernels.jax_backend", "JaxBackend", ()),
}

_instances: dict[str, Backend] = {}
#: What :func:`register_backend` added in this process: name -> "module:qualname".
_registered: dict[str, str] = {}


@dataclasses.dataclass(frozen=True)
class BackendName:
    """A parsed backend name: ``base`` (a key of :data:`BACKENDS`) and ``variant`` ("" for none)."""

    base: str
    variant: str = ""

    def __str__(self) -> str:
        return f"{self.base}:{self.variant}" if self.variant else self.base


@functools.cache
def load_entry_points() -> tuple[str, ...]:
    """Add the backends of :data:`ENTRY_POINT_GROUP` to :data:`BACKENDS` (once per process; a name
    already registered is kept) and return the names added.  Nothing is imported for it."""
    added = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in BACKENDS and ":" not in ep.name:
            module, _, attr = ep.value.partition(":")
            BACKENDS[ep.name] = (module.strip(), attr.strip(), ())
            added.append(ep.name)
    return tuple(added)


def register_backend(name: str, factory) -> None:
    """Register ``factory`` (a :class:`~kernels.base.Backend` subclass, or a callable returning a
    backend; ``factory(variant)`` for a forced variant when it declares ``variants()``) as
    ``name``, in this process.  For isolated runs the factory must be defined at module level
    of an importable module: workers re-register it by that path.

    Raises:
        ValueError: ``name`` is empty, holds ``:`` or ``,``, or is already registered.
        TypeError: ``factory`` is not callable.
    """
    load_entry_points()
    if not isinstance(name, str) or not name or any(c in name for c in ":,"):
        raise ValueError(f"name: expected a non-empty backend name without ':' or ',', got {name!r}")
    if name in BACKENDS:
        raise ValueError(f"name: {name!r} is already registered")
    if not callable(factory):
        raise TypeError(f"factory: expected a Backend class or a callable, got {type(factory).__name__}")
    BACKENDS[name] = (factory.__module__, factory.__qualname__, ())
    _registered[name] = f"{factory.__module__}:{factory.__qualname__}"
    _instances.pop(name, None)


def registered_backends() -> dict[str, str]:
    """``{name: "module:qualname"}`` of what :func:`register_backend` added in this process."""
    return dict(_registered)


def backend_class(base: str):
    """The class (or factory) registered as ``base`` (its module is imported now).

    Raises:
        KeyError: ``base`` is not registered.
        ImportError: the module cannot be imported.
    """
    module, attr, _ = BACKENDS[base]
    found = importlib.import_module(module)
    for part in attr.split("."):
        found = getattr(found, part)
    return found


def _variants(base: str) -> tuple[str, ...]:
    try:
        declared = getattr(backend_class(base), "variants", None)
    except (ImportError, AttributeError):  # broken: the base name still parses, and availability says why
        return ()
    return tuple(declared()) if callable(declared) else ()


def backend_names(variants: bool = False) -> list[str]:
    """Every registered base name, and with ``variants`` every ``"base:variant"`` after them."""
    load_entry_points()
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
    load_entry_points()
    base, sep, variant = name.partition(":") if isinstance(name, str) else ("", "", "")
    if base not in BACKENDS or (sep and variant not in _variants(base)):
        forced = [n for n in backend_names(variants=True) if ":" in n]
        raise ValueError(f"backend: unknown name {name!r}{did_you_mean(name)}; known: {list(BACKENDS)} (and {forced})")
    return BackendName(base, variant)


def did_you_mean(name) -> str:
    """`` (did you mean 'numba:blas'?)`` for the registered names (variants included) closest to
    ``name`` (difflib), or ""."""
    import difflib

    close = difflib.get_close_matches(str(name), backend_names(variants=True), n=2)
    return f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""


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
        guesses = [(n, did_you_mean(n)) for n in unknown if did_you_mean(n)]
        hint = guesses[0][1] if len(unknown) == 1 and guesses else \
            " (" + "; ".join(f"{n}: {guess.strip(' ()')}" for n, guess in guesses) + ")" if guesses else ""
        raise ValueError(f"--backends: unknown {unknown or repr(text)}{hint}; known: {known}")
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


def availability(name: str, spec=None, lengths: bool = False) -> str | None:
    """``None`` when backend ``name`` can run here (and compute ``spec``, when given:
    :meth:`~kernels.base.Backend.unavailable_for`; and, with ``lengths``, take variable-length
    batches of it: :meth:`~kernels.base.Backend.unavailable_for_lengths`), else why not (one line);
    never raises for a registered name, whatever is missing (a module that cannot be imported is a
    reason).

    Raises:
        ValueError: ``name`` does not parse (:func:`parse_backend_name`), or ``lengths`` without ``spec``.
    """
    parse_backend_name(name)
    if lengths and spec is None:
        raise ValueError("lengths: availability for lengths is asked of a spec; pass spec")
    try:
        backend = get_backend(name)
        reason = backend.unavailable_reason()
    except (ImportError, AttributeError) as exc:
        return f"cannot import: {exc}"
    per_spec = getattr(backend, "unavailable_for", None)  # optional for a backend not derived from Backend
    if reason is None and spec is not None and per_spec is not None:
        reason = per_spec(spec)
    if reason is None and lengths:
        per_lengths = getattr(backend, "unavailable_for_lengths", None)
        reason = (per_lengths(spec) if per_lengths is not None
                  else f"{name} does not declare variable-length batches (lengths)")
    return reason


def available_backends(names=None) -> dict[str, str | None]:
    """``{name: None}`` for backends that can run here, ``{name: reason}`` for the others;
    ``names`` defaults to every registered base name."""
    return {name: availability(name) for name in (backend_names() if names is None else names)}


def backend_passes(backend) -> tuple[str, ...]:
    """The passes ``backend`` (an instance) runs: its :meth:`~kernels.base.Backend.passes`, or
    ``("forward",)`` for a backend not derived from Backend that does not declare them."""
    declared = getattr(backend, "passes", None)
    return tuple(declared()) if callable(declared) else ("forward",)
