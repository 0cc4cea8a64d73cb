"""The raw samples next to a result CSV: one JSON line per timed benchmark (``<stem>.jsonl``).

The first line is a header, ``{"format": FORMAT, "version": 1, "machine_info": {...}}`` (the
run's metadata); every further line is one benchmark in pytest-benchmark's shape (``name``,
``group``, ``extra_info`` with the row and its ``process_medians`` and ``other_cores``,
``stats`` with every round in ``data``), so a line reads as an entry of a pytest-benchmark
JSON.  Lines are appended as benchmarks finish: a run writes each once.  A last line cut short
(a run killed mid-write) is dropped with a :class:`~bench.results.files.TornLineWarning`.

Files written before the JSON Lines sidecar have a pytest-benchmark JSON (``<stem>.json``) with
the same entries under ``benchmarks``; :func:`read_sidecar` reads either.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np

from ..measurement import Measurement
from .files import TornLineWarning, atomic_write_text
from .paths import legacy_sidecar_path, sidecar_path
from .schema import COLUMNS

FORMAT = "rnn-cell-bench samples"
VERSION = 1


def header(metadata: dict) -> dict:
    """The sidecar's first line: the format and the run's metadata."""
    return {"format": FORMAT, "version": VERSION, "machine_info": {"rnn_cell_bench": metadata}}


def entry(row: dict, measurement: Measurement) -> dict:
    """One timed benchmark as a pytest-benchmark entry: its row in ``extra_info`` with its process
    medians and the cores other processes used during each process; every round in ``stats.data``."""
    rounds = list(measurement.rounds)
    q1, q3 = np.percentile(rounds, [25, 75])
    param = f"{row['case_id']}-{row['backend']}"
    return {
        "group": row["case_id"], "name": f"test_forward[{param}]",
        "fullname": f"bench/bench_forward.py::test_forward[{param}]", "params": None, "param": param,
        "extra_info": {**{k: v for k, v in row.items() if k in COLUMNS},
                       "process_medians": list(measurement.process_medians),
                       "other_cores": list(measurement.other_cores), "unit": measurement.unit},
        "options": {"rounds": len(rounds), "iterations": row.get("iterations")},
        "stats": {"min": min(rounds), "max": max(rounds), "mean": float(np.mean(rounds)),
                  "stddev": float(np.std(rounds, ddof=1)) if len(rounds) > 1 else 0.0, "rounds": len(rounds),
                  "median": measurement.median, "iqr": float(q3 - q1), "q1": float(q1), "q3": float(q3),
                  "data": rounds},
    }


class SidecarWriter:
    """Appends lines to a sidecar, each flushed to disk before :meth:`append` returns."""

    def __init__(self, path: Path, first: dict | None):
        """Open ``path`` for appending; write ``first`` (the header) when the file is new or empty."""
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists() or self.path.stat().st_size == 0
        self._file = open(self.path, "a", encoding="utf-8")
        if fresh and first is not None:
            self.append(first)

    def append(self, line: dict) -> None:
        self._file.write(json.dumps(line, default=str, allow_nan=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def _lines(path: Path) -> list[dict]:
    """The JSON objects of a JSON Lines file; a last line that does not parse is dropped with a warning."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    found = []
    for n, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            found.append(json.loads(line))
        except ValueError:
            if n == len(lines) - 1:
                warnings.warn(TornLineWarning(f"{path}: its last line is cut short (a run killed mid-write); "
                                              "left out"), stacklevel=3)
                break
            raise ValueError(f"{path}: line {n + 1} is not JSON") from None
    return found


def read_sidecar(csv_path) -> tuple[dict, list[dict]] | None:
    """``(machine_info, benchmark entries)`` of the samples next to ``csv_path``: its ``.jsonl``,
    else its legacy ``.json``; ``None`` when it has neither.

    Raises:
        ValueError: the sidecar is not JSON, or not in either format.
    """
    path = sidecar_path(csv_path)
    if path.is_file():
        lines = _lines(path)
        head = lines[0] if lines and lines[0].get("format") == FORMAT else None
        if lines and head is None:
            raise ValueError(f"{path}: not an rnn-cell-bench samples file (no header line)")
        return (head or {}).get("machine_info", {}), lines[1:]
    legacy = legacy_sidecar_path(csv_path)
    if legacy.is_file():
        doc = read_pytest_benchmark(legacy)
        return doc.get("machine_info") or {}, doc["benchmarks"]
    return None


def read_pytest_benchmark(path) -> dict:
    """A pytest-benchmark JSON document (a legacy sidecar, or anyone's ``--benchmark-json``).

    Raises:
        ValueError: not JSON, or no ``benchmarks`` list.
    """
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("benchmarks"), list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON (no 'benchmarks' list)")
    return doc


def write_sidecar(csv_path, machine_info: dict, entries: list[dict]) -> Path:
    """Write a whole sidecar for ``csv_path`` (a merge, a resumed file's kept benchmarks), by atomic
    replace; returns its path."""
    path = sidecar_path(csv_path)
    first = {"format": FORMAT, "version": VERSION, "machine_info": machine_info}
    atomic_write_text(path, "".join(json.dumps(line, default=str) + "\n" for line in [first, *entries]))
    return path
