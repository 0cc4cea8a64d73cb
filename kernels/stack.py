"""Layers and directions around a single-direction layer kernel.

The NumPy and Numba backends differ only in how one layer runs one direction
over the sequence, forward and backward; stacking, direction order,
``batch_first``, the layout of ``h_n``, and for the backward pass the routing
of gradients between layers and directions and their ``state_dict`` names,
live here once.
"""

from __future__ import annotations

import numpy as np

from .base import Prepared
from .checks import standard_layout
from .spec import CellSpec


def unpack_weights(spec: CellSpec, weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """Per (layer, direction), in ``h_n`` order: ``(w_ih, w_hh, b_ih, b_hh)``.

    Absent biases (``bias=False``) become zeros, so kernels have one code path.
    """
    params = []
    zeros = np.zeros(spec.gates * spec.hidden_size, spec.dtype)
    for _, _, sfx in spec.suffixes():
        b_ih = weights["bias_ih" + sfx] if spec.bias else zeros
        b_hh = weights["bias_hh" + sfx] if spec.bias else zeros
        params.append((weights["weight_ih" + sfx], weights["weight_hh" + sfx], b_ih, b_hh))
    return params


class StackPrepared(Prepared):
    """A layer stack on the CPU with NumPy arrays.

    Subclasses give :meth:`layer`, which runs one direction of one layer:
    ``layer(x, h0, c0, params, reverse) -> (output, h_T, c_T)`` with ``x``
    (T, B, I_l) time-major, ``h0``/``c0`` (B, H) (``c0`` only for LSTM, else
    ``None``), ``params`` one entry of :meth:`convert`'s list, ``output``
    (T, B, H) indexed by input time whatever the direction.

    For the ``forward_backward`` pass they also give :meth:`layer_train` (the forward of one
    direction of one layer, keeping what its backward needs) and :meth:`layer_backward`.
    """

    def __init__(self, spec: CellSpec, weights: dict[str, np.ndarray]):
        super().__init__(spec)
        self.params = [self.convert(p) for p in unpack_weights(spec, weights)]

    def convert(self, params: tuple[np.ndarray, ...]):
        """Per-backend weight conversion, done once at prepare time."""
        return params

    def layer(self, x, h0, c0, params, reverse):
        raise NotImplementedError

    def layer_train(self, x, h0, c0, params, reverse):
        """:meth:`layer` that also returns what :meth:`layer_backward` needs:
        ``(output, h_T, c_T, cache)``."""
        raise NotImplementedError

    def layer_backward(self, cache, d_out, d_h, d_c, params, reverse):
        """Backpropagation through time of one direction of one layer.

        Args:
            cache: :meth:`layer_train`'s.
            d_out: (T, B, H), the gradient of this direction's output (indexed by input time).
            d_h, d_c: (B, H), the gradients of h_T and (LSTM) c_T; ``d_c`` is ``None`` otherwise.

        Returns:
            ``(dx, dh0, dc0, (dw_ih, dw_hh, db_ih, db_hh))``: dx (T, B, I_l); dh0, dc0 (B, H)
            (``dc0`` ``None`` except for LSTM); the weight gradients in ``state_dict`` shapes.
        """
        raise NotImplementedError

    def to_device(self, x, h0=None, c0=None):
        spec = self.spec
        x, h0, c0 = (standard_layout(a, spec.np_dtype) for a in (x, h0, c0))  # copies only what is not so already
        _, batch = spec.timesteps_batch(x)
        if h0 is None:
            h0 = np.zeros(spec.state_shape(batch), spec.dtype)
        if spec.mode == "lstm" and c0 is None:
            c0 = np.zeros(spec.state_shape(batch), spec.dtype)
        return x, h0, c0

    def run(self, x, h0, c0):
        spec = self.spec
        layer_input = spec.time_major(x)
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        for layer in range(spec.num_layers):
            outputs = []
            for direction in range(spec.num_directions):
                k = layer * spec.num_directions + direction
                out, h_n[k], c_last = self.layer(
                    layer_input, h0[k], None if c0 is None else c0[k], self.params[k], bool(direction)
                )
                if c_n is not None:
                    c_n[k] = c_last
                outputs.append(out)
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
        return spec.from_time_major(layer_input), h_n, c_n

    def to_host(self, result):
        output, h_n, c_n = result
        return (output, (h_n, c_n)) if self.spec.mode == "lstm" else (output, h_n)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None):
        spec = self.spec
        x, h0, c0 = self.to_device(x, h0, c0)
        timesteps, batch = spec.timesteps_batch(x)
        if grad_output is None:
            grad_output = np.zeros(spec.output_shape(timesteps, batch), spec.dtype)
        if grad_h_n is None:
            grad_h_n = np.zeros(spec.state_shape(batch), spec.dtype)
        if spec.mode == "lstm" and grad_c_n is None:
            grad_c_n = np.zeros(spec.state_shape(batch), spec.dtype)
        return x, h0, c0, grad_output, grad_h_n, grad_c_n

    def run_backward(self, x, h0, c0, grad_output, grad_h_n, grad_c_n):
        """Forward through every layer keeping each direction's cache, then backward from the top
        layer down: a layer's output gradient is split between its directions
        ([forward | backward] along the last axis) and the input gradients of its directions sum
        into the gradient of the layer below's output."""
        spec = self.spec
        hidden, directions = spec.hidden_size, spec.num_directions
        layer_input = spec.time_major(x)
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        caches = []
        for layer in range(spec.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                out, h_n[k], c_last, cache = self.layer_train(
                    layer_input, h0[k], None if c0 is None else c0[k], self.params[k], bool(direction))
                if c_n is not None:
                    c_n[k] = c_last
                outputs.append(out)
                caches.append(cache)
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
        output = spec.from_time_major(layer_input)

        suffixes = [sfx for _, _, sfx in spec.suffixes()]
        weight_grads = [None] * len(suffixes)
        d_h0 = np.empty_like(h0)
        d_c0 = np.empty_like(c0) if c0 is not None else None
        d_above = spec.time_major(grad_output)
        for layer in reversed(range(spec.num_layers)):
            d_below = None
            for direction in range(directions):
                k = layer * directions + direction
                dx, d_h0[k], dc, weight_grads[k] = self.layer_backward(
                    caches[k], d_above[:, :, direction * hidden:(direction + 1) * hidden], grad_h_n[k],
                    None if grad_c_n is None else grad_c_n[k], self.params[k], bool(direction))
                if d_c0 is not None:
                    d_c0[k] = dc
                d_below = dx if d_below is None else d_below + dx
            d_above = d_below
        grads = {}
        for sfx, (dw_ih, dw_hh, db_ih, db_hh) in zip(suffixes, weight_grads):
            grads["weight_ih" + sfx], grads["weight_hh" + sfx] = dw_ih, dw_hh
            if spec.bias:
                grads["bias_ih" + sfx], grads["bias_hh" + sfx] = db_ih, db_hh
        grads = {name: grads[name] for name in spec.weight_shapes()}  # state_dict order
        grads["input"] = np.ascontiguousarray(spec.from_time_major(d_above))
        grads["h0"] = d_h0
        if d_c0 is not None:
            grads["c0"] = d_c0
        return output, h_n, c_n, grads

    def backward_to_host(self, result):
        output, h_n, c_n, grads = result
        return (*self.to_host((output, h_n, c_n)), grads)
