"""``python -m bench plot FILE``: PNG plots next to a result CSV (:func:`bench.report.plots.plot_file`)."""

from __future__ import annotations

from ..report.plots import plot_file
from ..results.files import file_problem
from .base import OK, Command, fail


class Plot(Command):
    name = "plot"
    help = "PNG plots next to a result CSV"
    arguments = (("file", {"help": "result CSV"}),)

    def run(self, args) -> int:
        try:
            paths = plot_file(args.file)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            return fail(file_problem("FILE", exc))
        for p in paths:
            print(p)
        return OK


COMMAND = Plot()
