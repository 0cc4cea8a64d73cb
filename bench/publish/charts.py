"""The charts, as Vega-Lite specifications built with Altair and rendered in the page by vega-embed
(SVG, so each drawn mark is an element of the page).

A chart travels to its page as one JSON value, ``{"specs": {name: spec}, "initial": name, "data":
{dataset: rows}}``: the specs name their data (``alt.NamedData``) and hold none, so a page carries
its data once however many variants (linear and log axis) it offers; ``assets/site.js`` embeds
``specs[initial]`` with ``data`` as its top-level ``datasets``.
"""

from __future__ import annotations

import functools

import altair as alt

from .fmt import DisplayUnit, display_unit, format_time, format_value, run_labels
from .model import ABReport, Benchmark, Run

#: Fixed colours for verdicts; any other verdict is grey.
VERDICT_COLOURS = {"regression": "#d62728", "improvement": "#2ca02c"}
OTHER_VERDICT = "#8c8c8c"
#: Tableau-10, so a backend keeps its colour on every page of a machine.
PALETTE = ("#4c78a8", "#f58518", "#e45756", "#72b7b2", "#54a24b", "#eeca3b", "#b279a2", "#ff9da6", "#9d755d", "#bab0ac")
HISTORY_HEIGHT = 340
AB_ROW_HEIGHT = 18


def history_chart(benchmarks: tuple[Benchmark, ...], runs: tuple[Run, ...], backends: list[str]) -> dict:
    """The values over commits of one page's benchmarks: x every saved run of the machine in order
    (labelled by commit; a run that did not time them stays empty), y the value in a readable unit, one colour per backend, the backends side by side
    within a run; every process median a point and the run's median a line with a tick at each run.

    ``backends`` is every backend of the site, sorted: a backend's colour is its place in it, so
    colours agree between pages while each legend names only the page's backends.
    Returns the chart value (module docstring) with specs ``linear`` and ``log``.
    """
    labels = run_labels(runs)
    unit = benchmarks[0].unit
    shown = display_unit([v for b in benchmarks for p in b.points for v in p.process_medians], unit)
    medians, processes = [], []
    for b in benchmarks:
        for p in b.points:
            row = {"run": p.run, "label": labels[p.run], "backend": b.backend,
                   "commit": p.commit, "time": format_time(p.timestamp)}
            medians.append({**row, "value": p.median / shown.per_unit, "text": format_value(p.median, unit)})
            processes.extend({**row, "process": k + 1, "value": v / shown.per_unit, "text": format_value(v, unit)}
                             for k, v in enumerate(p.process_medians))
    drawn = tuple(name for name in backends if any(b.backend == name for b in benchmarks))
    colours = tuple(PALETTE[backends.index(name) % len(PALETTE)] for name in drawn)
    axis = tuple(labels[r.name] for r in runs)
    return {"specs": {scale: _history_spec(shown, unit, axis, drawn, colours, scale) for scale in ("linear", "log")},
            "initial": "linear", "data": {"median": medians, "process": processes}}


@functools.lru_cache(maxsize=512)
def _history_spec(shown: DisplayUnit, unit: str, runs: tuple, backends: tuple, colours: tuple, scale: str) -> dict:
    """The spec, which holds no data: built (and checked against the Vega-Lite schema by Altair,
    tens of milliseconds) once per unit, machine, set of backends and scale, and shared read-only."""
    x = alt.X("label:O", scale=alt.Scale(domain=list(runs)), sort=None, title="saved run (commit, oldest first)",
              axis=alt.Axis(labelAngle=-35, labelLimit=120))
    # a log axis rounded out to whole decades squeezes the data into a corner: only linear is niced
    y_scale = alt.Scale(type=scale, zero=False, nice=scale == "linear", padding=8)
    y_axis = alt.Axis(format=",.4~g" if shown.symbol else ",d", grid=True)
    colour = alt.Color("backend:N", scale=alt.Scale(domain=list(backends), range=list(colours)), legend=alt.Legend(title="backend", orient="top"))
    tooltip = [alt.Tooltip("backend:N"), alt.Tooltip("label:N", title="commit"), alt.Tooltip("run:N"),
               alt.Tooltip("time:N", title="saved")]
    line = alt.Chart(alt.NamedData("median")).mark_line(strokeWidth=2, opacity=0.8).encode(
        x=x, xOffset="backend:N", y=alt.Y("value:Q", scale=y_scale, axis=y_axis, title=f"median {shown.title(unit)}"),
        color=colour, detail="backend:N")
    tick = alt.Chart(alt.NamedData("median")).mark_tick(thickness=2, size=14, opacity=0.9).encode(
        x=x, xOffset="backend:N", y=alt.Y("value:Q", scale=y_scale), color=colour,
        tooltip=[*tooltip, alt.Tooltip("text:N", title="run median")])
    points = alt.Chart(alt.NamedData("process")).mark_circle(size=36, opacity=0.75, stroke="white", strokeWidth=0.5).encode(
        x=x, xOffset="backend:N", y=alt.Y("value:Q", scale=y_scale), color=colour,
        tooltip=[*tooltip, alt.Tooltip("process:Q", title="process"), alt.Tooltip("text:N", title="process median")])
    return (alt.layer(line, tick, points)
            .properties(width="container", height=HISTORY_HEIGHT)
            .configure_view(stroke="#ddd").configure_axis(labelFontSize=11, titleFontSize=12)
            .to_dict())


def ab_chart(report: ABReport) -> dict:
    """An A/B report's paired ratios (new / base, one point per pair of processes) per benchmark on
    a log axis, coloured by the benchmark's verdict, with rules at 1 and at the threshold both ways.
    Returns the chart value (module docstring) with the one spec ``log``."""
    order = [r.benchmark for r in sorted(report.rows, key=lambda r: (r.ratio is None, -(r.ratio or 0)))]
    pairs = [{"benchmark": r.benchmark, "ratio": q, "verdict": r.verdict, "pair": k + 1}
             for r in report.rows for k, q in enumerate(r.paired_ratios) if q > 0]
    medians = [{"benchmark": r.benchmark, "ratio": r.ratio, "verdict": r.verdict} for r in report.rows
               if r.ratio is not None and r.ratio > 0]
    rules = [{"at": 1.0, "what": "no change"}] + (
        [{"at": report.threshold, "what": "threshold"}, {"at": 1 / report.threshold, "what": "threshold"}]
        if report.threshold else [])
    verdicts = sorted({r.verdict for r in report.rows})
    colour = alt.Color("verdict:N", legend=alt.Legend(orient="top"), scale=alt.Scale(
        domain=verdicts, range=[VERDICT_COLOURS.get(v, OTHER_VERDICT) for v in verdicts]))
    x = alt.X("ratio:Q", scale=alt.Scale(type="log", zero=False, nice=False), title="new / base (log scale)",
              axis=alt.Axis(format=".3~f"))
    y = alt.Y("benchmark:N", sort=order, title=None, axis=alt.Axis(labelLimit=320))
    rule = alt.Chart(alt.NamedData("rules")).mark_rule(strokeDash=[4, 3], color="#888").encode(
        x=alt.X("at:Q", scale=alt.Scale(type="log")), tooltip=["what:N", "at:Q"])
    tick = alt.Chart(alt.NamedData("medians")).mark_tick(thickness=2, color="#333", size=14).encode(
        x=x, y=y, tooltip=["benchmark:N", alt.Tooltip("ratio:Q", format=".3f", title="median ratio")])
    points = alt.Chart(alt.NamedData("pairs")).mark_circle(size=40, opacity=0.8).encode(
        x=x, y=y, color=colour,
        tooltip=["benchmark:N", "verdict:N", "pair:Q", alt.Tooltip("ratio:Q", format=".3f", title="paired ratio")])
    spec = (alt.layer(rule, tick, points)
            .properties(width="container", height=max(80, AB_ROW_HEIGHT * len(order)))
            .configure_view(stroke="#ddd").to_dict())
    return {"specs": {"log": spec}, "initial": "log", "data": {"pairs": pairs, "medians": medians, "rules": rules}}
