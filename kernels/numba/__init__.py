"""The ``numba`` backend: the recurrence compiled with ``@njit``.

* :mod:`kernels.numba.backend` -- the backend (names, variants, availability, the strategy chosen
  per size); importing it loads neither numba nor torch;
* :mod:`kernels.numba.compiled` -- the ``@njit`` kernels, imported by ``prepare`` only;
* :mod:`kernels.numba.blas` -- the BLAS routes the kernels call, each verified before use;
* :mod:`kernels.numba.plan` -- the tuned plan of a machine (which variant at which size).
"""

from .backend import ROUTED, STRATEGIES, NumbaBackend, choose_strategy

__all__ = ["ROUTED", "STRATEGIES", "NumbaBackend", "choose_strategy"]
