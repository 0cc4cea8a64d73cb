"""Layers and directions around a single-direction layer kernel.

The NumPy and Numba backends differ only in how one layer runs one direction
over the sequence; stacking, direction order, ``batch_first`` and the layout
of ``h_n`` live here once.
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
    """

    def __init__(self, spec: CellSpec, weights: dict[str, np.ndarray]):
        super().__init__(spec)
        self.params = [self.convert(p) for p in unpack_weights(spec, weights)]

    def convert(self, params: tuple[np.ndarray, ...]):
        """Per-backend weight conversion, done once at prepare time."""
        return params

    def layer(self, x, h0, c0, params, reverse):
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
