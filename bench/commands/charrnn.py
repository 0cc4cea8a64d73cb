"""``python -m bench charrnn``: train the tutorial's character RNN on each backend
(:mod:`bench.charrnn`); print the loss and prediction every 20 epochs and the seconds per epoch,
and write them as CSV with ``--out``.  Exit 1 when a backend fails or none trained; 2: bad options
(``--out`` is checked before any training)."""

from __future__ import annotations

import os
from pathlib import Path

from kernels import backend_names

from ..charrnn import PRINT_EVERY, SOURCE, TARGET, train, write_csv
from ..environment import thread_env
from ..results.paths import check_writable
from .base import FOUND, OK, Command, backend_list, fail


class CharRnn(Command):
    name = "charrnn"
    help = "train the tutorial's character RNN ('recurrent' -> 'neuralnet') on each backend"

    def add_arguments(self, parser):
        parser.add_argument("--backends", type=backend_list, help="comma-separated backends (default: every registered one)")
        parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(default float32)")
        parser.add_argument("--epochs", type=int, default=101, help="training epochs (default 101)")
        parser.add_argument("--out", help="CSV of the printed epochs: backend, dtype, epoch, loss, prediction, seconds")
        parser.add_argument("--threads", type=int, default=1, help="threads of every pool in this process (default 1)")

    def run(self, args) -> int:
        bad = [f"{flag}: expected a positive number, got {value}" for flag, value in
               (("--epochs", args.epochs), ("--threads", args.threads)) if value < 1]
        if bad:
            return fail("; ".join(bad))
        try:
            out = check_writable(Path(args.out)) if args.out else None
        except ValueError as exc:
            return fail(exc)
        os.environ.update(thread_env(args.threads))  # before numba or torch start their pools
        names = args.backends.split(",") if args.backends else backend_names()
        print(f"charrnn: {SOURCE!r} -> {TARGET!r}, {args.dtype}, {args.epochs} epochs, Adam lr 0.1; "
              f"loss and prediction every {PRINT_EVERY} epochs")
        rows, failed = [], 0
        for name in names:
            try:
                got = train(name, args.dtype, args.epochs, args.threads)
            except RuntimeError as exc:
                print(f"{name}: skipped: {exc}")
                continue
            except Exception as exc:  # noqa: BLE001  (one backend's failure is reported, the others run)
                print(f"{name}: error: {type(exc).__name__}: {exc}")
                failed += 1
                continue
            for r in got:
                print(f"{name:>12} epoch {r['epoch']:>4}  loss {r['loss']:.10f}  prediction {r['prediction']}  "
                      f"{r['seconds'] * 1e3:.3f} ms/epoch")
            rows += got
            if out:
                write_csv(out, rows)  # after every backend: an interrupted run keeps the finished ones
        if not rows:
            print("error: no backend trained (every one was skipped or failed)")
            return FOUND
        if out:
            print(f"results: {out}")
        return FOUND if failed else OK


COMMAND = CharRnn()
