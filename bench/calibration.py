"""The A/B gate measured on this machine: a backend of calibrated work, and its A/A and A/B runs.

``spin`` answers every case correctly (the NumPy loop's result, computed
outside the timed call) and spends its timed call on ``WORK_PER_STEP * T``
iterations of a small NumPy update, times the factor in the environment
variable :data:`FACTOR_ENV` (default 1.0).  Two sides that differ only in
that variable differ by that factor in the work done, while the machine's
noise reaches them as it reaches any kernel.  ``python -m bench calibrate``
runs base against base (the false-positive rate) and base against base times
``--slowdown`` (the power) through the same runner and judgement as
``bench ab``, on the ``calibration`` grid's 100 cases.
"""

from __future__ import annotations

import os

import numpy as np

from kernels.base import Backend, Prepared
from kernels.numpy_backend import NumpyBackend

FACTOR_ENV = "RNN_BENCH_SPIN_FACTOR"
WORK_PER_STEP = 40


class SpinPrepared(Prepared):
    def __init__(self, spec, weights, factor: float):
        super().__init__(spec)
        self.inner = NumpyBackend().prepare(spec, weights)
        self.factor = factor
        self.scratch = np.linspace(-1, 1, 64)

    def to_device(self, x, h0=None, c0=None):
        timesteps, _ = self.spec.timesteps_batch(x)
        result = self.inner.run(*self.inner.to_device(x, h0, c0))  # the answer, outside the timing
        return result, round(WORK_PER_STEP * timesteps * self.factor)

    def run(self, result, work):
        v = self.scratch
        for _ in range(work):
            np.tanh(v, out=v)
        return result

    def to_host(self, result):
        return self.inner.to_host(result)


class SpinBackend(Backend):
    """Calibrated work per call (see the module docstring); correct answers."""

    name = "spin"

    def prepare(self, spec, weights):
        return SpinPrepared(spec, weights, float(os.environ.get(FACTOR_ENV, "1.0")))


def calibrate(options, slowdown: float, threshold: float, alpha: float, out_dir, run_id: str, seed: int,
              progress=print) -> dict:
    """Run A/A (factor 1 against 1) and A/B (1 against ``slowdown``) of the ``spin`` backend on the
    ``calibration`` grid through :class:`bench.runner.Sweep`, judge both as ``bench ab`` does,
    write the four result files and a summary JSON under ``out_dir``; returns the summary:
    rows judged, A/A rows flagged (regression or improvement), A/B rows detected as regressions,
    the threshold, alpha, processes and the quartiles of each run's ratios."""
    import dataclasses
    import json
    from pathlib import Path

    from .ab import judge_files
    from .grids import get_grid
    from .results import atomic_write_text
    from .runner import REPO, Side, Sweep

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _, processes = options.counts()
    summary = {"run_id": run_id, "seed": seed, "slowdown": slowdown, "threshold": threshold, "alpha": alpha,
               "processes": processes, "grid": "calibration"}
    for name, factor in (("aa", 1.0), ("ab", slowdown)):
        outputs = {side: out_dir / f"calibration-{run_id}-{name}-{side}.csv" for side in ("base", "new")}
        sides = [Side("base", REPO, ((FACTOR_ENV, "1.0"),)), Side("new", REPO, ((FACTOR_ENV, repr(factor)),))]
        sweep = Sweep(dataclasses.replace(options, grid="calibration"), get_grid("calibration"), ["spin"], sides,
                      outputs, run_id, seed, {}, {"spin": "bench.calibration:SpinBackend"})
        progress(f"calibrate: {name}, factor {factor}")
        sweep.run(progress)
        c = judge_files(outputs["base"], outputs["new"], {"default": threshold}, alpha)
        ratios = [p.ratio for p in c.pairs if p.ratio]
        summary[name] = {"rows": len(c.pairs),
                         "regressions": sum(p.verdict == "regression" for p in c.pairs),
                         "improvements": sum(p.verdict == "improvement" for p in c.pairs),
                         "ratio_quartiles": [float(q) for q in np.percentile(ratios, [0, 25, 50, 75, 100])],
                         "warnings": c.warnings, "files": [str(p) for p in outputs.values()]}
    atomic_write_text(out_dir / f"calibration-{run_id}.json", json.dumps(summary, indent=2))
    return summary
