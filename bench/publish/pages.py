"""The HTML of each kind of page, from the checked model: one function per page, each returning the
page as a string. Templates live in ``templates/`` and are rendered by Jinja2 with autoescaping, so
every text from the model is escaped; chart data goes into ``<script type="application/json">``
through Jinja2's ``tojson``, which escapes ``<``, ``>``, ``&`` and ``'`` as well.

``root`` is the relative path from the page to the site's root (``""``, ``"../"``, ``"../../"``):
pages link to each other and to ``assets/`` relatively, so the folder opens from file:// anywhere.
"""

from __future__ import annotations

import functools
from collections import Counter

import jinja2

from . import charts
from .fmt import format_factor, format_p, format_time, format_value, short_commit
from .model import FILTER_FIELDS, ABReport, Benchmark, Machine, Site

#: Column heads of the fields, and which are numbers (sorted as such and right-aligned).
FIELD_TITLES = {"mode": "mode", "pass": "pass", "backend": "backend", "hidden_size": "H", "batch": "B",
                "timesteps": "T", "dtype": "dtype", "threads": "threads", "measure": "measure",
                "num_layers": "layers", "bidirectional": "bidirectional", "lengths": "lengths"}
NUMERIC_FIELDS = {"hidden_size", "batch", "timesteps", "threads", "num_layers"}
#: The columns of the benchmark list, after the benchmark's name.
LIST_COLUMNS = FILTER_FIELDS


def field_text(value) -> str:
    """A field's value as the list shows it and filters on it; absent is empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@functools.lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The Jinja2 environment: this package's templates, autoescaped, with the display filters."""
    env = jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True)
    env.filters.update(value=format_value, factor=format_factor, p=format_p, commit=short_commit,
                       when=format_time, field=field_text)
    return env


def _render(template: str, site: Site, root: str, title: str, machine: Machine | None = None,
            section: str = "", with_charts: bool = False, **context) -> str:
    return environment().get_template(template).render(
        site=site, root=root, title=title, machine=machine, section=section, with_charts=with_charts, **context)


def index_page(site: Site) -> str:
    """The site's front page: one card per machine."""
    return _render("index.html", site, "", "machines")


def _column(name: str, values=()) -> dict:
    ordered = sorted({field_text(v) for v in values if v is not None},
                     key=lambda v: (float(v), v) if name in NUMERIC_FIELDS else (0, v))
    return {"name": name, "title": FIELD_TITLES.get(name, name), "numeric": name in NUMERIC_FIELDS, "options": ordered}


def machine_page(site: Site, machine: Machine) -> str:
    """A machine's benchmark list: one row per benchmark, sortable, filterable by the fields; rows
    not timed in the latest run are flagged and hidden until asked for."""
    filters = [_column(f, [b.fields.get(f) for b in machine.benchmarks]) for f in FILTER_FIELDS]
    return _render("machine.html", site, "../", f"benchmarks on {machine.machine_id}", machine, "list",
                   filters=filters, columns=[_column(f) for f in LIST_COLUMNS], latest=machine.latest_run,
                   current=[b for b in machine.benchmarks if b.in_latest],
                   stale=[b for b in machine.benchmarks if not b.in_latest])


def benchmark_page(site: Site, machine: Machine, page: str, benchmarks: tuple[Benchmark, ...]) -> str:
    """One benchmark page: the backends of one case, pass, thread count and measure, their values
    over commits in one chart (linear or log axis) and a table per backend."""
    fields = benchmarks[0].fields
    facts = [(FIELD_TITLES.get(k, k), field_text(v)) for k, v in fields.items() if k != "backend"]
    backends = sorted({b.backend for m in site.machines for b in m.benchmarks})
    return _render("benchmark.html", site, "../../", benchmarks[0].page_label, machine, "list", with_charts=True,
                   page=page, facts=facts, benchmarks=benchmarks,
                   chart=charts.history_chart(benchmarks, machine.runs, backends))


def regressions_page(site: Site, machine: Machine) -> str:
    """The step changes history found, newest first, each linked to its benchmark's page."""
    return _render("regressions.html", site, "../", f"step changes on {machine.machine_id}", machine, "steps",
                   benchmarks={b.id: b for b in machine.benchmarks},
                   regressions=sum(s.verdict == "regression" for s in machine.steps))


def _verdicts(reports) -> list[str]:
    """The verdicts that occur, regressions and improvements first."""
    found = {r.verdict for report in reports for r in report.rows}
    return sorted(found, key=lambda v: (v not in ("regression", "improvement"), v != "regression", v))


def ab_index_page(site: Site, machine: Machine) -> str:
    """The list of a machine's A/B reports with their verdict counts."""
    return _render("ab_index.html", site, "../../", f"A/B reports on {machine.machine_id}", machine, "ab",
                   verdicts=_verdicts(machine.ab_reports))


def ab_page(site: Site, machine: Machine, report: ABReport) -> str:
    """One A/B report: its verdicts, medians, ratios and the paired ratios, charted and listed."""
    counts = Counter(r.verdict for r in report.rows)
    return _render("ab.html", site, "../../", f"A/B {report.name}", machine, "ab", with_charts=True, report=report,
                   counts=[(v, counts[v]) for v in _verdicts([report])],
                   benchmarks={b.id: b for b in machine.benchmarks}, chart=charts.ab_chart(report))


def who_wins_page(site: Site, machine: Machine) -> str:
    """The caller's who-wins-where tables of the machine's latest run."""
    return _render("who_wins.html", site, "../", f"who wins where on {machine.machine_id}", machine, "wins",
                   latest=machine.latest_run)
