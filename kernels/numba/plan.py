"""A tuned plan: which numba variant runs at which size on one machine (FFTW's wisdom, here).

``python -m bench tune`` times every numba strategy on every BLAS route on a grid's sizes in
isolated workers and writes the winner of each size to a plan file; the plain ``numba`` backend
then follows the plan it is handed, and falls back to its rule
(:func:`kernels.numba.backend.choose_strategy`) where there is none.

**Where**: the file ``$RNN_BENCH_PLAN`` names (unset, empty or ``off``: no plan).  This package
never looks for a plan itself: the harness hands each process its machine's plan
(``results/<machine_id>/plan.json``, a file a user can commit, edit or delete) through that
variable, and names the machine in ``$RNN_BENCH_MACHINE_ID``; a plan made on another machine than
the one named there is not used.

**Format** (JSON, human-readable and editable)::

    {"format": "rnn-cell-bench plan", "version": 1,
     "machine_id": "amd-epyc-2c-24g",         # the plan is ignored on any other machine
     "created": "2026-11-30T09:00:00+00:00", "git_commit": "...", "grid": "default",
     "threads": 1, "processes": 1, "source": "results/local/tune-....csv",   # how it was measured
     "entries": [
       {"mode": "lstm", "dtype": "float32", "pass": "forward",
        "timesteps": 100, "batch": 64, "hidden_size": 1024,   # the size measured
        "variant": "blas@openblas",                           # what to run there (numba:<variant>)
        "median_s": 0.0123,                                   # its time
        "candidates": {"blas@mkl": 0.0131, "parallel": 0.09}}  # every variant timed there (seconds)
     ]}

Only ``machine_id`` and, per entry, ``mode``, ``dtype``, ``timesteps``, ``batch``, ``hidden_size``
and ``variant`` are read; ``pass`` defaults to ``"forward"``; the rest is the record.

**Lookup** (:meth:`Plan.choose`): among the entries of the same mode, dtype and pass, the one
nearest in log space -- the smallest sum of squared log ratios of T, B and H (the first in the file
on a tie) -- whatever the number of layers and directions (each layer runs alone).  No entry of that
mode, dtype and pass: the rule.

A plan file that cannot be read (not JSON, a wrong format, a bad entry or variant) or that was
made on another machine than ``$RNN_BENCH_MACHINE_ID`` gives a :class:`PlanWarning` saying so and
is not used.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import os
import warnings
from pathlib import Path

#: The environment variable naming the plan file (or ``off``).
PLAN_ENV = "RNN_BENCH_PLAN"
#: The environment variable naming this machine (the harness's ``machine_id``): a plan made on
#: another machine is not used.
MACHINE_ENV = "RNN_BENCH_MACHINE_ID"
FORMAT = "rnn-cell-bench plan"
VERSION = 1
#: The pass of an entry without one (the only pass timed today).
DEFAULT_PASS = "forward"
#: The checkout: a plan under it is labelled by its path relative to it.
REPO = Path(__file__).resolve().parents[2]


class PlanWarning(UserWarning):
    """A plan file exists but is not used: malformed, or made on another machine."""


class PlanError(ValueError):
    """A plan file that cannot be read (the message names the file and what is wrong)."""


@dataclasses.dataclass(frozen=True)
class Plan:
    """A plan file as read: ``entries`` by ``(mode, dtype, pass)`` as ``(log T, log B, log H,
    variant)`` tuples, and ``label``, what a result row records in its ``plan`` column (the path
    and the first 12 hex digits of the file's SHA-256)."""

    path: Path
    machine_id: str
    label: str
    entries: dict

    def choose(self, mode: str, dtype: str, timesteps: int, batch: int, hidden_size: int,
               pass_: str = DEFAULT_PASS) -> str | None:
        """The variant of the entry nearest to (T, B, H) in log space among those of ``mode``,
        ``dtype`` and ``pass_``, or ``None`` where there is none."""
        here = (math.log(max(timesteps, 1)), math.log(max(batch, 1)), math.log(max(hidden_size, 1)))
        best, best_d = None, math.inf
        for *size, variant in self.entries.get((mode, dtype, pass_), ()):
            d = sum((a - b) ** 2 for a, b in zip(size, here))
            if d < best_d:
                best, best_d = variant, d
        return best


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def read_plan(path, variants=None) -> Plan:
    """Read the plan file ``path``; ``variants``, when given, are the variant names an entry may
    name (``NumbaBackend.variants()``).

    Raises:
        PlanError: the file cannot be read, is not JSON, is not a plan of this format and version,
            or an entry lacks a field, has a non-positive size, or names an unknown variant; the
            message names the file and the first problem.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        doc = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise PlanError(f"plan {path}: cannot be read as JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise PlanError(f"plan {path}: expected an object with format {FORMAT!r} and version {VERSION}")
    if not isinstance(doc.get("machine_id"), str) or not isinstance(doc.get("entries"), list):
        raise PlanError(f"plan {path}: expected 'machine_id' (a string) and 'entries' (a list)")
    entries: dict = {}
    for n, e in enumerate(doc["entries"]):
        try:
            key = (str(e["mode"]), str(e["dtype"]), str(e.get("pass", DEFAULT_PASS)))
            sizes = [e["timesteps"], e["batch"], e["hidden_size"]]
            variant = e["variant"]
        except (KeyError, TypeError):
            raise PlanError(f"plan {path}: entry {n}: expected mode, dtype, timesteps, batch, hidden_size and "
                            f"variant; got {e!r}") from None
        if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in sizes):
            raise PlanError(f"plan {path}: entry {n}: timesteps, batch and hidden_size must be positive integers; "
                            f"got {sizes}")
        if not isinstance(variant, str) or (variants is not None and variant not in variants):
            raise PlanError(f"plan {path}: entry {n}: unknown variant {variant!r}"
                            f"{f'; known: {list(variants)}' if variants is not None else ''}")
        entries.setdefault(key, []).append((*(math.log(v) for v in sizes), variant))
    label = f"{_display(path)} sha256:{hashlib.sha256(raw).hexdigest()[:12]}"
    return Plan(path, doc["machine_id"], label, entries)


def plan_path() -> Path | None:
    """The plan file this process is handed (``$RNN_BENCH_PLAN``; it may not exist), or ``None``
    when the variable is unset, empty or ``off``."""
    given = os.environ.get(PLAN_ENV, "").strip()
    return None if given.lower() in ("off", "") else Path(given)


def current(variants=None) -> Plan | None:
    """The plan this process follows (:func:`plan_path`), read once per path and process; ``None``
    when there is none, or when it is missing, malformed, or made on another machine than
    ``$RNN_BENCH_MACHINE_ID`` names (a :class:`PlanWarning` says which and why)."""
    path = plan_path()
    if path is None:
        return None
    return _load(str(path), os.environ.get(MACHINE_ENV, ""), tuple(variants) if variants else None)


@functools.cache
def _load(path: str, machine: str, variants) -> Plan | None:
    if not Path(path).is_file():
        warnings.warn(PlanWarning(f"{PLAN_ENV}={path}: no such file; using the rule"), stacklevel=3)
        return None
    try:
        plan = read_plan(path, variants)
    except PlanError as exc:
        warnings.warn(PlanWarning(f"{exc}; not used, using the rule"), stacklevel=3)
        return None
    if machine and plan.machine_id != machine:
        warnings.warn(PlanWarning(f"plan {path} was made on machine {plan.machine_id!r}, this is {machine!r}; "
                                  "not used, using the rule (run `python -m bench tune` here)"), stacklevel=3)
        return None
    return plan
