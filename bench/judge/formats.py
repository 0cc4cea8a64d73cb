"""A comparison as text: a table (rich), CSV, JSON (strict: every number finite or null) or markdown,
with the summary lines (counts, geometric means, what only one side has, warnings)."""

from __future__ import annotations

import csv
import io
import json

from .compare import Comparison
from .stats import VERDICTS, finite

FIELDS = ["benchmark", "base_median_s", "new_median_s", "ratio", "p_value", "threshold", "verdict", "why"]


def records(c: Comparison) -> list[dict]:
    """One dict of :data:`FIELDS` per pair; a number that is missing or not finite is None."""
    return [dict(zip(FIELDS, (p.label, finite(p.base), finite(p.new), finite(p.ratio), finite(p.p_value),
                              p.threshold, p.verdict, p.why)))
            for p in c.pairs]


def summary(c: Comparison) -> dict:
    backends = list(dict.fromkeys(p.key[0] for p in c.pairs if p.key[0] != "name"))
    return {
        "counts": {v: sum(p.verdict == v for p in c.pairs) for v in VERDICTS},
        "geomean_ratio": c.geomean(),
        "geomean_ratio_by_backend": {b: c.geomean(b) for b in backends},
        "only_in_base": c.only_base,
        "only_in_new": c.only_new,
        "warnings": c.warnings,
        "alpha": c.alpha,
    }


def _fmt(x, spec=".3g"):
    return "" if x is None else format(x, spec)


def _summary_lines(c: Comparison, most: int = 20) -> list[str]:
    s = summary(c)
    counts = ", ".join(f"{n} {v}" for v, n in s["counts"].items())
    per_backend = ", ".join(f"{b} {_fmt(g, '.4f') or 'n/a'}" for b, g in s["geomean_ratio_by_backend"].items())
    lines = [f"{len(c.pairs)} benchmarks compared: {counts}",
             f"geometric mean ratio NEW/BASE: {_fmt(s['geomean_ratio'], '.4f') or 'n/a'} (per backend: {per_backend})"]
    for name, rows in (("only in BASE", c.only_base), ("only in NEW", c.only_new)):
        if rows:
            more = f" ... and {len(rows) - most} more" if len(rows) > most else ""
            lines.append(f"{name} ({len(rows)}): " + ", ".join(rows[:most]) + more)
    lines += [f"warning: {w}" for w in c.warnings]
    return lines


def format_comparison(c: Comparison, fmt: str = "table") -> str:
    """The comparison as ``table`` (text), ``csv``, ``json`` or ``markdown``."""
    recs = records(c)
    if fmt == "json":
        doc = {"base": str(c.base.path), "new": str(c.new.path), "rows": recs, "summary": summary(c)}
        return json.dumps(doc, indent=2, allow_nan=False)  # strict JSON: every number is finite or null
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(recs)
        return buf.getvalue()
    cells = [[r["benchmark"], _fmt(r["base_median_s"]), _fmt(r["new_median_s"]), _fmt(r["ratio"], ".3f"),
              _fmt(r["p_value"], ".2g"), r["verdict"] + (f" ({r['why']})" if r["why"] else "")] for r in recs]
    header = ["benchmark", "BASE median s", "NEW median s", "NEW/BASE", "p", "verdict"]
    if fmt == "markdown":
        out = ["| " + " | ".join(header) + " |", "|---|---:|---:|---:|---:|---|"]
        out += ["| " + " | ".join(row) + " |" for row in cells]
        return "\n".join(out + [""] + [f"- {line}" for line in _summary_lines(c)]) + "\n"
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"BASE {c.base.path}  vs  NEW {c.new.path} (worst first)", title_justify="left")
    for i, h in enumerate(header):
        table.add_column(h, justify="right" if 0 < i < 5 else "left")
    for row in cells:
        table.add_row(*row)
    buf = io.StringIO()
    Console(file=buf, width=200, color_system=None, highlight=False).print(table)
    return buf.getvalue() + "\n".join(_summary_lines(c)) + "\n"
