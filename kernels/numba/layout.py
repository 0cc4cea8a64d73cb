"""Where the compiled stack finds everything: the table of one call and its buffers.

The numba backend runs a whole pass -- every layer and direction, the concatenation of directions,
the states, and for ``forward_backward`` the backward too -- in one compiled call
(:mod:`kernels.numba.driver`) over buffers allocated before it.  That call takes few arguments:
the caller's arrays (``x``, the states, the seeds), the weights ``W`` (one flat array, made at
prepare time), the workspace ``F`` (one flat array, made per thread, :class:`Workspace`), and the
table ``S`` (int64), which says where each buffer lies in ``W`` or ``F`` and the call's sizes.
This module lays them out and is plain Python (no numba), so that the sizes and offsets are
written once: the compiled code only reads them.

**The table** ``S``: the scalars (indices ``S_*``), then per pair (layer, direction) its scalars
(``PAIR_*``: whether it keeps its gates), then a slot per buffer -- its offset and up to four dims
(``SLOT_WIDTH`` int64 each) -- then ``active`` (T,), the rows that run each step.  Slots ``0 ..
FIXED_SLOTS - 1`` are the call's buffers (names ``OUT``, ``HN``, ...), then ``PAIR_SLOTS`` per pair
(``W_IH_T``, ..., ``GATES``, ...): pair k's slot j is ``FIXED_SLOTS + k * PAIR_SLOTS + j``.  A
buffer that a call does not need has size 0.

**Keeping the gates** (``forward_backward``): the forward keeps, per pair, what the backward needs
of it -- the gate activations (LSTM i, f, g, o; GRU r, z, n, and W_hn h + b_hn), LSTM's c_t and
tanh(c_t), and with a projection the cell's output before W_hr -- instead of the backward
recomputing them (with two products over all steps, as before).  The Elman cells keep nothing: their
derivative reads the output.  Rule (:func:`kept_pairs`): pairs keep their gates, layer by layer,
while the bytes kept stay within :data:`GATE_BUDGET` or are those of the first pair alone (which
costs no memory over recomputing: the recomputation needs a buffer of that size anyway); the pairs
beyond share one buffer of that size, and the backward recomputes each of them into it by running
that pair's forward again (bitwise the same gates).
"""

from __future__ import annotations

import numpy as np

#: The cell as the kernels' ``mode``.
RNN_TANH, RNN_RELU, LSTM, GRU = 0, 1, 2, 3
MODE_CODES = {"rnn_tanh": RNN_TANH, "rnn_relu": RNN_RELU, "lstm": LSTM, "gru": GRU}

# --- scalars of the table ---------------------------------------------------------------------
S_T, S_B, S_I, S_H, S_P, S_G, S_L, S_D, S_MODE, S_BATCH_FIRST, S_STRATEGY = range(11)
S_GEMM, S_COMPUTE, S_ROW_THREADS, S_PACKED, S_PAIRS_AT, S_SLOTS_AT, S_ACTIVE_AT, S_TRAIN, S_THREADS = range(11, 20)
#: 1 where every pair starts from h = 0 and every W_hh is finite: the first step's recurrent product is
#: then exactly zero, and skipped
S_ZERO_H0 = 20
#: The tiles' rows and columns (kb, nb) where a pair's PACKED holds W_hh^T cut into tiles
#: (:func:`cut_tiles`), else 0
S_TILE_ROWS, S_TILE_COLS = 21, 22
SCALARS = 23
#: Per pair: 1 where its gates are kept by the forward, 0 where the backward recomputes them.
PAIR_KEPT = 0
PAIR_SCALARS = 1
#: Int64 per slot: offset, then four dims (unused dims are 1).
SLOT_WIDTH = 5

# --- the call's buffers (in F) -------------------------------------------------------------------
FIXED = (
    "OUT",      # (T, B, D*P) the last layer's output, time-major
    "OUT_BF",   # (B, T, D*P) the output batch-first (batch_first only)
    "HN",       # (K, B, P) h_n; each pair's running h
    "CN",       # (K, B, H) c_n; each pair's running c (a scratch for the cells without one)
    "XT",       # (T, B, I) x time-major (batch_first only)
    "LOUTS",    # (L', T, B, D*P) the outputs of the layers below the last: all of them (train), else two in turn
    "PROJ",     # (T, B, G*H) pre-activations of every step (forward pass; a row block's for `parallel`)
    "HH",       # (B, G*H) GRU's h W_hh^T + b_hh of a step; rows of a block's for the loops
    "M",        # (B, H) the cell's output before W_hr (projection)
    # forward_backward only
    "GO_T",     # (T, B, D*P) grad_output time-major (batch_first only)
    "DX",       # (T, B, I) the gradient of x, time-major
    "DX_BF",    # (B, T, I) the gradient of x, batch-first (batch_first only)
    "DH0",      # (K, B, P)
    "DC0",      # (K, B, H) (LSTM)
    "DLOW",     # (2, T, B, D*P) the gradient of a layer's input above layer 0, two in turn
    "HPREV",    # (T, B, P) h_{t-1} of every step of a pair
    "DGX",      # (T, B, G*H) the gate gradients (of the x W_ih^T + b_ih part)
    "DGH",      # (T, B, G*H) GRU: those of the h W_hh^T + b_hh part
    "DHP",      # (T, B, P) the gradient of h_t (projection: for W_hr's)
    "DH",       # (B, P) the running gradient of h
    "DC",       # (B, H) the running gradient of c
    "DM",       # (B, H) the gradient of the cell's output (projection)
    "RH",       # (B, P) h of a recomputed forward
    "RC",       # (B, H) c of a recomputed forward
    # the `lanes` strategy's per-step buffers, batch-minor (B in the vector lanes); size 0 for the others
    "LX",       # (max I_l, B) a step's input, transposed
    "LA",       # (G*H, B) a step's pre-activations, then gates; the backward's gate gradients
    "LAH",      # (G*H, B) GRU's h W_hh^T + b_hh; the backward's gradients of its part
    "LH",       # (P, B) the running h; the backward's running dh
    "LC",       # (H, B) the running c; the backward's running dc
    "LM",       # (H, B) the cell's output before W_hr (projection); the backward's dm
)
PAIR = (
    # in W: the weights as the kernels take them
    "W_IH_T",   # (I_l, G*H)
    "W_HH_T",   # (P, G*H)
    "BX",       # (G*H,) b_ih + b_hh, except GRU: b_ih
    "BH",       # (G*H,) zeros, except GRU: b_hh
    "W_HR_T",   # (H, P), (0, 0) without a projection
    "W_IH",     # (G*H, I_l) as stored, for the backward
    "W_HH",     # (G*H, P)
    "W_HR",     # (P, H), (0, 0) without a projection
    # in F
    "PACKED",   # W_hh^T for products of B rows: packed by MKL, or cut into tiles (S_TILE_ROWS; cut_tiles), or empty
    "GATES",    # (T, B, G*H) the kept gate activations (LSTM, GRU; train)
    "CS",       # (T, B, H) LSTM's c_t (train)
    "TC",       # (T, B, H) LSTM's tanh(c_t) (train)
    "MK",       # (T, B, H) the cell's output before W_hr (projection; train)
    "GHN",      # (T, B, H) GRU's W_hn h_{t-1} + b_hn (train)
    "DW_IH", "DW_HH", "DB_IH", "DB_HH", "DW_HR",  # the weight gradients, state_dict shapes
)
FIXED_SLOTS, PAIR_SLOTS = len(FIXED), len(PAIR)
#: Slots in W (the weights); every other slot is in F.
WEIGHT_SLOTS = PAIR[:8]
#: The gates a pair keeps (train), in the order of PAIR.
KEPT = ("GATES", "CS", "TC", "MK", "GHN")
(OUT, OUT_BF, HN, CN, XT, LOUTS, PROJ, HH, M, GO_T, DX, DX_BF, DH0, DC0, DLOW, HPREV, DGX, DGH, DHP, DH, DC, DM, RH,
 RC, LX, LA, LAH, LH, LC, LM) = range(FIXED_SLOTS)
(W_IH_T, W_HH_T, BX, BH, W_HR_T, W_IH, W_HH, W_HR, PACKED, GATES, CS, TC, MK, GHN, DW_IH, DW_HH, DB_IH, DB_HH,
 DW_HR) = range(PAIR_SLOTS)
assert all(globals()[name] == i for names in (FIXED, PAIR) for i, name in enumerate(names))  # one order, written twice
#: Strategies as the kernels' ``strategy``.
STRATEGY_CODES = {"blas": 0, "fused": 1, "parallel": 2, "lanes": 3}
#: Bytes of kept gates beyond the first pair's that a ``forward_backward`` call may hold
#: (:func:`kept_pairs`).
GATE_BUDGET = 1 << 30
#: Elements between buffers: each starts 64-byte aligned (F and W are).
ALIGN = 16


def _aligned_empty(size: int, dtype) -> np.ndarray:
    """A flat array of ``size`` elements whose first element is 64-byte aligned."""
    dtype = np.dtype(dtype)
    raw = np.empty(size + 64 // dtype.itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // dtype.itemsize
    return raw[skip:skip + size]


class Layout:
    """Named buffers laid out one after another in a flat array, each 64-byte aligned."""

    def __init__(self):
        self.slots: dict[int, tuple[int, tuple[int, ...]]] = {}
        self.size = 0

    def add(self, slot: int, shape, at: int | None = None) -> None:
        """Slot ``slot`` of ``shape`` at the end (or at offset ``at``, sharing memory)."""
        shape = tuple(int(d) for d in shape)
        if at is None:
            at = self.size
            self.size += -(-int(np.prod(shape)) // ALIGN) * ALIGN
        self.slots[slot] = (at, shape)

    def view(self, flat: np.ndarray, slot: int) -> np.ndarray:
        at, shape = self.slots[slot]
        return flat[at:at + int(np.prod(shape))].reshape(shape)


def pair_slot(k: int, name: str) -> int:
    return FIXED_SLOTS + k * PAIR_SLOTS + PAIR.index(name)


def weights_layout(spec, params) -> tuple[Layout, np.ndarray]:
    """``(layout, W)``: every pair's weights (:data:`WEIGHT_SLOTS`, from ``params``, one tuple per
    pair of the arrays they name) in one flat array."""
    layout = Layout()
    for k, arrays in enumerate(params):
        for name, a in zip(WEIGHT_SLOTS, arrays):
            layout.add(pair_slot(k, name), a.shape)
    flat = _aligned_empty(max(layout.size, 1), spec.np_dtype)
    for k, arrays in enumerate(params):
        for name, a in zip(WEIGHT_SLOTS, arrays):
            layout.view(flat, pair_slot(k, name))[...] = a
    return layout, flat


def pair_gate_shapes(spec, timesteps: int, batch: int) -> dict[str, tuple[int, ...]]:
    """The shapes of what a pair keeps for the backward (:data:`KEPT`), size 0 where nothing."""
    T, B, H, GH = timesteps, batch, spec.hidden_size, spec.gates * spec.hidden_size
    lstm, gru = spec.mode == "lstm", spec.mode == "gru"
    return {"GATES": (T, B, GH) if lstm or gru else (0, 0, 0), "CS": (T, B, H) if lstm else (0, 0, 0),
            "TC": (T, B, H) if lstm else (0, 0, 0), "MK": (T, B, H) if spec.proj_size else (0, 0, 0),
            "GHN": (T, B, H) if gru else (0, 0, 0)}


def kept_pairs(spec, timesteps: int, batch: int, budget: int | None = None) -> int:
    """How many pairs, in order (layer 0 forward first), keep their gates: all of them while their
    bytes stay within ``budget`` (default :data:`GATE_BUDGET`), and at least the first (see the
    module docstring)."""
    budget = GATE_BUDGET if budget is None else budget
    pairs = spec.num_layers * spec.num_directions
    one = sum(int(np.prod(s)) for s in pair_gate_shapes(spec, timesteps, batch).values()) * spec.np_dtype.itemsize
    if one == 0:
        return pairs
    return max(1, min(pairs, budget // one))


def tile_grid(k: int, n: int, kb: int, nb: int) -> tuple[int, int, int, int]:
    """The shape ``(nk, nn, kb, nb)`` of a (K, N) matrix cut into tiles of ``kb`` rows and ``nb``
    columns, those of the last row and column of tiles zero-padded (:func:`cut_tiles`)."""
    return -(-k // kb), -(-n // nb), kb, nb


def cut_tiles(w: np.ndarray, out: np.ndarray) -> None:
    """``out[i, j, :r, :c] = w[i*kb:(i+1)*kb, j*nb:(j+1)*nb]`` for 2-D ``w`` (K, N) and ``out``
    (nk, nn, kb, nb) (:func:`tile_grid`): each tile contiguous, the padding of the edge tiles
    zero.  The per-step product through tiles is :func:`kernels.numba.jit.mm_tiles`."""
    _, _, kb, nb = out.shape
    out[...] = 0
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            block = w[i * kb:(i + 1) * kb, j * nb:(j + 1) * nb]
            out[i, j, :block.shape[0], :block.shape[1]] = block


def call_layout(spec, timesteps: int, batch: int, train: bool, packed_sizes=(), kept: int | None = None,
                lanes: bool = False, tiles: tuple[int, int] | None = None) -> Layout:
    """The workspace of one call: every fixed slot and pair slot in F (weights excluded).
    ``packed_sizes``: per pair the elements of its packed W_hh^T (none: not packed); ``tiles``:
    the ``(kb, nb)`` that every pair's W_hh^T is cut into instead, in its PACKED slot
    (:func:`tile_grid`; none: not cut); ``kept``:
    how many pairs keep their gates (train; :func:`kept_pairs` by default); ``lanes``: the call
    runs the ``lanes`` strategy (its batch-minor buffers ``L*``)."""
    T, B, I, H, P = timesteps, batch, spec.input_size, spec.hidden_size, spec.h_size
    L, D, GH = spec.num_layers, spec.num_directions, spec.gates * spec.hidden_size
    K = L * D
    bf, lstm, gru, proj = spec.batch_first, spec.mode == "lstm", spec.mode == "gru", bool(spec.proj_size)
    t_ = T if train else 0
    shapes = {
        "OUT": (T, B, D * P), "OUT_BF": (B, T, D * P) if bf else (0, 0, 0), "HN": (K, B, P), "CN": (K, B, H),
        "XT": (T, B, I) if bf else (0, 0, 0),
        "LOUTS": ((L - 1) if train else min(L - 1, 2), T, B, D * P),
        # the hoisted projection of every step, or a step's rows for `parallel`; kept gates take its place
        "PROJ": (max(T, 1), B, GH) if not train or not (lstm or gru) else (1, B, GH),
        "HH": (B, GH), "M": (B, H) if proj else (0, 0),
        "GO_T": (t_, B, D * P) if bf else (0, 0, 0), "DX": (t_, B, I), "DX_BF": (B, t_, I) if bf else (0, 0, 0),
        "DH0": (K if train else 0, B, P), "DC0": (K if train and lstm else 0, B, H),
        "DLOW": (2 if train and L > 1 else 0, T, B, D * P), "HPREV": (t_, B, P), "DGX": (t_, B, GH),
        "DGH": (t_ if gru else 0, B, GH), "DHP": (t_ if proj else 0, B, P), "DH": (B if train else 0, P),
        "DC": (B if train else 0, H), "DM": (B if train and proj else 0, H), "RH": (B if train else 0, P),
        "RC": (B if train else 0, H),
    }
    n_ = B if lanes else 0
    shapes.update({"LX": (max(I, D * P) if L > 1 else I, n_), "LA": (GH, n_), "LAH": (GH if gru else 0, n_),
                   "LH": (P, n_), "LC": (H, n_), "LM": (H if proj else 0, n_)})
    layout = Layout()
    for i, name in enumerate(FIXED):
        layout.add(i, shapes[name])
    kept = (kept_pairs(spec, T, B) if kept is None else kept) if train else 0
    gate_shapes = pair_gate_shapes(spec, T, B)
    shared = {}
    for k in range(K):
        layer = k // D
        inputs = I if layer == 0 else D * P
        size = packed_sizes[k] if packed_sizes else 0
        layout.add(pair_slot(k, "PACKED"), (int(np.prod(tile_grid(P, GH, *tiles))),) if tiles else (size,))
        for name in KEPT:
            shape = gate_shapes[name] if train else (0, 0, 0)
            if k < kept or not train:
                layout.add(pair_slot(k, name), shape)
            elif name in shared:  # the pairs that recompute share one buffer
                layout.add(pair_slot(k, name), shape, at=shared[name])
            else:
                layout.add(pair_slot(k, name), shape)
                shared[name] = layout.slots[pair_slot(k, name)][0]
        n = K if train else 0
        grads = {"DW_IH": (GH, inputs), "DW_HH": (GH, P), "DB_IH": (GH,), "DB_HH": (GH,),
                 "DW_HR": (P if proj else 0, H)}
        for name, shape in grads.items():
            layout.add(pair_slot(k, name), shape if n else (0,) * len(shape))
    layout.kept = kept
    return layout


def table(spec, timesteps: int, batch: int, train: bool, layout: Layout, weights: Layout, strategy: str,
          addresses: tuple[int, int], row_threads: bool, packed: bool, active: np.ndarray, mode_code: int,
          threads: int, zero_h0: bool = False, tiles: tuple[int, int] | None = None) -> np.ndarray:
    """The int64 table ``S`` of one call (the module docstring); ``threads``: numba's thread count
    for the calls (numba's own function for it, called in compiled code, keeps that code out of the
    disk cache); ``tiles``: the ``(kb, nb)`` of the tiles in the PACKED slots (as given to
    :func:`call_layout`)."""
    K = spec.num_layers * spec.num_directions
    slots = {**layout.slots, **weights.slots}
    n_slots = FIXED_SLOTS + K * PAIR_SLOTS
    pairs_at = SCALARS
    slots_at = pairs_at + K * PAIR_SCALARS
    active_at = slots_at + n_slots * SLOT_WIDTH
    S = np.zeros(active_at + timesteps, np.int64)
    S[:SCALARS] = [timesteps, batch, spec.input_size, spec.hidden_size, spec.h_size, spec.gates, spec.num_layers,
                   spec.num_directions, mode_code, int(spec.batch_first), STRATEGY_CODES[strategy], addresses[0],
                   addresses[1], int(row_threads), int(packed), pairs_at, slots_at, active_at, int(train), threads,
                   int(zero_h0), *(tiles or (0, 0))]
    for k in range(K):
        S[pairs_at + k * PAIR_SCALARS + PAIR_KEPT] = int(k < getattr(layout, "kept", 0))
    for slot in range(n_slots):
        at, shape = slots[slot]
        dims = (tuple(shape) + (1, 1, 1, 1))[:4]
        S[slots_at + slot * SLOT_WIDTH:slots_at + (slot + 1) * SLOT_WIDTH] = (at, *dims)
    S[active_at:] = active
    return S


class Workspace:
    """One thread's buffers for calls on one set of arguments: ``F`` and the results' views.

    ``result``: ``(output, h_n, c_n)`` views into ``F`` (``c_n`` ``None`` except for LSTM);
    ``grads``: the gradients' views (train), ``{state_dict name, "input", "h0", "c0"}``."""

    def __init__(self, spec, layout: Layout, train: bool):
        self.F = _aligned_empty(max(layout.size, 1), spec.np_dtype)
        view = lambda slot: layout.view(self.F, slot)
        output = view(OUT_BF if spec.batch_first else OUT)
        self.result = (output, view(HN), view(CN) if spec.mode == "lstm" else None)
        self.grads = None
        if train:
            grads = {}
            for k, (_, _, sfx) in enumerate(spec.suffixes()):
                grads["weight_ih" + sfx] = view(pair_slot(k, "DW_IH"))
                grads["weight_hh" + sfx] = view(pair_slot(k, "DW_HH"))
                if spec.bias:
                    grads["bias_ih" + sfx] = view(pair_slot(k, "DB_IH"))
                    grads["bias_hh" + sfx] = view(pair_slot(k, "DB_HH"))
                if spec.proj_size:
                    grads["weight_hr" + sfx] = view(pair_slot(k, "DW_HR"))
            grads = {name: grads[name] for name in spec.weight_shapes()}  # state_dict order
            grads["input"] = view(DX_BF if spec.batch_first else DX)
            grads["h0"] = view(DH0)
            if spec.mode == "lstm":
                grads["c0"] = view(DC0)
            self.grads = grads
