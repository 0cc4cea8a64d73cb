"""Layers and directions around a single-direction layer kernel.

The NumPy and Numba backends differ only in how one layer runs one direction
over the sequence, forward and backward; stacking, direction order,
``batch_first``, the layout of ``h_n``, variable-length batches, and for the
backward pass the routing of gradients between layers and directions and their
``state_dict`` names, live here once.

Variable-length batches (``lengths``) reach the layer kernels packed
(:class:`Packing`): ``to_device`` sorts the rows by decreasing length and zeroes
the padding of ``x`` (outside the timed call, as ``pack_padded_sequence``
prepares torch's input), so the rows still running at step t are the first
``active[t]`` ones (torch's ``batch_sizes``) in either direction, and a kernel
runs step t on that prefix of the batch alone; ``to_host`` puts the rows back
in the caller's order.  Without lengths every step runs the whole batch.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .base import Prepared
from .checks import standard_layout
from .spec import CellSpec


def unpack_weights(spec: CellSpec, weights: dict[str, np.ndarray]) -> list[tuple[np.ndarray, ...]]:
    """Per (layer, direction), in ``h_n`` order: ``(w_ih, w_hh, b_ih, b_hh, w_hr)``.

    Absent biases (``bias=False``) become zeros, so kernels have one code path; ``w_hr`` (P, H)
    is ``None`` without ``proj_size``.
    """
    params = []
    zeros = np.zeros(spec.gates * spec.hidden_size, spec.dtype)
    for _, _, sfx in spec.suffixes():
        b_ih = weights["bias_ih" + sfx] if spec.bias else zeros
        b_hh = weights["bias_hh" + sfx] if spec.bias else zeros
        w_hr = weights["weight_hr" + sfx] if spec.proj_size else None
        params.append((weights["weight_ih" + sfx], weights["weight_hh" + sfx], b_ih, b_hh, w_hr))
    return params


class Packing(NamedTuple):
    """A variable-length batch in the layout the layer kernels take.

    Attributes:
        order: (B,) int64; row i of the sorted batch is row ``order[i]`` of the caller's (rows
            by decreasing length, ties in the caller's order).
        active: (T,) int64, non-increasing: how many rows run at step t, ``#{b: lengths[b] > t}``;
            they are the first ``active[t]`` rows of the sorted batch.
    """

    order: np.ndarray
    active: np.ndarray

    @classmethod
    def of(cls, lengths: np.ndarray, timesteps: int) -> "Packing":
        """The packing of checked ``lengths`` (:func:`kernels.checks.check_lengths`) over T steps."""
        order = np.argsort(-lengths, kind="stable")
        ended = np.cumsum(np.bincount(lengths, minlength=timesteps + 1))[:timesteps]  # #{b: lengths[b] <= t}
        return cls(order, np.ascontiguousarray(len(lengths) - ended, np.int64))

    def padding(self) -> np.ndarray:
        """(T, B) bool, True where the sorted batch holds padding (row ``b`` at step t, ``b >= active[t]``)."""
        return np.arange(len(self.order))[None, :] >= self.active[:, None]

    def sort(self, a: np.ndarray | None, axis: int) -> np.ndarray | None:
        """``a``'s rows along ``axis`` (the batch axis) in sorted order (a copy)."""
        return None if a is None else np.take(a, self.order, axis=axis)

    def unsort(self, a: np.ndarray | None, axis: int) -> np.ndarray | None:
        """The inverse of :meth:`sort`: ``a``'s rows in the caller's order (a copy)."""
        if a is None:
            return None
        inverse = np.empty_like(self.order)
        inverse[self.order] = np.arange(len(self.order))
        return np.take(a, inverse, axis=axis)


class StackPrepared(Prepared):
    """A layer stack on the CPU with NumPy arrays.

    Subclasses give :meth:`layer`, which runs one direction of one layer:
    ``layer(x, h0, c0, params, reverse, active) -> (output, h_T, c_T)`` with ``x``
    (T, B, I_l) time-major, ``h0`` (B, h_size) and ``c0`` (B, H) (``c0`` only for LSTM, else
    ``None``), ``params`` one entry of :meth:`convert`'s list, ``active`` ``None`` (every row
    runs every step) or :attr:`Packing.active` (rows sorted by decreasing length: only the
    first ``active[t]`` rows run step t, the others keep their state and output zeros),
    ``output`` (T, B, h_size) indexed by input time whatever the direction.

    For the ``forward_backward`` pass they also give :meth:`layer_train` (the forward of one
    direction of one layer, keeping what its backward needs) and :meth:`layer_backward`.
    """

    def __init__(self, spec: CellSpec, weights: dict[str, np.ndarray]):
        super().__init__(spec)
        self.params = [self.convert(p) for p in unpack_weights(spec, weights)]

    def convert(self, params: tuple[np.ndarray, ...]):
        """Per-backend weight conversion, done once at prepare time."""
        return params

    def layer(self, x, h0, c0, params, reverse, active):
        raise NotImplementedError

    def layer_train(self, x, h0, c0, params, reverse, active):
        """:meth:`layer` that also returns what :meth:`layer_backward` needs:
        ``(output, h_T, c_T, cache)``."""
        raise NotImplementedError

    def layer_backward(self, cache, d_out, d_h, d_c, params, reverse):
        """Backpropagation through time of one direction of one layer.

        Args:
            cache: :meth:`layer_train`'s.
            d_out: (T, B, h_size), the gradient of this direction's output (indexed by input
                time); rows past their sequence's end are not read.
            d_h, d_c: (B, h_size) and (B, H), the gradients of h_T and (LSTM) c_T; ``d_c`` is
                ``None`` otherwise.

        Returns:
            ``(dx, dh0, dc0, (dw_ih, dw_hh, db_ih, db_hh, dw_hr))``: dx (T, B, I_l), zero past
            each sequence's end; dh0 (B, h_size), dc0 (B, H) (``None`` except for LSTM); the
            weight gradients in ``state_dict`` shapes, ``dw_hr`` ``None`` without ``proj_size``.
        """
        raise NotImplementedError

    def to_device(self, x, h0=None, c0=None, lengths=None):
        """:meth:`place`'s arrays."""
        return self.place(x, h0, c0, lengths)

    def place(self, x, h0=None, c0=None, lengths=None):
        """``(x, h0, c0, packing)``: zeros for absent states; with ``lengths``, the rows sorted
        and the padding of ``x`` zeroed (copies), and ``packing`` their :class:`Packing`
        (``None`` without lengths)."""
        spec = self.spec
        x, h0, c0 = (standard_layout(a, spec.np_dtype) for a in (x, h0, c0))  # copies only what is not so already
        timesteps, batch = spec.timesteps_batch(x)
        if h0 is None:
            h0 = np.zeros(spec.state_shape(batch), spec.dtype)
        if spec.mode == "lstm" and c0 is None:
            c0 = np.zeros(spec.state_shape(batch, cell=True), spec.dtype)
        if lengths is None:
            return x, h0, c0, None
        packing = Packing.of(lengths, timesteps)
        x = self._sorted_sequence(x, packing)
        return x, packing.sort(h0, 1), packing.sort(c0, 1), packing

    def _sorted_sequence(self, a, packing):
        """``a`` (input or output layout) with its rows sorted and its padding zero (a copy)."""
        spec = self.spec
        a = packing.sort(a, 0 if spec.batch_first else 1)
        spec.time_major(a)[packing.padding()] = 0
        return a

    def run(self, x, h0, c0, packing=None):
        spec = self.spec
        active = None if packing is None else packing.active
        layer_input = spec.time_major(x)
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        for layer in range(spec.num_layers):
            outputs = []
            for direction in range(spec.num_directions):
                k = layer * spec.num_directions + direction
                out, h_n[k], c_last = self.layer(
                    layer_input, h0[k], None if c0 is None else c0[k], self.params[k], bool(direction), active)
                if c_n is not None:
                    c_n[k] = c_last
                outputs.append(out)
            layer_input = outputs[0] if len(outputs) == 1 else np.concatenate(outputs, axis=2)
        return spec.from_time_major(layer_input), h_n, c_n, packing

    def _unsorted(self, output, h_n, c_n, packing):
        """The results of a packed batch in the caller's row order."""
        if packing is None:
            return output, h_n, c_n
        return packing.unsort(output, 0 if self.spec.batch_first else 1), packing.unsort(h_n, 1), packing.unsort(c_n, 1)

    def to_host(self, result):
        return self._result(*result)

    def _result(self, output, h_n, c_n, packing):
        """``(output, h_n)`` or ``(output, (h_n, c_n))`` in the caller's row order."""
        output, h_n, c_n = self._unsorted(output, h_n, c_n, packing)
        return (output, (h_n, c_n)) if self.spec.mode == "lstm" else (output, h_n)

    def to_device_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        """:meth:`place_backward`'s arrays."""
        return self.place_backward(x, h0, c0, grad_output, grad_h_n, grad_c_n, lengths)

    def place_backward(self, x, h0=None, c0=None, grad_output=None, grad_h_n=None, grad_c_n=None, lengths=None):
        """:meth:`place`'s arrays, then the seeds (zeros where ``None``), sorted as ``x`` with
        lengths (``grad_output`` with its padding zeroed), and the packing."""
        spec = self.spec
        x, h0, c0, packing = self.place(x, h0, c0, lengths)
        timesteps, batch = spec.timesteps_batch(x)
        if grad_output is None:
            grad_output = np.zeros(spec.output_shape(timesteps, batch), spec.dtype)
        elif packing is not None:
            grad_output = self._sorted_sequence(grad_output, packing)
        if grad_h_n is None:
            grad_h_n = np.zeros(spec.state_shape(batch), spec.dtype)
        if spec.mode == "lstm" and grad_c_n is None:
            grad_c_n = np.zeros(spec.state_shape(batch, cell=True), spec.dtype)
        if packing is not None:
            grad_h_n, grad_c_n = packing.sort(grad_h_n, 1), packing.sort(grad_c_n, 1)
        return x, h0, c0, grad_output, grad_h_n, grad_c_n, packing

    def run_backward(self, x, h0, c0, grad_output, grad_h_n, grad_c_n, packing=None):
        """Forward through every layer keeping each direction's cache, then backward from the top
        layer down: a layer's output gradient is split between its directions
        ([forward | backward] along the last axis) and the input gradients of its directions sum
        into the gradient of the layer below's output."""
        spec = self.spec
        width, directions = spec.h_size, spec.num_directions
        active = None if packing is None else packing.active
        layer_input = spec.time_major(x)
        h_n = np.empty_like(h0)
        c_n = np.empty_like(c0) if c0 is not None else None
        caches = []
        for layer in range(spec.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                out, h_n[k], c_last, cache = self.layer_train(
                    layer_input, h0[k], None if c0 is None else c0[k], self.params[k], bool(direction), active)
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
                    caches[k], d_above[:, :, direction * width:(direction + 1) * width], grad_h_n[k],
                    None if grad_c_n is None else grad_c_n[k], self.params[k], bool(direction))
                if d_c0 is not None:
                    d_c0[k] = dc
                d_below = dx if d_below is None else d_below + dx
            d_above = d_below
        grads = {}
        for sfx, (dw_ih, dw_hh, db_ih, db_hh, dw_hr) in zip(suffixes, weight_grads):
            grads["weight_ih" + sfx], grads["weight_hh" + sfx] = dw_ih, dw_hh
            if spec.bias:
                grads["bias_ih" + sfx], grads["bias_hh" + sfx] = db_ih, db_hh
            if spec.proj_size:
                grads["weight_hr" + sfx] = dw_hr
        grads = {name: grads[name] for name in spec.weight_shapes()}  # state_dict order
        grads["input"] = np.ascontiguousarray(spec.from_time_major(d_above))
        grads["h0"] = d_h0
        if d_c0 is not None:
            grads["c0"] = d_c0
        return output, h_n, c_n, grads, packing

    def backward_to_host(self, result):
        output, h_n, c_n, grads, packing = result
        if packing is not None:
            grads = {**grads, "input": packing.unsort(grads["input"], 0 if self.spec.batch_first else 1),
                     **{k: packing.unsort(grads[k], 1) for k in ("h0", "c0") if k in grads}}
        return (*self._result(output, h_n, c_n, packing), grads)
