"""The problem description: one frozen dataclass with PyTorch's field names.

A :class:`CellSpec` knows its own weight names and shapes, input, output and
state shapes, its layout (where T and B sit, ``batch_first`` or not), and its
FLOP count, so no other module recomputes them.  New fields are added with
defaults (``proj_size`` and ``dropout`` were), so older call sites keep working.
"""

from __future__ import annotations

import dataclasses
import math
import numbers

import numpy as np

from .lengths import check_lengths

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
        proj_size: P, LSTM with projections (``nn.LSTM(proj_size=P)``): 0 (none) or
            0 < P < H, LSTM only.  Each step's ``o * tanh(c)`` (H features) is multiplied by
            ``weight_hr_l{k}`` (P, H), so ``h``, ``output`` and ``h_n`` have P features, ``c``
            keeps H, ``weight_hh`` is (4H, P) and a layer above the first reads D*P features.
        dropout: the probability ``nn.RNN``'s ``dropout`` gives to the dropout between layers,
            in [0, 1].  Recorded, never applied: every backend computes evaluation semantics
            (as after ``module.eval()``), in every pass, so it changes no answer and no timing
            (the docs say why training-mode dropout is not measured).

    Raises:
        ValueError: unknown mode or dtype, a size below 1, a ``proj_size`` that is negative, not
            below ``hidden_size``, or set for another mode than LSTM, a ``dropout`` outside
            [0, 1] (the message names the field, and torch's rule).
        TypeError: a size or ``proj_size`` that is not an int, a flag that is not a bool, a
            ``dropout`` that is not a real number.
    """

    mode: str
    input_size: int
    hidden_size: int
    num_layers: int = 1
    bias: bool = True
    batch_first: bool = False
    bidirectional: bool = False
    dtype: str = "float32"
    proj_size: int = 0
    dropout: float = 0.0

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
        _check_size("proj_size", self.proj_size, minimum=0)
        object.__setattr__(self, "proj_size", int(self.proj_size))
        if self.proj_size and self.mode != "lstm":  # torch: "only supported for LSTM, not RNN or GRU"
            raise ValueError(f"proj_size: projections exist for lstm only, got proj_size={self.proj_size} "
                             f"for {self.mode}")
        if self.proj_size >= self.hidden_size:
            raise ValueError(f"proj_size: expected 0 (no projection) or an int below hidden_size="
                             f"{self.hidden_size}, got {self.proj_size}")
        if isinstance(self.dropout, (bool, np.bool_)) or not isinstance(self.dropout, numbers.Real):
            raise TypeError(f"dropout: expected a float in [0, 1], got {self.dropout!r}")
        if not 0 <= self.dropout <= 1:  # NaN fails too
            raise ValueError(f"dropout: expected a probability in [0, 1], got {self.dropout!r}")
        object.__setattr__(self, "dropout", float(self.dropout))

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
    def h_size(self) -> int:
        """Features of ``h`` (each direction's output, ``h0``, ``h_n``): ``proj_size`` when set,
        else ``hidden_size`` (torch's ``real_hidden_size``).  ``c`` always has ``hidden_size``."""
        return self.proj_size or self.hidden_size

    @property
    def np_dtype(self) -> np.dtype:
        return np.dtype(self.dtype)

    def accepts_dtype(self, dtype) -> bool:
        """Whether arrays of ``dtype`` hold this spec's dtype: the same type in any byte order
        (a byte-swapped array is converted to native order before any backend sees it)."""
        return np.dtype(dtype).newbyteorder("=") == self.np_dtype

    def layer_input_size(self, layer: int) -> int:
        """Features read by ``layer``: I for layer 0, D * :attr:`h_size` above it."""
        return self.input_size if layer == 0 else self.num_directions * self.h_size

    def suffixes(self):
        """Yield ``(layer, direction, suffix)`` in PyTorch's parameter order."""
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                yield layer, direction, f"_l{layer}" + ("_reverse" if direction else "")

    def weight_shapes(self) -> dict[str, tuple[int, ...]]:
        """``{state_dict name: shape}`` in the order of ``nn.RNN.state_dict()``: per layer and
        direction ``weight_ih`` (G*H, I_l), ``weight_hh`` (G*H, h_size), ``bias_ih``, ``bias_hh``
        (G*H,) when ``bias``, then ``weight_hr`` (P, H) when ``proj_size`` is P > 0."""
        gh = self.gates * self.hidden_size
        shapes = {}
        for layer, _, sfx in self.suffixes():
            shapes["weight_ih" + sfx] = (gh, self.layer_input_size(layer))
            shapes["weight_hh" + sfx] = (gh, self.h_size)
            if self.bias:
                shapes["bias_ih" + sfx] = (gh,)
                shapes["bias_hh" + sfx] = (gh,)
            if self.proj_size:
                shapes["weight_hr" + sfx] = (self.proj_size, self.hidden_size)
        return shapes

    def input_shape(self, timesteps: int, batch: int | None) -> tuple[int, ...]:
        """Shape of ``x``: (T, B, I), or (B, T, I) when ``batch_first``; (T, I) when ``batch`` is
        ``None`` (unbatched input, where ``batch_first`` does not apply)."""
        return self._sequence_shape(timesteps, batch, self.input_size)

    def output_shape(self, timesteps: int, batch: int | None) -> tuple[int, ...]:
        """Shape of ``output``: (T, B, D*h_size), or (B, T, D*h_size) when ``batch_first``;
        (T, D*h_size) when ``batch`` is ``None`` (unbatched).  ``h_size`` is :attr:`h_size`: P with
        projections, else H."""
        return self._sequence_shape(timesteps, batch, self.num_directions * self.h_size)

    def state_shape(self, batch: int | None, cell: bool = False) -> tuple[int, ...]:
        """Shape of ``h0``/``h_n`` -- (D*L, B, h_size) -- or, with ``cell``, of LSTM's
        ``c0``/``c_n`` -- (D*L, B, H); whatever ``batch_first``; without the B axis when
        ``batch`` is ``None`` (unbatched).  The two differ only with ``proj_size``."""
        dl = self.num_directions * self.num_layers
        features = self.hidden_size if cell else self.h_size
        return (dl, features) if batch is None else (dl, batch, features)

    def state_shapes(self, batch: int | None) -> list[tuple[int, ...]]:
        """The shapes of the states, in order: ``[h]``, or ``[h, c]`` for LSTM."""
        return [self.state_shape(batch)] + ([self.state_shape(batch, cell=True)] if self.mode == "lstm" else [])

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
    def flops(self, timesteps: int, batch: int, pass_: str = "forward", lengths=None) -> int:
        """Floating-point operations of one call of ``pass_`` (multiply-add = 2).

        ``"forward"``: matrix products per step, layer and direction ``2*G*H*(I_l + h_size)*B``
        (``h_size`` is P with projections, else H), plus the projection ``2*P*H*B`` when
        ``proj_size`` is P > 0; pointwise work per step, layer, direction and batch row, counting
        each add, multiply and transcendental as one: bias adds ``2*G*H`` (when ``bias``) plus the
        cell update -- rnn: H; lstm: 5H (f*c, i*g, add, tanh(c), o*) + 4H activations; gru: 7H
        (r*hn, add, tanh, (1-z), two products, add) + 3H activations.

        ``"forward_backward"``: the forward pass, then backpropagation through time, whose
        products are twice the forward's (per step the gate gradients times W_ih for dx and times
        W_hh for dh, and their products with x and h_{t-1} for dW_ih and dW_hh: ``4*G*H*(I_l +
        h_size)*B``; with projections also dh times W_hr and its product with o*tanh(c) for
        dW_hr: ``4*P*H*B``), plus per row the bias gradients ``2*G*H`` (when ``bias``; both biases
        get the gate gradients) and twice the forward's pointwise work (each derivative costs
        about two operations per forward one).  The count of the algorithm, not of any one
        backend (a backend that recomputes the forward's gates spends more).

        ``lengths``: ``None`` (every sequence has T steps), or the sequence lengths (B,) of a
        variable-length batch (:func:`kernels.lengths.check_lengths`' rules): only valid steps
        count -- ``sum(lengths)`` rows of work per layer and direction instead of ``T*B`` -- as
        a packed sequence computes them; a backend that computes the padding too spends more.

        Raises:
            ValueError: an unknown pass, or bad ``lengths`` (naming ``lengths``).
        """
        if pass_ not in ("forward", "forward_backward"):
            raise ValueError(f"pass_: expected 'forward' or 'forward_backward', got {pass_!r}")
        if lengths is None:
            rows = timesteps * batch
        else:
            rows = int(check_lengths(lengths, timesteps, batch).sum())
        backward = pass_ == "forward_backward"
        pointwise = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 9, "gru": 10}[self.mode]
        total = 0
        h, g = self.hidden_size, self.gates
        for layer, _, _ in self.suffixes():
            products = 2 * g * h * (self.layer_input_size(layer) + self.h_size) + 2 * self.proj_size * h
            biases = 2 * g * h if self.bias else 0
            per_row = products + pointwise * h + biases
            if backward:
                per_row += 2 * products + 2 * pointwise * h + biases
            total += per_row
        return total * rows

    def weight_bytes(self) -> int:
        """Bytes of all parameters, i.e. weights touched by one timestep of every layer."""
        return sum(math.prod(s) for s in self.weight_shapes().values()) * self.np_dtype.itemsize


def _is_dtype_like(value) -> bool:
    try:
        np.dtype(value)
    except (TypeError, ValueError):
        return False
    return True
