"""``python -m bench calibrate``: the A/B gate's false-positive rate and power on this machine.

A/A (the ``spin`` backend's factor 1 against 1) and A/B (1 against ``--slowdown``) on the
``calibration`` grid, through the same runner and judgement as ``bench ab``
(:mod:`bench.timing.spin`).  The four result files and a summary JSON go under
``<results>/<machine_id>/`` (or ``--out-dir``).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..environment import REPO, machine_id, new_run_id
from ..judge.compare import compare
from ..results.files import atomic_write_text
from ..results.paths import machine_dir
from ..grids import get_grid
from ..runner import new_seed
from ..timing.options import RunOptions
from ..timing.process import Side
from ..timing.spin import FACTOR_ENV
from ..timing.sweep import Sweep
from .ab import AB_PROCESSES, AB_THRESHOLD, run_ab
from .base import OK, Command, fail


def calibrate(options: RunOptions, slowdown: float, threshold: float, alpha: float, out_dir: Path, run_id: str,
              seed: int, progress=print) -> dict:
    """Run A/A and A/B of ``spin`` on the calibration grid, judge both as ``bench ab`` does, write
    the four result files and a summary JSON under ``out_dir``; returns the summary: rows judged,
    A/A rows flagged (regression or improvement), A/B rows detected as regressions, the threshold,
    alpha, processes and the quartiles of each run's ratios."""
    out_dir.mkdir(parents=True, exist_ok=True)
    _, processes = options.counts()
    summary = {"run_id": run_id, "seed": seed, "slowdown": slowdown, "threshold": threshold, "alpha": alpha,
               "processes": processes, "grid": "calibration"}
    for name, factor in (("aa", 1.0), ("ab", slowdown)):
        outputs = {side: out_dir / f"calibration-{run_id}-{name}-{side}.csv" for side in ("base", "new")}
        sweep = Sweep(options, get_grid("calibration"), ["spin"], [Side("base", REPO), Side("new", REPO)], run_id, seed,
                      extra_backends={"spin": "bench.timing.spin:SpinBackend"}, made_by="calibration")
        progress(f"calibrate: {name}, factor {factor}")
        run_ab("WORKTREE", "WORKTREE", sweep, outputs, progress,
               sides_env=(((FACTOR_ENV, "1.0"),), ((FACTOR_ENV, repr(factor)),)))
        c = compare(outputs["base"], outputs["new"], {"default": threshold}, alpha, paired=True)
        ratios = [p.ratio for p in c.pairs if p.ratio]
        summary[name] = {"rows": len(c.pairs),
                         "regressions": sum(p.verdict == "regression" for p in c.pairs),
                         "improvements": sum(p.verdict == "improvement" for p in c.pairs),
                         "ratio_quartiles": [float(q) for q in np.percentile(ratios, [0, 25, 50, 75, 100])],
                         "warnings": c.warnings, "files": [str(p) for p in outputs.values()]}
    atomic_write_text(out_dir / f"calibration-{run_id}.json", json.dumps(summary, indent=2))
    return summary


class Calibrate(Command):
    name = "calibrate"
    help = "the A/B gate's false-positive rate and power on this machine"

    def add_arguments(self, parser):
        parser.add_argument("--slowdown", type=float, default=1.10, help="factor of the A/B run's slower side (default 1.10)")
        parser.add_argument("--threshold", type=float, default=None,
                            help=f"ratio that counts (default: bench ab's {AB_THRESHOLD})")
        parser.add_argument("--alpha", type=float, default=0.01, help="significance level (default 0.01)")
        parser.add_argument("--processes", type=int, help=f"paired processes (default {AB_PROCESSES})")
        parser.add_argument("--max-time", type=float, help="seconds of rounds per case and process (default 0.05)")
        parser.add_argument("--threads", type=int, help="threads per pool (default 1)")
        parser.add_argument("--seed", type=int, help="seed of the interleaved order")
        parser.add_argument("--out-dir", help="where the files go (default <results>/<machine_id>)")

    def run(self, args) -> int:
        options = RunOptions(grid="calibration", max_time=args.max_time, threads=args.threads, seed=args.seed,
                             processes=AB_PROCESSES if args.processes is None else args.processes)
        try:
            options.policy("calibration")
            options.counts()
        except ValueError as exc:
            return fail(exc)
        if not args.slowdown > 1:
            return fail(f"--slowdown: expected a factor above 1, got {args.slowdown}")
        threshold = args.threshold or AB_THRESHOLD
        if not threshold > 1:
            return fail(f"--threshold: expected a ratio above 1, got {threshold}")
        run_id = new_run_id()
        seed = new_seed() if args.seed is None else args.seed
        out_dir = Path(args.out_dir) if args.out_dir else machine_dir(machine_id())
        try:
            summary = calibrate(dataclasses.replace(options, seed=seed), args.slowdown, threshold, args.alpha, out_dir,
                                run_id, seed, progress=lambda line: print(line, flush=True))
        except ValueError as exc:
            return fail(exc)
        print(json.dumps(summary, indent=2))
        aa, ab = summary["aa"], summary["ab"]
        print(f"A/A: {aa['regressions'] + aa['improvements']} of {aa['rows']} rows flagged; "
              f"A/B x{args.slowdown}: {ab['regressions']} of {ab['rows']} rows detected "
              f"(threshold {summary['threshold']}, alpha {args.alpha}, {summary['processes']} paired processes)")
        return OK


COMMAND = Calibrate()
