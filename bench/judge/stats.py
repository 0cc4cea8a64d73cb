"""The verdict on one benchmark measured twice: a ratio, a significance test, a threshold.

A benchmark is a *regression* when NEW is slower by more than the threshold (ratio NEW/BASE >
t) **and** a one-sided test says NEW is slower at level ``alpha``; an *improvement* mirrors it
(ratio < 1/t, NEW faster, significant); otherwise *unchanged*; or *not comparable*, with the
reason, where no honest ratio or test can be made.  The test is at the unit of replication
(pyperf's rule: a worker process, not a round):

* :func:`judge` -- two independent measurements: Welch's t-test on the logs of the process
  medians where both have them (the ratio is that of the medians of process medians); else (files
  without process medians, anyone's pytest-benchmark JSON) a Mann-Whitney U test on the rounds --
  on ranks, so one outlier round cannot make a regression; a pair with so few rounds that no
  outcome could reach ``alpha`` is *not comparable* (the exact test's smallest p-value is
  1 / C(n1 + n2, n1)).
* :func:`judge_paired` -- an A/B run's pairs of processes that ran side by side (``bench ab``): a
  one-sample t-test on the log ratios of paired process medians, whose geometric mean is the ratio.
* :func:`judge_counts` -- instruction counts (``--measure instructions``), which both of the others
  hand to it: a count repeats exactly from process to process, so there is no test.  The ratio is
  that of the medians of process medians; beyond the threshold it is a regression (or an
  improvement below its inverse), whatever the number of processes; a side whose processes
  disagree by more than :data:`bench.measurement.COUNT_TOLERANCE` is *not comparable*.  A time is
  never judged against a count.

A side whose samples cannot make a ratio -- a median of 0 (a coarse clock, a hand-made file), a
non-finite sample, a process median that is not positive and finite -- is *not comparable*, with
the reason; no NaN or infinity reaches a verdict.  scipy.stats provides the tests.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from ..measurement import COUNT_TOLERANCE, Measurement

VERDICTS = ("regression", "improvement", "unchanged", "not comparable")
#: The default threshold of instruction counts (``--threshold instructions=RATIO`` sets it): a 1%
#: change, above what two runs of one commit differ by (at most 0.25% on the quick grid; 0.6% for
#: torch_cpu's smallest cases in an earlier series) and below the 2% that ``bench calibrate
#: --measure instructions`` detects in 100 of 100 rows (docs/instructions.md).
COUNT_THRESHOLD = 1.01


@dataclasses.dataclass
class Pair:
    """One benchmark's verdict.  ``base``/``new`` are medians, ``ratio`` NEW/BASE (None where there is
    no honest one), ``why`` the reason of a *not comparable* verdict."""

    label: str
    key: tuple
    base: float | None
    new: float | None
    ratio: float | None
    p_value: float | None
    threshold: float
    verdict: str
    why: str = ""
    unit: str = "s"


def finite(x) -> float | None:
    """``x`` as a float, or None where it is missing or not finite (NaN and infinity are not JSON)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def parse_thresholds(items: list[str], default: float = 1.10, counts: float = COUNT_THRESHOLD) -> dict[str, float]:
    """``["numba=1.05", "1.2"]`` -> ``{"numba": 1.05, "default": 1.2, "instructions": 1.2}``;
    ``default`` (times) and ``counts`` (instruction counts) where no plain RATIO is given.

    A group is a backend name, a mode or a measure (``instructions``); a benchmark takes its
    backend's threshold, else its mode's, else its measure's, else the default (:func:`threshold_for`).
    A plain RATIO is every benchmark's, counts' too unless ``instructions=RATIO`` is given.

    Raises:
        ValueError: naming ``--threshold``: not ``GROUP=RATIO`` or ``RATIO``, or a ratio not above 1.
    """
    thresholds = {"default": default, "instructions": counts}
    plain = False
    for item in items:
        group, sep, value = item.rpartition("=")
        group = group if sep else "default"
        try:
            t = float(value)
        except ValueError:
            raise ValueError(f"--threshold: expected GROUP=RATIO or RATIO, got {item!r}") from None
        if not t > 1.0 or not math.isfinite(t):
            raise ValueError(f"--threshold: expected a ratio above 1 (1.10 = 10% slower), got {item!r}")
        thresholds[group] = t
        plain = plain or group == "default"
    if plain and not any(i.rpartition("=")[0] == "instructions" for i in items):
        thresholds["instructions"] = thresholds["default"]
    return thresholds


def threshold_for(thresholds: dict, backend: str, mode: str, measure: str = "time") -> float:
    """The threshold of a benchmark: its backend's, else its mode's, else its measure's (counts:
    ``instructions``), else the default."""
    fallback = thresholds.get(measure, thresholds["default"]) if measure == "instructions" else thresholds["default"]
    return thresholds.get(backend, thresholds.get(mode, fallback))


def min_p_value(n1: int, n2: int) -> float:
    """Smallest one-sided p-value the exact Mann-Whitney U test can give for samples of n1 and n2."""
    ways = math.comb(n1 + n2, n1)
    return 1.0 / ways if ways < 10**300 else 0.0


def times_problem(values, what: str = "rounds") -> str:
    """Why ``values`` (samples) cannot make a ratio, or "": a value that is not finite, a negative
    one, or a median of 0 (a coarse clock, a hand-made file): a ratio of it is 0, inf or NaN.
    Process medians must all be positive (their logs are tested)."""
    v = np.asarray(values, float)
    if not np.all(np.isfinite(v)):
        return f"{what} hold a value that is not finite ({float(v[~np.isfinite(v)][0])})"
    if v.min() < 0:
        return f"{what} hold a negative time ({v.min():g} s)"
    if what == "process medians" and v.min() == 0:
        return "a process median of 0 s (no time resolved)"
    if np.median(v) == 0:
        return f"median of the {what} is 0 s ({int(np.sum(v == 0))} of {v.size} are 0; no time resolved)"
    return ""


def verdict(pair: Pair, alpha: float) -> Pair:
    """Set ``pair.verdict`` from its ratio and p-value: beyond the threshold and significant."""
    if pair.ratio >= 1:
        pair.verdict = "regression" if pair.ratio > pair.threshold and pair.p_value < alpha else "unchanged"
    else:
        pair.verdict = "improvement" if pair.ratio < 1 / pair.threshold and pair.p_value < alpha else "unchanged"
    return pair


def _untestable(pair: Pair, base: Measurement, new: Measurement) -> str:
    """Why ``base`` and ``new`` cannot be tested against each other, or ""."""
    for side, m in (("BASE", base), ("NEW", new)):
        if m.status != "ok":
            return f"status {m.status} in {side}"
    for side, m in (("BASE", base), ("NEW", new)):
        if not m.rounds:
            return f"no raw samples in {side}"
    for side, m in (("BASE", base), ("NEW", new)):
        problem = times_problem(m.rounds) or (m.process_medians and times_problem(m.process_medians,
                                                                                 "process medians"))
        if problem:
            pair.ratio = None
            return f"{side}: {problem}"
    return ""


def _one_sided(test) -> float:
    """The p-value of ``test()`` (a scipy.stats test, one-sided in the direction of the ratio); 1.0
    where the test gives no number (identical samples: no evidence)."""
    with warnings.catch_warnings():  # nearly identical samples: scipy warns of precision, the p stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = test().pvalue
    return float(p) if np.isfinite(p) else 1.0


def _units_differ(label: str, key: tuple, base: Measurement, new: Measurement, threshold: float) -> Pair | None:
    """A *not comparable* verdict where one side is a time and the other a count, else None."""
    if base.unit == new.unit:
        return None
    return Pair(label, key, finite(base.median), finite(new.median), None, None, threshold, "not comparable",
                f"BASE measures {base.unit}, NEW {new.unit}: a time is no baseline for a count", new.unit)


def judge_counts(label: str, key: tuple, base: Measurement, new: Measurement, threshold: float,
                 tolerance: float | None = COUNT_TOLERANCE) -> Pair:
    """The verdict on two instruction counts of one benchmark (see the module docstring); with
    ``tolerance`` None the processes' agreement is not checked (history pools several runs into a
    side, which may differ by less than the threshold)."""
    pair = Pair(label, key, finite(base.median), finite(new.median), None, None, threshold, "not comparable",
                unit="instructions")
    for side, m in (("BASE", base), ("NEW", new)):
        if m.status != "ok":
            pair.why = f"status {m.status} in {side}"
            return pair
        if not m.rounds:
            pair.why = f"no raw samples in {side}"
            return pair
        medians = np.asarray(m.process_medians or [m.median], float)
        if not (np.all(np.isfinite(medians)) and medians.min() > 0):
            pair.why = f"{side}: a count that is not a positive finite number"
            return pair
        if tolerance is not None and m.spread is not None and m.spread > tolerance:
            pair.why = (f"{side}: its {len(medians)} processes disagree by {m.spread:.2%} (tolerance "
                        f"{tolerance:.1%}): the count does not repeat here")
            return pair
    pair.ratio = pair.new / pair.base
    if pair.ratio > threshold:
        pair.verdict = "regression"
    elif pair.ratio < 1 / threshold:
        pair.verdict = "improvement"
    else:
        pair.verdict = "unchanged"
    return pair


def judge(label: str, key: tuple, base: Measurement, new: Measurement, threshold: float, alpha: float) -> Pair:
    """The verdict on two independent measurements of one benchmark (see the module docstring)."""
    from scipy.stats import mannwhitneyu, ttest_ind

    differ = _units_differ(label, key, base, new, threshold)
    if differ or base.unit == "instructions":
        return differ or judge_counts(label, key, base, new, threshold)
    pair = Pair(label, key, finite(base.median), finite(new.median), None, None, threshold, "not comparable")
    if base.status == new.status == "ok" and pair.base and pair.new and pair.base > 0 and pair.new > 0:
        pair.ratio = pair.new / pair.base
    pair.why = _untestable(pair, base, new)
    if pair.why:
        return pair
    if base.process_medians and new.process_medians:
        if min(len(base.process_medians), len(new.process_medians)) < 2:
            # rounds of one process are not replicates: its level is shared by all of them
            pair.why = (f"{len(base.process_medians)} vs {len(new.process_medians)} worker processes; "
                        "at least 2 a side are needed")
            return pair
        b, n = np.log(base.process_medians), np.log(new.process_medians)
        pair.ratio = float(np.median(new.process_medians) / np.median(base.process_medians))
        direction = "greater" if pair.ratio >= 1 else "less"
        pair.p_value = _one_sided(lambda: ttest_ind(n, b, equal_var=False, alternative=direction))
        return verdict(pair, alpha)
    n1, n2 = len(new.rounds), len(base.rounds)
    if min_p_value(n1, n2) > alpha:
        pair.why = f"too few rounds ({n2} vs {n1}) for alpha={alpha:g}"
        return pair
    pair.ratio = float(np.median(new.rounds) / np.median(base.rounds))
    direction = "greater" if pair.ratio >= 1 else "less"
    pair.p_value = _one_sided(lambda: mannwhitneyu(new.rounds, base.rounds, alternative=direction))
    return verdict(pair, alpha)


def judge_paired(label: str, key: tuple, base: Measurement, new: Measurement, threshold: float,
                 alpha: float) -> Pair:
    """The verdict on one benchmark of an A/B run from its paired process medians: process k of
    ``base`` and of ``new`` ran side by side.  The ratio is the geometric mean of the paired
    ratios; p is a one-sided one-sample t-test of their logs against 0 (the paired t-test on log
    times); fewer than 2 pairs is not comparable."""
    from scipy.stats import ttest_1samp

    differ = _units_differ(label, key, base, new, threshold)
    if differ or base.unit == "instructions":  # counts: pairing adds nothing to a count that repeats
        return differ or judge_counts(label, key, base, new, threshold)
    pair = Pair(label, key, finite(base.median), finite(new.median), None, None, threshold, "not comparable")
    for side, m in (("BASE", base), ("NEW", new)):
        if m.status != "ok":
            pair.why = f"status {m.status} in {side}"
            return pair
    b, n = np.asarray(base.process_medians, float), np.asarray(new.process_medians, float)
    if len(b) != len(n):
        pair.why = f"{len(b)} BASE processes against {len(n)} NEW: not paired"
        return pair
    if len(b) < 2:
        pair.why = f"{len(b)} paired processes; at least 2 are needed"
        return pair
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(n)) and b.min() > 0 and n.min() > 0):
        pair.why = "a process median that is not a positive finite time"
        return pair
    logs = np.log(n / b)
    pair.ratio = float(np.exp(logs.mean()))
    if np.ptp(logs) == 0:  # every pair agrees exactly: certain, whichever way
        pair.p_value = 0.0 if logs[0] != 0 else 1.0
    else:
        direction = "greater" if pair.ratio >= 1 else "less"
        pair.p_value = _one_sided(lambda: ttest_1samp(logs, 0.0, alternative=direction))
    return verdict(pair, alpha)
