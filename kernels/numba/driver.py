"""The compiled stack: a whole pass of the numba backend in one call.

:func:`forward_stack` runs every layer and direction (:func:`kernels.numba.forward.layer_forward`),
each direction writing its output into its columns of the layer's output (the concatenation of
directions), each pair's state running in place in ``h_n``/``c_n``, and ``batch_first`` transposed
on the way in and out; :func:`train_stack` does that keeping every pair's gates, then walks the
layers back down (:func:`kernels.numba.backward.layer_backward`): a layer's output gradient is
split between its directions by columns, and the input gradients of its directions sum into the
gradient of the layer below's output.  Both take the caller's arrays, the weights ``W``, a
workspace ``F`` and the table ``S`` that says where everything lies (:mod:`kernels.numba.layout`),
so a pass costs one dispatch of a function of 6 (forward) or 9 arrays and allocates nothing
(except float64 totals of the blocked sums past SUM_BLOCK rows).

The stacking logic of the numba backend lives here once; :mod:`kernels.stack` keeps the NumPy
backend's, in Python.
"""

from __future__ import annotations

import numba

from . import layout as lay
from .backward import layer_backward
from .forward import LANES, layer_forward
from .lanes import lanes_forward
from .jit import (  # noqa: F401
    DISK_CACHE,
    DISK_CACHE_REASON,
    ENTRY,
    GRU,
    JIT,
    LSTM,
    serialize_launches,
    sources_fingerprint,
)


@numba.njit(inline="always", **JIT)
def _at(S, slot):
    return S[lay.S_SLOTS_AT] + slot * lay.SLOT_WIDTH


@numba.njit(inline="always", **JIT)
def _v1(A, S, slot):
    i = _at(S, slot)
    return A[S[i]:S[i] + S[i + 1]]


@numba.njit(inline="always", **JIT)
def _v2(A, S, slot):
    i = _at(S, slot)
    return A[S[i]:S[i] + S[i + 1] * S[i + 2]].reshape((S[i + 1], S[i + 2]))


@numba.njit(inline="always", **JIT)
def _v3(A, S, slot):
    i = _at(S, slot)
    return A[S[i]:S[i] + S[i + 1] * S[i + 2] * S[i + 3]].reshape((S[i + 1], S[i + 2], S[i + 3]))


@numba.njit(inline="always", **JIT)
def _v4(A, S, slot):
    i = _at(S, slot)
    n = S[i + 1] * S[i + 2] * S[i + 3] * S[i + 4]
    return A[S[i]:S[i] + n].reshape((S[i + 1], S[i + 2], S[i + 3], S[i + 4]))


@numba.njit(inline="always", **JIT)
def _pair(k, j):
    return lay.FIXED_SLOTS + k * lay.PAIR_SLOTS + j


@numba.njit(inline="always", **JIT)
def _kept(S, k):
    return S[S[lay.S_PAIRS_AT] + k * lay.PAIR_SCALARS + lay.PAIR_KEPT] != 0


@numba.njit(inline="always", **JIT)
def _transpose01(src, dst):
    """``dst[i, j] = src[j, i]`` for 3-D ``src`` (A, B, C), ``dst`` (B, A, C)."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            for f in range(dst.shape[2]):
                dst[i, j, f] = src[j, i, f]


@numba.njit(inline="always", **JIT)
def _lanes(F, S):
    """The ``lanes`` strategy's batch-minor buffers (:mod:`kernels.numba.lanes`): LX, LA, LAH, LH, LC, LM."""
    return (_v2(F, S, lay.LX), _v2(F, S, lay.LA), _v2(F, S, lay.LAH), _v2(F, S, lay.LH), _v2(F, S, lay.LC),
            _v2(F, S, lay.LM))


@numba.njit(inline="always", **JIT)
def _forward_pair(S, W, F, k, keep, strategy, mode, fn, fc, row_threads, threads, inp, h, c, out, off, active, reverse):
    """Pair ``k``'s forward from the state already in ``h`` and ``c``, into ``out``."""
    if strategy == LANES:
        lx, la, lah, lh, lc, lm = _lanes(F, S)
        lanes_forward(mode, threads, inp, _v2(W, S, _pair(k, lay.W_IH)), _v2(W, S, _pair(k, lay.W_HH)),
                      _v1(W, S, _pair(k, lay.BX)), _v1(W, S, _pair(k, lay.BH)), _v2(W, S, _pair(k, lay.W_HR)), h, c,
                      out, off, active, reverse, keep, _v3(F, S, _pair(k, lay.GATES)), _v3(F, S, _pair(k, lay.CS)),
                      _v3(F, S, _pair(k, lay.TC)), _v3(F, S, _pair(k, lay.MK)), _v3(F, S, _pair(k, lay.GHN)),
                      S[lay.S_ZERO_H0] != 0, lx, la, lah, lh, lc, lm)
        return
    layer_forward(strategy, mode, fn, fc, row_threads, threads, inp, _v2(W, S, _pair(k, lay.W_IH_T)),
                  _v2(W, S, _pair(k, lay.W_HH_T)), _v1(W, S, _pair(k, lay.BX)), _v1(W, S, _pair(k, lay.BH)),
                  _v2(W, S, _pair(k, lay.W_HR_T)), _v1(F, S, _pair(k, lay.PACKED)), S[lay.S_TILE_ROWS],
                  S[lay.S_TILE_COLS], h, c, _v2(F, S, lay.M), out, off, active, reverse, _v3(F, S, lay.PROJ),
                  _v2(F, S, lay.HH), keep, _v3(F, S, _pair(k, lay.GATES)), _v3(F, S, _pair(k, lay.CS)),
                  _v3(F, S, _pair(k, lay.TC)), _v3(F, S, _pair(k, lay.MK)), _v3(F, S, _pair(k, lay.GHN)),
                  S[lay.S_ZERO_H0] != 0)


@numba.njit(inline="always", **JIT)
def _forward_layers(x, h0, c0, W, F, S, train):
    """Every layer and direction forward; returns ``(x time-major, the layers' outputs below the
    last)``.  With ``train`` every layer's output is kept and the pairs that keep their gates
    (:func:`_kept`) store them."""
    steps, layers, directions, size = S[lay.S_T], S[lay.S_L], S[lay.S_D], S[lay.S_P]
    mode, strategy = S[lay.S_MODE], S[lay.S_STRATEGY]
    fn, fc, row_threads = S[lay.S_GEMM], S[lay.S_COMPUTE], S[lay.S_ROW_THREADS] != 0
    threads = S[lay.S_THREADS]
    active = S[S[lay.S_ACTIVE_AT]:S[lay.S_ACTIVE_AT] + steps]
    xt = x
    if S[lay.S_BATCH_FIRST]:
        xt = _v3(F, S, lay.XT)
        _transpose01(x, xt)
    hn, cn = _v3(F, S, lay.HN), _v3(F, S, lay.CN)
    louts, last = _v4(F, S, lay.LOUTS), _v3(F, S, lay.OUT)
    inp = xt
    for layer in range(layers):
        out = last if layer == layers - 1 else louts[layer if train else layer % 2]
        for d in range(directions):
            k = layer * directions + d
            h, c = hn[k], cn[k]
            h[:] = h0[k]
            c[:] = c0[k]
            _forward_pair(S, W, F, k, train and _kept(S, k), strategy, mode, fn, fc, row_threads, threads, inp, h, c,
                          out, d * size, active, d == 1)
        inp = out
    if S[lay.S_BATCH_FIRST]:
        _transpose01(last, _v3(F, S, lay.OUT_BF))
    return xt, louts


def _entry_points(fingerprint):
    """The entry points, with ``fingerprint`` (:func:`kernels.numba.jit.sources_fingerprint`) as a
    closure variable: numba's cache key includes it, so a change in any compiled module compiles
    them again instead of loading stale code."""

    @numba.njit(**ENTRY)
    def forward_stack(x, h0, c0, W, F, S):
        """The forward pass of the stack: output, h_n and c_n in their slots of ``F``.  ``x``: the
        input as the caller lays it out (sorted by length where it has lengths); ``h0`` (D*L, B, P);
        ``c0`` (D*L, B, H), ``h0`` again for the cells without one."""
        fingerprint  # noqa: B018  (a closure variable, so part of numba's cache key: _entry_points)
        _forward_layers(x, h0, c0, W, F, S, False)

    @numba.njit(**ENTRY)
    def train_stack(x, h0, c0, grad_output, grad_h_n, grad_c_n, W, F, S):
        """:func:`forward_stack` keeping the gates, then backpropagation through time: every gradient
        in its slot of ``F``.  ``grad_output`` in the output's layout, ``grad_h_n`` (D*L, B, P),
        ``grad_c_n`` (D*L, B, H) (``grad_h_n`` again for the cells without one)."""
        fingerprint  # noqa: B018  (as in forward_stack)
        xt, louts = _forward_layers(x, h0, c0, W, F, S, True)
        steps, layers, directions, size = S[lay.S_T], S[lay.S_L], S[lay.S_D], S[lay.S_P]
        mode, strategy = S[lay.S_MODE], S[lay.S_STRATEGY]
        fn, fc, row_threads = S[lay.S_GEMM], S[lay.S_COMPUTE], S[lay.S_ROW_THREADS] != 0
        threads = S[lay.S_THREADS]
        active = S[S[lay.S_ACTIVE_AT]:S[lay.S_ACTIVE_AT] + steps]
        d_above = grad_output
        if S[lay.S_BATCH_FIRST]:
            d_above = _v3(F, S, lay.GO_T)
            _transpose01(grad_output, d_above)
        last, dlow, dxs = _v3(F, S, lay.OUT), _v4(F, S, lay.DLOW), _v3(F, S, lay.DX)
        dh0, dc0 = _v3(F, S, lay.DH0), _v3(F, S, lay.DC0)
        dc_scratch, dm, hprev = _v2(F, S, lay.DC), _v2(F, S, lay.DM), _v3(F, S, lay.HPREV)
        dgx, dhp = _v3(F, S, lay.DGX), _v3(F, S, lay.DHP)
        dgh = _v3(F, S, lay.DGH) if mode == GRU else dgx
        rh, rc = _v2(F, S, lay.RH), _v2(F, S, lay.RC)
        for layer in range(layers - 1, -1, -1):
            inp = xt if layer == 0 else louts[layer - 1]
            out = last if layer == layers - 1 else louts[layer]
            target = dxs if layer == 0 else dlow[layer % 2]
            for d in range(directions):
                k = layer * directions + d
                if not _kept(S, k):  # recompute its gates: the pair's forward again, into the shared buffers
                    rh[:] = h0[k]
                    rc[:] = c0[k]
                    _forward_pair(S, W, F, k, True, strategy, mode, fn, fc, row_threads, threads, inp, rh, rc, out,
                                  d * size, active, d == 1)
                dh = dh0[k]
                dh[:] = grad_h_n[k]
                dc = dc0[k] if mode == LSTM else dc_scratch
                dc[:] = grad_c_n[k]
                beta, reverse = (0 if d == 0 else 1), d == 1  # the second direction's input gradient adds on
                layer_backward(strategy, mode, fn, threads, inp, h0[k], c0[k], out, d * size,
                               _v2(W, S, _pair(k, lay.W_IH)), _v2(W, S, _pair(k, lay.W_HH)),
                               _v2(W, S, _pair(k, lay.W_HR)), _v2(W, S, _pair(k, lay.W_HH_T)),
                               _v2(W, S, _pair(k, lay.W_HR_T)), _lanes(F, S), active, reverse, _v3(F, S, _pair(k, lay.GATES)),
                               _v3(F, S, _pair(k, lay.CS)), _v3(F, S, _pair(k, lay.TC)), _v3(F, S, _pair(k, lay.MK)),
                               _v3(F, S, _pair(k, lay.GHN)), d_above, d * size, dh, dc, dm,
                               hprev, dgx, dgh, dhp, target, beta, _v2(F, S, _pair(k, lay.DW_IH)),
                               _v2(F, S, _pair(k, lay.DW_HH)), _v1(F, S, _pair(k, lay.DB_IH)),
                               _v1(F, S, _pair(k, lay.DB_HH)), _v2(F, S, _pair(k, lay.DW_HR)))
            d_above = target
        if S[lay.S_BATCH_FIRST]:
            _transpose01(dxs, _v3(F, S, lay.DX_BF))

    return forward_stack, train_stack


forward_stack, train_stack = _entry_points(sources_fingerprint())


#: The compiled entry of each pass; the backend calls them through this dict.
DRIVERS = {"forward": forward_stack, "forward_backward": train_stack}


@numba.njit(parallel=True, **ENTRY)
def _launch(a):
    for i in numba.prange(a.shape[0]):
        a[i] += 1


def choose_threading_layer() -> None:
    """Launch parallel work once, so that numba chooses its threading layer now (and
    :func:`kernels.numba.jit.serialize_launches` can tell) rather than in a timed call."""
    import numpy as np

    _launch(np.zeros(2))
