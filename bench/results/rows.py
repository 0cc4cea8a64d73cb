"""A :class:`~bench.measurement.Measurement` as a result row, and a result file's rows back as
Measurements.

A row is the measurement's fields, its statistics (:meth:`Measurement.statistics`), the columns
of the run it belongs to (machine, versions, peaks, state, ``started``/``finished``) and its
place against the machine's peaks (:func:`bench.roofline.place`).  Reading back, each row of a
result CSV joins its raw samples in the sidecar on the benchmark key.
"""

from __future__ import annotations

from ..measurement import UNITS, Measurement
from ..roofline import place
from .files import read_results
from .schema import COLUMNS, KEY_COLUMNS, added_since, key
from .sidecar import read_sidecar


def row_of(measurement: Measurement, columns: dict) -> dict:
    """The result row of ``measurement`` with the run's ``columns`` (metadata shared by its rows),
    restricted to :data:`~bench.results.schema.COLUMNS`."""
    row = {**columns, **measurement.fields, **measurement.statistics()}
    if measurement.timed:
        per_step = "instructions_per_step" if measurement.unit == "instructions" else "per_step_s"
        row[per_step] = measurement.median / int(row["timesteps"])
        row["peak_rss_bytes"] = "" if measurement.peak_rss_bytes is None else measurement.peak_rss_bytes
    row.update(place(row, columns))
    return {k: v for k, v in row.items() if k in COLUMNS}


def measurement_of(row: dict, sample: dict | None) -> Measurement:
    """A result row read back as a Measurement, with the rounds, process medians and per-process
    busy readings of its sidecar entry ``sample`` (None: no samples kept, e.g. an untimed row)."""
    unit = UNITS.get(row.get("measure") or "time", "s")
    if not sample:
        return Measurement(row, unit=unit)
    extra = sample.get("extra_info") or {}
    data = (sample.get("stats") or {}).get("data") or ()
    return Measurement(row, tuple(float(t) for t in data), tuple(float(m) for m in extra.get("process_medians") or ()),
                       tuple(float(c) for c in extra.get("other_cores") or ()), unit=extra.get("unit") or unit)


#: The key columns every one of our rows has held, since schema 1.
ALWAYS = [c for c in KEY_COLUMNS if c not in added_since(1)]


def is_ours(extra: dict) -> bool:
    """Whether a pytest-benchmark entry's ``extra_info`` is one of our rows: it holds every key
    column files of schema 1 had."""
    return all(c in extra for c in ALWAYS)


def read_measurements(path) -> tuple[list[dict], list[Measurement], dict]:
    """``(rows, measurements, machine_info)`` of the result CSV ``path``: one Measurement per row,
    in row order, holding its samples where the sidecar has them; ``machine_info`` is the
    sidecar's ({} without one).

    Raises:
        OSError, ValueError: as :func:`~bench.results.files.read_results` and
            :func:`~bench.results.sidecar.read_sidecar`.
    """
    rows = read_results(path)
    found = read_sidecar(path)
    machine_info, entries = found if found else ({}, [])
    samples = {}
    for e in entries:
        extra = (e.get("extra_info") or {}) if isinstance(e, dict) else {}
        if is_ours(extra):
            samples[key(extra)] = e
    return rows, [measurement_of(r, samples.get(key(r))) for r in rows], machine_info
