"""The BLAS routes numba's kernels can call, and the one they call by default.

Both are the Fortran ``?gemm_`` interface with 32-bit integers, reached as a
C function pointer that a jitted function takes as an argument (so the
compiled code stays cacheable: the address is not baked into it):

* ``"mkl"``: Intel MKL as linked into PyTorch's CPU library (``libtorch_cpu``
  exports ``sgemm_``/``dgemm_``), when this torch was built with MKL;
* ``"openblas"``: the OpenBLAS that SciPy ships (``scipy.linalg.cython_blas``),
  the one numba's own ``np.dot`` calls.

:func:`default_route` is MKL where present, the faster of the two for this
suite's per-step products on the machine it was measured on (``numba:blas@mkl``
against ``numba:blas@openblas`` in ``results/strategies.csv``; the figures
are in the README, "BLAS routes").  NumPy's own OpenBLAS is reachable only under a private library
name, so it is not offered as a route.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import re
from pathlib import Path

import numpy as np

#: Route names, in order of preference, and what each needs.
ROUTE_NAMES = ("mkl", "openblas")
ROUTE_NEEDS = {"mkl": "needs a torch built with MKL (libtorch_cpu exporting sgemm_)",
               "openblas": "needs scipy (scipy.linalg.cython_blas)"}

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

    def gemm(self, dtype):
        """The ``?gemm_`` pointer for ``dtype`` (float32 or float64)."""
        return self.gemms[np.dtype(dtype).name]

    def compute(self, dtype):
        """``?gemm_compute_`` for ``dtype``, or the plain ``?gemm_`` where this BLAS cannot pack
        (then :meth:`pack` returns an empty array and kernels call ``?gemm_``)."""
        packing = self.packing.get(np.dtype(dtype).name)
        return packing[2] if packing else self.gemm(dtype)

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


def _mkl_in_torch() -> Route | None:
    try:
        import torch
    except Exception:  # noqa: BLE001  (not installed, or a build that fails to load: OSError and more)
        return None
    lib_path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
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
    return Route("mkl", f"mkl {found.group(1) if found else '?'} (torch), {threads} threads", gemms, packing,
                 openmp=True)


def _openblas_in_scipy() -> Route | None:
    try:
        from scipy.linalg import cython_blas
    except ImportError:
        return None
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]

    def pointer(name):
        capsule = cython_blas.__pyx_capi__[name]
        return GEMM(get_pointer(capsule, get_name(capsule)))

    from threadpoolctl import threadpool_info

    info = next((i for i in threadpool_info() if "scipy.libs" in i.get("filepath", "")), {})
    desc = " ".join(str(info.get(k) or "") for k in ("internal_api", "version", "architecture")).strip()
    threads = info.get("num_threads")
    return Route("openblas", f"{desc or 'blas'} (scipy){f', {threads} threads' if threads else ''}",
                 {"float32": pointer("sgemm"), "float64": pointer("dgemm")})


@functools.cache
def routes() -> dict[str, Route]:
    """The routes present in this environment, by name (possibly empty)."""
    found = {}
    for find in (_mkl_in_torch, _openblas_in_scipy):
        route = find()
        if route is not None:
            found[route.name] = route
    return found


def default_route() -> Route | None:
    """MKL where present, else SciPy's OpenBLAS, else ``None`` (see the module docstring)."""
    found = routes()
    return next((found[name] for name in ROUTE_NAMES if name in found), None)


def gemm(route: Route, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> None:
    """``out = a @ b`` through ``route`` from Python, for C-contiguous 2-D arrays of one dtype.

    The row-major product is the column-major ``out^T = b^T a^T``: ``?gemm_('N', 'N', N, M, K, 1,
    b, N, a, K, 0, out, N)``.  Used where a jitted caller is not needed (the peak measurement)."""
    m, k = a.shape
    n = b.shape[1]
    dims = np.array([n, m, k], np.int32)
    scalars = np.array([1, 0], a.dtype)
    trans = ctypes.c_char(b"N")
    p = [ctypes.addressof(trans)] * 2 + [dims[i:].ctypes.data for i in range(3)]
    route.gemm(a.dtype)(*p, scalars.ctypes.data, b.ctypes.data, dims[0:].ctypes.data, a.ctypes.data,
                        dims[2:].ctypes.data, scalars[1:].ctypes.data, out.ctypes.data, dims[0:].ctypes.data)
