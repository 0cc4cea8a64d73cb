"""The site model: reads the plain JSON-like ``site`` dict (described in :mod:`bench.publish`) into
frozen values, checking every field once so that the pages can trust what they render.

A bad model raises :class:`SiteError` naming the field, e.g.
``machines[0].benchmarks[3].points[1].run: 'x' is not one of the machine's runs``.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass

#: Names used as file or folder names in the site (machine ids, benchmark pages, A/B reports).
SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
#: The units a benchmark's values may have: seconds per call, or instructions per call.
UNITS = ("s", "instructions")
#: The benchmark fields the list filters on, in the order of the filter bar.
FILTER_FIELDS = ("mode", "pass", "backend", "hidden_size", "batch", "timesteps", "dtype", "threads", "measure")


class SiteError(ValueError):
    """The site model is malformed; the message names the field (``machines[0].runs[2].name``)."""


@dataclass(frozen=True)
class Run:
    """One saved run of a machine."""
    name: str
    commit: str
    dirty: bool
    timestamp: str


@dataclass(frozen=True)
class Point:
    """A benchmark's value in one run: the run's median and each worker process's median (unit of the
    benchmark)."""
    run: str
    commit: str
    timestamp: str
    median: float
    process_medians: tuple[float, ...]


@dataclass(frozen=True)
class Step:
    """A step change that history found in a benchmark's series: ``factor`` is ``after / before``."""
    benchmark: str
    label: str
    factor: float
    verdict: str
    before: float
    after: float
    run_before: str
    run_after: str
    commit_before: str
    commit_after: str


@dataclass(frozen=True)
class Benchmark:
    """One backend on one case, pass, thread count and measure, with its values over the saved runs."""
    id: str
    page: str
    label: str
    page_label: str
    fields: dict
    unit: str
    points: tuple[Point, ...]
    latest: float | None
    in_latest: bool
    step: Step | None

    @property
    def backend(self) -> str:
        return str(self.fields.get("backend", ""))


@dataclass(frozen=True)
class ABRow:
    """One benchmark of an A/B comparison: medians of base and new, their ratio and its verdict."""
    benchmark: str
    base_median: float | None
    new_median: float | None
    ratio: float | None
    p_value: float | None
    verdict: str
    why: str
    paired_ratios: tuple[float, ...]
    unit: str


@dataclass(frozen=True)
class ABReport:
    """One kept ``bench ab`` run."""
    name: str
    base: str
    new: str
    base_commit: str
    new_commit: str
    timestamp: str
    threshold: float | None
    alpha: float | None
    rows: tuple[ABRow, ...]


@dataclass(frozen=True)
class Table:
    """A table computed by the caller (who wins where): a title, a note, column names, rows of cells."""
    title: str
    note: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Machine:
    """Everything published about one machine."""
    machine_id: str
    cpu_model: str
    runs: tuple[Run, ...]
    benchmarks: tuple[Benchmark, ...]
    steps: tuple[Step, ...]
    ab_reports: tuple[ABReport, ...]
    who_wins: tuple[Table, ...]

    @property
    def latest_run(self) -> Run | None:
        return self.runs[-1] if self.runs else None

    def pages(self) -> dict[str, tuple[Benchmark, ...]]:
        """``{page: its benchmarks}`` in the order the benchmarks were given."""
        grouped: dict[str, list[Benchmark]] = {}
        for b in self.benchmarks:
            grouped.setdefault(b.page, []).append(b)
        return {page: tuple(bs) for page, bs in grouped.items()}


@dataclass(frozen=True)
class Site:
    """The whole dashboard's input."""
    title: str
    generated: str
    machines: tuple[Machine, ...]


# --- readers: each takes the raw value and its path, and returns a checked value ---------------------

def _fail(path: str, message: str):
    raise SiteError(f"{path}: {message}")


def _get(d: dict, key: str, path: str, optional: bool = False, default=None):
    if not isinstance(d, dict):
        _fail(path, f"expected an object, got {type(d).__name__}")
    if key not in d:
        if optional:
            return default
        _fail(f"{path}.{key}", "missing")
    return d[key]


def _str(value, path: str) -> str:
    if not isinstance(value, str):
        _fail(path, f"expected a string, got {value!r}")
    return value


def _slug(value, path: str) -> str:
    if not SLUG.match(_str(value, path)):
        _fail(path, f"{value!r} is not usable as a file name (letters, digits, '.', '_', '-')")
    return value


def _number(value, path: str, nullable: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(path, f"expected a finite number{' or null' if nullable else ''}, got {value!r}")
    return float(value)


def _bool(value, path: str) -> bool:
    if not isinstance(value, bool):
        _fail(path, f"expected true or false, got {value!r}")
    return value


def _list(value, path: str) -> list:
    if not isinstance(value, (list, tuple)):
        _fail(path, f"expected a list, got {type(value).__name__}")
    return list(value)


def _numbers(value, path: str) -> tuple[float, ...]:
    return tuple(_number(v, f"{path}[{i}]") for i, v in enumerate(_list(value, path)))


def _run(d: dict, path: str) -> Run:
    return Run(name=_str(_get(d, "name", path), f"{path}.name"),
               commit=_str(_get(d, "commit", path), f"{path}.commit"),
               dirty=_bool(_get(d, "dirty", path, optional=True, default=False), f"{path}.dirty"),
               timestamp=_str(_get(d, "timestamp", path), f"{path}.timestamp"))


def _step(d: dict, path: str, benchmark: str | None = None, label: str | None = None) -> Step:
    """A step; inside a benchmark, ``benchmark`` and ``label`` are the benchmark's own."""
    text = {k: _str(_get(d, k, path), f"{path}.{k}")
            for k in ("verdict", "run_before", "run_after", "commit_before", "commit_after")}
    return Step(benchmark=benchmark if benchmark is not None else _str(_get(d, "benchmark", path), f"{path}.benchmark"),
                label=label if label is not None else _str(_get(d, "label", path, optional=True, default=""), f"{path}.label"),
                factor=_number(_get(d, "factor", path), f"{path}.factor"),
                before=_number(_get(d, "before", path), f"{path}.before"),
                after=_number(_get(d, "after", path), f"{path}.after"), **text)


def _point(d: dict, path: str, runs: dict[str, Run]) -> Point:
    run = _str(_get(d, "run", path), f"{path}.run")
    if run not in runs:
        _fail(f"{path}.run", f"{run!r} is not one of the machine's runs")
    return Point(run=run,
                 commit=_str(_get(d, "commit", path, optional=True, default=runs[run].commit), f"{path}.commit"),
                 timestamp=_str(_get(d, "timestamp", path, optional=True, default=runs[run].timestamp), f"{path}.timestamp"),
                 median=_number(_get(d, "median", path), f"{path}.median"),
                 process_medians=_numbers(_get(d, "process_medians", path), f"{path}.process_medians"))


def default_page_label(fields: dict) -> str:
    """A page's title from its benchmarks' fields, e.g. ``lstm T=100 B=1 H=256 float32, forward, 1 thread, time``."""
    case = " ".join(str(part) for part in (
        fields.get("mode"), *(f"{k}={fields[f]}" for k, f in (("T", "timesteps"), ("B", "batch"), ("H", "hidden_size"))
                              if f in fields), fields.get("dtype")) if part is not None)
    threads = fields.get("threads")
    rest = [fields.get("pass"), None if threads is None else f"{threads} thread{'' if threads == 1 else 's'}",
            fields.get("measure")]
    return ", ".join([case, *(str(r) for r in rest if r is not None)])


def _benchmark(d: dict, path: str, runs: dict[str, Run]) -> Benchmark:
    bid = _slug(_get(d, "id", path), f"{path}.id")
    label = _str(_get(d, "label", path), f"{path}.label")
    fields = _get(d, "fields", path)
    if not isinstance(fields, dict):
        _fail(f"{path}.fields", "expected an object")
    for key in FILTER_FIELDS[:6]:
        if key not in fields:
            _fail(f"{path}.fields.{key}", "missing")
    unit = _str(_get(d, "unit", path), f"{path}.unit")
    if unit not in UNITS:
        _fail(f"{path}.unit", f"{unit!r} is not one of {', '.join(UNITS)}")
    order = {name: i for i, name in enumerate(runs)}
    points = [_point(p, f"{path}.points[{i}]", runs) for i, p in enumerate(_list(_get(d, "points", path), f"{path}.points"))]
    if len({p.run for p in points}) != len(points):
        _fail(f"{path}.points", "a run appears twice")
    step = _get(d, "step", path, optional=True)
    return Benchmark(
        id=bid, page=_slug(_get(d, "page", path), f"{path}.page"), label=label,
        page_label=_str(_get(d, "page_label", path, optional=True, default=None) or default_page_label(fields),
                        f"{path}.page_label"),
        fields=dict(fields), unit=unit,
        points=tuple(sorted(points, key=lambda p: order[p.run])),
        latest=_number(_get(d, "latest", path, optional=True), f"{path}.latest", nullable=True),
        in_latest=_bool(_get(d, "in_latest", path), f"{path}.in_latest"),
        step=None if step is None else _step(step, f"{path}.step", benchmark=bid, label=label))


def _ab_row(d: dict, path: str) -> ABRow:
    return ABRow(
        benchmark=_str(_get(d, "benchmark", path), f"{path}.benchmark"),
        **{k: _number(_get(d, k, path, optional=True), f"{path}.{k}", nullable=True)
           for k in ("base_median", "new_median", "ratio", "p_value")},
        verdict=_str(_get(d, "verdict", path), f"{path}.verdict"),
        why=_str(_get(d, "why", path, optional=True, default="") or "", f"{path}.why"),
        paired_ratios=_numbers(_get(d, "paired_ratios", path, optional=True, default=[]), f"{path}.paired_ratios"),
        unit=_str(_get(d, "unit", path, optional=True, default="s"), f"{path}.unit"))


def _ab_report(d: dict, path: str) -> ABReport:
    return ABReport(
        name=_slug(_get(d, "name", path), f"{path}.name"),
        **{k: _str(_get(d, k, path, optional=True, default=""), f"{path}.{k}")
           for k in ("base", "new", "base_commit", "new_commit", "timestamp")},
        threshold=_number(_get(d, "threshold", path, optional=True), f"{path}.threshold", nullable=True),
        alpha=_number(_get(d, "alpha", path, optional=True), f"{path}.alpha", nullable=True),
        rows=tuple(_ab_row(r, f"{path}.rows[{i}]") for i, r in enumerate(_list(_get(d, "rows", path), f"{path}.rows"))))


def _table(d: dict, path: str) -> Table:
    columns = tuple(_str(c, f"{path}.columns[{i}]") for i, c in enumerate(_list(_get(d, "columns", path), f"{path}.columns")))
    rows = []
    for i, row in enumerate(_list(_get(d, "rows", path), f"{path}.rows")):
        cells = _list(row, f"{path}.rows[{i}]")
        if len(cells) != len(columns):
            _fail(f"{path}.rows[{i}]", f"{len(cells)} cells for {len(columns)} columns")
        rows.append(tuple("" if c is None else str(c) for c in cells))
    return Table(title=_str(_get(d, "title", path), f"{path}.title"),
                 note=_str(_get(d, "note", path, optional=True, default="") or "", f"{path}.note"),
                 columns=columns, rows=tuple(rows))


def _unique(values, path: str, what: str) -> None:
    seen = set()
    for v in values:
        if v in seen:
            _fail(path, f"{what} {v!r} appears twice")
        seen.add(v)


def _machine(d: dict, path: str) -> Machine:
    runs = [_run(r, f"{path}.runs[{i}]") for i, r in enumerate(_list(_get(d, "runs", path), f"{path}.runs"))]
    _unique([r.name for r in runs], f"{path}.runs", "run")
    by_name = {r.name: r for r in runs}
    benchmarks = [_benchmark(b, f"{path}.benchmarks[{i}]", by_name)
                  for i, b in enumerate(_list(_get(d, "benchmarks", path), f"{path}.benchmarks"))]
    _unique([b.id for b in benchmarks], f"{path}.benchmarks", "benchmark id")
    units = {}
    for i, b in enumerate(benchmarks):
        if units.setdefault(b.page, b.unit) != b.unit:
            _fail(f"{path}.benchmarks[{i}].unit", f"page {b.page!r} mixes units {units[b.page]!r} and {b.unit!r}")
    ids = {b.id: b for b in benchmarks}
    steps = [_step(s, f"{path}.steps[{i}]")
             for i, s in enumerate(_list(_get(d, "steps", path, optional=True, default=[]), f"{path}.steps"))]
    for i, s in enumerate(steps):
        if s.benchmark not in ids:
            _fail(f"{path}.steps[{i}].benchmark", f"{s.benchmark!r} is not one of the machine's benchmarks")
    reports = [_ab_report(r, f"{path}.ab_reports[{i}]")
               for i, r in enumerate(_list(_get(d, "ab_reports", path, optional=True, default=[]), f"{path}.ab_reports"))]
    _unique([r.name for r in reports], f"{path}.ab_reports", "A/B report")
    return Machine(
        machine_id=_slug(_get(d, "machine_id", path), f"{path}.machine_id"),
        cpu_model=_str(_get(d, "cpu_model", path, optional=True, default="") or "", f"{path}.cpu_model"),
        runs=tuple(runs), benchmarks=tuple(benchmarks),
        steps=tuple(s if s.label else dataclasses.replace(s, label=ids[s.benchmark].label) for s in steps),
        ab_reports=tuple(reports),
        who_wins=tuple(_table(t, f"{path}.who_wins[{i}]")
                       for i, t in enumerate(_list(_get(d, "who_wins", path, optional=True, default=[]), f"{path}.who_wins"))))


def read_site(site: dict) -> Site:
    """The checked :class:`Site` of the plain ``site`` dict; raises :class:`SiteError` naming the bad field."""
    machines = [_machine(m, f"machines[{i}]") for i, m in enumerate(_list(_get(site, "machines", "site"), "machines"))]
    _unique([m.machine_id for m in machines], "machines", "machine")
    return Site(title=_str(_get(site, "title", "site", optional=True, default="rnn-cell-bench results"), "title"),
                generated=_str(_get(site, "generated", "site", optional=True, default=""), "generated"),
                machines=tuple(machines))
