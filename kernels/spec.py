"""The problem description: one frozen dataclass with PyTorch's field names.

A :class:`CellSpec` knows its own weight names and shapes, input, output and
state shapes, its layout (where T and B sit, ``batch_first`` or not), and its
FLOP count, so no other module recomputes them.  New fields (``proj_size``,
``dropout``, ...) are to be added with defaults.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: Gates per mode: the row blocks of ``weight_ih_l{k}`` (PyTorch's layout).
GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}
MODES = tuple(GATES)
DTYPES = ("float32", "float64")


def check_spec(spec) -> "CellSpec":
    """``spec`` itself when it is a :class:`CellSpec`.

    Raises:
        TypeError: anything else (a dict of fields, a mode string, ...).
    """
    if not isinstance(spec, CellSpec):
        raise TypeError(f"spec: expected a kernels.CellSpec, got {type(spec).__name__}")
    return spec


def _check_size(name, value, minimum=1):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")


@dataclasses.dataclass(frozen=True)
class CellSpec:
    """A recurrent layer stack as ``torch.nn.RNN``/``LSTM``/``GRU`` describes it.

    Attributes:
        mode: ``"rnn_tanh"``, ``"rnn_relu"``, ``"lstm"`` or ``"gru"``.
        input_size: I, features per timestep of the input.
        hidden_size: H, features of the hidden state.
        num_layers: stacked layers L; layer k > 0 reads layer k-1's output.
        bias: whether the ``bias_ih``/``bias_hh`` parameters exist.
        batch_first: input and output are (B, T, *) instead of (T, B, *);
            never applies to ``h0``/``h_n``/``c0``/``c_n``.
        bidirectional: D = 2 directions per layer instead of 1.
        dtype: ``"float32"`` or ``"float64"``, kept end to end.

    Raises:
        ValueError: unknown mode or dtype, or a size below 1.
        TypeError: a size that is not an int, or a flag that is not a bool.
    """

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    dtype: str = "float32"

    def __post_init__(self):
        if not isinstance(self.mode, str) or self.mode not in GATES:
            raise ValueError(f"mode: expected one of {list(MODES)}, got {self.mode!r}")
        # NumPy integers and bools are stored as Python ones: torch.nn rejects
        # the former, and fixed-width sizes would overflow in flops()
        for name in ("input_size", "hidden_size", "num_layers"):
            _check_size(name, getattr(self, name))
            object.__setattr__(self, name, int(getattr(self, name)))
        for flag in ("bias", "batch_first", "bidirectional"):
            if not isinstance(getattr(self, flag), (bool, np.bool_)):
                raise TypeError(f"{flag}: expected a bool, got {getattr(self, flag)!r}")
            object.__setattr__(self, flag, bool(getattr(self, flag)))
        dtype = np.dtype(self.dtype).name if self.dtype is not None and _is_dtype_like(self.dtype) else self.dtype
        if dtype not in DTYPES:
            raise ValueError(f"dtype: expected one of {list(DTYPES)}, got {self.dtype!r}")
        object.__setattr__(self, "dtype", dtype)

    # --- derived sizes -------------------------------------------------
    @property
    def gates(self) -> int:
        """G: 1 for the Elman cells, 4 for LSTM (i, f, g, o), 3 for GRU (r, z, n)."""
        return GATES[self.mode]

    @property
    def num_directions(self) -> int:
        """D: 2 when bidirectional, else 1."""
        return 2 if self.bidirectional else 1

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def accepts_dtype(self, dtype) -> bool:
        """Whether arrays of ``dtype`` hold this spec's dtype: the same type in any byte order
        (a byte-swapped array is converted to native order before any backend sees it)."""
        return np.dtype(dtype).newbyteorder("=") == self.np_dtype

    def layer_input_size(self, layer: int) -> int:
        """Features read by ``layer``: I for layer 0, D*H above it."""
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    def suffixes(self):
        """Yield ``(layer, direction, suffix)`` in PyTorch's parameter order."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield layer, direction, f"_l{layer}" + ("_reverse" if direction else "")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{state_dict name: shape}`` in the order of ``nn.RNN.state_dict()``."""
        gh = self.gates * self.hidden_size
        shapes = {}
        for layer, _, sfx in self.suffixes():
            shapes["weight_ih" + sfx] = (gh, self.layer_input_size(layer))
            shapes["weight_hh" + sfx] = (gh, self.hidden_size)
            if self.bias:
                shapes["bias_ih" + sfx] = (gh,)
                shapes["bias_hh" + sfx] = (gh,)
        return shapes

    def input_shape(self, timesteps: int, batch: int | None) -> tuple[int, ...]:
        """Shape of ``x``: (T, B, I), or (B, T, I) when ``batch_first``; (T, I) when ``batch`` is
        ``None`` (unbatched input, where ``batch_first`` does not apply)."""
        return self._sequence_shape(timesteps, batch, self.input_size)

    def output_shape(self, timesteps: int, batch: int | None) -> tuple[int, ...]:
        """Shape of ``output``: (T, B, D*H), or (B, T, D*H) when ``batch_first``; (T, D*H) when
        ``batch`` is ``None`` (unbatched)."""
        return self._sequence_shape(timesteps, batch, self.num_directions * self.hidden_size)

    def state_shape(self, batch: int | None) -> tuple[int, ...]:
        """Shape of ``h0``/``h_n`` (and ``c0``/``c_n``): (D*L, B, H), whatever ``batch_first``;
        (D*L, H) when ``batch`` is ``None`` (unbatched)."""
        dl = self.num_directions * self.num_layers
        return (dl, self.hidden_size) if batch is None else (dl, batch, self.hidden_size)

    def _sequence_shape(self, timesteps, batch, features):
        if batch is None:
            return (timesteps, features)
        return (batch, timesteps, features) if self.batch_first else (timesteps, batch, features)

    # --- layout: the one place that knows where T and B sit -----------
    @property
    def input_layout(self) -> str:
        """``"(B, T, I)"`` when ``batch_first``, else ``"(T, B, I)"``: for messages."""
        return "(B, T, I)" if self.batch_first else "(T, B, I)"

    def timesteps_batch(self, x) -> tuple[int, int]:
        """(T, B) of a 3-D ``x`` (or ``output``) in this spec's layout."""
        return (x.shape[1], x.shape[0]) if self.batch_first else (x.shape[0], x.shape[1])

    def time_major(self, a):
        """A (T, B, F) view of ``a``, given in this spec's layout ((B, T, F) when ``batch_first``)."""
        return a.transpose(1, 0, 2) if self.batch_first else a

    def from_time_major(self, a):
        """The inverse of :meth:`time_major`: a (T, B, F) array as a view in this spec's layout."""
        return a.transpose(1, 0, 2) if self.batch_first else a

    def batched(self, x):
        """A view of unbatched ``x`` (T, I) (or ``output`` (T, D*H)) with a batch axis of B = 1 in
        this spec's layout: (T, 1, F), or (1, T, F) when ``batch_first``."""
        return self.from_time_major(x[:, None, :])

    def unbatched(self, a):
        """The inverse of :meth:`batched`: a (T, F) view of a 3-D ``a`` with B = 1 in this spec's layout."""
        return self.time_major(a)[:, 0, :]

    def first_timesteps(self, x, steps: int):
        """A view of the first ``steps`` timesteps of ``x`` (all of ``x`` when T <= ``steps``)."""
        return self.from_time_major(self.time_major(x)[:steps])

    # --- cost model ----------------------------------------------------
    def flops(self, timesteps: int, batch: int, pass_: str = "forward") -> int:
        """Floating-point operations of one call of ``pass_`` (multiply-add = 2).

        ``"forward"``: matrix products per step, layer and direction ``2*G*H*(I_l + H)*B``;
        pointwise work per step, layer, direction and batch row, counting each add, multiply and
        transcendental as one: bias adds ``2*G*H`` (when ``bias``) plus the cell update -- rnn: H;
        lstm: 5H (f*c, i*g, add, tanh(c), o*) + 4H activations; gru: 7H (r*hn, add, tanh, (1-z),
        two products, add) + 3H activations.

        ``"forward_backward"``: the forward pass, then backpropagation through time, whose
        products are twice the forward's (per step the gate gradients times W_ih for dx and times
        W_hh for dh, and their products with x and h_{t-1} for dW_ih and dW_hh: ``4*G*H*(I_l +
        H)*B``), plus per row the bias gradients ``2*G*H`` (when ``bias``; both biases get the
        gate gradients) and twice the forward's pointwise work (each derivative costs about two
        operations per forward one).  The count of the algorithm, not of any one backend (a
        backend that recomputes the forward's gates spends more).

        Raises:
            ValueError: an unknown pass.
        """
        if pass_ not in ("forward", "forward_backward"):
            raise ValueError(f"pass_: expected 'forward' or 'forward_backward', got {pass_!r}")
        backward = pass_ == "forward_backward"
        pointwise = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 9, "gru": 10}[self.mode]
        total = 0
        h, g = self.hidden_size, self.gates
        for layer, _, _ in self.suffixes():
            products = 2 * g * h * (self.layer_input_size(layer) + h)
            biases = 2 * g * h if self.bias else 0
            per_row = products + pointwise * h + biases
            if backward:
                per_row += 2 * products + 2 * pointwise * h + biases
            total += per_row
        return total * timesteps * batch

    def weight_bytes(self) -> int:
        """Bytes of all parameters, i.e. weights touched by one timestep of every layer."""
        return sum(math.prod(s) for s in self.weight_shapes().values()) * self.np_dtype.itemsize


def _is_dtype_like(value) -> bool:
    try:
        np.dtype(value)
    except (TypeError, ValueError):
        return False
    return True
