"""How values read on the pages: times in ns/µs/ms/s, instruction counts as plain integers, factors
as ``1.50×``, commits by their first 7 characters, timestamps to the minute."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

#: Time units from the largest down: ``(symbol, seconds per unit)``.
TIME_UNITS = (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9))
#: The words that name what a unit measures, for axis titles and column heads.
MEASURES = {"s": "time per call", "instructions": "instructions per call"}


@dataclass(frozen=True)
class DisplayUnit:
    """A unit to show values in: ``shown = value / per_unit``; ``symbol`` is empty for plain counts."""
    symbol: str
    per_unit: float

    def title(self, unit: str) -> str:
        """The axis title, e.g. ``median time per call (µs)``."""
        return f"{MEASURES[unit]} ({self.symbol})" if self.symbol else MEASURES[unit]


def display_unit(values, unit: str) -> DisplayUnit:
    """The unit that shows ``values`` (in ``unit``, ``"s"`` or ``"instructions"``) with the fewest
    leading zeros: the largest time unit not above their median magnitude; counts stay counts."""
    if unit != "s":
        return DisplayUnit("", 1.0)
    finite = sorted(abs(v) for v in values if v is not None and math.isfinite(v) and v != 0)
    typical = finite[len(finite) // 2] if finite else 1.0
    return next((DisplayUnit(sym, per) for sym, per in TIME_UNITS if typical >= per), DisplayUnit(*TIME_UNITS[-1]))


def format_value(value: float | None, unit: str) -> str:
    """``value`` in ``unit`` for reading: ``123 µs``, ``1.20 ms``, ``2.50 s`` (3 significant digits in
    the unit that suits it), ``1,234,567`` instructions; an em dash for None."""
    if value is None:
        return "—"
    if unit != "s":
        return f"{value:,.0f}"
    shown = display_unit([value], unit)
    return f"{_significant(value / shown.per_unit)} {shown.symbol}"


def _significant(x: float, digits: int = 3) -> str:
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(x))))
    return f"{x:.{decimals}f}"


def format_factor(factor: float | None) -> str:
    """A ratio as ``1.50×`` (two decimals), or an em dash."""
    return "—" if factor is None else f"{factor:.2f}×"


def format_p(p: float | None) -> str:
    """A p-value as ``0.0012`` or ``<1e-06``."""
    if p is None:
        return "—"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.0e}"


def short_commit(commit: str) -> str:
    """The first 7 characters of a commit hash (all of a shorter one)."""
    return commit[:7]


def format_time(timestamp: str) -> str:
    """An ISO timestamp as ``2026-11-30 09:37 UTC``; a timestamp that does not parse is shown as given."""
    try:
        t = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return timestamp
    if t.tzinfo is None:
        return t.strftime("%Y-%m-%d %H:%M")
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def run_labels(runs) -> dict[str, str]:
    """``{run name: its x-axis label}``: the short commit, ``+`` when the tree was dirty, and ``#2``,
    ``#3``... on later runs of a commit already labelled, so every run has its own place."""
    labels, seen = {}, {}
    for run in runs:
        base = short_commit(run.commit) + ("+" if run.dirty else "")
        seen[base] = seen.get(base, 0) + 1
        labels[run.name] = base if seen[base] == 1 else f"{base} #{seen[base]}"
    return labels
