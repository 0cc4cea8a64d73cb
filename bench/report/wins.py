"""Who wins where: per pass, how often each backend was fastest, and each backend's geometric mean
of its time over the fastest's, on the cases where every backend of the pass was timed.

:func:`wins` is the run summary ``bench run`` and ``pytest --benchmark-only`` print after the
table; :func:`regime_tables` cuts the same figures by regime (batch, hidden size, sequence
length) for the docs (``bench report``) and the dashboard.
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from ..results.schema import number

#: The regimes of the ``default`` grid where different things decide the time (docs/speed.md):
#: a name, and which rows fall in it.
REGIMES = [
    ("B = 1, H ≤ 64, T ≥ 100", lambda b, h, t: b == 1 and h <= 64 and t >= 100),
    ("B = 1, H ≥ 256, T ≥ 100", lambda b, h, t: b == 1 and h >= 256 and t >= 100),
    ("B > 1, H ≤ 64, T ≥ 100", lambda b, h, t: b > 1 and h <= 64 and t >= 100),
    ("B > 1, H ≥ 256, T ≥ 100", lambda b, h, t: b > 1 and h >= 256 and t >= 100),
    ("T ≤ 10", lambda b, h, t: t <= 10),
]


@dataclasses.dataclass
class Wins:
    """One pass's standing: ``cases`` compared (every backend timed), ``fastest`` {backend: cases
    it was fastest in}, ``geomean`` {backend: geometric mean of its time / the fastest's}."""

    pass_: str
    backends: list
    cases: int
    fastest: Counter
    geomean: dict


def _times(rows: list[dict], column: str) -> dict:
    """``{pass: {case_id: {backend: value}}}`` of the timed rows."""
    out: dict = {}
    for r in rows:
        value = number(r.get(column))
        if r.get("status") == "ok" and value is not None and value > 0:
            out.setdefault(r.get("pass") or "forward", {}).setdefault(r["case_id"], {})[r["backend"]] = value
    return out


def standing(pass_: str, by_case: dict) -> Wins | None:
    """The :class:`Wins` of ``by_case`` ({case_id: {backend: time}}): the backends timed in any case,
    the cases where all of them were; None with fewer than two backends or no common case."""
    backends = list(dict.fromkeys(b for times in by_case.values() for b in times))
    common = [times for times in by_case.values() if len(times) == len(backends)]
    if len(backends) < 2 or not common:
        return None
    fastest = Counter(min(times, key=times.get) for times in common)
    geomean = {b: float(np.exp(np.mean([np.log(times[b] / min(times.values())) for times in common])))
               for b in backends}
    return Wins(pass_, backends, len(common), fastest, geomean)


def wins(rows: list[dict], column: str = "median_s") -> list[Wins]:
    """Per pass of ``rows`` (a run's), its :class:`Wins`."""
    return [w for p, by_case in _times(rows, column).items() if (w := standing(p, by_case)) is not None]


def wins_lines(rows: list[dict]) -> list[str]:
    """The run summary in words: per pass, who was fastest how often, and each backend's geometric
    mean against the fastest (1.00 = always fastest)."""
    lines = []
    for w in wins(rows):
        count = ", ".join(f"{b} {n}" for b, n in w.fastest.most_common())
        means = ", ".join(f"{b} {g:.2f}" for b, g in sorted(w.geomean.items(), key=lambda kv: kv[1]))
        lines.append(f"{w.pass_}: fastest in {count} of {w.cases} cases where all were timed; "
                     f"time over the fastest's, geometric mean: {means}")
    return lines


def regime_tables(rows: list[dict], column: str = "per_step_s") -> list[dict]:
    """Per pass, a table of the regimes of :data:`REGIMES` that ``rows`` hold: ``{"title", "columns",
    "rows"}``, each row the regime, its cases, the fastest backends with their counts, and each
    backend's geometric mean against the fastest."""
    tables = []
    for pass_, by_case in _times(rows, column).items():
        sizes = {r["case_id"]: (int(r["batch"]), int(r["hidden_size"]), int(r["timesteps"])) for r in rows
                 if (r.get("pass") or "forward") == pass_}
        backends = list(dict.fromkeys(b for times in by_case.values() for b in times))
        body = []
        for name, member in REGIMES:
            w = standing(pass_, {c: t for c, t in by_case.items() if member(*sizes[c])})
            if w is None:
                continue
            fastest = ", ".join(f"{b} ({n})" for b, n in w.fastest.most_common())
            body.append([name, str(w.cases), fastest, *(f"{w.geomean[b]:.2f}" if b in w.geomean else "–"
                                                        for b in backends)])
        if body:
            tables.append({"title": pass_, "columns": ["regime", "cases", "fastest (count)", *backends], "rows": body})
    return tables
