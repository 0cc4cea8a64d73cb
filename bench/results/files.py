"""Reading and writing result CSVs, durably.

A result CSV is written row by row by appending (:class:`bench.results.writer.ResultWriter`), so
a file is complete after every finished benchmark and a run writes each row once.  A kill at any
instant leaves a file that reads back to its finished rows: a torn last line (a row cut short) is
dropped with a :class:`TornLineWarning`.  Files re-saved by a spreadsheet (a byte-order mark, CRLF
line ends) read as written by us.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
import warnings
from pathlib import Path

from .schema import ADDED, COLUMNS, READ_AS, SCHEMA_VERSION


class TornLineWarning(UserWarning):
    """The last line of a result file or sidecar was cut short (a run killed mid-write) and is left out."""


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that readers see the old or the new file, never a part."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp's 0600 would make results private to the writer
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_text(rows: list[dict], header: bool = True) -> str:
    """``rows`` (dicts keyed by :data:`~bench.results.schema.COLUMNS`) as CSV text, ``\\n`` ends.

    Raises:
        ValueError: a row holds a column that is not a result column.
    """
    for row in rows:
        unknown = set(row) - set(COLUMNS)
        if unknown:
            raise ValueError(f"row: unknown columns {sorted(unknown)}")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    if header:
        writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_results(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write ``rows`` as the result CSV ``path``, by atomic replace."""
    atomic_write_text(Path(path), csv_text(rows))


def _records(path) -> tuple[list[str], list[list[str]]]:
    """``(header, records)`` of a CSV; a last record cut short is dropped with a warning."""
    text = Path(path).read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is not a column
    try:
        records = list(csv.reader(io.StringIO(text, newline=""), strict=True))
    except csv.Error:  # an unterminated quote: the last record was cut inside a quoted cell
        lines = text.splitlines(keepends=True)
        records = list(csv.reader(io.StringIO("".join(lines[:-1]), newline="")))
        warnings.warn(TornLineWarning(f"{path}: its last line is cut short (a run killed mid-write); left out"),
                      stacklevel=3)
        return (records[0] if records else []), records[1:]
    header, body = (records[0] if records else []), records[1:]
    if body and not text.endswith(("\n", "\r")) and len(body[-1]) != len(header):
        warnings.warn(TornLineWarning(f"{path}: its last line is cut short (a run killed mid-write); left out"),
                      stacklevel=3)
        body = body[:-1]
    return header, [r for r in body if r]  # blank lines (a spreadsheet's) are no rows


def read_results(path: str | os.PathLike) -> list[dict]:
    """Rows of a result CSV as dicts of strings.

    Files of an older schema version are read with the columns added since
    (:data:`~bench.results.schema.ADDED`) empty, and the columns of :data:`READ_AS` at their
    known value.  A byte-order mark and CRLF line ends (a spreadsheet's "CSV UTF-8") are accepted.

    Raises:
        FileNotFoundError, IsADirectoryError, OSError: the file cannot be read.
        ValueError: not a result file (missing columns, no numeric schema_version, mixed
            versions), or a schema version this code does not know.
    """
    fields, records = _records(path)
    rows = [dict(zip(fields, r)) for r in records]
    if "schema_version" not in fields:
        missing = [c for c in COLUMNS if c not in fields]
        raise ValueError(f"{path}: not an rnn-cell-bench result file; missing columns {missing}")
    versions = {r.get("schema_version") for r in rows}
    if len(versions) > 1:
        raise ValueError(f"{path}: mixed schema versions {sorted(map(str, versions))}")
    try:
        version = int(versions.pop()) if versions else SCHEMA_VERSION
    except (TypeError, ValueError):
        raise ValueError(f"{path}: not an rnn-cell-bench result file; no numeric schema_version") from None
    if not 1 <= version <= SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version}, this code reads 1 to {SCHEMA_VERSION}")
    later = {c for v, cols in ADDED.items() if v > version for c in cols}
    missing = [c for c in COLUMNS if c not in fields and c not in later]
    if missing:
        raise ValueError(f"{path}: not an rnn-cell-bench result file; missing columns {missing}")
    for r in rows:
        for c in later:
            r.setdefault(c, "")
        for c, value in READ_AS.items():
            if not r[c]:
                r[c] = value
    return rows


def file_problem(arg: str, exc: Exception) -> str:
    """One line for a result file (argument ``arg``, e.g. ``FILE`` or ``--resume``) that cannot be
    read (``exc`` from :func:`read_results`), naming the argument: no bare errno."""
    if isinstance(exc, FileNotFoundError):
        return f"{arg}: no such file: {exc.filename}"
    if isinstance(exc, IsADirectoryError):
        return f"{arg}: expected a result .csv file, got the directory {exc.filename}"
    if isinstance(exc, UnicodeDecodeError):
        return f"{arg}: not a text file (cannot be read as UTF-8)"
    if isinstance(exc, OSError):
        return f"{arg}: cannot read {exc.filename}: {exc.strerror}"
    return f"{arg}: {exc}"
