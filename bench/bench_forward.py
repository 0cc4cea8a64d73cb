"""The sweep as pytest-benchmark benchmarks (see bench/plugin.py).

``pytest --benchmark-only [--grid NAME] [--backends a,b] [--passes P] [-k EXPR] [-m MARKERS]``
runs one benchmark per (case, backend), with ids like ``lstm-T100-B1-H256-float32-numba``
(``...-float32-fb-numba`` for the forward_backward pass), grouped by case; the name stays
``test_forward`` so that saved files keep their benchmark names.
"""


def test_forward(benchmark, bench_case, backend_name, bench_run):
    bench_run.run(benchmark, bench_case, backend_name)
