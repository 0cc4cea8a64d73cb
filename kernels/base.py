"""The backend contract.

A backend computes the forward pass of ``torch.nn.RNN``/``LSTM``/``GRU`` for a
:class:`~kernels.spec.CellSpec` with weights in ``state_dict`` layout
(:mod:`kernels.weights`): same math, same output and ``h_n`` layouts, same
dtype in as out.  It has two levels:

* :meth:`Backend.forward` -- NumPy in, NumPy out, validated; for users and tests.
* :meth:`Backend.prepare` -> :class:`Prepared` -- the timed path.  ``prepare``
  converts and places the weights once (and compiles, where the backend
  compiles); ``Prepared.to_device`` places the inputs (and compiles, where
  the compiler needs the input's shape: jax); ``Prepared.run`` is the
  one call that is timed and returns only when the work is done (a CUDA
  backend synchronizes inside it); ``Prepared.to_host`` brings results back.

Inputs of the timed path: ``forward`` validates once (:mod:`kernels.checks`) and
hands ``prepare`` and ``to_device`` what :func:`kernels.checks.check_forward_args`
returns -- 3-D inputs (unbatched input is a ``forward`` feature: a batch axis
of one is added before ``to_device`` and removed after ``to_host``, so the
timed path always has B) and every array in
:func:`kernels.checks.standard_layout` (C-contiguous, aligned, writeable,
native byte order), whatever layout the caller's arrays have.  The harness's
inputs are so already.  A backend may assume it; the in-tree ones also bring
arrays given to ``prepare`` and ``to_device`` directly into that layout with the
same function, so a direct caller of the timed path gets the types ``prepare``
compiled (numba) and no library error (torch) whatever flags its arrays carry.

Rules: never import a backend's library until the backend is used: the
registry in :mod:`kernels.registry` imports backend modules on demand, and a
backend module itself imports its library (numba, torch) only in ``prepare``
or ``describe``, so names can be parsed and availability asked in a process
that must not load them.  A backend that cannot run says why through
:meth:`Backend.unavailable_reason` instead of failing, and one that can run but
not some spec (an ONNX Runtime operator without float64) says why through
:meth:`Backend.unavailable_for`, so that spec is reported ``unavailable``, never
answered wrongly; the implementation
choices it can be forced to are its :meth:`Backend.variants`
(``"name:variant"``); what a result row should record about it (its BLAS,
its threads) is :meth:`Backend.describe`; the pools a backend makes itself
(ONNX Runtime's per session) are sized by :meth:`Backend.use_threads`.  Inputs are validated once in
:mod:`kernels.checks` before any backend code runs.  A backward pass would be
added as ``Prepared.backward``.
"""

from __future__ import annotations

import abc

import numpy as np

from .checks import check_forward_args
from .spec import CellSpec


class Prepared(abc.ABC):
    """A backend bound to one spec and one set of weights, ready to run."""

    #: How ``prepare`` got its compiled code, for backends that compile: ``"compiled"`` (the JIT
    #: ran), ``"disk cache"`` (loaded from the JIT's disk cache), ``"in memory"`` (this process had
    #: it already), followed by `` (no disk cache: why)`` where the JIT cannot cache on disk here;
    #: ``""`` for backends that do not compile.
    jit_cache: str = ""

    def __init__(self, spec: CellSpec):
        self.spec = spec

    @abc.abstractmethod
    def to_device(self, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None) -> tuple:
        """Place validated 3-D inputs (:class:`kernels.checks.Inputs`) where :meth:`run` wants them;
        returns ``run``'s arguments."""

    @abc.abstractmethod
    def run(self, *args):
        """The timed call: the forward pass on :meth:`to_device`'s output, finished on return."""

    @abc.abstractmethod
    def to_host(self, result):
        """``run``'s result as NumPy: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM."""

    def ran(self) -> dict:
        """Result-row columns about what the last :meth:`run` did where a backend decides per call
        (numba: ``variant``, ``plan``, ``numba_blas``); empty by default."""
        return {}


class Backend(abc.ABC):
    """One implementation of the forward pass; see the module docstring."""

    #: Registry name, e.g. ``"numba"``.
    name: str = ""
    #: Where the work runs: ``"cpu"`` or ``"cuda"``.
    device: str = "cpu"
    #: ``None`` when NaN and inf in the inputs give torch's non-finite results; else why this
    #: backend refuses them (a ``ValueError`` naming the argument) rather than answer otherwise.
    refuses_non_finite: str | None = None

    @classmethod
    def variants(cls) -> tuple[str, ...]:
        """The variants this backend can be forced to, as in ``"numba:fused"``; none by default.
        The registry's name grammar (:func:`kernels.parse_backend_name`) takes them from here."""
        return ()

    def unavailable_reason(self) -> str | None:
        """``None`` when the backend can run here, else why not (one line)."""
        return None

    def unavailable_for(self, spec: CellSpec) -> str | None:
        """``None`` when this backend can compute ``spec`` here, else why not (one line), e.g. a
        dtype the runtime's operator lacks.  Asked only where :meth:`unavailable_reason` is
        ``None``; every spec by default."""
        return None

    def use_threads(self, threads: int) -> None:
        """Size the thread pools this backend makes itself, for every later :meth:`prepare`, to
        ``threads`` (>= 1); the harness calls it with ``--threads`` before :meth:`describe` and
        :meth:`prepare`.  Process-wide pools (BLAS, OpenMP, torch, numba, XLA) are sized by the
        worker's environment and :func:`bench.environment.pin_threads` instead, so by default
        there is nothing to size."""

    def describe(self) -> dict[str, object]:
        """Result-row metadata about this backend as it runs here, ``{column: value}`` with
        columns of :data:`bench.results.COLUMNS` (e.g. ``numba_blas``); empty by default.
        Called only where the backend is available."""
        return {}

    @abc.abstractmethod
    def prepare(self, spec: CellSpec, weights: dict[str, np.ndarray]) -> Prepared:
        """Convert ``weights`` (already validated) once for repeated :meth:`Prepared.run` calls."""

    def forward(self, spec: CellSpec, weights: dict[str, np.ndarray], x: np.ndarray, hx=None):
        """Run the forward pass, as ``torch.nn.RNN``/``LSTM``/``GRU`` would.

        Args:
            spec: the problem.
            weights: ``{state_dict name: array}``, shapes from ``spec.weight_shapes()``.
            x: (T, B, I), or (B, T, I) when ``spec.batch_first``; or unbatched (T, I),
                whatever ``batch_first`` (as torch since 1.11).  dtype ``spec.dtype``.
            hx: ``None`` for zeros, ``h0`` (D*L, B, H) -- (D*L, H) for unbatched ``x`` --
                or ``(h0, c0)`` for LSTM.

        Every array may be in any memory layout NumPy can express (reversed or strided views,
        Fortran order, broadcast, read-only, unaligned, either byte order): the answer is that of
        its C-contiguous copy (:func:`kernels.checks.standard_layout`).

        Returns:
            ``(output, h_n)``; for LSTM ``(output, (h_n, c_n))``.  ``output`` is
            (T, B, D*H) (or (B, T, D*H) when ``batch_first``); each step is
            [forward | backward] along the last axis.  ``h_n``/``c_n`` are
            (D*L, B, H), layer-major: layer 0 forward, layer 0 backward, layer
            1 forward, ...  For unbatched ``x``, ``output`` is (T, D*H) and the
            states (D*L, H).  All in ``spec.dtype``, native byte order.

        Raises:
            TypeError, ValueError: bad input, from :mod:`kernels.checks`.
            RuntimeError: the backend is unavailable here, or for this spec
                (:meth:`unavailable_for`); the reason is given.
        """
        weights, inputs = check_forward_args(spec, weights, x, hx)
        reason = self.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"backend {self.name!r} is unavailable: {reason}")
        reason = self.unavailable_for(spec)
        if reason is not None:
            raise RuntimeError(f"backend {self.name!r} is unavailable for this spec: {reason}")
        timesteps, batch = spec.timesteps_batch(inputs.x)
        if batch == 0:
            return empty_result(spec, timesteps)
        prepared = self.prepare(spec, weights)
        result = prepared.to_host(prepared.run(*prepared.to_device(inputs.x, inputs.h0, inputs.c0)))
        return unbatched_result(spec, result) if inputs.unbatched else result

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def empty_result(spec: CellSpec, timesteps: int):
    """Outputs for B = 0, identical on every backend (as torch returns them)."""
    out = np.zeros(spec.output_shape(timesteps, 0), spec.dtype)
    h_n = np.zeros(spec.state_shape(0), spec.dtype)
    return (out, (h_n, h_n.copy())) if spec.mode == "lstm" else (out, h_n)


def unbatched_result(spec: CellSpec, result):
    """``result`` of a batch of one as unbatched input gets it (views): ``output`` (T, D*H),
    ``h_n``/``c_n`` (D*L, H)."""
    output, state = result
    if spec.mode == "lstm":
        return spec.unbatched(output), (state[0][:, 0, :], state[1][:, 0, :])
    return spec.unbatched(output), state[:, 0, :]
