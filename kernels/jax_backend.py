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

LSTM's projections (``proj_size``): each step's ``o * tanh(c)`` is multiplied by W_hr^T inside the
scan.  Variable-length batches: masking inside the scan, with the mask (T, B) made in
``to_device`` (outside the timed call): a row keeps its state through the steps it does not run
(``where``), the reverse direction, on the reversed sequence, so starts at each row's last valid
step, and the output there is zero.  Every row runs every step (the work of the padded batch):
the price of a fixed-shape scan.  ``x``'s padding is zeroed in ``to_device`` (a copy), so NaN
there cannot reach the gradients as ``0 * NaN``.  Masked and unmasked networks are separate
executables, so the common path has no ``where``.

The ``forward_backward`` pass is ``jax.vjp`` of the same function, seeded with the gradient
seeds, compiled ahead of time in ``to_device_backward`` (outside the timed call; :data:`COMPILED`
keeps it too); ``run_backward`` calls it and ends with ``jax.block_until_ready``.

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

#: Executables compiled in this process: ``(spec, x shape, masked, pass) -> compiled``.
COMPILED: dict = {}


def enable_x64():
    """Import JAX with its x64 switch on (idempotent) and return ``(jax, its CPU device)``."""
    import jax

    jax.config.update("jax_enable_x64", True)
    return jax, jax.devices("cpu")[0]


def network(spec: CellSpec, masked: bool = False):
    """``f(params, x, h0, c0, mask) -> (output, h_n, c_n)`` for ``spec``, to be jitted.

    ``params``: per layer ``(w_ih (D, G*H, I_l), w_hh (D, G*H, h_size), b_ih (D, G*H), b_hh (D, G*H))``
    and, with ``proj_size``, ``w_hr (D, P, H)``; PyTorch's gate order, directions stacked forward
    then reverse; ``x`` in the spec's layout; ``h0`` (D*L, B, h_size), ``c0`` (D*L, B, H)
    (``c0``, ``c_n`` ``None`` except for LSTM); ``mask`` (T, B, 1) bool, True where a row runs a
    step (read only when ``masked``, else ``None``).  Cells: :mod:`kernels.numpy_backend`'s formulas.
    """
    import jax
    import jax.numpy as jnp
    from jax import lax

    d, mode = spec.num_directions, spec.mode
    sigmoid = jax.nn.sigmoid

    def update(gx, gh, h, c, w_hr):
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
            m = sigmoid(o) * jnp.tanh(c)
            return (m if w_hr is None else jnp.einsum("dbh,dph->dbp", m, w_hr)), c
        if mode == "rnn_relu":
            # not max(v, 0): XLA's fast max may drop a NaN; "v <= 0", not "v < 0": the derivative at 0
            # is then 0, torch's (an activation exactly 0 happens: no bias, zero states and inputs)
            return jnp.where(v <= 0, jnp.zeros_like(v), v), c
        return jnp.tanh(v), c

    def layer(x, params, h0, c0, mask):
        w_ih, w_hh, b_ih, b_hh, *w_hr = params
        w_hr = w_hr[0] if w_hr else None
        xs = jnp.stack([x, x[::-1]]) if d == 2 else x[None]        # (D, T, B, I_l)
        gx = jnp.einsum("dtbi,dgi->tdbg", xs, w_ih) + b_ih[:, None, :]  # (T, D, B, G*H)
        # (T, D, B, 1): the reverse direction's mask runs backwards with its sequence
        ms = (jnp.stack([mask, mask[::-1]], axis=1) if d == 2 else mask[:, None]) if masked else None

        def step(carry, inputs):
            h, c = carry
            gx_t, m_t = inputs
            gh = jnp.einsum("dbh,dgh->dbg", h, w_hh) + b_hh[:, None, :]
            h_new, c_new = update(gx_t, gh, h, c, w_hr)
            if not masked:
                return (h_new, c_new), h_new
            c_new = None if c is None else jnp.where(m_t, c_new, c)
            return (jnp.where(m_t, h_new, h), c_new), jnp.where(m_t, h_new, jnp.zeros_like(h_new))

        (h, c), ys = lax.scan(step, (h0, c0), (gx, ms))             # ys (T, D, B, h_size)
        out = jnp.concatenate([ys[:, 0], ys[::-1, 1]], axis=-1) if d == 2 else ys[:, 0]
        return out, h, c

    def forward(params, x, h0, c0, mask):
        x = jnp.swapaxes(x, 0, 1) if spec.batch_first else x
        h_n, c_n = [], []
        for k, p in enumerate(params):
            x, h, c = layer(x, p, h0[k * d:(k + 1) * d], None if c0 is None else c0[k * d:(k + 1) * d], mask)
            h_n.append(h)
            c_n.append(c)
        out = jnp.swapaxes(x, 0, 1) if spec.batch_first else x
        return out, jnp.concatenate(h_n), (jnp.concatenate(c_n) if c0 is not None else None)

    return forward


def network_backward(spec: CellSpec, masked: bool = False):
    """``g(params, x, h0, c0, mask, seeds) -> (output, h_n, c_n, (d_params, dx, dh0, dc0))``:
    :func:`network`'s function and ``jax.vjp`` of it with respect to ``params``, ``x``, ``h0`` and
    ``c0``, at the seeds ``(grad_output, grad_h_n, grad_c_n)`` (``grad_c_n`` ``None`` except for
    LSTM), to be jitted."""
    import jax

    forward = network(spec, masked)

    def forward_backward(params, x, h0, c0, mask, seeds):
        outputs, vjp = jax.vjp(lambda p, x_, h, c: forward(p, x_, h, c, mask), params, x, h0, c0)
        return (*outputs, vjp(seeds))

    return forward_backward


def stacked_params(spec: CellSpec, weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """:func:`network`'s ``params`` as NumPy arrays: per layer, :func:`kernels.stack.unpack_weights`'s
    ``(w_ih, w_hh, b_ih, b_hh[, w_hr])`` with the directions stacked (absent biases are zeros, as
    there: one executable serves ``bias`` True and False; ``w_hr`` only with ``proj_size``)."""
    per_direction = unpack_weights(spec, weights)
    d = spec.num_directions
    return [tuple(np.stack(arrays) for arrays in zip(*per_direction[k * d:(k + 1) * d]) if arrays[0] is not None)
            for k in range(spec.num_layers)]


class JaxPrepared(Prepared):
    def __init__(self, spec, weights):
        super().__init__(spec)
        self.jax, self.cpu = enable_x64()
        weights = {k: standard_layout(w, spec.dtype) for k, w in weights.items()}
        self.params = self.jax.device_put(stacked_params(spec, weights), self.cpu)

    def _inputs(self, x, h0, c0, lengths):
        """``x`` (its padding zeroed with lengths: a copy), ``h0``, ``c0`` (zeros when absent; ``c0``
        ``None`` except for LSTM) and the mask ((T, B, 1) bool, or ``None`` without lengths)."""
        spec = self.spec
        x, h0, c0 = (standard_layout(a, spec.dtype) for a in (x, h0, c0))
        timesteps, batch = spec.timesteps_batch(x)
        h0 = np.zeros(spec.state_shape(batch), spec.dtype) if h0 is None else h0
        c0 = (np.zeros(spec.state_shape(batch, cell=True), spec.dtype) if c0 is None else c0) if spec.mode == "lstm" \
            else None
        mask = None
        if lengths is not None:
            mask = np.arange(timesteps)[:, None] < np.asarray(lengths)[None, :]
            x = x.copy()
            spec.time_major(x)[~mask] = 0
            mask = mask[:, :, None]
        return x, h0, c0, mask

    def _compiled(self, pass_, args):
        """The executable of ``pass_`` for ``args``' shapes, compiled now unless this process has
        it (``jit_cache``)."""
        masked = args[4] is not None
        key = (dataclasses.replace(self.spec, bias=True, dropout=0.0), args[1].shape, masked, pass_)  # biases are arrays
        self.jit_cache = "in memory" if key in COMPILED else "compiled"
        if key not in COMPILED:
            function = network(self.spec, masked) if pass_ == "forward" else network_backward(self.spec, masked)
            COMPILED[key] = self.jax.jit(function).lower(*args).compile()
        return COMPILED[key]

    def to_device(self, x, h0=None, c0=None, lengths=None):
        """``(executable, params, x, h0, c0, mask)`` on the CPU device, compiling for ``x``'s shape
        unless this process has already (``jit_cache``)."""
        jax = self.jax
        args = jax.block_until_ready(jax.device_put((self.params, *self._inputs(x, h0, c0, lengths)), self.cpu))
        return (self._compiled("forward", args), *args)

    def run(self, executable, params, x, h0, c0, mask):
        return self.jax.block_until_ready(executable(params, x, h0, c0, mask))

    def to_host(self, result):
        out, h_n, c_n = (None if a is None else np.asarray(a) for a in result)
        return (out, (h_n, c_n)) if self.spec.mode == "lstm" else (out, h_n)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        """``(executable, params, x, h0, c0, mask, seeds)`` on the CPU device (seeds zeros where
        ``None``; ``grad_output``'s padding zeroed with lengths), compiling ``jax.vjp`` of the
        network for these shapes unless this process has already (``jit_cache``)."""
        spec, jax = self.spec, self.jax
        x, h0, c0, mask = self._inputs(x, h0, c0, lengths)
        timesteps, batch = spec.timesteps_batch(x)
        grad_output = np.zeros(spec.output_shape(timesteps, batch), spec.dtype) if grad_output is None \
            else standard_layout(grad_output, spec.dtype)
        if mask is not None:
            grad_output = grad_output.copy()
            spec.time_major(grad_output)[~mask[:, :, 0]] = 0
        grad_h_n = np.zeros(spec.state_shape(batch), spec.dtype) if grad_h_n is None else grad_h_n
        if spec.mode == "lstm":
            grad_c_n = np.zeros(spec.state_shape(batch, cell=True), spec.dtype) if grad_c_n is None else grad_c_n
        else:
            grad_c_n = None
        seeds = tuple(standard_layout(a, spec.dtype) for a in (grad_output, grad_h_n, grad_c_n))
        args = jax.block_until_ready(jax.device_put((self.params, x, h0, c0, mask, seeds), self.cpu))
        return (self._compiled("forward_backward", args), *args)

    def run_backward(self, executable, params, x, h0, c0, mask, seeds):
        return self.jax.block_until_ready(executable(params, x, h0, c0, mask, seeds))

    def backward_to_host(self, result):
        """``(output, h_n, grads)`` with the stacked parameters' gradients under their
        ``state_dict`` names."""
        spec = self.spec
        out, h_n, c_n, (d_params, dx, dh0, dc0) = result
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")
        grads = {}
        for layer, direction, sfx in spec.suffixes():
            for name, array in zip(names[:4] + names[4:] * bool(spec.proj_size), d_params[layer]):
                grads[name + sfx] = np.asarray(array[direction])
        grads = {name: grads[name] for name in spec.weight_shapes()}  # state_dict order, biases only with bias
        grads["input"], grads["h0"] = np.asarray(dx), np.asarray(dh0)
        if spec.mode == "lstm":
            grads["c0"] = np.asarray(dc0)
        return (*self.to_host((out, h_n, c_n)), grads)


class JaxBackend(Backend):
    name = "jax"

    def unavailable_reason(self):
        if importlib.util.find_spec("jax") is None:
            return "jax not installed (pip install 'rnn-cell-bench[jax]')"
        return None

    def passes(self):
        return ("forward", "forward_backward")

    def unavailable_for_lengths(self, spec):
        return None

    def describe(self):
        """``xla_threads``: the CPUs this process may run on, to which XLA's CPU client sizes its
        intra-op pool; ``xla_flags``: the ``XLA_FLAGS`` it was started with."""
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        return {"xla_threads": cpus, "xla_flags": os.environ.get("XLA_FLAGS", "")}

    def prepare(self, spec, weights):
        return JaxPrepared(spec, weights)
