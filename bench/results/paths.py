"""Where result files go: one rule for the results folder, and the names of the files in it.

The results folder is ``$RNN_BENCH_RESULTS`` when set, else ``results/`` in the current
directory (as asv's ``results_dir``): every command that writes or reads saved results (``run``,
``ab``, ``tune``, ``calibrate``, ``history``, ``publish``, the plan a run hands its workers) finds
it by :func:`results_dir`.  Inside it: ``<machine_id>/`` for what is kept per machine (saved runs,
the tuned plan, calibrations, A/B reports), ``local/`` for unsaved runs.
"""

from __future__ import annotations

import os
from pathlib import Path

from .schema import COLUMNS

#: The environment variable that moves the results folder.
RESULTS_ENV = "RNN_BENCH_RESULTS"


def results_dir() -> Path:
    """``$RNN_BENCH_RESULTS``, else ``./results``."""
    return Path(os.environ.get(RESULTS_ENV) or "results")


def machine_dir(machine: str) -> Path:
    """What is kept for ``machine``: ``<results>/<machine>/``."""
    return results_dir() / machine


def local_path(grid: str, run_id: str) -> Path:
    """An unsaved run's default file: ``<results>/local/<grid>-<run id>.csv``."""
    return results_dir() / "local" / f"{grid}-{run_id}.csv"


def save_path(metadata: dict) -> Path:
    """Where ``run --save`` stores a run, for ``history``:
    ``<results>/<machine_id>/<run_id>-<commit[:7] or nogit>[-dirty].csv``."""
    commit = (metadata.get("git_commit") or "nogit")[:7]
    dirty = "-dirty" if str(metadata.get("git_dirty")) == "True" else ""
    return machine_dir(metadata["machine_id"]) / f"{metadata['run_id']}-{commit}{dirty}.csv"


def plan_path(machine: str) -> Path:
    """The tuned plan of ``machine`` (:mod:`kernels.numba.plan`): ``<results>/<machine>/plan.json``."""
    return machine_dir(machine) / "plan.json"


def sidecar_path(csv_path: str | os.PathLike) -> Path:
    """The raw samples next to a result CSV: same stem, ``.jsonl`` (one JSON line per benchmark)."""
    return Path(csv_path).with_suffix(".jsonl")


def legacy_sidecar_path(csv_path: str | os.PathLike) -> Path:
    """The raw samples of files written before the ``.jsonl`` sidecar: same stem, ``.json``
    (pytest-benchmark's format)."""
    return Path(csv_path).with_suffix(".json")


def claim(path: Path, unique: bool, arg: str = "--out") -> Path:
    """Create ``path`` as a valid result file with no rows yet (its header), so that no other run
    writes it; returns the path taken.

    An existing file is never overwritten: with ``unique`` a free name ``<stem>-2.csv``, ``-3``,
    ... is taken instead; without, it is an error.

    Raises:
        ValueError: naming ``arg``: not a ``.csv`` path, the file exists (and not ``unique``), or it
            cannot be created (a directory in the way, no permission, ...).
    """
    path = Path(path)
    if path.suffix != ".csv":
        raise ValueError(f"{arg}: expected a path to a .csv file, got {path}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for k in range(1, 1000):
            candidate = path if k == 1 else path.with_name(f"{path.stem}-{k}.csv")
            try:
                with open(candidate, "x") as f:
                    f.write(",".join(COLUMNS) + "\n")
                return candidate
            except FileExistsError:
                if not unique:
                    raise ValueError(f"{arg}: {path} exists; pick a new name, delete it, or complete it with "
                                     "--resume") from None
    except OSError as exc:
        raise ValueError(f"{arg}: cannot write {path}: {exc.strerror or exc}") from None
    raise ValueError(f"{arg}: no free name next to {path}")


def check_writable(path: Path, arg: str = "--out") -> Path:
    """``path`` when a file can be created there (its folder exists or can be made, and is
    writable), checked before any work is done; it is not created.

    Raises:
        ValueError: naming ``arg`` and why not (under a file, in a folder not writable, ...).
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{arg}: cannot create the folder of {path}: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ValueError(f"{arg}: {path} is a directory; expected a file path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{arg}: cannot write into {folder}: permission denied")
    try:  # a probe: /proc and other special file systems pass the access() test but refuse files
        probe = folder / f".{path.name}.probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ValueError(f"{arg}: cannot write into {folder}: {exc.strerror or exc}") from None
    return path
