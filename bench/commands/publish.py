"""``python -m bench publish [--results DIR] [--out DIR]``: a static HTML dashboard of the results
folder (:mod:`bench.publish`): per machine, its benchmarks over its saved runs, the step changes
history finds, its A/B reports and who wins where.  It opens from file:// with no network; any
static web server or CI artifact store can serve the folder."""

from __future__ import annotations

from pathlib import Path

from ..publish import SiteError, build_site
from ..report.dashboard import site_model
from ..results.paths import results_dir
from .base import OK, Command, fail


class Publish(Command):
    name = "publish"
    help = "a static HTML dashboard of the results folder (history, regressions, A/B reports)"

    def add_arguments(self, parser):
        parser.add_argument("--results", help="results folder (default: $RNN_BENCH_RESULTS, else ./results)")
        parser.add_argument("--out", default="site", help="the folder to write (default: site)")
        parser.add_argument("--threshold", type=float, default=1.10, help="step size that counts (default 1.10)")
        parser.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")

    def run(self, args) -> int:
        results = Path(args.results) if args.results else results_dir()
        out = Path(args.out)
        if out.exists() and not out.is_dir():
            return fail(f"--out: {out} is a file; expected a folder")
        try:
            model = site_model(results, args.threshold, args.alpha)
            index = build_site(model, out)
        except (SiteError, ValueError) as exc:
            return fail(exc)
        except OSError as exc:
            return fail(f"--out: cannot write {out}: {exc.strerror or exc}")
        machines = ", ".join(m["machine_id"] for m in model["machines"])
        count = sum(len(m["benchmarks"]) for m in model["machines"])
        print(f"dashboard: {index} ({count} benchmarks of {len(model['machines'])} machines: {machines})")
        return OK


COMMAND = Publish()
