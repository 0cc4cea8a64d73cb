"""The static dashboard: ``build_site(site, out)`` writes a folder of HTML pages that open from
file:// or any static web server and load nothing from the network.

This package imports nothing else from ``bench``: its input is the plain, JSON-serialisable model
below, which the caller (``python -m bench publish``) builds from result files and history.

The model
---------
``site`` (fields marked *optional* may be left out)::

    {"generated": ISO timestamp,                       # shown in the footer
     "title": str,                                     # optional, default "rnn-cell-bench results"
     "machines": [{
        "machine_id": slug,                            # a folder name: letters, digits, ".", "_", "-"
        "cpu_model": str,
        "runs": [{"name", "commit", "dirty": bool, "timestamp"}],   # saved runs, oldest first
        "benchmarks": [{                               # a backend on a case, pass, thread count, measure
            "id": slug,                                # unique within the machine
            "page": slug,                              # its page; the backends of a case share one
            "label": str,                              # e.g. "lstm-T100-B1-H256-float32 numba"
            "page_label": str,                         # optional: the page's title (else from fields)
            "fields": {"mode", "pass", "backend", "hidden_size", "batch", "timesteps",   # required
                       "dtype", "threads", "measure", ...},                             # shown if given
            "unit": "s" | "instructions",              # seconds per call, instructions per call
            "points": [{"run", "commit", "timestamp",  # one per saved run that timed it
                        "median": float, "process_medians": [float]}],
            "latest": float | null,                    # median in the latest run, null if not timed
            "in_latest": bool,
            "step": null | {"factor", "verdict", "before", "after", "run_before", "run_after",
                            "commit_before", "commit_after"}}],   # the most recent step change
        "steps": [{"benchmark": id, "label", "factor", "verdict", "before", "after",
                   "run_before", "run_after", "commit_before", "commit_after"}],  # newest first
        "ab_reports": [{"name": slug, "base", "new", "base_commit", "new_commit", "timestamp",
                        "threshold": float, "alpha": float,
                        "rows": [{"benchmark", "base_median", "new_median", "ratio", "p_value",
                                  "verdict", "why", "paired_ratios": [float],
                                  "unit": "s" | "instructions"}]}],    # unit optional, default "s"
        "who_wins": [{"title", "note", "columns": [str], "rows": [[str]]}]}]}

A point's ``commit`` and ``timestamp`` may be left out (they are then its run's); ``steps``,
``ab_reports`` and ``who_wins`` may be left out (none); A/B numbers may be null where a benchmark
could not be compared. Every benchmark of one page must share a unit. :func:`model.read_site`
checks all of it and raises :class:`SiteError` naming the bad field.

The charting library, and what a page weighs
--------------------------------------------
Charts are Vega-Lite specifications built with Altair and drawn in the browser by vega-embed, whose
JavaScript (Vega, Vega-Lite, vega-embed) vl-convert bundles from the copies inside its wheel, with
no network. Measured for one chart page with its library inlined (Altair 6.3, vl-convert 1.9,
Bokeh 3.9, Plotly 7.1): Vega-Lite 877 KiB (298 KiB gzipped); Bokeh 1245 KiB (344 KiB) with
``bokeh.resources.INLINE`` core only; Plotly 4710 KiB (1436 KiB). Vega-Lite is the smallest, draws
SVG (each point is an element a test can count) and states its axes' scale type for screen readers.
The runtime is shared rather than inlined: ``assets/vega-embed.js`` is written once per site and
each page is then a few KiB to a few tens of KiB of HTML and JSON (docs/dashboard.md),
instead of 877 KiB more per page.

Modules: :mod:`.model` checks the input, :mod:`.fmt` formats values, :mod:`.charts` builds the
chart specs, :mod:`.pages` renders the HTML, :mod:`.assets` writes the shared files, :mod:`.site`
lays the folder out, :mod:`.browser` starts headless Chromium and :mod:`.screenshots` takes PNGs
of pages; :mod:`.example` is a small made-up site for the tests, the docs and trying the pages.
"""

from .model import SiteError
from .site import build_site

__all__ = ["SiteError", "build_site"]
