"""What every command shares: the :class:`Command` base, the exit statuses, and argument helpers.

A command is a :class:`Command` subclass in a module of its own under :mod:`bench.commands`
(asv's ``commands/``): ``add_arguments`` declares its arguments on its own argparse parser and
``run`` does the work and returns the exit status.  Exit statuses: 0 success, 1 a finding (a
regression, a failure, a mismatch), 2 unusable input (one line on stderr naming the argument),
130 interrupted.
"""

from __future__ import annotations

import argparse
import sys

from kernels import parse_backend_list

from ..grids import GRIDS
from ..timing.options import add_options

#: Exit statuses.
OK, FOUND, USAGE, INTERRUPTED = 0, 1, 2, 130


class Command:
    """One ``python -m bench`` command: its ``name``, one-line ``help``, longer ``description``, and
    ``arguments``: ``(name or flag, argparse keywords)`` pairs, for a command that needs no more."""

    name = ""
    help = ""
    description: str | None = None
    arguments: tuple = ()

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Declare this command's arguments on ``parser`` (by default, its :attr:`arguments`)."""
        for name, kwargs in self.arguments:
            parser.add_argument(name, **kwargs)

    def run(self, args: argparse.Namespace) -> int:
        """Do the command's work; return its exit status."""
        raise NotImplementedError


def fail(message) -> int:
    """Report unusable input on one line of stderr; the exit status for it, 2."""
    print(f"error: {message}", file=sys.stderr)
    return USAGE


def positive_int(text: str) -> int:
    """An argparse ``type``: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def backend_list(text: str) -> str:
    """An argparse ``type`` for ``--backends``: the names checked (:func:`kernels.parse_backend_list`,
    which suggests the nearest known names), returned as the comma-separated text."""
    try:
        return ",".join(parse_backend_list(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--backends: ")) from None


def add_run_options(parser: argparse.ArgumentParser, leave_out: tuple = ()) -> None:
    """The options of a timed run (:class:`bench.timing.options.RunOptions`) but those named in
    ``leave_out`` (they read as not given), ``--backends`` checked."""
    def add(flag, **kwargs):
        if kwargs["dest"] in leave_out:
            parser.set_defaults(**{kwargs["dest"]: kwargs.get("default")})
            return
        if flag == "--backends":
            kwargs["type"] = backend_list
        parser.add_argument(flag, **kwargs)

    add_options(add)


def add_grid(parser: argparse.ArgumentParser, default: str | None, what: str = "named grid") -> None:
    parser.add_argument("--grid", default=default, choices=list(GRIDS),
                        help=f"{what} (default: {default or 'see below'})")


def add_where(parser: argparse.ArgumentParser, what: str = "cases") -> None:
    parser.add_argument("--where", action="append", default=[], metavar="COLUMN=VALUE",
                        help=f"keep only {what} whose COLUMN equals VALUE (a spec field, timesteps, batch, pass or "
                             "case_id); repeatable")


def add_judgement_args(parser: argparse.ArgumentParser, side: str, default_threshold: str, test: str) -> None:
    """BASE, NEW, --threshold, --alpha and --format of the commands that judge two sides (compare, ab)."""
    parser.add_argument("base", help=f"BASE {side}")
    parser.add_argument("new", help=f"NEW {side}")
    parser.add_argument("--threshold", action="append", default=[], metavar="[GROUP=]RATIO",
                        help=f"slowdown ratio that counts (default {default_threshold}); GROUP is a backend or a mode; "
                             "repeatable")
    parser.add_argument("--alpha", type=float, default=0.01, help=f"significance level of the {test} (default 0.01)")
    parser.add_argument("--format", choices=["table", "csv", "json", "markdown"], default="table")
