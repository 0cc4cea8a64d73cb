"""``python -m bench grids``: the named grids, their sizes and what each is for."""

from __future__ import annotations

import shutil
import textwrap

from ..grids import GRIDS
from .base import OK, Command


def grid_lines(width: int) -> list[str]:
    """One entry per grid: name, case count, and its doc line wrapped (never cut) to ``width``."""
    lines = []
    for name, make in GRIDS.items():
        doc = " ".join((make.__doc__ or "").strip().split("\n\n")[0].split())
        head = f"{name:12} {len(make()):4} cases  "
        lines += textwrap.wrap(doc, width=max(40, width), initial_indent=head, break_long_words=False,
                               break_on_hyphens=False,
                               subsequent_indent=" " * len(head)) or [head]
    return lines


class Grids(Command):
    name = "grids"
    help = "list the named grids"

    def run(self, args) -> int:
        for line in grid_lines(shutil.get_terminal_size((100, 20)).columns):
            print(line)
        return OK


COMMAND = Grids()
