"""One benchmark: validate against the reference, warm up, time, make a row.

The timed region is ``Prepared.run`` on inputs already in place; weight
conversion, compilation, host-to-device copies, the accuracy check and a
full warm-up call all happen before it.  Timing itself is pytest-benchmark's
``pedantic`` mode, with rounds chosen from a time budget.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from kernels import availability, get_backend
from kernels.base import Prepared
from kernels.reference import TOLERANCES, contract_problem, max_abs_error, reference_forward, within_tolerance

from .grids import Case

#: Fewer timed rounds than this give no usable spread; such a case is 'over_budget'.
MIN_USEFUL_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class TimingPolicy:
    """How long to time one (backend, case).

    Attributes:
        max_time: seconds of timed rounds to aim for.
        min_rounds: rounds to take at least, budget permitting.
        max_rounds: rounds to take at most.
        budget: seconds the timed rounds of one benchmark may take at most;
            rounds are cut to fit, and a case whose :data:`MIN_USEFUL_ROUNDS`
            calls would not fit is reported 'over_budget' without being timed.
        min_round_s: a call shorter than this is repeated within a round
            (pytest-benchmark's iterations) so timer overhead stays negligible.
        check_steps: timesteps of the accuracy check (the full sequence when
            T is shorter); also the run that estimates a full call's time.
    """

    max_time: float = 1.0
    min_rounds: int = 10
    max_rounds: int = 1000
    budget: float = 30.0
    min_round_s: float = 1e-4
    check_steps: int = 16

    def __post_init__(self):
        """Raises ValueError naming the option for a non-finite or out-of-range value."""
        for name in ("max_time", "budget", "min_round_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"--{name.replace('_', '-')}: expected a positive finite number, got {value}")
        if not MIN_USEFUL_ROUNDS <= self.min_rounds <= self.max_rounds:
            raise ValueError(f"--min-rounds: expected {MIN_USEFUL_ROUNDS} to {self.max_rounds}, got {self.min_rounds}")
        if self.check_steps < 1:
            raise ValueError(f"--check-steps: expected a positive number, got {self.check_steps}")

    def warm_up(self, call) -> float:
        """Call ``call`` until the JIT, caches and thread pools have settled; return the estimate
        of one call (the fastest seen).  At least 3 calls when one takes under 0.1 s, and at least
        a tenth of ``max_time`` in all, at most 100 calls: one slow first call must not set the plan."""
        times = []
        while len(times) < 100:
            start = time.perf_counter()
            call()
            times.append(time.perf_counter() - start)
            if len(times) >= (3 if times[0] < 0.1 else 1) and sum(times) >= 0.1 * self.max_time:
                break
        return min(times)

    def plan(self, call_s: float) -> tuple[int, int, str]:
        """``(rounds, iterations, note)`` for calls of ``call_s`` seconds; rounds 0 = over budget."""
        iterations = max(1, math.ceil(self.min_round_s / max(call_s, 1e-9) - 1e-9))  # - 1e-9: 1e-4/1e-6 is 100.00000000000001
        round_s = call_s * iterations
        rounds = min(self.max_rounds, max(self.min_rounds, math.ceil(self.max_time / round_s)))
        if rounds * round_s <= self.budget:
            return rounds, iterations, ""
        fit = int(self.budget // round_s)
        if fit < MIN_USEFUL_ROUNDS:
            return 0, iterations, (
                f"one call takes ~{call_s:.3g} s; {MIN_USEFUL_ROUNDS} rounds exceed the budget of {self.budget:g} s"
            )
        return fit, iterations, f"rounds cut from {rounds} to {fit} by the budget of {self.budget:g} s"


def check(prepared: Prepared, case: Case, weights, x, steps: int, reference=None):
    """Run ``prepared`` on the first ``steps`` timesteps and compare to the float64 reference.

    Returns:
        ``(max_abs_err, problem, seconds_of_the_call, reference)``; ``problem`` is
        ``None`` when the result keeps the output contract (arrays, shapes,
        dtype) and is within :data:`kernels.reference.TOLERANCES` of the spec's
        dtype, else what is wrong.
    """
    xs = case.spec.first_timesteps(x, steps)
    if reference is None:
        reference = reference_forward(case.spec, weights, xs)
    args = prepared.to_device(xs)
    start = time.perf_counter()
    raw = prepared.run(*args)
    elapsed = time.perf_counter() - start
    got = prepared.to_host(raw)
    problem = contract_problem(case.spec, got, reference)
    if problem is not None:
        return float("nan"), problem, elapsed, reference
    err = max_abs_error(got, reference)
    if not within_tolerance(case.spec, got, reference):
        rtol, atol = TOLERANCES[case.spec.dtype]
        problem = f"max abs error {err:.3g} vs float64 reference beyond rtol={rtol:g}, atol={atol:g}"
    return err, problem, elapsed, reference


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


def measure(benchmark, case: Case, backend_name: str, policy: TimingPolicy, inputs, reference_cache: dict) -> Outcome:
    """Check and time one backend on one case with the pytest-benchmark ``benchmark`` fixture.

    Args:
        benchmark: pytest-benchmark's fixture; its ``group``, ``name`` and
            ``extra_info`` are set so backends of one case sit side by side.
        backend_name: a registered name (:func:`kernels.parse_backend_name`).
        inputs: ``(weights, x)`` of ``case.inputs()``.
        reference_cache: ``{case id: reference result}`` shared between backends.

    Returns:
        The :class:`Outcome`; every outcome carries its row, timed or not.  An
        exception raised while checking or timing becomes an ``error`` outcome;
        only ``KeyboardInterrupt`` and the like propagate.
    """
    reason = availability(backend_name)
    backend = get_backend(backend_name) if reason is None else None
    row = {"case_id": case.id, "backend": backend_name, "device": getattr(backend, "device", ""), **case.fields()}
    row.update(flops=case.spec.flops(case.timesteps, case.batch), weight_bytes=case.spec.weight_bytes())
    benchmark.group = case.id
    benchmark.extra_info.update(row)

    def outcome(status, why, error=None):
        row.update(status=status, reason=why)
        benchmark.extra_info.update(row)
        return Outcome(status, why, row, error)

    if reason is not None:
        return outcome("unavailable", reason)
    try:
        row.update(backend.describe())
        weights, x = inputs
        prepared = backend.prepare(case.spec, weights)  # converts weights, compiles
        steps = min(policy.check_steps, case.timesteps)
        err, problem, check_s, reference_cache[case.id] = check(
            prepared, case, weights, x, steps, reference_cache.get(case.id)
        )
        row.update(max_abs_err=err, err_timesteps=steps, tolerance_ok=problem is None)
        if problem is not None:
            return outcome("mismatch", problem)
        rounds, iterations, note = policy.plan(check_s * case.timesteps / steps)
        if rounds == 0:
            return outcome("over_budget", note + f" (estimated from a {steps}-step run)")
        args = prepared.to_device(x)
        rounds, iterations, note = policy.plan(policy.warm_up(lambda: prepared.run(*args)))
        if rounds == 0:
            return outcome("over_budget", note)
        benchmark.pedantic(prepared.run, args=args, rounds=rounds, iterations=iterations, warmup_rounds=0)
    except Exception as exc:  # noqa: BLE001  (any failure of a backend is this row's outcome)
        return outcome("error", f"{type(exc).__name__}: {exc}".splitlines()[0], exc)
    stats = benchmark.stats.stats
    row.update(
        rounds=stats.rounds,
        iterations=iterations,
        median_s=stats.median,
        min_s=stats.min,
        mean_s=stats.mean,
        stddev_s=stats.stddev,
        iqr_s=stats.iqr,
        per_step_s=stats.median / case.timesteps,
    )
    return outcome("ok", note)
