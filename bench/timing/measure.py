"""One benchmark inside a worker process: validate against the reference, warm up, plan, time.

The timed region is one call of the case's pass on inputs already in place:
``Prepared.run`` for ``forward``, ``Prepared.run_backward`` (forward, then
backpropagation through time) for ``forward_backward``, of a backend that
declares that pass (:meth:`kernels.Backend.passes`; otherwise the row is
``unavailable`` with the reason); weight
conversion, compilation, host-to-device copies, the accuracy check and a
full warm-up call all happen before it (:func:`prepare_case`).  A round is
``iterations`` back-to-back calls timed with ``time.perf_counter`` and
divided by ``iterations`` (:func:`time_rounds`); how many rounds, and in how
many bursts, the parent decides (:mod:`bench.timing.sweep`).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np

from kernels import availability, backend_passes, get_backend
from kernels.base import Prepared
from kernels.reference import (GRAD_TOLERANCES, TOLERANCES, backward_problem, contract_problem, gradient_mismatches,
                               max_abs_error, max_abs_error_backward, reference_forward, reference_forward_backward,
                               within_tolerance)

from ..environment import pin_threads
from ..grids import Case
from .policy import TimingPolicy


def check(prepared: Prepared, case: Case, weights, x, steps: int, reference=None):
    """Run ``prepared``'s pass (``case.pass_``) on the first ``steps`` timesteps and compare to the
    float64 reference (for ``forward_backward``: output, states and every gradient, with the
    seeds of :meth:`bench.grids.Case.grad_seeds`).

    Returns:
        ``(max_abs_err, problem, seconds_of_the_call, reference)``; ``problem`` is
        ``None`` when the result keeps the contract (arrays, shapes, dtype) and is within
        :data:`kernels.reference.TOLERANCES` (:data:`~kernels.reference.GRAD_TOLERANCES` for
        ``forward_backward``) of the spec's dtype, else what is wrong.
    """
    spec = case.spec
    xs = spec.first_timesteps(x, steps)
    full = case.lengths_array()
    lengths = None if full is None else np.minimum(full, steps)  # the first steps of each sequence
    given = {} if lengths is None else {"lengths": lengths}  # passed only when there are lengths
    if case.pass_ == "forward_backward":
        grad_output, grad_h_n = case.grad_seeds(steps)
        if reference is None:
            reference = reference_forward_backward(spec, weights, xs, None, grad_output, grad_h_n, **given)
        args = prepared.to_device_backward(xs, None, None, grad_output, *_split(grad_h_n), **given)
        run, to_host, tolerances = prepared.run_backward, prepared.backward_to_host, GRAD_TOLERANCES
    else:
        if reference is None:
            reference = reference_forward(spec, weights, xs, **given)
        args = prepared.to_device(xs, **given)
        run, to_host, tolerances = prepared.run, prepared.to_host, TOLERANCES
    start = time.perf_counter()
    raw = run(*args)
    elapsed = time.perf_counter() - start
    got = to_host(raw)
    backward = case.pass_ == "forward_backward"
    problem = (backward_problem if backward else contract_problem)(spec, got, reference)
    if problem is not None:
        return float("nan"), problem, elapsed, reference
    err = (max_abs_error_backward if backward else max_abs_error)(got, reference)
    bad = gradient_mismatches(spec, got, reference) if backward else (
        [] if within_tolerance(spec, got, reference) else [f"max abs error {err:.3g}"])
    if bad:
        rtol, atol = tolerances[spec.dtype]
        problem = f"{'; '.join(bad[:3])} vs float64 reference beyond rtol={rtol:g}, atol={atol:g}"
    return err, problem, elapsed, reference


def _split(grad_h_n) -> tuple:
    """``(grad_h_n, grad_c_n)`` from the contract's ``grad_h_n`` (an array, or the LSTM pair)."""
    return grad_h_n if isinstance(grad_h_n, tuple) else (grad_h_n, None)


def timed_call(prepared: Prepared, case: Case, x):
    """The timed call of ``case``'s pass on the full input (with its lengths, where it has a
    distribution other than ``full``), as a function of no arguments, with its inputs placed now
    (outside the timing): ``Prepared.run`` or ``Prepared.run_backward``."""
    lengths = case.lengths_array()
    given = {} if lengths is None else {"lengths": lengths}
    if case.pass_ == "forward_backward":
        grad_output, grad_h_n = case.grad_seeds()
        args = prepared.to_device_backward(x, None, None, grad_output, *_split(grad_h_n), **given)
        return lambda: prepared.run_backward(*args)
    args = prepared.to_device(x, **given)
    return lambda: prepared.run(*args)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What became of one (backend, case): a value, as asv's runner returns one.

    Attributes:
        status: one of :data:`bench.results.STATUSES` -- ``ok`` (timed),
            ``unavailable``, ``over_budget``, ``mismatch`` (not timed, and why in
            ``reason``) or ``error`` (an exception, kept in ``error`` for its traceback).
        reason: one line; empty for ``ok`` unless the plan was cut by the budget.
        row: the result row without run metadata (``status`` and ``reason`` included).
        error: the exception of an ``error`` outcome, else ``None``.
    """

    status: str
    reason: str
    row: dict
    error: BaseException | None = None


class PeakMemory:
    """``with PeakMemory() as peak: ...`` then ``peak.bytes``: this process's peak resident memory
    during the block above its resident memory before it, from Linux's ``/proc/self/status``
    (``VmHWM``, reset through ``/proc/self/clear_refs``); ``""`` where that is not available."""

    def __enter__(self):
        self.bytes, self._before = "", None
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
            self._before = self._status("VmRSS")
        except OSError:
            pass
        return self

    def __exit__(self, *exc):
        if self._before is not None:
            self.bytes = max(0, self._status("VmHWM") - self._before)
        return False

    @staticmethod
    def _status(field: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
        raise OSError(f"no {field} in /proc/self/status")


@dataclasses.dataclass
class Ready:
    """A case prepared in a worker and ready to be timed: the timed call, its iterations per
    round, and the rounds planned for one process (the parent may split them into bursts)."""

    call: object
    iterations: int
    rounds: int
    note: str


def prepare_case(case: Case, backend_name: str, policy: TimingPolicy, threads: int | None = None,
                 reference=None) -> tuple[Outcome, Ready | None, object]:
    """Check, warm up and plan one backend on one case in this process.

    Args:
        backend_name: a registered name (:func:`kernels.parse_backend_name`).
        threads: when given, the backend's own pools are sized to it before ``prepare``
            (:meth:`kernels.Backend.use_threads`), and every thread pool of the process once the
            backend's libraries are loaded (:func:`bench.environment.pin_threads`), before the warm-up.
        reference: the case's float64 reference on its first ``check_steps`` steps, if known.

    Returns:
        ``(outcome, ready, reference)``: ``outcome.status`` is ``"ok"`` when the case is ready to
        time (``ready`` is then set), else ``unavailable`` (the backend here, or for this spec:
        :func:`kernels.availability`), ``mismatch``, ``over_budget`` or ``error`` with the
        reason, and ``ready`` is ``None``.  The row holds the case's fields,
        the backend's :meth:`~kernels.Backend.describe`, ``prepare_s``, ``jit_cache`` and the
        accuracy check.  An exception becomes an ``error`` outcome; only ``KeyboardInterrupt``
        and the like propagate.
    """
    reason = availability(backend_name, case.spec, lengths=case.lengths != "full")
    backend = get_backend(backend_name) if reason is None else None
    if backend is not None and case.pass_ not in backend_passes(backend):
        reason = f"{backend_name} has no {case.pass_} pass (it runs {', '.join(backend_passes(backend))})"
    row = {"case_id": case.id, "backend": backend_name, "device": getattr(backend, "device", ""), **case.fields(),
           "flops": case.flops(), "weight_bytes": case.spec.weight_bytes()}

    def outcome(status, why, error=None):
        row.update(status=status, reason=why)
        return Outcome(status, why, row, error)

    if reason is not None:
        return outcome("unavailable", reason), None, reference
    try:
        if threads is not None:
            backend.use_threads(threads)
        row.update(backend.describe())
        weights, x = case.inputs()
        start = time.perf_counter()
        prepared = backend.prepare(case.spec, weights)  # converts weights, compiles
        row.update(prepare_s=time.perf_counter() - start, jit_cache=prepared.jit_cache)
        if threads is not None:
            pin_threads(threads)
        steps = min(policy.check_steps, case.timesteps)
        err, problem, check_s, reference = check(prepared, case, weights, x, steps, reference)
        row.update(max_abs_err=err, err_timesteps=steps, tolerance_ok=problem is None,
                   jit_cache=prepared.jit_cache)  # a backward compiled on its first use is counted
        if problem is not None:
            return outcome("mismatch", problem), None, reference
        rounds, iterations, note = policy.screen(check_s * case.timesteps / steps)
        if rounds == 0:
            return outcome("over_budget", note + f" (estimated from a {steps}-step run)"), None, reference
        call = timed_call(prepared, case, x)
        row["jit_cache"] = prepared.jit_cache  # a backend that compiles per shape (jax) did so in to_device
        rounds, iterations, note = policy.plan(policy.warm_up(call))
        row.update(prepared.ran())  # what the warm-up, a full call, ran: what is timed
        if rounds == 0:
            return outcome("over_budget", note), None, reference
    except Exception as exc:  # noqa: BLE001  (any failure of a backend is this row's outcome)
        return outcome("error", f"{type(exc).__name__}: {exc}".splitlines()[0], exc), None, reference
    row["iterations"] = iterations
    return outcome("ok", note), Ready(call, iterations, rounds, note), reference


def time_rounds(call, rounds: int, iterations: int) -> list[float]:
    """Seconds per call of ``rounds`` rounds of ``iterations`` back-to-back calls of ``call()``."""
    timer = time.perf_counter
    times = []
    for _ in range(rounds):
        start = timer()
        for _ in range(iterations):
            call()
        times.append((timer() - start) / iterations)
    return times
