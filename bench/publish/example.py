"""A small made-up site model, for the browser tests, the screenshots in the docs and trying the
pages (``python -m bench.publish.example OUT`` builds it).

Machine ``example-avx2-2c`` has six saved runs; numba's ``lstm-T100-B1-H256-float32`` forward
time steps up exactly 1.5x (1.00 ms to 1.50 ms) at :data:`STEP_COMMIT` (run 4), numpy's GRU improves at run 3, an onnxruntime
benchmark was timed in the first two runs only, and each run has 3 process medians per benchmark
(``numba`` on the LSTM page has 5). Machine ``example-arm-4c`` has one run.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

MACHINE = "example-avx2-2c"
COMMITS = ["1a2b3c4d5e6f7081920a1b2c3d4e5f6071829304", "2b3c4d5e6f7081920a1b2c3d4e5f607182930415",
           "3c4d5e6f7081920a1b2c3d4e5f60718293041526", "c0ffee5e6f7081920a1b2c3d4e5f607182930415",
           "5e6f7081920a1b2c3d4e5f6071829304152637a8", "6f7081920a1b2c3d4e5f6071829304152637a8b9"]
#: The commit at which numba's LSTM forward time steps up 1.5x, and the last commit before it.
STEP_COMMIT, BEFORE_STEP_COMMIT = COMMITS[3], COMMITS[2]
STEP_BENCHMARK = "lstm-T100-B1-H256-float32-forward-numba-t1-time"
#: The benchmark timed only in the first two runs.
OLD_BENCHMARK = "rnn_tanh-T10-B16-H64-float32-forward-onnxruntime-t1-time"


def _runs() -> list[dict]:
    return [{"name": f"202611{20 + i:02d}T0930{i:02d}Z-{c[:7]}", "commit": c, "dirty": i == 5,
             "timestamp": f"2026-11-{20 + i:02d}T09:30:{i:02d}+00:00"} for i, c in enumerate(COMMITS)]


def _benchmark(runs, rng, mode, T, B, H, pass_, backend, base, factor_at=None, factor=1.0, only=None,
               processes=3, unit="s", measure="time", drift=0.01, scatter=0.025) -> dict:
    """A benchmark whose median is ``base``, times ``factor`` from run ``factor_at`` on, moved by up
    to ``drift`` (a fraction) per run, with ``processes`` process medians scattered by up to
    ``scatter`` (a fraction) around it, timed in runs ``only`` (default all)."""
    case = f"{mode}-T{T}-B{B}-H{H}-float32"
    page = f"{case}-{pass_}-t1-{measure}"
    points = []
    for i, run in enumerate(runs):
        if only is not None and i not in only:
            continue
        median = base * (factor if factor_at is not None and i >= factor_at else 1.0) * (1 + rng.uniform(-drift, drift))
        values = sorted(median * (1 + rng.uniform(-scatter, scatter)) for _ in range(processes))
        values[processes // 2] = median
        if unit == "instructions":
            median, values = round(median), [round(v) for v in values]
        points.append({"run": run["name"], "commit": run["commit"], "timestamp": run["timestamp"],
                       "median": median, "process_medians": values})
    last = runs[-1]["name"]
    in_latest = points[-1]["run"] == last
    step = None
    if factor_at is not None:
        before, after = points[factor_at - 1]["median"], points[factor_at]["median"]
        step = {"factor": after / before, "verdict": "regression" if after > before else "improvement",
                "before": before, "after": after, "run_before": runs[factor_at - 1]["name"],
                "run_after": runs[factor_at]["name"], "commit_before": runs[factor_at - 1]["commit"],
                "commit_after": runs[factor_at]["commit"]}
    return {"id": f"{page.replace(f'-t1-{measure}', '')}-{backend}-t1-{measure}", "page": page,
            "label": f"{case} {pass_} {backend}",
            "fields": {"mode": mode, "pass": pass_, "backend": backend, "hidden_size": H, "batch": B,
                       "timesteps": T, "dtype": "float32", "num_layers": 1, "bidirectional": False,
                       "threads": 1, "measure": measure, "lengths": "full"},
            "unit": unit, "points": points, "latest": points[-1]["median"] if in_latest else None,
            "in_latest": in_latest, "step": step}


def example_site() -> dict:
    """The made-up site model (module docstring); the same every call."""
    rng = random.Random(21)
    runs = _runs()
    b = [
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward", "numpy", 2.1e-3),
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward", "numba", 1.0e-3, factor_at=3, factor=1.5, processes=5,
                   drift=0.0),
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward", "torch_cpu", 1.4e-3),
        _benchmark(runs, rng, "gru", 10, 16, 64, "forward", "numpy", 9.0e-5, factor_at=2, factor=0.7),
        _benchmark(runs, rng, "gru", 10, 16, 64, "forward", "numba", 6.5e-5),
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward_backward", "numba", 3.3e-3),
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward_backward", "torch_cpu", 4.1e-3),
        _benchmark(runs, rng, "rnn_tanh", 10, 16, 64, "forward", "numpy", 2.2e-5),
        _benchmark(runs, rng, "rnn_tanh", 10, 16, 64, "forward", "onnxruntime", 3.1e-5, only={0, 1}),
        _benchmark(runs, rng, "lstm", 100, 1, 256, "forward", "numpy", 4.2e7, unit="instructions",
                   measure="instructions", drift=0.002, scatter=0.0005),
    ]
    steps = sorted(({"benchmark": x["id"], "label": x["label"], **x["step"]} for x in b if x["step"]),
                   key=lambda s: s["run_after"], reverse=True)
    ab = {"name": "ab-20261126T101010Z", "base": "HEAD~1", "new": "HEAD", "base_commit": COMMITS[4],
          "new_commit": COMMITS[5], "timestamp": "2026-11-26T10:10:10+00:00", "threshold": 1.05, "alpha": 0.01,
          "rows": [
              {"benchmark": "lstm-T100-B1-H256-float32-numba", "base_median": 1.5e-3, "new_median": 1.65e-3,
               "ratio": 1.10, "p_value": 0.0008, "verdict": "regression", "why": "",
               "paired_ratios": [1.09, 1.11, 1.10, 1.12, 1.08]},
              {"benchmark": "gru-T10-B16-H64-float32-numpy", "base_median": 6.3e-5, "new_median": 5.7e-5,
               "ratio": 0.905, "p_value": 0.0008, "verdict": "improvement", "why": "",
               "paired_ratios": [0.90, 0.91, 0.89, 0.92, 0.905]},
              {"benchmark": "lstm-T100-B1-H256-float32-torch_cpu", "base_median": 1.4e-3, "new_median": 1.41e-3,
               "ratio": 1.007, "p_value": 0.4, "verdict": "same", "why": "within the threshold",
               "paired_ratios": [0.99, 1.01, 1.02, 1.0, 1.007]},
              {"benchmark": "rnn_tanh-T10-B16-H64-float32-numpy", "base_median": 2.2e-5, "new_median": 2.5e-5,
               "ratio": 1.13, "p_value": 0.09, "verdict": "unclear", "why": "machine busy during 3 of 5 processes",
               "paired_ratios": [0.97, 1.3, 1.13, 1.02, 1.25]}]}
    wins = [{"title": "forward, T ≤ 10", "note": "time relative to the fastest backend of each regime "
             "(the fastest is 1.00×; in brackets, how many benchmarks it won)",
             "columns": ["regime", "numba", "numpy", "onnxruntime"],
             "rows": [["B=16 H≤64", "1.00× (2)", "1.38×", "—"], ["B=16 H≤64, rnn_tanh", "—", "1.00× (1)", "—"]]},
            {"title": "forward, T = 100", "note": "", "columns": ["regime", "numba", "numpy", "torch_cpu"],
             "rows": [["B=1 H=256", "1.07×", "1.40×", "1.00× (1)"]]}]
    arm_run = {"name": "20261201T120000Z-6f70819", "commit": COMMITS[5], "dirty": False,
               "timestamp": "2026-12-01T12:00:00+00:00"}
    arm = [_benchmark([arm_run], rng, "lstm", 100, 1, 256, "forward", backend, base)
           for backend, base in (("numpy", 1.7e-3), ("numba", 0.9e-3))]
    return {"generated": "2026-12-05T10:00:00+00:00",
            "machines": [
                {"machine_id": MACHINE, "cpu_model": "AMD EPYC 7B13 (AVX2), 2 cores", "runs": runs,
                 "benchmarks": b, "steps": steps, "ab_reports": [ab], "who_wins": wins},
                {"machine_id": "example-arm-4c", "cpu_model": "Neoverse-N1, 4 cores", "runs": [arm_run],
                 "benchmarks": arm, "steps": [], "ab_reports": [], "who_wins": []}]}


if __name__ == "__main__":
    from . import build_site

    print(build_site(example_site(), Path(sys.argv[1] if len(sys.argv) > 1 else "site-example")))
