"""This machine's limits, measured at the start of a run, and each result placed against them.

* peak GEMM rate: the best of 3 square matrix products of n = 1024,
  ``2 n^3 / seconds``, in float32 (SGEMM) and float64 (DGEMM), through the
  fastest BLAS present: NumPy's and each route of :mod:`kernels.numba.blas` (MKL
  inside torch, SciPy's OpenBLAS); ``peak_blas`` names the winners;
* memory bandwidth: the best of 3 copies of a 256 MiB array, bytes read plus
  written per second;
* ``sgemv_gbps``: NumPy's own float32 matrix-vector product on a (4096, 1024)
  matrix (16 MiB: an LSTM's W_hh at H = 1024, which stays in a large last-level
  cache), the best of 20 calls, as bytes of the matrix read per second -- the
  bandwidth a B = 1 step can reach through a BLAS on this machine.

A result's ``gflops`` is ``CellSpec.flops(T, B, pass) / median_s`` (the FLOP
model of each pass, forward and forward_backward, is :meth:`kernels.CellSpec.flops`'s);
``pct_peak`` is that against the peak GEMM rate of its dtype, for either pass.  A B = 1 row's
``weight_gbps`` is the bytes of its recurrent weights (every layer's ``weight_hh``, which every
step must read: the input weights' products can be hoisted out of the recurrence) times T, per
second, to set beside ``sgemv_gbps``.  The recurrence can approach
the peak only where the per-step product is large (B*H*H big); small problems
are bound by per-step dispatch, and a matrix-vector product (B = 1) by
memory bandwidth over the ``weight_bytes`` it streams each step.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from kernels import CellSpec


def _best(call, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _products() -> dict:
    """``{name: product(a, b, out)}`` of every BLAS present."""
    from kernels.numba import blas  # loads every BLAS library present: only where peaks are measured

    found = {"numpy": lambda a, b, out: np.matmul(a, b, out=out)}
    for name, route in blas.routes().items():
        found[name] = lambda a, b, out, route=route: blas.gemm(route, a, b, out)
    return found


def measure_peaks(n: int = 1024, copy_mib: int = 256) -> dict:
    """``{"peak_sgemm_gflops", "peak_dgemm_gflops", "peak_blas", "mem_bandwidth_gbs"}`` of this
    machine, now, with this process's threads (about 1 s per BLAS present), and ``sgemv_gbps``
    (:func:`sgemv_bandwidth`).  ``peak_blas``: the BLAS that gave each peak, as ``"float32 mkl,
    float64 numpy"``."""
    peaks, winners = {}, []
    products = _products()
    for dtype, key in ((np.float32, "peak_sgemm_gflops"), (np.float64, "peak_dgemm_gflops")):
        a = np.random.default_rng(0).standard_normal((n, n)).astype(dtype)
        out = np.empty_like(a)
        rates = {}
        for name, product in products.items():
            product(a, a, out)  # warm-up: threads started, pages touched
            time.sleep(0.3)  # and the previous library's threads have stopped spinning
            rates[name] = 2 * n**3 / _best(lambda: product(a, a, out)) / 1e9
        best = max(rates, key=rates.get)
        peaks[key] = rates[best]
        winners.append(f"{np.dtype(dtype).name} {best}")
    peaks["peak_blas"] = ", ".join(winners)
    peaks["sgemv_gbps"] = sgemv_bandwidth()
    src = np.ones(copy_mib * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    peaks["mem_bandwidth_gbs"] = 2 * src.nbytes / _best(lambda: np.copyto(dst, src)) / 1e9
    return peaks


def sgemv_bandwidth(rows: int = 4096, cols: int = 1024, repeats: int = 20) -> float:
    """GB/s of matrix read by NumPy's float32 matrix-vector product ``w @ v`` with ``w`` (rows,
    cols) C-contiguous: ``w.nbytes / seconds`` of the best of ``repeats`` calls after one warm-up."""
    w = np.random.default_rng(0).standard_normal((rows, cols)).astype(np.float32)
    v = np.ones(cols, np.float32)
    out = np.empty(rows, np.float32)
    np.matmul(w, v, out=out)
    return w.nbytes / _best(lambda: np.matmul(w, v, out=out), repeats) / 1e9


def recurrent_weight_bytes(spec) -> int:
    """Bytes of every layer's and direction's ``weight_hh`` of ``spec`` (a :class:`kernels.CellSpec`)."""
    import math

    return sum(math.prod(shape) for name, shape in spec.weight_shapes().items()
               if name.startswith("weight_hh")) * spec.np_dtype.itemsize


def place(row: dict, peaks: dict) -> dict:
    """``gflops`` and ``pct_peak`` of a timed row, and for a B = 1 row ``weight_gbps``: its
    recurrent weights' bytes (:func:`recurrent_weight_bytes`) times T per second of ``median_s``,
    in GB/s (empty for untimed rows; ``weight_gbps`` empty where B != 1)."""
    if row.get("status") != "ok" or not row.get("median_s"):
        return {"gflops": "", "pct_peak": "", "weight_gbps": ""}
    median = float(row["median_s"])
    gflops = float(row["flops"]) / median / 1e9
    peak = peaks.get("peak_sgemm_gflops" if row["dtype"] == "float32" else "peak_dgemm_gflops")
    weight_gbps = ""
    if int(row["batch"]) == 1:
        spec = CellSpec(**{f.name: _spec_value(f.name, row[f.name]) for f in dataclasses.fields(CellSpec)
                           if row.get(f.name) not in (None, "")})  # a field older rows lack: its default
        weight_gbps = recurrent_weight_bytes(spec) * int(row["timesteps"]) / median / 1e9
    return {"gflops": gflops, "pct_peak": 100 * gflops / peak if peak else "", "weight_gbps": weight_gbps}


def _spec_value(name: str, value):
    """A spec field of a row (a value, or as a CSV writes it: ``"True"``, ``"64"``) as CellSpec takes it."""
    if isinstance(value, str):
        if name in ("bias", "batch_first", "bidirectional"):
            return value == "True"
        if name in ("input_size", "hidden_size", "num_layers", "proj_size"):
            return int(value)
        if name == "dropout":
            return float(value)
    return value
