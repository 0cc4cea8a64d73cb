"""What a results folder holds: each result file and what made it.

A result file says what made it in its ``made_by`` column: ``run`` (an unsaved sweep), ``saved``
(a sweep saved with ``run --save``: history's runs), ``ab`` (a side of ``bench ab``), ``tune``
(a ``bench tune`` sweep), ``calibration`` (a side of ``bench calibrate``).  Files written before
that column are told by their name: ``tune-*``, ``calibration-*``, ``ab-*`` and ``*-aa-*``/
``*-ab-*`` sides are what they say, ``*-aa-<n>``, ``*-busy`` and ``*-quiet`` the runs of early
noise experiments, other result CSVs under ``<results>/<machine>/`` are saved
runs; a CSV that is not a result file (the character RNN's table, anything else) is ``other``.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

from .files import read_results

#: The values of ``made_by``; ``other`` is a CSV that is not a result file.
KINDS = ("saved", "run", "ab", "tune", "calibration", "other")
#: File names of kinds made before the ``made_by`` column, first match wins.
NAMED = [(re.compile(r"^tune-"), "tune"), (re.compile(r"^calibration-"), "calibration"), (re.compile(r"^ab-"), "ab"),
         (re.compile(r"-(aa|ab)-(base|new)$|^(aa|ab)-"), "calibration"), (re.compile(r"-aa-\d+$|-(busy|quiet)$"), "run")]


@dataclasses.dataclass(frozen=True)
class ResultFile:
    """A CSV under the results folder: its path, what made it, the machines of its rows (its folder's
    name for rows that do not say), and why it is ``other`` ("" for a result file)."""

    path: Path
    kind: str
    machines: frozenset
    why: str = ""


def kind_of(path: Path, rows: list[dict]) -> str:
    """What made the result file ``path`` with ``rows`` (see the module docstring)."""
    made = {r.get("made_by") for r in rows} - {None, ""}
    if len(made) == 1:
        return made.pop()
    for pattern, kind in NAMED:
        if pattern.search(path.stem):
            return kind
    return "saved" if path.parent.name != "local" else "run"


def catalog(results: Path) -> list[ResultFile]:
    """Every CSV in ``results/<folder>/``, oldest name first, with what made it."""
    found = []
    root = Path(results)
    for path in sorted(root.glob("*/*.csv")) if root.is_dir() else []:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # a torn last line is left out here as anywhere
                rows = read_results(path)
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            found.append(ResultFile(path, "other", frozenset({path.parent.name}), str(exc).splitlines()[0]))
            continue
        machines = frozenset(r.get("machine_id") or path.parent.name for r in rows) or frozenset({path.parent.name})
        found.append(ResultFile(path, kind_of(path, rows), machines))
    return found


def saved_runs(results: Path, machine: str) -> tuple[list[Path], list[ResultFile]]:
    """``(the saved runs holding rows of machine, oldest first; the other files of its folder)``.
    Names start with the UTC run id, so name order is time order."""
    files = catalog(results)
    runs = [f.path for f in files if f.kind == "saved" and machine in f.machines]
    others = [f for f in files if f.kind != "saved" and f.path.parent.name == machine]
    return sorted(runs, key=lambda p: (p.name, str(p))), others


def machines(results: Path) -> list[str]:
    """Machine ids with saved runs: a run saved from a cluster or a merge of shards holds rows of
    several machines, and each is history of its own machine."""
    return sorted(set().union(*(f.machines for f in catalog(results) if f.kind == "saved")))
