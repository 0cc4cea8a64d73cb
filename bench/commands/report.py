"""``python -m bench report results/<machine_id>/``: that machine's figures as markdown, generated
from its committed result files (:mod:`bench.report.document`); docs/results/ holds its output."""

from __future__ import annotations

from pathlib import Path

from ..report.document import machine_document
from .base import OK, Command, fail


class Report(Command):
    name = "report"
    help = "a machine's results as markdown: who wins where, numba's standing, %% of peak"
    arguments = (("folder", {"help": "a machine's results folder, e.g. results/amd-epyc-avx512-2c-24g/"}),)

    def run(self, args) -> int:
        folder = Path(args.folder)
        if not folder.is_dir():
            return fail(f"FOLDER: expected a machine's results folder, got {folder}")
        try:
            print(machine_document(folder), end="")
        except (OSError, ValueError) as exc:
            return fail(exc)
        return OK


COMMAND = Report()
