"""The backend contract.

A backend computes the forward pass of ``torch.nn.RNN``/``LSTM``/``GRU`` for a
:class:`~kernels.spec.CellSpec` with weights in ``state_dict`` layout
(:mod:`kernels.weights`): same math, same output and ``h_n`` layouts, same
dtype in as out, including LSTM's projections (``proj_size``: ``h`` and the
output have P features, ``c`` keeps H) and variable-length batches
(``lengths``, :func:`kernels.checks.check_lengths`: what
``pack_padded_sequence(enforce_sorted=False)``, the module and
``pad_packed_sequence(total_length=T)`` give).  ``dropout`` has evaluation
semantics everywhere, in every pass: it is never applied (``module.eval()``).
It has two levels:

* :meth:`Backend.forward` -- NumPy in, NumPy out, validated; for users and tests.
* :meth:`Backend.prepare` -> :class:`Prepared` -- the timed path.  ``prepare``
  converts and places the weights once (and compiles, where the backend
  compiles); ``Prepared.to_device`` places the inputs (and compiles, where
  the compiler needs the input's shape: jax); ``Prepared.run`` is the
  one call that is timed and returns only when the work is done (a CUDA
  backend synchronizes inside it); ``Prepared.to_host`` brings results back.
  What is not the work stays out of ``run``: sorting a variable-length batch
  by length and zeroing its padding (numpy, numba), the masks (jax), the
  ``sequence_lens`` input (onnxruntime) are made in ``to_device``, and a
  result in sorted order is put back in ``to_host``.  torch is the exception
  by design: ``pack_padded_sequence`` and ``pad_packed_sequence`` are what its
  users run, so its timed ``run`` includes them.

Inputs of the timed path: ``forward`` validates once (:mod:`kernels.checks`) and
hands ``prepare`` and ``to_device`` what :func:`kernels.checks.check_forward_args`
returns -- 3-D inputs (unbatched input is a ``forward`` feature: a batch axis
of one is added before ``to_device`` and removed after ``to_host``, so the
timed path always has B), every array in
:func:`kernels.checks.standard_layout` (C-contiguous, aligned, writeable,
native byte order), whatever layout the caller's arrays have, and ``lengths``
as :func:`kernels.checks.check_lengths` returns it (int64 (B,)) or ``None``;
``to_device`` and ``to_device_backward`` are called without the ``lengths``
keyword when there are none, so a backend written before it keeps working.  The harness's
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
:meth:`Backend.unavailable_for` (ONNX's LSTM operator has no projection), so that
spec is reported ``unavailable``, never answered wrongly; one that cannot take
``lengths`` says why through :meth:`Backend.unavailable_for_lengths` (every in-tree
backend takes them; a backend derived from :class:`Backend` elsewhere is taken not to
until it overrides that method); the implementation choices it can be forced to are its
:meth:`Backend.variants`
(``"name:variant"``); what a result row should record about it (its BLAS,
its threads) is :meth:`Backend.describe`; the pools a backend makes itself
(ONNX Runtime's per session) are sized by :meth:`Backend.use_threads`.  Inputs are validated once in
:mod:`kernels.checks` before any backend code runs.

Passes: every backend runs ``"forward"``; a backend that also computes
gradients declares ``"forward_backward"`` in :meth:`Backend.passes` and
implements the three backward methods of :class:`Prepared`
(``to_device_backward``, ``run_backward`` -- the timed call -- and
``backward_to_host``); :meth:`Backend.forward_backward` is the validated
NumPy-level call.  A pass a backend does not declare is unavailable, with that
reason, wherever it is asked for (the harness reports such rows
``unavailable``).
"""

from __future__ import annotations

import abc

import numpy as np

from .checks import check_forward_args, check_grad_args
from .spec import CellSpec

#: The passes a benchmark can time: the forward pass alone, or forward then backward through time
#: (the gradients of every parameter, the input and the initial state).
PASSES = ("forward", "forward_backward")


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
    def to_device(self, x: np.ndarray, h0: np.ndarray | None = None, c0: np.ndarray | None = None,
                  lengths: np.ndarray | None = None) -> tuple:
        """Place validated 3-D inputs (:class:`kernels.checks.Inputs`) where :meth:`run` wants them;
        returns ``run``'s arguments.  ``h0`` is (D*L, B, h_size), ``c0`` (D*L, B, H); ``lengths``
        ``None`` or int64 (B,) (:func:`kernels.checks.check_lengths`), passed by keyword only
        when given; what a variable-length batch needs besides the work (sorting, masks) is made
        here."""

    @abc.abstractmethod
    def run(self, *args):
        """The timed call: the forward pass on :meth:`to_device`'s output, finished on return."""

    @abc.abstractmethod
    def to_host(self, result):
        """``run``'s result as NumPy: ``(output, h_n)``, or ``(output, (h_n, c_n))`` for LSTM, in
        the caller's batch order."""

    def ran(self) -> dict:
        """Result-row columns about what the last :meth:`run` did where a backend decides per call
        (numba: ``variant``, ``plan``, ``numba_blas``); empty by default."""
        return {}

    # --- the forward_backward pass, for backends that declare it (Backend.passes) ---------
    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None,
                           lengths=None) -> tuple:
        """Place validated inputs, gradient seeds (``None``: zeros) and ``lengths`` (as
        :meth:`to_device`; by keyword only when given) where :meth:`run_backward` wants them, and
        compile what it will call, where the backend compiles; returns its arguments."""
        raise NotImplementedError(f"{type(self).__name__} has no forward_backward pass")

    def run_backward(self, *args):
        """The timed call of the ``forward_backward`` pass: the forward pass, then the gradients of
        ``sum(output * grad_output) + sum(h_n * grad_h_n) (+ sum(c_n * grad_c_n))`` with respect to
        every parameter, the input and the initial state; finished on return."""
        raise NotImplementedError(f"{type(self).__name__} has no forward_backward pass")

    def backward_to_host(self, result):
        """``run_backward``'s result as NumPy: ``(output, h_n, grads)`` (``h_n`` a pair for LSTM),
        ``grads`` as :meth:`Backend.forward_backward` documents."""
        raise NotImplementedError(f"{type(self).__name__} has no forward_backward pass")


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

    def unavailable_for_lengths(self, spec: CellSpec) -> str | None:
        """``None`` when this backend takes ``lengths`` (variable-length batches) for ``spec``,
        in every pass it runs, else why not (one line).  By default why not: a backend declares
        it by overriding this method (its ``Prepared.to_device`` then takes ``lengths``); every
        in-tree backend does."""
        return f"{self.name or type(self).__name__} does not declare variable-length batches (lengths)"

    def use_threads(self, threads: int) -> None:
        """Size the thread pools this backend makes itself, for every later :meth:`prepare`, to
        ``threads`` (>= 1); the harness calls it with ``--threads`` before :meth:`describe` and
        :meth:`prepare`.  Process-wide pools (BLAS, OpenMP, torch, numba, XLA) are sized by the
        worker's environment and :func:`bench.environment.pin_threads` instead, so by default
        there is nothing to size."""

    def passes(self) -> tuple[str, ...]:
        """The passes (of :data:`PASSES`) this backend runs; only ``"forward"`` by default."""
        return ("forward",)

    def describe(self) -> dict[str, object]:
        """Result-row metadata about this backend as it runs here, ``{column: value}`` with
        columns of :data:`bench.results.COLUMNS` (e.g. ``numba_blas``); empty by default.
        Called only where the backend is available."""
        return {}

    @abc.abstractmethod
    def prepare(self, spec: CellSpec, weights: dict[str, np.ndarray]) -> Prepared:
        """Convert ``weights`` (already validated) once for repeated :meth:`Prepared.run` calls."""

    def forward(self, spec: CellSpec, weights: dict[str, np.ndarray], x: np.ndarray, hx=None, lengths=None):
        """Run the forward pass, as ``torch.nn.RNN``/``LSTM``/``GRU`` would (in evaluation mode:
        ``spec.dropout`` is not applied).

        Args:
            spec: the problem.
            weights: ``{state_dict name: array}``, shapes from ``spec.weight_shapes()`` (with
                ``proj_size``, ``weight_hr_l{k}`` (P, H) too).
            x: (T, B, I), or (B, T, I) when ``spec.batch_first``; or unbatched (T, I),
                whatever ``batch_first`` (as torch since 1.11).  dtype ``spec.dtype``.
            hx: ``None`` for zeros, ``h0`` (D*L, B, h_size) -- (D*L, h_size) for unbatched
                ``x`` -- or ``(h0, c0)`` for LSTM, ``c0`` (D*L, B, H).  ``h_size`` is
                ``spec.h_size``: ``proj_size`` when set, else H.
            lengths: ``None``, or the sequence lengths (B,) of a variable-length batch: integers
                in 1..T, in any order, batched ``x`` only; the answer is that of
                ``pack_padded_sequence(x, lengths, enforce_sorted=False)``, the module, then
                ``pad_packed_sequence(total_length=T)`` (:func:`kernels.checks.check_lengths`).

        Every array may be in any memory layout NumPy can express (reversed or strided views,
        Fortran order, broadcast, read-only, unaligned, either byte order): the answer is that of
        its C-contiguous copy (:func:`kernels.checks.standard_layout`).

        Returns:
            ``(output, h_n)``; for LSTM ``(output, (h_n, c_n))``.  ``output`` is
            (T, B, D*h_size) (or (B, T, D*h_size) when ``batch_first``); each step is
            [forward | backward] along the last axis.  ``h_n`` is (D*L, B, h_size) and
            ``c_n`` (D*L, B, H), layer-major: layer 0 forward, layer 0 backward, layer
            1 forward, ...  For unbatched ``x``, ``output`` is (T, D*h_size) and the
            states have no B axis.  All in ``spec.dtype``, native byte order.  With
            ``lengths``, ``output`` is zero past each sequence's end and the states are each
            sequence's last valid ones (the reverse direction starts at its last valid step).

        Raises:
            TypeError, ValueError: bad input, from :mod:`kernels.checks` (bad ``lengths``: a
                ValueError naming ``lengths``).
            RuntimeError: the backend is unavailable here, for this spec
                (:meth:`unavailable_for`) or for ``lengths`` (:meth:`unavailable_for_lengths`);
                the reason is given.
        """
        weights, inputs = check_forward_args(spec, weights, x, hx, lengths)
        self._require(spec, "forward", inputs.lengths is not None)
        timesteps, batch = spec.timesteps_batch(inputs.x)
        if batch == 0:
            return empty_result(spec, timesteps)
        prepared = self.prepare(spec, weights)
        varlen = {} if inputs.lengths is None else {"lengths": inputs.lengths}
        result = prepared.to_host(prepared.run(*prepared.to_device(inputs.x, inputs.h0, inputs.c0, **varlen)))
        return unbatched_result(spec, result) if inputs.unbatched else result

    def _require(self, spec: CellSpec, pass_: str, lengths: bool = False) -> None:
        """Raise RuntimeError, with the reason, where this backend cannot run ``pass_`` of ``spec``
        here (with ``lengths``: of a variable-length batch): unavailable, without that pass,
        unable to compute that spec or to take lengths."""
        reason = self.unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"backend {self.name!r} is unavailable: {reason}")
        if pass_ not in self.passes():
            raise RuntimeError(f"backend {self.name!r} is unavailable: it has no {pass_} pass")
        reason = self.unavailable_for(spec)
        if reason is not None:
            raise RuntimeError(f"backend {self.name!r} is unavailable for this spec: {reason}")
        reason = self.unavailable_for_lengths(spec) if lengths else None
        if reason is not None:
            raise RuntimeError(f"backend {self.name!r} is unavailable for lengths: {reason}")

    def forward_backward(self, spec: CellSpec, weights: dict[str, np.ndarray], x: np.ndarray, hx=None,
                         grad_output=None, grad_h_n=None, lengths=None):
        """The forward pass, then backpropagation through time, as ``torch.autograd`` gives it
        (evaluation semantics as in :meth:`forward`: ``spec.dropout`` is not applied).

        It computes the gradient of ``sum(output * grad_output) + sum(h_n * grad_h_n)`` (plus
        ``sum(c_n * grad_c_n)`` for LSTM) with respect to every parameter, the input and the
        initial state.

        Args:
            spec, weights, x, hx, lengths: as :meth:`forward`.
            grad_output: ``None`` (zeros) or an array of ``output``'s shape and layout; with
                ``lengths``, its values past each sequence's end are ignored.
            grad_h_n: ``None`` (zeros) or an array of ``h_n``'s shape (D*L, B, h_size); for LSTM
                also ``(grad_h_n, grad_c_n)``, ``grad_c_n`` (D*L, B, H), either ``None`` for zeros.

        Returns:
            ``(output, h_n, grads)``: ``output`` and ``h_n`` as :meth:`forward` returns them
            (``h_n`` is ``(h_n, c_n)`` for LSTM); ``grads`` is ``{name: array}`` with every
            ``state_dict`` name (the weight's shape; ``weight_hr_l{k}`` with ``proj_size``),
            ``"input"`` (``x``'s shape and layout; zero in the padding of a variable-length
            batch), ``"h0"`` (``h0``'s shape) and for LSTM ``"c0"`` (``c0``'s), also when ``hx``
            was ``None``, all in ``spec.dtype``.

        Raises:
            TypeError, ValueError: bad input or seed, from :mod:`kernels.checks`.
            RuntimeError: the backend is unavailable here, does not run this pass, or cannot
                compute this spec or take lengths (the reason is given).
        """
        weights, inputs = check_forward_args(spec, weights, x, hx, lengths)
        seeds = check_grad_args(spec, inputs, grad_output, grad_h_n)
        self._require(spec, "forward_backward", inputs.lengths is not None)
        timesteps, batch = spec.timesteps_batch(inputs.x)
        if batch == 0:
            return empty_backward(spec, timesteps)
        prepared = self.prepare(spec, weights)
        varlen = {} if inputs.lengths is None else {"lengths": inputs.lengths}
        result = prepared.backward_to_host(prepared.run_backward(
            *prepared.to_device_backward(inputs.x, inputs.h0, inputs.c0, *seeds, **varlen)))
        return unbatched_backward(spec, result) if inputs.unbatched else result

    def __repr__(self):
        return f"<{type(self).__name__} {self.name!r}>"


def empty_result(spec: CellSpec, timesteps: int):
    """Outputs for B = 0, identical on every backend (as torch returns them)."""
    out = np.zeros(spec.output_shape(timesteps, 0), spec.dtype)
    h_n, *c_n = (np.zeros(shape, spec.dtype) for shape in spec.state_shapes(0))
    return (out, (h_n, *c_n)) if spec.mode == "lstm" else (out, h_n)


def unbatched_result(spec: CellSpec, result):
    """``result`` of a batch of one as unbatched input gets it (views): ``output`` (T, D*h_size),
    ``h_n`` (D*L, h_size), ``c_n`` (D*L, H)."""
    output, state = result
    if spec.mode == "lstm":
        return spec.unbatched(output), (state[0][:, 0, :], state[1][:, 0, :])
    return spec.unbatched(output), state[:, 0, :]


def unbatched_backward(spec: CellSpec, result):
    """``forward_backward``'s ``result`` of a batch of one as unbatched input gets it (views):
    :func:`unbatched_result`'s ``output`` and states, ``grads["input"]`` (T, I) and
    ``grads["h0"]``/``grads["c0"]`` without their B axis."""
    output, state, grads = result
    output, state = unbatched_result(spec, (output, state))
    grads = {**grads, "input": spec.unbatched(grads["input"]),
             **{k: grads[k][:, 0, :] for k in ("h0", "c0") if k in grads}}
    return output, state, grads


def empty_backward(spec: CellSpec, timesteps: int):
    """``forward_backward``'s result for B = 0: empty outputs, zero weight gradients."""
    output, state = empty_result(spec, timesteps)
    grads = {name: np.zeros(shape, spec.dtype) for name, shape in spec.weight_shapes().items()}
    grads["input"] = np.zeros(spec.input_shape(timesteps, 0), spec.dtype)
    for name, shape in zip(("h0", "c0"), spec.state_shapes(0)):
        grads[name] = np.zeros(shape, spec.dtype)
    return output, state, grads
