"""Where each page goes in the site folder, and writing them.

Layout (every link relative, so the folder works from file:// or any static server)::

    index.html                        machines
    assets/                           vega-embed.js, site.css, site.js
    <machine_id>/index.html           benchmark list
    <machine_id>/regressions.html     step changes
    <machine_id>/who-wins.html        who wins where
    <machine_id>/b/<page>.html        one per benchmark page
    <machine_id>/ab/index.html        A/B reports
    <machine_id>/ab/<name>.html       one per A/B report
"""

from __future__ import annotations

from pathlib import Path

from . import pages
from .assets import write_assets
from .model import Site, read_site


def layout(site: Site) -> dict[str, callable]:
    """``{path relative to the site folder: a function of no arguments returning the page's HTML}``,
    for every page of ``site``."""
    files = {"index.html": lambda: pages.index_page(site)}
    for m in site.machines:
        files[f"{m.machine_id}/index.html"] = lambda m=m: pages.machine_page(site, m)
        files[f"{m.machine_id}/regressions.html"] = lambda m=m: pages.regressions_page(site, m)
        files[f"{m.machine_id}/who-wins.html"] = lambda m=m: pages.who_wins_page(site, m)
        files[f"{m.machine_id}/ab/index.html"] = lambda m=m: pages.ab_index_page(site, m)
        for page, benchmarks in m.pages().items():
            files[f"{m.machine_id}/b/{page}.html"] = lambda m=m, p=page, bs=benchmarks: pages.benchmark_page(site, m, p, bs)
        for report in m.ab_reports:
            files[f"{m.machine_id}/ab/{report.name}.html"] = lambda m=m, r=report: pages.ab_page(site, m, r)
    return files


def build_site(site: dict, out: Path) -> Path:
    """Write the static dashboard of the ``site`` model (see :mod:`bench.publish`) into the folder
    ``out`` (created; files of an earlier build are overwritten, others left) and return the path of
    its ``index.html``.

    Raises :class:`bench.publish.model.SiteError` naming the field when the model is malformed, before
    anything is written.
    """
    checked = read_site(site)
    out = Path(out)
    files = layout(checked)
    write_assets(out / "assets")
    for relative, render in files.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render(), encoding="utf-8")
    return out / "index.html"
