"""``python -m bench merge PARTS... --out FILE``: join the result files of a grid's shards
(:func:`bench.results.merge.merge`).  Exit 2, with the reason, for parts that do not belong together."""

from __future__ import annotations

from ..results.merge import Refused, merge
from ..results.paths import check_writable
from .base import OK, Command, fail


class Merge(Command):
    name = "merge"
    help = "join the result files of a grid's shards (run --shard K/N) into one"
    description = ("Join result CSVs (each with its sidecar) into --out, written atomically. A part with no rows "
                   "(a shard with no case) is accepted. Exit 2, with the reason, for parts of different grids, schema "
                   "versions, commits or splits, and for overlapping rows.")

    def add_arguments(self, parser):
        parser.add_argument("parts", nargs="+", help="result CSVs to join")
        parser.add_argument("--out", required=True, help="the joined result CSV (a new file)")

    def run(self, args) -> int:
        try:
            check_writable(args.out)
            print(merge(args.parts, args.out))
        except (Refused, ValueError) as exc:
            return fail(exc)
        return OK


COMMAND = Merge()
