"""rnn-cell-bench's harness: timing, result files, judging and the CLI (``python -m bench``).

One home for each concern:

* :mod:`bench.commands` -- the CLI, one module per command on a small ``Command`` base;
* :mod:`bench.timing` -- how a run is timed: the worker protocol and the in-worker measurement,
  the sweep and its interleaving, the executors (local processes, dask) that run it;
* :mod:`bench.results` -- the result files: schema, paths (one rule for the results folder),
  reading and appending, sidecars, merging, what a folder holds;
* :mod:`bench.judge` -- statistics, compare, paired A/B and history's step detection;
* :mod:`bench.report` -- tables, what a run prints, who wins where, plots, the machine documents;
* :mod:`bench.measurement` -- the :class:`~bench.measurement.Measurement` value that flows from an
  executor to the files and to the judge;
* :mod:`bench.runner` -- the one place a run is put together from its options;
* :mod:`bench.grids` -- the named sweeps, as data; :mod:`bench.environment` -- the machine and the
  code; :mod:`bench.roofline` -- the machine's limits; :mod:`bench.charrnn` -- the tutorial's
  training; :mod:`bench.plugin` -- ``pytest --benchmark-only``.
"""
