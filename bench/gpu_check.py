"""Every CUDA path checked in one call, on a lent GPU machine as it is: ``.ci/gpu-check``.

Runs from the checkout with what is installed (no network, no install step):

1. the versions found (a missing optional package is said, and skipped);
2. CUDA's availability: where it is not, the reason is printed and the check
   ends with status 0 (nothing to check here);
3. the CUDA equivalence tests (``pytest tests -k torch_cuda``: every mode,
   layers, directions, dtypes, initial states);
4. a quick sweep of ``torch_cuda`` beside ``torch_cpu`` through the runner;
5. a timing-sanity check: an LSTM at B = 64, H = 512 must take at least
   :data:`MIN_GROWTH` times as long per call at T = 200 as at T = 50; a timer
   that did not wait for the GPU would see them equal.

Everything it writes goes under ``--out`` (``$OUT`` on the lent machine):
``gpu.txt`` (versions), ``cuda-tests.txt``, ``quick-cuda.csv`` (+ ``.jsonl``)
and ``timing-sanity.json``.  Exit status: 0 when every check passed or CUDA
is unavailable, 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: T = 200 must take at least this many times as long as T = 50 (4x the work).
MIN_GROWTH = 2.0
PACKAGES = ("torch", "numpy", "numba", "scipy", "pytest", "pytest-benchmark", "threadpoolctl", "psutil", "rich",
            "matplotlib", "py-cpuinfo")


def versions() -> dict[str, str]:
    """``{package: version or "missing"}`` for the packages the suite uses."""
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    return found


def timing_sanity(lengths=(50, 200), batch: int = 64, hidden: int = 512) -> dict:
    """Seconds per call of ``torch_cuda``'s LSTM at each T of ``lengths`` (median of timed rounds
    after the harness's check and warm-up), and whether the longest grew by :data:`MIN_GROWTH`."""
    from kernels import CellSpec

    from .grids import Case
    from .timing.measure import prepare_case, time_rounds
    from .timing.policy import TimingPolicy

    policy = TimingPolicy(max_time=0.5)
    medians = {}
    for timesteps in lengths:
        case = Case(CellSpec("lstm", hidden, hidden), timesteps, batch)
        outcome, ready, _ = prepare_case(case, "torch_cuda", policy)
        if ready is None:
            return {"ok": False, "why": f"T = {timesteps}: {outcome.status}: {outcome.reason}"}
        times = sorted(time_rounds(ready.call, ready.rounds, ready.iterations))
        medians[timesteps] = times[len(times) // 2]
    growth = medians[lengths[-1]] / medians[lengths[0]]
    return {"ok": growth >= MIN_GROWTH, "median_s": medians, "growth": growth, "min_growth": MIN_GROWTH,
            "case": f"lstm B={batch} H={hidden}"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/local", help="where the outputs go (default results/local)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    found = versions()
    lines = [f"{name} {version}" for name, version in found.items()]
    missing = [name for name, version in found.items() if version == "missing"]
    if missing:
        lines.append(f"missing (their checks are skipped): {', '.join(missing)}")
    from kernels import availability

    reason = availability("torch_cuda") if found["torch"] != "missing" else "torch is not installed"
    if reason is None:
        import torch

        lines.append(f"cuda {torch.version.cuda}, cudnn {torch.backends.cudnn.version()}, "
                     f"device {torch.cuda.get_device_name(0)}")
    (out / "gpu.txt").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    if reason is not None:
        print(f"CUDA is unavailable here, nothing to check: {reason}")
        return 0

    failed = []
    if found["pytest"] != "missing":
        tests = subprocess.run([sys.executable, "-m", "pytest", "tests", "-k", "torch_cuda", "-q", "-p",
                                "no:cacheprovider"], cwd=REPO, capture_output=True, text=True)
        (out / "cuda-tests.txt").write_text(tests.stdout + tests.stderr)
        print("CUDA equivalence tests:", (tests.stdout.strip().splitlines() or ["no output"])[-1], flush=True)
        if tests.returncode != 0:
            failed.append("CUDA equivalence tests")
    sweep = subprocess.run([sys.executable, "-m", "bench", "run", "--grid", "quick", "--backends",
                            "torch_cpu,torch_cuda", "--processes", "1", "--out", str(out / "quick-cuda.csv")],
                           cwd=REPO, capture_output=True, text=True)
    print(sweep.stdout[-6000:], flush=True)
    if sweep.returncode != 0:
        failed.append("quick sweep")
    sanity = timing_sanity()
    (out / "timing-sanity.json").write_text(json.dumps(sanity, indent=2))
    print("timing sanity:", json.dumps(sanity), flush=True)
    if not sanity["ok"]:
        failed.append("timing sanity")
    print("failed: " + ", ".join(failed) if failed else "every CUDA check passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
