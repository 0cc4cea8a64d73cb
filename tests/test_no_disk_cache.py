"""No writable cache directory: numba's kernels compile without the disk cache and say so.

The package is copied to a temporary directory that the test process cannot write, with ``HOME``
there too and ``NUMBA_CACHE_DIR`` unset, so numba finds none of its cache directories writable.
Permission bits do not stop root: run as root, the child process first drops the capability
that lets root write anywhere (``CAP_DAC_OVERRIDE``, from its bounding set with ``prctl``, in a
launcher that then executes the child's Python), so the directories are as unwritable to it as to
any other user; the child checks that it really cannot write there before anything else.  The
launcher is a process of its own, not a ``preexec_fn``: that would fork this test process, which
may hold JAX's threads (JAX warns that a fork of it may deadlock).
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PR_CAPBSET_DROP, CAP_DAC_OVERRIDE = 24, 1  # <linux/prctl.h>, <linux/capability.h>

CHILD = r"""
import json, os, sys
import numpy as np
try:
    open(os.path.join(os.path.dirname(sys.argv[1]), "kernels", "probe"), "w")
    sys.exit("the package directory is writable: the test would prove nothing")
except PermissionError:
    pass
import kernels
from kernels import CellSpec, get_backend, init_weights
from kernels.reference import reference_forward, within_tolerance
report = {"available": kernels.available_backends(["numpy", "numba", "numba:fused"])}
spec = CellSpec("gru", 3, 4, num_layers=2, dtype="float32")
weights = init_weights(spec, seed=0)
x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
prepared = get_backend("numba:fused").prepare(spec, weights)
out = prepared.to_host(prepared.run(*prepared.to_device(x)))
ref = reference_forward(spec, weights, x)
report["within_tolerance"] = bool(within_tolerance(spec, out, ref))
report["jit_cache"] = [prepared.jit_cache, get_backend("numba:fused").prepare(spec, weights).jit_cache]
from bench.__main__ import main
report["check_status"] = main(["check", "--grid", "smoke", "--backends", "numpy,numba:fused"])
print("REPORT " + json.dumps(report))
"""


#: Drops CAP_DAC_OVERRIDE from its bounding set (exit 3 where prctl is refused), then runs the child.
LAUNCHER = f"""
import ctypes, os, sys
if os.geteuid() == 0 and ctypes.CDLL(None, use_errno=True).prctl({PR_CAPBSET_DROP}, {CAP_DAC_OVERRIDE}, 0, 0, 0) != 0:
    print("prctl refused: errno", ctypes.get_errno(), file=sys.stderr)
    sys.exit(3)
os.execv(sys.executable, [sys.executable, "-c", sys.argv[1], *sys.argv[2:]])
"""


def _read_only_copy(tmp_path: Path) -> Path:
    tree = tmp_path / "ro"
    for package in ("kernels", "bench"):
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tree / "home").mkdir()
    for path in [tree, *tree.rglob("*")]:
        if path.is_dir():
            path.chmod(0o555)
    return tree


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (prctl) to take away root's override")
def test_numba_runs_without_a_writable_cache_and_says_so(tmp_path):
    tree = _read_only_copy(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_CACHE_DIR", "XDG_CACHE_HOME"))}
    env.update(HOME=str(tree / "home"), PYTHONPATH=str(tree))
    try:
        proc = subprocess.run([sys.executable, "-c", LAUNCHER, CHILD, str(tree / "kernels")], cwd=tree, env=env,
                              text=True, capture_output=True, timeout=600)
    finally:
        for path in [tree, *tree.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)  # so that pytest can remove it
    if proc.returncode == 3 and "prctl refused" in proc.stderr:
        pytest.skip(f"cannot take CAP_DAC_OVERRIDE away from root here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.split("REPORT ", 1)[1])
    assert report["available"] == {"numpy": None, "numba": None, "numba:fused": None}
    assert report["within_tolerance"]
    why = "no disk cache: no writable cache directory for numba; set NUMBA_CACHE_DIR"
    assert report["jit_cache"] == [f"compiled ({why})", f"in memory ({why})"]
    assert report["check_status"] == 0
    assert "all within tolerance" in proc.stdout
    assert not list(tree.rglob("*.nbi")) and not list((tree / "home").iterdir())  # nothing was cached anywhere
