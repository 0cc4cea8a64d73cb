"""A run's result CSV and its sidecar, written as benchmarks finish: each row once.

Appending keeps a run's writes in proportion to its files: a finished benchmark adds its
sidecar line (flushed to disk), then its CSV row (flushed to disk), so a row on disk always has
its samples; the run's end rewrites the CSV once, by atomic replace, to record the machine's
state at the end on every row.  A kill at any instant leaves files that read back to the
finished rows.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..measurement import Measurement
from .files import atomic_write_text, csv_text
from .rows import row_of
from .sidecar import SidecarWriter, entry, header, read_sidecar, write_sidecar
from .paths import sidecar_path
from .schema import key


class ResultWriter:
    """The result file ``path`` (claimed: it holds the header, or a resumed run's rows) and its sidecar.

    Args:
        path: the CSV; a new file claimed by :func:`bench.results.paths.claim`, or the file of a
            resumed run.
        metadata: the run's metadata, the sidecar header's ``machine_info``.
        rows: the rows already in the file that are kept (a resumed run's finished rows); the
            file and its sidecar are rewritten to hold just those before anything is appended.
    """

    def __init__(self, path: Path, metadata: dict, rows: list[dict] | None = None):
        self.path = Path(path)
        self.rows: list[dict] = []
        if rows is not None:
            self._keep(list(rows), metadata)
        self.sidecar = SidecarWriter(sidecar_path(self.path), header(metadata))
        self._csv = open(self.path, "a", encoding="utf-8", newline="")

    def _keep(self, rows: list[dict], metadata: dict) -> None:
        """Rewrite the file with ``rows`` only (a resumed run drops its errors) and its sidecar with
        their samples, each by atomic replace."""
        found = read_sidecar(self.path)
        keep = {key(r) for r in rows}
        if found:
            info, entries = found
            write_sidecar(self.path, info or header(metadata)["machine_info"],
                          [e for e in entries if key(e.get("extra_info") or {}) in keep])
        atomic_write_text(self.path, csv_text(rows))
        self.rows = rows

    def add(self, measurement: Measurement, columns: dict) -> dict:
        """Append ``measurement`` as a row with the run's ``columns``; returns the row."""
        row = row_of(measurement, columns)
        if measurement.timed:
            self.sidecar.append(entry(row, measurement))
        self._csv.write(csv_text([row], header=False))
        self._csv.flush()
        os.fsync(self._csv.fileno())
        self.rows.append(row)
        return row

    def finish(self, end_columns: dict) -> None:
        """Record ``end_columns`` (the machine's state at the run's end) on every row: one atomic rewrite."""
        self.close()
        for row in self.rows:
            row.update(end_columns)
        atomic_write_text(self.path, csv_text(self.rows))

    def close(self) -> None:
        if not self._csv.closed:
            self._csv.close()
            self.sidecar.close()
