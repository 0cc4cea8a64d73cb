"""Result rows as a table: one line per case, backends side by side.

The best value of a line is marked ``*``; a timed row whose ``unstable`` column gives a reason
is marked ``~``, and the reasons are listed under the table.  A backend that was unavailable for
every case gets no column (the run's outcome lines say why it was not timed).
"""

from __future__ import annotations

import math
import sys

from ..results.schema import number


UNSTABLE_MARK = "~"


def shown(rows: list[dict]) -> list[dict]:
    """``rows`` without the backends that were unavailable for every one of their rows."""
    seen = {r["backend"] for r in rows if r.get("status") != "unavailable"}
    return [r for r in rows if r["backend"] in seen]


def pivot(rows: list[dict], column: str, scale: float, lower_is_better: bool = True):
    """``(backends, [(case_id, [cell text per backend])])``: ``column`` times ``scale``
    to 3 significant digits, a status word where the row is not ``ok``, ``*`` on the best and
    ``~`` on an unstable row (:data:`UNSTABLE_MARK`)."""
    rows = shown(rows)
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    unstable = {(r["case_id"], r["backend"]) for r in rows if r.get("status") == "ok" and r.get("unstable")}
    cases: dict[str, dict] = {}
    for r in rows:
        value = number(r.get(column))
        if value is None and r.get(column) not in (None, ""):  # a text column: shown as stored
            value = str(r[column])
        elif r.get("status") != "ok":
            value = str(r.get("status"))
        cases.setdefault(r["case_id"], {})[r["backend"]] = value
    lines = []
    for case_id, cells in cases.items():
        timed = {b: v for b, v in cells.items() if isinstance(v, float) and math.isfinite(v)}  # NaN is never best
        best = (min if lower_is_better else max)(timed, key=timed.get) if len(timed) > 1 else None
        texts = []
        for b in backends:
            v = cells.get(b, "")
            mark = ("*" if b == best else "") + (UNSTABLE_MARK if (case_id, b) in unstable else "")
            texts.append(f"{v * scale:.3g}{mark}" if isinstance(v, float) else v)
        lines.append((case_id, texts))
    return backends, lines


def markdown(rows: list[dict], column: str = "per_step_s", scale: float = 1e6, lower_is_better: bool = True) -> str:
    """The same table as :func:`render`, as GitHub markdown."""
    backends, lines = pivot(rows, column, scale, lower_is_better)
    out = ["| case | " + " | ".join(backends) + " |", "|---|" + "---:|" * len(backends)]
    out += ["| " + case_id + " | " + " | ".join(texts) + " |" for case_id, texts in lines]
    return "\n".join(out) + "\n"


def render(rows: list[dict], column: str = "per_step_s", scale: float = 1e6, title: str | None = None,
           lower_is_better: bool = True, file=None) -> None:
    """Print ``column`` of ``rows`` (times ``scale``) with one line per case and
    backends side by side, in order of first appearance.  A row whose status is
    not ``ok`` shows its status instead; the best value of a line is marked ``*``."""
    from rich.console import Console
    from rich.table import Table

    backends, lines = pivot(rows, column, scale, lower_is_better)
    table = Table(title=title or f"{column} x {scale:g} (* best)", title_justify="left")
    table.add_column("case")
    for b in backends:
        table.add_column(b, justify="right")
    for case_id, texts in lines:
        table.add_row(case_id, *texts)
    console = Console(file=file or sys.stdout, width=200, color_system=None, highlight=False)
    console.print(table)
    for line in unstable_notes(rows):
        console.print(line, soft_wrap=True, markup=False)


def unstable_notes(rows: list[dict]) -> list[str]:
    """Under a table: why its ``~`` cells are unstable, per kind of reason (processes disagree, the
    machine was busy) with how many cells and one example."""
    reasons: dict = {}
    for r in shown(rows):
        if r.get("status") == "ok" and r.get("unstable"):
            for reason in str(r["unstable"]).split("; "):
                kind = reason.split(":")[0].split(" during")[0]
                reasons.setdefault(kind, []).append(f"{r['case_id']} {r['backend']}: {reason}")
    return [f"{UNSTABLE_MARK} {len(found)} cells, {kind} (e.g. {found[0]})" for kind, found in reasons.items()]
