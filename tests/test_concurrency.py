"""Several threads calling one backend at once get the very bits of serial calls, on every backend
and on every threading layer numba offers here.

Each threading layer runs in a process of its own (``NUMBA_THREADING_LAYER``): a layer is chosen
once per process, and ``workqueue``, which is not threadsafe, aborts the whole process when two
threads launch parallel work at once, which only a child process can survive to report.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ALL_PATHS

ROOT = Path(__file__).resolve().parent.parent
#: numba's threading layers and the module that implements each (numba.np.ufunc.*).
LAYERS = {"omp": "omppool", "tbb": "tbbpool", "workqueue": "workqueue"}
BACKENDS = ["numba", *ALL_PATHS]
THREADS, CALLS = 4, 3

CHILD = r"""
import importlib, json, sys, threading
import numpy as np
layer, module, names, threads, calls = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
try:
    importlib.import_module("numba.np.ufunc." + module)
except ImportError as exc:
    print("REPORT " + json.dumps({"skip": f"numba's {layer} threading layer cannot be loaded here: {exc}"}))
    sys.exit(0)
import numba
from kernels import CellSpec, availability, get_backend, init_weights
from kernels.reference import flatten

# B * H = 4096: the blas strategy spreads rows over threads too (kernels.numba.forward.PARALLEL_ROWS)
spec = CellSpec("lstm", 8, 64, num_layers=2, bidirectional=True)
weights = init_weights(spec, seed=0)
rng = np.random.default_rng(0)
x = rng.standard_normal(spec.input_shape(3, 64)).astype(np.float32)
hx = tuple(rng.standard_normal(spec.state_shape(64)).astype(np.float32) for _ in range(2))
report = {}
for name in names:
    reason = availability(name)
    if reason is not None:
        report[name] = "unavailable: " + reason
        continue
    backend = get_backend(name)
    serial = flatten(backend.forward(spec, weights, x, hx))
    prepared = backend.prepare(spec, weights)  # one Prepared shared by every thread, as well
    args = prepared.to_device(x, *hx)
    start, results = threading.Barrier(threads), []

    def work():
        start.wait()
        for _ in range(calls):
            results.append(flatten(backend.forward(spec, weights, x, hx)))
            results.append(flatten(prepared.to_host(prepared.run(*args))))

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    same = sum(all(np.array_equal(a, b) for a, b in zip(r, serial)) for r in results)
    report[name] = "ok" if same == len(results) == 2 * threads * calls else f"{same} of {len(results)} bitwise equal"
report["layer"] = numba.threading_layer()
print("REPORT " + json.dumps(report))
"""


@pytest.mark.parametrize("layer", list(LAYERS))
def test_threads_get_the_bits_of_serial_calls(layer):
    env = {"NUMBA_THREADING_LAYER": layer, "NUMBA_NUM_THREADS": "2"}
    proc = subprocess.run([sys.executable, "-c", CHILD, layer, LAYERS[layer], json.dumps(BACKENDS), str(THREADS),
                           str(CALLS)], cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, **env})
    assert proc.returncode == 0, f"exit status {proc.returncode}: {proc.stderr[-2000:]}"
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    if "skip" in report:
        pytest.skip(report["skip"])
    assert report.pop("layer") == layer
    assert list(report) == BACKENDS
    ran = [name for name, verdict in report.items() if not verdict.startswith("unavailable: ")]
    assert {"numpy", "numba", "numba:parallel", "numba:fused", "torch_cpu"} <= set(ran)
    assert {name: report[name] for name in ran} == dict.fromkeys(ran, "ok")
