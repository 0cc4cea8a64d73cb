"""The BLAS routes numba's kernels can call, each verified before use, and the default.

Every route is the Fortran ``?gemm_`` interface with 32-bit integers (LP64), reached as a
C function pointer that a jitted function takes as an argument (so the
compiled code stays cacheable: the address is not baked into it):

* ``"mkl"``: Intel MKL as linked into PyTorch's CPU library (``libtorch_cpu``
  exports ``sgemm_``/``dgemm_`` and MKL's packed-matrix calls), when this torch
  was built with MKL.  torch does not document these symbols, so the route is
  optional: absent, or dropped by its own check, the suite runs without it;
* ``"mkl-wheel"``: Intel's ``mkl`` wheel, where installed: its ``mkl_rt`` library (found through the
  wheel's file list), with MKL's documented ``?gemm_`` and packed-matrix calls; ``mkl_rt`` is LP64
  unless ``MKL_INTERFACE_LAYER`` asks for ILP64, which its check catches;
* ``"openblas"``: the OpenBLAS that SciPy ships, through SciPy's documented
  ``scipy.linalg.cython_blas`` (reached with numba's documented
  ``numba.extending.get_cython_function_address``), the one numba's own
  ``np.dot`` calls;
* ``"scipy-openblas32"``: the ``scipy-openblas32`` wheel, where installed, through its documented
  interface (``get_lib_dir()``, ``get_library(fullname=True)``) and symbol prefix ``scipy_``
  (its pkg-config ``-DBLAS_SYMBOL_PREFIX=scipy_``): a newer OpenBLAS than SciPy's, LP64.

**Verified at discovery** (:func:`verify`): a route joins :func:`routes` only after small GEMMs
through it, in float32 and float64, with ``beta`` 0 and 1 and, where it packs, through its packed
product, equal NumPy's product.  Its sizes are handed over in 64-bit slots whose upper halves are
all ones: an LP64 BLAS reads the lower 32 bits, the right sizes, while an ILP64 one (64-bit
integers, e.g. NumPy's own ``scipy-openblas64``) reads negative sizes and rejects the call without
touching memory, so a route of the wrong integer width is found and dropped.  A route that is
present but answers wrong is in :func:`dropped` with the reason; :func:`why_not` says why any
route cannot be used here.  A route is found and checked when first asked for (:func:`route`), so a
worker loads only the libraries of the routes it calls.

:func:`default_route`, used where nothing else chooses (no tuned plan, :mod:`kernels.numba.plan`), is
the first verified route of :data:`ROUTE_NAMES`: MKL, the fastest for this suite's per-step
products on the machine the rule was measured on (README, "BLAS routes"); a plan measured on the
machine at hand chooses per size instead.  NumPy's own OpenBLAS is ILP64 and reachable only under
a private library name, so it is not a route.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

#: Route names, in order of preference, and what each needs.
ROUTE_NAMES = ("mkl", "mkl-wheel", "openblas", "scipy-openblas32")
ROUTE_NEEDS = {"mkl": "needs a torch built with MKL (libtorch_cpu exporting sgemm_)",
               "mkl-wheel": "needs Intel's mkl wheel (pip install mkl)",
               "openblas": "needs scipy (scipy.linalg.cython_blas)",
               "scipy-openblas32": "needs the scipy-openblas32 wheel (pip install scipy-openblas32)"}

#: ``?gemm_(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)``, every argument by pointer.
GEMM = ctypes.CFUNCTYPE(None, *([ctypes.c_void_p] * 13))


@dataclasses.dataclass(frozen=True)
class Route:
    """One BLAS: ``?gemm_`` as :data:`GEMM` pointers by dtype, a description for result files, and,
    where the BLAS has them (MKL), its packed-matrix calls by dtype: ``?gemm_pack_get_size``,
    ``?gemm_pack_`` and ``?gemm_compute_`` (the last typed as :data:`GEMM`; it takes 12 arguments
    and ignores a 13th)."""

    name: str
    description: str
    gemms: dict
    packing: dict = dataclasses.field(default_factory=dict)
    #: its threads are OpenMP's, which go to sleep soon after a call (MKL in torch: GNU OpenMP), so
    #: numba's threads may take the cores between calls; OpenBLAS's own threads spin on and took
    #: them (README, "BLAS routes")
    openmp: bool = False
    #: by dtype, the largest product (M * N * K multiply-adds) this BLAS multiplies without packing its
    #: operands (:data:`SMALL_PRODUCT`); a dtype not here: none known
    unpacked: dict = dataclasses.field(default_factory=dict)

    def gemm(self, dtype):
        """The ``?gemm_`` pointer for ``dtype`` (float32 or float64)."""
        return self.gemms[np.dtype(dtype).name]

    def compute(self, dtype):
        """``?gemm_compute_`` for ``dtype``, or the plain ``?gemm_`` where this BLAS cannot pack
        (then :meth:`pack` returns an empty array and kernels call ``?gemm_``)."""
        packing = self.packing.get(np.dtype(dtype).name)
        return packing[2] if packing else self.gemm(dtype)

    def addresses(self, dtype) -> tuple[int, int]:
        """``(?gemm_, ?gemm_compute_)`` for ``dtype`` as integer addresses, the kernels' form
        (:func:`kernels.numba.jit.gemm_call`); the second is 0 where this BLAS cannot pack."""
        if np.dtype(dtype).name not in self.gemms:  # a route of no BLAS (the parallel strategy's)
            return 0, 0
        packing = self.packing.get(np.dtype(dtype).name)
        compute = ctypes.cast(packing[2], ctypes.c_void_p).value if packing else 0
        return ctypes.cast(self.gemm(dtype), ctypes.c_void_p).value or 0, compute or 0

    def pack_size(self, k: int, n: int, batch: int, dtype) -> int:
        """Elements of ``dtype`` that :meth:`pack_into` needs for a (K, N) weight and products of
        ``batch`` rows; 0 where this BLAS cannot pack."""
        packing = self.packing.get(np.dtype(dtype).name)
        if packing is None:
            return 0
        dims = np.array([n, batch, k], np.int32)
        ident = ctypes.c_char(b"A")
        size = packing[0](ctypes.addressof(ident), dims[0:].ctypes.data, dims[1:].ctypes.data, dims[2:].ctypes.data)
        return -(-size // np.dtype(dtype).itemsize)

    def pack_into(self, w: np.ndarray, batch: int, out: np.ndarray) -> None:
        """:meth:`pack` into ``out`` (at least :meth:`pack_size` elements, 64-byte aligned)."""
        _, pack, _ = self.packing[w.dtype.name]
        k, n = w.shape
        dims = np.array([n, batch, k], np.int32)
        ident, trans = ctypes.c_char(b"A"), ctypes.c_char(b"N")
        one = np.ones(1, w.dtype)
        pack(ctypes.addressof(ident), ctypes.addressof(trans), dims[0:].ctypes.data, dims[1:].ctypes.data,
             dims[2:].ctypes.data, one.ctypes.data, w.ctypes.data, dims[0:].ctypes.data, out.ctypes.data)

    def tiles(self, k: int, n: int, batch: int, dtype) -> tuple[int, int] | None:
        """``(kb, nb)``: the shape of the tiles a (K, N) weight is cut into so that each tile's
        product with ``batch`` rows takes this BLAS's unpacked path (:data:`SMALL_PRODUCT`); ``None``
        where this BLAS has no such path for ``dtype``.

        Rule: tiles :data:`TILE_COLUMNS` wide (or N; narrower tiles measured faster even where the
        whole product is within the limit), the fewest row blocks of K (a multiple of 16 rows each)
        that keep ``batch * kb * nb`` within the limit, and none below :data:`TILE_ROWS_MIN` rows,
        where the calls' count outweighs the packing saved (measured in docs/numba.md, "What
        changed", the tiles)."""
        limit = self.unpacked.get(np.dtype(dtype).name, 0)
        if not limit:
            return None
        nb = min(n, TILE_COLUMNS)
        for blocks in range(1, k + 1):
            share = -(-k // blocks)  # ceil(k / blocks)
            kb = min(k, -(-share // 16) * 16)
            if batch * kb * nb <= limit:
                return (kb, nb) if kb >= min(k, TILE_ROWS_MIN) else None
        return None

    def pack(self, w: np.ndarray, batch: int) -> np.ndarray:
        """``w`` (K, N), C-contiguous, packed by the BLAS as the first operand of the column-major
        product ``out^T (N, batch) = w^T h^T`` (see :func:`gemm`), for ``?gemm_compute_`` with
        ``transa = 'P'``; an empty array where this BLAS cannot pack.  Done once per weight and
        batch size, outside any timed region: MKL's own GEMM repacks the weights on every call,
        which at B = 64 cost a third of a per-step product (README, "BLAS routes")."""
        packing = self.packing.get(w.dtype.name)
        if packing is None:
            return np.empty(0, w.dtype)
        get_size, pack, _ = packing
        k, n = w.shape
        dims = np.array([n, batch, k], np.int32)
        ident, trans = ctypes.c_char(b"A"), ctypes.c_char(b"N")
        size = get_size(ctypes.addressof(ident), dims[0:].ctypes.data, dims[1:].ctypes.data, dims[2:].ctypes.data)
        packed = np.empty(-(-size // w.itemsize), w.dtype)
        one = np.ones(1, w.dtype)
        pack(ctypes.addressof(ident), ctypes.addressof(trans), dims[0:].ctypes.data, dims[1:].ctypes.data,
             dims[2:].ctypes.data, one.ctypes.data, w.ctypes.data, dims[0:].ctypes.data, packed.ctypes.data)
        return packed


#: OpenBLAS's x86-64 AVX-512 kernels (SkylakeX, and Cooperlake and SapphireRapids, which include
#: them) multiply a float32 product of at most 10^6 multiply-adds (M * N * K) with its small-matrix
#: kernels, which read the operands where they lie instead of packing them first (OpenBLAS,
#: kernel/x86_64/KERNEL.SKYLAKEX: SGEMM_SMALL_M_PERMIT = sgemm_small_kernel_permit_skylakex.c, whose
#: permit is ``M * N * K <= 100^3`` for the 'N' and 'T' cases).  Packing costs most where M is
#: small, as in a step's product of B rows.  Other OpenBLAS cores (Haswell, Zen) have no such path:
#: tiles there measured slower.
SMALL_PRODUCT = {"float32": 10**6}
SMALL_KERNEL_CORES = ("SkylakeX", "Cooperlake", "SapphireRapids")
#: Columns of a tile (:meth:`Route.tiles`): four 16-lane float32 vectors.
TILE_COLUMNS = 64
#: Fewest rows of a tile (:meth:`Route.tiles`).
TILE_ROWS_MIN = 32


def _mkl(lib_path, name: str, owner: str, openmp: bool) -> Route | None:
    """An MKL library at ``lib_path`` as route ``name``: its ``?gemm_`` and, where it exports them
    (MKL's documented ``?gemm_pack_get_size``, ``?gemm_pack``, ``?gemm_compute``), its packed
    product; ``None`` where the library does not load or is not MKL."""
    try:
        lib = ctypes.CDLL(str(lib_path))
        gemms, packing = {}, {}
        for prefix, dtype in (("s", "float32"), ("d", "float64")):
            gemms[dtype] = GEMM((f"{prefix}gemm_", lib))
            try:  # torch 2.13 exports the packed calls for float32 only
                get_size = getattr(lib, f"{prefix}gemm_pack_get_size")
                pack = getattr(lib, f"{prefix}gemm_pack_")
                compute = GEMM((f"{prefix}gemm_compute_", lib))
            except AttributeError:
                continue
            get_size.restype, get_size.argtypes = ctypes.c_size_t, [ctypes.c_void_p] * 4
            pack.restype, pack.argtypes = None, [ctypes.c_void_p] * 9
            packing[dtype] = (get_size, pack, compute)
        version = ctypes.create_string_buffer(256)
        lib.MKL_Get_Version_String(version, ctypes.c_int(len(version)))
        threads = lib.MKL_Get_Max_Threads()
    except (OSError, AttributeError):  # not Linux, or a torch built without MKL
        return None
    found = re.search(r"Version ([\d.]+)", version.value.decode(errors="replace"))
    return Route(name, f"mkl {found.group(1) if found else '?'} ({owner}), {threads} threads", gemms, packing,
                 openmp=openmp)


def _mkl_in_torch() -> Route | None:
    try:
        import torch
    except Exception:  # noqa: BLE001  (not installed, or a build that fails to load: OSError and more)
        return None
    # torch's MKL runs on GNU OpenMP, whose threads sleep soon after a call
    return _mkl(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so", "mkl", "torch", openmp=True)


def _mkl_wheel() -> Route | None:
    """Intel's ``mkl`` wheel: its single dynamic library ``mkl_rt``, found through the wheel's
    installed file list (``importlib.metadata``).  ``mkl_rt`` takes 32-bit integers unless
    ``MKL_INTERFACE_LAYER`` says ILP64, which the route's check then catches."""
    from importlib import metadata

    try:
        files = metadata.files("mkl") or []
    except metadata.PackageNotFoundError:
        return None
    found = sorted((f for f in files if f.name.startswith("libmkl_rt.so")), key=lambda f: len(f.name))
    # its threads are Intel OpenMP's, which spin for KMP_BLOCKTIME (200 ms) after a call: rows stay on one thread
    return _mkl(found[0].locate(), "mkl-wheel", "mkl wheel", openmp=False) if found else None


def _openblas_info(path_part: str) -> dict:
    """threadpoolctl's view of the loaded OpenBLAS whose path contains ``path_part`` (``{}`` if none)."""
    from threadpoolctl import threadpool_info

    return next((i for i in threadpool_info() if path_part in i.get("filepath", "")), {})


def _openblas_route(name: str, owner: str, path_part: str, gemms: dict) -> Route:
    """Route ``name`` for an OpenBLAS, described as ``"openblas 0.3.28 Haswell (scipy), 1 threads"``
    from threadpoolctl's view of it, with its unpacked path where its core has one."""
    info = _openblas_info(path_part)
    desc = " ".join(str(info.get(k) or "") for k in ("internal_api", "version", "architecture")).strip()
    threads = info.get("num_threads")
    description = f"{desc or 'openblas'} ({owner}){f', {threads} threads' if threads else ''}"
    unpacked = dict(SMALL_PRODUCT) if info.get("architecture") in SMALL_KERNEL_CORES else {}
    return Route(name, description, gemms, unpacked=unpacked)


def _openblas_in_scipy() -> Route | None:
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (absent: no route)
        from numba.extending import get_cython_function_address
    except ImportError:
        return None
    gemms = {dtype: GEMM(get_cython_function_address("scipy.linalg.cython_blas", name))
             for name, dtype in (("sgemm", "float32"), ("dgemm", "float64"))}
    return _openblas_route("openblas", "scipy", "scipy.libs", gemms)


def _scipy_openblas32() -> Route | None:
    try:
        import scipy_openblas32
    except ImportError:
        return None
    lib = ctypes.CDLL(str(Path(scipy_openblas32.get_lib_dir()) / scipy_openblas32.get_library(fullname=True)))
    gemms = {dtype: GEMM((f"scipy_{p}gemm_", lib)) for p, dtype in (("s", "float32"), ("d", "float64"))}
    return _openblas_route("scipy-openblas32", "scipy-openblas32", "scipy_openblas32", gemms)


#: How each route is found: a function returning its :class:`Route`, or ``None`` where it is absent.
FINDERS = {"mkl": _mkl_in_torch, "mkl-wheel": _mkl_wheel, "openblas": _openblas_in_scipy,
           "scipy-openblas32": _scipy_openblas32}


def _ints(values, high: int) -> np.ndarray:
    """``values`` in 64-bit slots whose upper 32 bits are ``high`` (0 or -1): an LP64 BLAS reads
    the lower halves, the values; an ILP64 one reads all 64 bits (negative for ``high = -1``)."""
    return np.asarray(values, np.int64) + (np.int64(high) << np.int64(32))


def gemm(route: Route, a: np.ndarray, b: np.ndarray, out: np.ndarray, beta: float = 0.0, packed=None,
         high: int = 0) -> None:
    """``out = a @ b + beta * out`` through ``route`` from Python, for C-contiguous 2-D arrays of
    one dtype; with ``packed`` (``b`` as packed by :meth:`Route.pack`) through the packed product.

    The row-major product is the column-major ``out^T = b^T a^T``: ``?gemm_('N', 'N', N, M, K, 1,
    b, N, a, K, beta, out, N)``.  Integers go in 64-bit slots with upper halves ``high``
    (:func:`_ints`; :func:`verify` uses -1).  Used where a jitted caller is not needed (the check
    of a route, the peak measurement)."""
    m, k = a.shape
    n = b.shape[1]
    dims = _ints([n, m, k], high)
    scalars = np.array([1, beta], a.dtype)
    trans, packed_flag = ctypes.c_char(b"N"), ctypes.c_char(b"P")
    ptr = [dims[i:].ctypes.data for i in range(3)]
    if packed is not None and packed.size:
        route.compute(a.dtype)(ctypes.addressof(packed_flag), ctypes.addressof(trans), *ptr, packed.ctypes.data,
                               ptr[0], a.ctypes.data, ptr[2], scalars[1:].ctypes.data, out.ctypes.data, ptr[0], ptr[0])
        return
    route.gemm(a.dtype)(ctypes.addressof(trans), ctypes.addressof(trans), *ptr, scalars.ctypes.data, b.ctypes.data,
                        ptr[0], a.ctypes.data, ptr[2], scalars[1:].ctypes.data, out.ctypes.data, ptr[0])


#: Relative error a verified route may have against NumPy's float64 product, by dtype.
VERIFY_RTOL = {"float32": 1e-5, "float64": 1e-12}


def verify(route: Route) -> str | None:
    """``None`` when ``route`` computes small GEMMs (3x5 by 5x7) as NumPy does, in float32 and
    float64, with beta 0 (``out`` filled with NaN first: it must not be read) and beta 1, through
    its packed product too where it packs, with its integers read as 32-bit (LP64); else what is
    wrong, in one line.  An ILP64 BLAS is told apart by its answer to the same call with the
    upper halves of the integers zero (:func:`_ints`)."""
    rng = np.random.default_rng(0)
    for dtype in ("float32", "float64"):
        a = rng.standard_normal((3, 5)).astype(dtype)
        b = rng.standard_normal((5, 7)).astype(dtype)
        c = rng.standard_normal((3, 7)).astype(dtype)
        want = a.astype(np.float64) @ b
        rtol = VERIFY_RTOL[dtype]
        checks = [("", 0.0, None, want), (" with beta = 1", 1.0, None, want + c), (" packed", 0.0, "pack", want)]
        for what, beta, pack, expected in checks:
            if pack == "pack":  # only once the plain product passed: packing sizes are integers too
                pack = route.pack(np.ascontiguousarray(b), batch=3)
                if not pack.size:
                    continue
            out = np.full_like(c, np.nan) if beta == 0 else c.copy()
            gemm(route, a, b, out, beta, pack, high=-1)
            if np.allclose(out, expected, rtol=rtol, atol=rtol):
                continue
            if not what:
                wide = np.full_like(c, np.nan)
                gemm(route, a, b, wide, 0.0, None, high=0)
                if np.allclose(wide, expected, rtol=rtol, atol=rtol):
                    return (f"{dtype} GEMM reads its integers as 64-bit (an ILP64 BLAS); the kernels pass "
                            "32-bit (LP64) ones")
            err = float(np.nanmax(np.abs(out - expected))) if np.isfinite(out).any() else float("nan")
            return (f"{dtype} GEMM{what} answers wrong: max abs error {err:.3g} against NumPy "
                    f"(rtol {rtol:g}) on a 3x5 by 5x7 product")
    return None


@functools.cache
def _discover(name: str) -> tuple:
    """``(verified Route or None, why a route that is present was dropped or None)`` for route
    ``name``: found and checked once per process, and only when asked for, so that a process
    loads only the BLAS libraries it uses (plus those before it in :data:`ROUTE_NAMES` for the
    default)."""
    try:
        route = FINDERS[name]()
        problem = verify(route) if route is not None else None
    except Exception as exc:  # noqa: BLE001  (a library that fails to load or to answer is no route)
        route, problem = None, f"failed to load: {type(exc).__name__}: {exc}".splitlines()[0]
    if problem is not None:
        return None, f"present but dropped: {problem}"
    return route, None


def route(name: str) -> Route | None:
    """Route ``name`` if it is present here and verified, else ``None`` (:func:`why_not` says why)."""
    return _discover(name)[0] if name in FINDERS else None


def routes() -> dict[str, Route]:
    """Every verified route of this environment, by name, in :data:`ROUTE_NAMES` order (possibly
    empty); this loads every BLAS library present."""
    return {name: r for name in ROUTE_NAMES if (r := route(name)) is not None}


def dropped() -> dict[str, str]:
    """``{name: reason}`` of the routes that are present here but failed :func:`verify` or to load."""
    return {name: _discover(name)[1] for name in ROUTE_NAMES if _discover(name)[1]}


def why_not(name: str) -> str | None:
    """``None`` when route ``name`` is usable here, else why not: the reason it was dropped, or
    what it needs (:data:`ROUTE_NEEDS`)."""
    if route(name) is not None:
        return None
    return (_discover(name)[1] if name in FINDERS else None) or ROUTE_NEEDS.get(name, f"unknown route {name!r}")


def default_route() -> Route | None:
    """The first verified route in :data:`ROUTE_NAMES` order, else ``None`` (see the module docstring)."""
    return next((r for name in ROUTE_NAMES if (r := route(name)) is not None), None)
