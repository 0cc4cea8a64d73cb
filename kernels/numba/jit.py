"""What every compiled module of the numba backend shares: the JIT options, the activations and
the BLAS call.

Every function is compiled once per signature and cached on disk where numba finds a writable
cache directory (:data:`DISK_CACHE_REASON` says why not, and the kernels are then compiled in
every process).

float32 activations use a rational approximation of tanh (Eigen's ``generic_fast_tanh_float``:
max abs error 4e-7 on [-10, 10], measured against float64 tanh; tests/test_numba_strategies.py
holds it to that) that is plain arithmetic and vectorizes; sigmoid(v) = 0.5 + 0.5*tanh(v/2).
float64 uses libm's tanh.  NaN propagates: the clamp is written with comparisons that NaN fails.

**The BLAS call** (:func:`gemm_call`, :func:`compute_call`): a route's ``?gemm_`` is handed to
the kernels as an integer address (:meth:`kernels.numba.blas.Route.addresses`), cast to a function
pointer inside the compiled code, so the compiled code stays cacheable (no address baked in) and a
call types no Python object; the by-pointer arguments (transa, m, n, k, alpha, beta, the leading
dimensions) live on the calling function's stack, alive until the BLAS returns.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic, overload


def _disk_cache_reason() -> str:
    """``""`` when numba can cache this package's functions on disk, else why not.

    numba looks for a writable directory in ``NUMBA_CACHE_DIR``, then ``__pycache__`` beside the
    source file, then the user-wide cache directory (numba docs, "Notes on Caching" and
    ``NUMBA_CACHE_DIR``); where none is writable, ``cache=True`` raises ``RuntimeError`` ("no
    locator available") when a function is decorated.  A function of this module decorated with
    it answers for the package: the locators depend only on the source file's directory."""

    def probe():
        pass

    try:
        numba.njit(cache=True)(probe)
    except RuntimeError:
        return "no writable cache directory for numba; set NUMBA_CACHE_DIR"
    return ""


#: ``""`` where the kernels are cached on disk, else why they are not (:func:`_disk_cache_reason`).
DISK_CACHE_REASON = _disk_cache_reason()
#: Whether the kernels are cached on disk; where not, every process compiles them again.
DISK_CACHE = not DISK_CACHE_REASON

from .layout import GRU, LSTM, MODE_CODES, RNN_RELU, RNN_TANH  # noqa: F401  (the kernels' mode codes)

_A = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
      -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16)
_B = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
_CLAMP = 7.90531110763549805
#: Only contraction into fused multiply-adds: no flag that assumes NaN or Inf away.
FASTMATH = {"contract"}


def act_tanh(v):
    """tanh in the precision of ``v``: the rational approximation for float32, libm for float64."""
    return math.tanh(v)


@overload(act_tanh, jit_options={"cache": DISK_CACHE, "error_model": "numpy"})
def _act_tanh(v):
    if isinstance(v, types.Float) and v.bitwidth == 32:
        a = tuple(np.float32(c) for c in _A)
        b = tuple(np.float32(c) for c in _B)
        clamp = np.float32(_CLAMP)
        one = np.float32(1.0)

        def impl(v):  # Eigen's rational approximation, in float32 constants
            v2 = v * v
            p = ((((((a[6] * v2 + a[5]) * v2 + a[4]) * v2 + a[3]) * v2 + a[2]) * v2 + a[1]) * v2 + a[0])
            q = (((b[3] * v2 + b[2]) * v2 + b[1]) * v2 + b[0])
            r = v * p / q
            # saturate exactly, as tanh does in float32 beyond the clamp (|error| < 3e-7 there), so that
            # sigmoid(-inf) is 0 and r * inf gives NaN where torch does; NaN fails both tests and stays.
            # Selects, not branches: the loop around stays vectorizable.
            r = one if v > clamp else r
            return -one if v < -clamp else r

        return impl
    return lambda v: math.tanh(v)


#: Options of every kernel function.  ``error_model="numpy"``: a float division by zero gives inf or
#: NaN as in NumPy instead of a Python exception; the check for that exception is a branch in every
#: loop with a division, which kept the float32 tanh from vectorizing.  Not cached on disk
#: themselves: they are compiled into the entry points that call them (:data:`ENTRY`), which are.
JIT = {"cache": False, "fastmath": FASTMATH, "error_model": "numpy"}
#: Options of the entry points (:mod:`kernels.numba.driver`): :data:`JIT`, cached on disk where
#: numba can.  numba checks a cached function against its own source file only, not against the
#: functions it calls in other files; so an entry point carries :func:`sources_fingerprint` of
#: every compiled module as a closure variable, which numba's cache key includes.
ENTRY = {**JIT, "cache": DISK_CACHE}


def sources_fingerprint() -> int:
    """A 63-bit hash of the source of every module of this package that holds compiled code: a
    change in any of them gives the entry points a new cache key (see :data:`ENTRY`)."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).parent
    digest = hashlib.sha256()
    for name in ("jit.py", "layout.py", "cells.py", "forward.py", "lanes.py", "backward.py", "driver.py"):
        digest.update((here / name).read_bytes())
    return int.from_bytes(digest.digest()[:8], "little") >> 1


@numba.njit(inline="always", **JIT)
def sigmoid(v):
    half = type(v)(0.5)
    return half + half * act_tanh(half * v)


# --- the BLAS call -------------------------------------------------------------------------

def _data(context, builder, ty, value):
    """The data pointer of array ``value`` (of numba type ``ty``) as ``i8*``."""
    return builder.bitcast(context.make_array(ty)(context, builder, value).data, ir.IntType(8).as_pointer())


def _on_stack(context, builder, value, fromty, toty):
    """``value`` cast to ``toty``, stored in a stack slot of the calling function; the slot as ``i8*``."""
    cast = context.cast(builder, value, fromty, toty)
    slot = cgutils.alloca_once(builder, context.get_value_type(toty))
    builder.store(cast, slot)
    return builder.bitcast(slot, ir.IntType(8).as_pointer())


def _blas_codegen(kinds):
    """The code of a call of the Fortran function at the first argument's address with the other
    arguments by pointer; ``kinds`` gives each one's: ``c`` a char, ``i`` a 32-bit integer, ``f`` a
    scalar of the output's dtype, ``a`` an array (its data pointer); the output is the last array."""
    def codegen(context, builder, sig, args):
        fn, *rest = args
        tys = sig.args[1:]
        out_dtype = [ty for ty in tys if isinstance(ty, types.Array)][-1].dtype
        target = {"c": types.uint8, "i": types.int32, "f": out_dtype}
        ptrs = [_data(context, builder, ty, value) if kind == "a"
                else _on_stack(context, builder, value, ty, target[kind]) for kind, value, ty in zip(kinds, rest, tys)]
        voidptr = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [voidptr] * len(ptrs))
        builder.call(builder.inttoptr(fn, fnty.as_pointer()), ptrs)
        return context.get_dummy_value()

    return codegen


@intrinsic
def gemm_call(typingctx, fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
    """``?gemm_(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)`` (column-major,
    LP64) at address ``fn``; ``a``, ``b``, ``c`` arrays (their first element is the matrix's),
    alpha and beta in ``c``'s dtype."""
    return types.void(fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc), _blas_codegen("cciiifaiaifai")


@intrinsic
def compute_call(typingctx, fn, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc):
    """MKL's ``?gemm_compute_(transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc)`` at address
    ``fn``, ``a`` packed by ``?gemm_pack_`` (``transa = 'P'``)."""
    return types.void(fn, transa, transb, m, n, k, a, lda, b, ldb, beta, c, ldc), _blas_codegen("cciiiaiaifai")


N, T, P = 78, 84, 80  # 'N', 'T', 'P'


@numba.njit(inline="always", **JIT)
def _ld(a):
    """The leading dimension of 2-D ``a`` (rows contiguous) as the BLAS reads it: its row stride
    in elements, at least its row length and 1."""
    return max(a.strides[0] // a.itemsize, a.shape[1], 1)


@numba.njit(inline="always", **JIT)
def mm(fn, a, b, out, beta):
    """``out = a @ b + beta * out`` through the ``?gemm_`` at ``fn``, for 2-D ``a`` (M, K), ``b``
    (K, N), ``out`` (M, N) of one dtype with contiguous rows: the column-major
    ``out^T = b^T a^T``."""
    m, k = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:  # BLAS rejects a leading dimension of 0
        if beta == 0:
            out[:] = 0
        return
    gemm_call(fn, N, N, n, m, k, 1.0, b, _ld(b), a, _ld(a), beta, out, _ld(out))


@numba.njit(inline="always", **JIT)
def mm_packed(fn, packed, a, out, beta):
    """:func:`mm` with ``b`` as MKL packed it (:meth:`kernels.numba.blas.Route.pack`, for products
    of exactly ``a.shape[0]`` rows) through ``?gemm_compute_`` at ``fn``."""
    m, k = a.shape
    n = out.shape[1]
    if m == 0 or n == 0 or k == 0:
        if beta == 0 and m and n:
            out[:] = 0
        return
    compute_call(fn, P, N, n, m, k, packed, n, a, _ld(a), beta, out, _ld(out))


@numba.njit(inline="always", **JIT)
def mm_tiles(fn, a, tiles, out, beta):
    """:func:`mm` with ``b`` (K, N) given as ``tiles`` (nk, nn, kb, nb), cut by
    :func:`kernels.numba.layout.cut_tiles`: one product per tile, a column of tiles at a time (its
    block of ``out`` stays in cache), the first of a column with ``beta`` and the others adding on.
    Each product is ``a``'s rows by one tile, small enough for the BLAS to take unpacked
    (:meth:`kernels.numba.blas.Route.tiles`)."""
    k, n = a.shape[1], out.shape[1]
    blocks, columns, kb, nb = tiles.shape
    for j in range(columns):
        n0 = j * nb
        n1 = min(n, n0 + nb)
        for i in range(blocks):
            k0 = i * kb
            k1 = min(k, k0 + kb)
            mm(fn, a[:, k0:k1], tiles[i, j, :k1 - k0, :n1 - n0], out[:, n0:n1], beta if i == 0 else 1.0)


@numba.njit(inline="always", **JIT)
def mm_tn(fn, a, b, out):
    """``out = a^T @ b`` through the ``?gemm_`` at ``fn`` for ``a`` (K, M), ``b`` (K, N), ``out``
    (M, N) with contiguous rows: the column-major ``out^T = b^T a`` ('N', 'T')."""
    k, m = a.shape
    n = b.shape[1]
    if m == 0 or n == 0:
        return
    if k == 0:
        out[:] = 0
        return
    gemm_call(fn, N, T, n, m, k, 1.0, b, _ld(b), a, _ld(a), 0.0, out, _ld(out))


def serialize_launches() -> bool:
    """Whether calls of kernels that start numba's threads must not overlap: where numba's
    threading layer is ``workqueue``, which is not threadsafe and aborts the process when two
    threads launch parallel work at once (numba docs, "The Threading Layers"); ``omp`` and
    ``tbb`` are threadsafe.  The layer is chosen at the first launch: until then, serialize."""
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # not chosen yet
        return True
