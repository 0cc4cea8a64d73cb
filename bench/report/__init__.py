"""What people read: tables, a run's summary, who wins where, plots, the per-machine documents.

* :mod:`~bench.report.table` -- rows as a table, backends side by side;
* :mod:`~bench.report.console` -- what a run prints (progress, outcomes, who won);
* :mod:`~bench.report.wins` -- who wins where, per run and per regime;
* :mod:`~bench.report.plots` -- PNG plots of a result file and of a machine's history;
* :mod:`~bench.report.document` -- a machine's figures as markdown, from its result files.
"""
