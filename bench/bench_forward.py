"""The forward-pass sweep as pytest-benchmark benchmarks (see bench/plugin.py).

``pytest --benchmark-only [--grid NAME] [--backends a,b] [--out FILE.csv]``
runs one benchmark per (case, backend), with ids like
``lstm-T100-B1-H256-float32-numba``, grouped by case.
"""


def test_forward(request, benchmark, bench_case, backend_name, bench_run):
    bench_run.run(request.node, benchmark, bench_case, backend_name)
