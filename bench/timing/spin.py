"""``spin``: a backend of calibrated work, for measuring the A/B gate on this machine (``bench calibrate``).

``spin`` answers every case correctly (the NumPy loop's result, computed
outside the timed call) and spends its timed call on ``WORK_PER_STEP * T``
iterations of a small NumPy update, times the factor in the environment
variable :data:`FACTOR_ENV` (default 1.0).  Two sides that differ only in
that variable differ by that factor in the work done, while the machine's
noise reaches them as it reaches any kernel.  ``python -m bench calibrate``
(:mod:`bench.commands.calibrate`) runs base against base (the false-positive rate) and base
against base times ``--slowdown`` (the power) through the same runner and judgement as
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
