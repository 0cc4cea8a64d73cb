"""``python -m bench publish``: a static HTML dashboard of the results folder."""

from __future__ import annotations

from .base import Command, fail


class Publish(Command):
    name = "publish"
    help = "a static HTML dashboard of the results folder (history, regressions, A/B reports)"

    def run(self, args) -> int:
        return fail("publish: not available yet")


COMMAND = Publish()
