"""``python -m bench check``: every backend's max abs error against the float64 reference, per case.
Exit 0: all within tolerance; 1: a backend beyond it or failing; 2: bad options."""

from __future__ import annotations

import os

from kernels import availability, backend_names, backend_passes, get_backend
from kernels.reference import GRAD_TOLERANCES, TOLERANCES

from ..grids import get_grid
from ..report.table import render
from ..timing.machine import worker_environment
from ..timing.measure import check
from .base import FOUND, OK, Command, add_grid, backend_list, fail, positive_int


def tolerance_title(passes) -> str:
    """The table's title: the tolerances each dtype (and the backward pass) is held to."""
    text = ", ".join(f"{k}: rtol={r:g} atol={a:g}" for k, (r, a) in TOLERANCES.items())
    if "forward_backward" in passes:
        text += "; forward_backward: " + ", ".join(f"{k}: rtol={r:g} atol={a:g} x scale"
                                                   for k, (r, a) in GRAD_TOLERANCES.items())
    return f"max abs error vs float64 reference ({text})"


def check_row(case, name: str, steps: int, reference):
    """``(row, reason it could not run or None, error line or None, reference)`` of one backend on one case."""
    row = {"case_id": case.id, "backend": name, "status": "ok"}
    why = availability(name, case.spec)
    if why is None and case.pass_ not in backend_passes(get_backend(name)):
        why = f"it has no {case.pass_} pass"
    if why is not None:
        row["status"] = "unavailable"
        return row, why, None, reference
    weights, x = case.inputs()
    try:
        err, problem, _, reference = check(get_backend(name).prepare(case.spec, weights), case, weights, x, steps,
                                           reference)
    except Exception as exc:  # noqa: BLE001  (a backend's failure is its row's, as in `run`)
        row["status"] = "error"
        return row, None, f"{case.id} {name}: {type(exc).__name__}: {exc}".splitlines()[0], reference
    row["max_abs_err"] = err
    if problem is not None:
        row["status"] = f"FAIL: {problem}"
    return row, None, None, reference


class Check(Command):
    name = "check"
    help = "max abs error of each backend against the float64 reference"

    def add_arguments(self, parser):
        add_grid(parser, "quick")
        parser.add_argument("--backends", type=backend_list,
                            help="comma-separated backends, variants too (default: every registered base name)")
        parser.add_argument("--max-timesteps", type=positive_int, help="check only the first N timesteps (default: all)")
        parser.add_argument("--passes", help="comma-separated passes to check: forward, forward_backward "
                                             "(default: the grid's)")

    def run(self, args) -> int:
        os.environ.update(worker_environment())  # numba follows this machine's plan, as in a run
        backends = args.backends.split(",") if args.backends else backend_names()
        try:
            cases = get_grid(args.grid, args.passes)
        except ValueError as exc:
            return fail(exc)
        rows, unavailable, errors = [], {}, []
        for case in cases:
            steps = min(case.timesteps, args.max_timesteps or case.timesteps)
            reference = None  # computed once per case, by the first backend that runs it
            for name in backends:
                row, why, error, reference = check_row(case, name, steps, reference)
                rows.append(row)
                if why is not None:
                    unavailable.setdefault(name, dict.fromkeys([]))[why] = None  # each reason once, in order
                if error is not None:
                    errors.append(error)
        render(rows, column="max_abs_err", scale=1.0, title=tolerance_title({c.pass_ for c in cases}))
        for name, reasons in unavailable.items():
            print(f"{name} unavailable: {'; '.join(reasons)}")
        for line in errors:
            print(f"error: {line}")
        failures = sum(r["status"] not in ("ok", "unavailable") for r in rows)
        print(f"{failures} beyond tolerance or failed" if failures else "all within tolerance")
        return FOUND if failures else OK


COMMAND = Check()
