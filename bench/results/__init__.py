"""Result files: the schema, where files go, reading and writing them, and merging parts.

* :mod:`~bench.results.schema` -- the columns, what each schema version added, the benchmark key;
* :mod:`~bench.results.paths` -- the one rule for the results folder, and file names in it;
* :mod:`~bench.results.files` -- reading a CSV (every schema version; torn lines, spreadsheets) and
  atomic writes;
* :mod:`~bench.results.sidecar` -- the raw samples (JSON Lines; older pytest-benchmark JSON read too);
* :mod:`~bench.results.rows` -- a Measurement as a row, and a file's rows back as Measurements;
* :mod:`~bench.results.writer` -- a run's files, appended as benchmarks finish;
* :mod:`~bench.results.merge` -- joining the parts of a sharded grid.
"""

from .files import TornLineWarning, atomic_write_text, file_problem, read_results, write_results
from .paths import claim, results_dir, save_path, sidecar_path
from .rows import read_measurements
from .schema import COLUMNS, KEY_COLUMNS, SCHEMA_VERSION, SPEC_COLUMNS, key, number
from .writer import ResultWriter

__all__ = ["COLUMNS", "KEY_COLUMNS", "SCHEMA_VERSION", "SPEC_COLUMNS", "ResultWriter", "TornLineWarning",
           "atomic_write_text", "claim", "file_problem", "key", "number", "read_measurements", "read_results",
           "results_dir", "save_path", "sidecar_path", "write_results"]
