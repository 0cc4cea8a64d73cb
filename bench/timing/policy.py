"""How long to time one benchmark: :class:`TimingPolicy`, the plan of rounds and iterations."""

from __future__ import annotations

import dataclasses
import math
import time

#: Fewer timed rounds than this give no usable spread; such a case is 'over_budget'.
MIN_USEFUL_ROUNDS = 3


@dataclasses.dataclass(frozen=True)
class TimingPolicy:
    """How long to time one (backend, case).

    Attributes:
        max_time: seconds of timed rounds to aim for.
        min_rounds: rounds to take at least, budget permitting.
        max_rounds: rounds to take at most (the raw samples a process keeps); where
            ``max_time`` would need more, each round repeats the call more often instead, so
            the rounds still fill ``max_time`` (:meth:`plan`).
        budget: seconds the timed rounds of one benchmark may take at most;
            rounds are cut to fit, and a case whose :data:`MIN_USEFUL_ROUNDS`
            calls would not fit is reported 'over_budget' without being timed.
        min_round_s: a call shorter than this is repeated within a round
            (``iterations``) so timer overhead stays negligible.
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
        """``(rounds, iterations, note)`` for calls of ``call_s`` seconds; rounds 0 = over budget.

        A round is ``iterations`` calls: enough to last ``min_round_s``, and enough that
        ``max_rounds`` rounds last ``max_time``; rounds are ``max_time`` / round, within
        ``min_rounds`` .. ``max_rounds``, cut to fit ``budget``.  So the timed rounds last at least
        ``max_time`` (or ``min_rounds`` rounds), whatever the call's length, budget permitting.
        """
        call_s = max(call_s, 1e-9)
        # - 1e-9: 1e-4/1e-6 is 100.00000000000001
        iterations = max(1, math.ceil(self.min_round_s / call_s - 1e-9),
                         math.ceil(self.max_time / (self.max_rounds * call_s) - 1e-9))
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
