"""Judging measurements: is NEW slower than BASE, and did a benchmark step over its history?

* :mod:`~bench.judge.stats` -- the verdict on one benchmark (ratio, test, threshold);
* :mod:`~bench.judge.sides` -- a result file read for judging;
* :mod:`~bench.judge.compare` -- pairing two files' benchmarks (one step, shared by compare, ab
  and history) and judging each pair;
* :mod:`~bench.judge.history` -- step changes over a machine's saved runs;
* :mod:`~bench.judge.formats` -- a comparison as a table, CSV, JSON or markdown.
"""
