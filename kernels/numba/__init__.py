"""The ``numba`` backend: the recurrence compiled with ``@njit``.

* :mod:`kernels.numba.backend` -- the backend (names, variants, availability, the strategy chosen
  per size); importing it loads neither numba nor torch;
* :mod:`kernels.numba.layout` -- where a call's buffers lie: the table ``S``, the workspace and the
  weights as one flat array each (plain Python);
* :mod:`kernels.numba.driver` -- the compiled stack: a whole pass in one call, imported (and numba
  loaded) by ``prepare`` only; it runs :mod:`kernels.numba.forward` and
  :mod:`kernels.numba.backward` (one layer, one direction), on :mod:`kernels.numba.jit` (JIT
  options, activations, the BLAS call);
* :mod:`kernels.numba.blas` -- the BLAS routes the kernels call, each verified before use;
* :mod:`kernels.numba.plan` -- the tuned plan of a machine (which variant at which size).
"""

from .backend import ROUTED, STRATEGIES, NumbaBackend, choose_strategy

__all__ = ["ROUTED", "STRATEGIES", "NumbaBackend", "choose_strategy"]
