"""The command line: ``python -m bench COMMAND ...`` (or ``rnn-bench COMMAND ...``).

:data:`COMMANDS` names every command, its module and its one-line help, as data: ``main`` imports
only the module of the command it runs (a worker process loads no judging, no plotting), and
``--help`` lists them all without importing any.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from ..timing.process import stop_on_sigterm
from .base import INTERRUPTED

#: ``name -> (module under bench.commands, one-line help)``, in the order ``--help`` lists them.
COMMANDS = {
    "run": ("run", "time a grid, print a table, write the result CSV and its raw samples"),
    "check": ("check", "max abs error of each backend against the float64 reference"),
    "show": ("show", "print a result CSV with backends side by side"),
    "compare": ("compare", "compare two result files; exit 1 on a regression"),
    "ab": ("ab", "A/B of two git revisions on this machine, paired and interleaved; exit 1 on a regression"),
    "calibrate": ("calibrate", "the A/B gate's false-positive rate and power on this machine"),
    "history": ("history", "trends and step changes over the runs saved with `run --save`"),
    "publish": ("publish", "a static HTML dashboard of the results folder (history, regressions, A/B reports)"),
    "report": ("report", "a machine's results as markdown: who wins where, numba's standing, %% of peak"),
    "plot": ("plot", "PNG plots next to a result CSV"),
    "merge": ("merge", "join the result files of a grid's shards (run --shard K/N) into one"),
    "tune": ("tune", "time every numba strategy x BLAS route on a grid's sizes; write this machine's plan"),
    "charrnn": ("charrnn", "train the tutorial's character RNN ('recurrent' -> 'neuralnet') on each backend"),
    "peaks": ("peaks", "this machine's GEMM peaks and memory bandwidth, as JSON"),
    "grids": ("grids", "list the named grids"),
    "worker": ("worker", "(internal) one worker process of a run, started by the runner"),
}


def load(name: str):
    """The :class:`~bench.commands.base.Command` named ``name`` (its module is imported now)."""
    module = importlib.import_module(f"{__name__}.{COMMANDS[name][0]}")
    return module.COMMAND


def parser_for(argv: list[str]) -> argparse.ArgumentParser:
    """The parser of ``python -m bench``, with the arguments of the command ``argv`` names (the
    others are listed with their help only)."""
    parser = argparse.ArgumentParser(prog="python -m bench",
                                     description="rnn-cell-bench: time and check recurrent-cell backends")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, text) in COMMANDS.items():
        if name == wanted:
            command = load(name)
            child = sub.add_parser(name, help=text, description=command.description or text.replace("%%", "%"))
            command.add_arguments(child)
            child.set_defaults(command_object=command)
        else:
            sub.add_parser(name, help=text)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (default: the process's) and run its command; the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser_for(argv).parse_args(argv)
    stop_on_sigterm()  # cleanups (workers, worktrees, files) run as on Ctrl-C
    try:
        return args.command_object.run(args)
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the files hold every finished row
        print(f"interrupted{f': {exc}' if str(exc) else ''}", file=sys.stderr)
        return INTERRUPTED
