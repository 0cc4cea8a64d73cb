"""How a run is timed.

* :mod:`~bench.timing.policy` -- how long to time one benchmark (rounds, iterations, budget);
* :mod:`~bench.timing.measure` -- one benchmark inside a worker: check, warm up, time;
* :mod:`~bench.timing.worker` -- the worker process and its JSON-lines protocol;
* :mod:`~bench.timing.process` -- the parent's side: spawners, live workers, the CPU meter;
* :mod:`~bench.timing.sweep` -- a run's benchmarks and the interleaved order they are timed in;
* :mod:`~bench.timing.executors` -- what runs a sweep: local worker processes or a dask cluster;
* :mod:`~bench.timing.machine` -- the columns of the machine a run times on;
* :mod:`~bench.timing.options` -- the options of a timed run, declared once;
* :mod:`~bench.timing.spin` -- a backend of calibrated work, for calibrating the A/B gate.
"""
