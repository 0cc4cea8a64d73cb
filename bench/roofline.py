"""This machine's limits, measured at the start of a run, and each result placed against them.

* peak GEMM rate: the best of 3 square matrix products of n = 1024,
  ``2 n^3 / seconds``, in float32 (SGEMM) and float64 (DGEMM), through the
  fastest BLAS present: NumPy's and each route of :mod:`kernels.blas` (MKL
  inside torch, SciPy's OpenBLAS); ``peak_blas`` names the winners;
* memory bandwidth: the best of 3 copies of a 256 MiB array, bytes read plus
  written per second.

A result's ``gflops`` is ``CellSpec.flops(T, B, pass) / median_s`` (the FLOP
model of each pass, forward and forward_backward, is :meth:`kernels.CellSpec.flops`'s);
``pct_peak`` is that against the peak GEMM rate of its dtype, for either pass.  The recurrence can approach
the peak only where the per-step product is large (B*H*H big); small problems
are bound by per-step dispatch, and a matrix-vector product (B = 1) by
memory bandwidth over the ``weight_bytes`` it streams each step.
"""

from __future__ import annotations

import time

import numpy as np


def _best(call, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - start)
    return best


def _products() -> dict:
    """``{name: product(a, b, out)}`` of every BLAS present."""
    from kernels import blas

    found = {"numpy": lambda a, b, out: np.matmul(a, b, out=out)}
    for name, route in blas.routes().items():
        found[name] = lambda a, b, out, route=route: blas.gemm(route, a, b, out)
    return found


def measure_peaks(n: int = 1024, copy_mib: int = 256) -> dict:
    """``{"peak_sgemm_gflops", "peak_dgemm_gflops", "peak_blas", "mem_bandwidth_gbs"}`` of this
    machine, now, with this process's threads (about 1 s per BLAS present).  ``peak_blas``: the BLAS that gave each peak, as
    ``"float32 mkl, float64 numpy"``."""
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
    src = np.ones(copy_mib * 2**20 // 8)
    dst = np.empty_like(src)
    np.copyto(dst, src)
    peaks["mem_bandwidth_gbs"] = 2 * src.nbytes / _best(lambda: np.copyto(dst, src)) / 1e9
    return peaks


def place(row: dict, peaks: dict) -> dict:
    """``gflops`` and ``pct_peak`` of a timed row (empty for untimed ones)."""
    if row.get("status") != "ok" or not row.get("median_s"):
        return {"gflops": "", "pct_peak": ""}
    gflops = float(row["flops"]) / float(row["median_s"]) / 1e9
    peak = peaks.get("peak_sgemm_gflops" if row["dtype"] == "float32" else "peak_dgemm_gflops")
    return {"gflops": gflops, "pct_peak": 100 * gflops / peak if peak else ""}
