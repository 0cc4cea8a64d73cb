"""``jax``: the recurrence as ``jax.lax.scan`` over time under ``jax.jit``, compiled by XLA for the CPU.

Per layer (:func:`network`): the input projection of every step is one product,
``x W_ih^T + b_ih``, hoisted out of the loop (Appleyard et al. 2016, as torch and the numba
backend do), then ``lax.scan`` carries the state through the steps, adding ``h W_hh^T + b_hh``
and the cell update of the PyTorch documentation at each.  Both directions of a bidirectional
layer run in the same scan as a batch of two, the backward one on the time-reversed sequence,
whose outputs are reversed back.  ``batch_first`` transposes inside the compiled function.

Compilation: XLA compiles for fixed shapes, and only ``to_device`` sees T and B, so it compiles
there (ahead of time, ``jit(...).lower(...).compile()``), outside the timed call, once per (spec,
x shape) in a process (:data:`COMPILED`; the weights are arguments, not constants, so new weights
reuse it); ``jit_cache`` says which, and a row's ``prepare_s`` holds the weights' placement
(and JAX's start, in a fresh worker), not the compilation.  The timed ``run`` calls that executable (a shape it was not
compiled for raises, so it can never compile) and ends with ``jax.block_until_ready``, since JAX
dispatches asynchronously.  ``h0``/``c0`` are always arguments (zeros when not given), and so
are the biases (zeros without ``bias``, as in the NumPy and Numba backends), so those cases share
one executable.

float64 needs JAX's x64 switch, which the backend turns on (``jax.config.update
("jax_enable_x64", True)``) before its first use in a process; float32 arrays stay float32 under
it.  Everything is placed on JAX's CPU device, also where an accelerator is present.

Threads: XLA's CPU client sizes its intra-op pool to the CPUs the process may run on, when the
client starts (measured with jax 0.10: one pool thread under a one-CPU affinity, two with two);
the runner pins its workers to ``--threads`` CPUs (:func:`bench.runner.worker_cpus`) and, for one
thread, also sets ``--xla_cpu_multi_thread_eigen=false`` in ``XLA_FLAGS``
(:func:`bench.environment.thread_env`).  Rows record ``xla_threads`` (the CPUs this process may
use) and ``xla_flags``.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np

from .base import Backend, Prepared
from .checks import standard_layout
from .spec import CellSpec
from .stack import unpack_weights

#: Executables compiled in this process: ``(spec, x shape) -> compiled``.
COMPILED: dict = {}


def enable_x64():
    """Import JAX with its x64 switch on (idempotent) and return ``(jax, its CPU device)``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax, jax.devices("cpu")[0]


def network(spec: CellSpec):
    """``f(params, x, h0, c0) -> (output, h_n, c_n)`` for ``spec``, to be jitted.

    ``params``: per layer ``(w_ih (D, G*H, I_l), w_hh (D, G*H, H), b_ih (D, G*H), b_hh (D, G*H))``,
    PyTorch's gate order, directions stacked forward then reverse; ``x`` in the spec's layout; ``h0``/``c0`` (D*L, B, H) (``c0``, ``c_n`` ``None``
    except for LSTM).  Cells: :mod:`kernels.numpy_backend`'s formulas.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    d, mode = spec.num_directions, spec.mode
    sigmoid = jax.nn.sigmoid

    def update(gx, gh, h, c):
        """One step: ``gx`` = x W_ih^T + b_ih, ``gh`` = h W_hh^T + b_hh, each (D, B, G*H)."""
        if mode == "gru":
            x_r, x_z, x_n = jnp.split(gx, 3, axis=-1)
            h_r, h_z, h_n = jnp.split(gh, 3, axis=-1)
            r, z = sigmoid(x_r + h_r), sigmoid(x_z + h_z)
            n = jnp.tanh(x_n + r * h_n)
            return (1 - z) * n + z * h, c
        v = gx + gh
        if mode == "lstm":
            i, f, g, o = jnp.split(v, 4, axis=-1)
            c = sigmoid(f) * c + sigmoid(i) * jnp.tanh(g)
            return sigmoid(o) * jnp.tanh(c), c
        if mode == "rnn_relu":
            return jnp.where(v < 0, jnp.zeros_like(v), v), c  # not max(v, 0): XLA's fast max may drop a NaN
        return jnp.tanh(v), c

    def layer(x, params, h0, c0):
        w_ih, w_hh, b_ih, b_hh = params
        xs = jnp.stack([x, x[::-1]]) if d == 2 else x[None]        # (D, T, B, I_l)
        gx = jnp.einsum("dtbi,dgi->tdbg", xs, w_ih) + b_ih[:, None, :]  # (T, D, B, G*H)

        def step(carry, gx_t):
            h, c = carry
            gh = jnp.einsum("dbh,dgh->dbg", h, w_hh) + b_hh[:, None, :]
            h, c = update(gx_t, gh, h, c)
            return (h, c), h

        (h, c), ys = lax.scan(step, (h0, c0), gx)                  # ys (T, D, B, H)
        out = jnp.concatenate([ys[:, 0], ys[::-1, 1]], axis=-1) if d == 2 else ys[:, 0]
        return out, h, c

    def forward(params, x, h0, c0):
        x = jnp.swapaxes(x, 0, 1) if spec.batch_first else x
        h_n, c_n = [], []
        for k, p in enumerate(params):
            x, h, c = layer(x, p, h0[k * d:(k + 1) * d], None if c0 is None else c0[k * d:(k + 1) * d])
            h_n.append(h)
            c_n.append(c)
        out = jnp.swapaxes(x, 0, 1) if spec.batch_first else x
        return out, jnp.concatenate(h_n), (jnp.concatenate(c_n) if c0 is not None else None)

    return forward


def stacked_params(spec: CellSpec, weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """:func:`network`'s ``params`` as NumPy arrays: per layer, :func:`kernels.stack.unpack_weights`'s
    ``(w_ih, w_hh, b_ih, b_hh)`` with the directions stacked (absent biases are zeros, as there:
    one executable serves ``bias`` True and False)."""
    per_direction = unpack_weights(spec, weights)
    d = spec.num_directions
    return [tuple(np.stack(arrays) for arrays in zip(*per_direction[k * d:(k + 1) * d]))
            for k in range(spec.num_layers)]


class JaxPrepared(Prepared):
    def __init__(self, spec, weights):
        super().__init__(spec)
        self.jax, self.cpu = enable_x64()
        weights = {k: standard_layout(w, spec.dtype) for k, w in weights.items()}
        self.params = self.jax.device_put(stacked_params(spec, weights), self.cpu)

    def to_device(self, x, h0=None, c0=None):
        """``(executable, params, x, h0, c0)`` on the CPU device, compiling for ``x``'s shape
        unless this process has already (``jit_cache``)."""
        spec, jax = self.spec, self.jax
        x, h0, c0 = (standard_layout(a, spec.dtype) for a in (x, h0, c0))
        _, batch = spec.timesteps_batch(x)
        zeros = np.zeros(spec.state_shape(batch), spec.dtype)
        h0 = zeros if h0 is None else h0
        c0 = (zeros if c0 is None else c0) if spec.mode == "lstm" else None
        args = jax.block_until_ready(jax.device_put((self.params, x, h0, c0), self.cpu))
        key = (dataclasses.replace(spec, bias=True), x.shape)  # biases are arrays either way
        self.jit_cache = "in memory" if key in COMPILED else "compiled"
        if key not in COMPILED:
            COMPILED[key] = jax.jit(network(spec)).lower(*args).compile()
        return (COMPILED[key], *args)

    def run(self, executable, params, x, h0, c0):
        return self.jax.block_until_ready(executable(params, x, h0, c0))

    def to_host(self, result):
        out, h_n, c_n = (None if a is None else np.asarray(a) for a in result)
        return (out, (h_n, c_n)) if self.spec.mode == "lstm" else (out, h_n)


class JaxBackend(Backend):
    name = "jax"

    def unavailable_reason(self):
        if importlib.util.find_spec("jax") is None:
            return "jax not installed (pip install 'rnn-cell-bench[jax]')"
        return None

    def describe(self):
        """``xla_threads``: the CPUs this process may run on, to which XLA's CPU client sizes its
        intra-op pool; ``xla_flags``: the ``XLA_FLAGS`` it was started with."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return {"xla_threads": cpus, "xla_flags": os.environ.get("XLA_FLAGS", "")}

    def prepare(self, spec, weights):
        return JaxPrepared(spec, weights)
