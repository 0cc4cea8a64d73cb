"""The one-call GPU check (.ci/gpu-check) runs offline, installs nothing, and says why it stops
where CUDA is unavailable."""

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / ".ci" / "gpu-check"


def test_gpu_check_runs_offline_and_says_cuda_is_unavailable(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    calls = tmp_path / "pip-calls.txt"
    for name in ("pip", "pip3"):  # a pip on PATH that records being called
        fake = fake_bin / name
        fake.write_text(f"#!/bin/sh\necho \"$0 $*\" >> {calls}\nexit 1\n")
        fake.chmod(0o755)
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}", "OUT": str(out),
           "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/simple",  # no package index reachable
           "CUDA_VISIBLE_DEVICES": ""}  # no GPU, even on a machine that has one
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "CUDA is unavailable here, nothing to check: CUDA not available" in proc.stdout
    assert not calls.exists()
    assert "pip install" not in SCRIPT.read_text() and "pip install" not in (REPO / "bench" / "gpu_check.py").read_text()
    found = (out / "gpu.txt").read_text().splitlines()
    assert found[0].startswith("torch ") and any(line.startswith("numpy ") for line in found)


def test_timing_sanity_needs_the_longer_sequence_to_take_longer(monkeypatch):
    """The sanity rule itself: equal times per call (an unsynchronized timer) fail; 4x the steps in
    3x the time passes."""
    from types import SimpleNamespace

    from bench import gpu_check
    from bench.timing import measure

    for per_call, ok in (({50: 1e-3, 200: 1e-3}, False), ({50: 1e-3, 200: 3e-3}, True)):
        def prepare(case, *args, per_call=per_call, **kwargs):
            return None, SimpleNamespace(call=per_call[case.timesteps], rounds=3, iterations=1), None

        monkeypatch.setattr(measure, "prepare_case", prepare)
        monkeypatch.setattr(measure, "time_rounds", lambda seconds, rounds, iterations: [seconds] * rounds)
        result = gpu_check.timing_sanity()
        assert result["ok"] is ok and result["growth"] == per_call[200] / per_call[50]
