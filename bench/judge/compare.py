"""Compare two result files: pair their benchmarks, judge each pair, collect what to warn about.

:func:`pair_sides` is the one pairing step: ``compare`` and ``ab`` judge its pairs
(:func:`compare`), and ``history`` pairs the runs it splits with the same key.  Benchmarks are
paired on their key (:data:`bench.results.schema.KEY_COLUMNS`); files of different schema
versions are paired on the key columns both have, and the columns one lacks are named.
Summaries use the geometric mean of the ratios (google/benchmark's compare.py reports the same).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from ..results.schema import KEY_COLUMNS, READ_AS, SCHEMA_VERSION, added_since
from .sides import Side, Unusable, load, metadata_warnings
from .stats import Pair, finite, judge, judge_paired, threshold_for


@dataclasses.dataclass
class Comparison:
    base: Side
    new: Side
    pairs: list
    only_base: list
    only_new: list
    warnings: list
    alpha: float

    @property
    def regressions(self) -> list:
        return [p for p in self.pairs if p.verdict == "regression"]

    def geomean(self, backend: str | None = None) -> float | None:
        """Geometric mean of NEW/BASE ratios over comparable pairs (of one backend)."""
        ratios = [p.ratio for p in self.pairs if p.verdict != "not comparable" and finite(p.ratio) and p.ratio > 0
                  and (backend is None or p.key[0] == backend)]
        return float(np.exp(np.mean(np.log(ratios)))) if ratios else None


def common_columns(base: Side, new: Side) -> list[str]:
    """Re-key both sides on the key columns both files' schemas have (a newer schema only adds
    columns) and return what was left out, as notes; [] when the versions agree.

    Raises:
        Unusable: dropping a key column makes two rows of one side the same benchmark.
    """
    if base.schema_version is None or new.schema_version is None or base.schema_version == new.schema_version:
        return []
    old, older = (base, "BASE") if base.schema_version < new.schema_version else (new, "NEW")
    missing = added_since(old.schema_version)
    dropped = [i for i, c in enumerate(KEY_COLUMNS) if c in missing and c not in READ_AS]  # READ_AS ones are filled
    for name, side in (("BASE", base), ("NEW", new)):
        entries = {}
        for k, e in side.entries.items():
            if k[0] != "name":
                k = tuple(v for i, v in enumerate(k) if i not in dropped)
            if k in entries:
                raise Unusable(f"{name} has several rows of {e.label} once {[KEY_COLUMNS[i] for i in dropped]} "
                               f"(not in {older}'s schema {old.schema_version}) is left out of the key")
            e.key = k
            entries[k] = e
        side.entries = entries
    keys = [KEY_COLUMNS[i] for i in dropped]
    return [f"schema versions differ (BASE {base.schema_version}, NEW {new.schema_version}): compared on the "
            f"columns both have; {older} lacks {', '.join(missing)}"
            + (f" (benchmarks paired without {', '.join(keys)})" if keys else "")]


def pair_sides(base: Side, new: Side) -> tuple[list[tuple], list[str], list[str], list[str]]:
    """``(pairs of entries (base, new) in NEW's order, labels only in BASE, labels only in NEW,
    notes)``: the benchmarks both sides hold, on their common key columns.

    Raises:
        Unusable: a schema newer than this code's, no benchmark in common, or one side made ambiguous
            by the common key.
    """
    versions = {s.schema_version for s in (base, new)} - {None}
    if any(v > SCHEMA_VERSION for v in versions):
        raise Unusable(f"schema version {max(versions)} is newer than this code's {SCHEMA_VERSION}")
    notes = common_columns(base, new)
    common = [(base.entries[k], new.entries[k]) for k in new.entries if k in base.entries]
    if not common:
        raise Unusable(f"no benchmarks in common between {base.path} and {new.path}")
    only_base = [e.label for k, e in base.entries.items() if k not in new.entries]
    only_new = [e.label for k, e in new.entries.items() if k not in base.entries]
    return common, only_base, only_new, notes


#: The verdict's reason for a pair that ran on two machines (unless compared across machines).
MACHINES_DIFFER = "machines differ"


def judge_pair(b, n, thresholds: dict, alpha: float, paired: bool = False, across_machines: bool = False) -> Pair:
    """The verdict on one pair of entries (:func:`bench.judge.stats.judge`, or ``judge_paired`` for
    the two sides of an A/B run); *not comparable (machines differ)* where they ran on different
    machines, unless ``across_machines``."""
    mode = b.measurement.fields.get("mode", "")
    threshold = thresholds["default"] if n.key[0] == "name" else threshold_for(thresholds, n.key[0], mode)
    if b.machine and n.machine and b.machine != n.machine and not across_machines:
        return Pair(n.label, n.key, finite(b.measurement.median), finite(n.measurement.median), None, None, threshold,
                    "not comparable", f"{MACHINES_DIFFER}: {b.machine} in BASE, {n.machine} in NEW")
    rule = judge_paired if paired else judge
    return rule(n.label, n.key, b.measurement, n.measurement, threshold, alpha)


def compare(base_path, new_path, thresholds: dict | None = None, alpha: float = 0.01,
            paired: bool = False, across_machines: bool = False) -> Comparison:
    """Pair and judge every benchmark of two result files (paths, or :class:`Side` already loaded).

    Args:
        thresholds: from :func:`bench.judge.stats.parse_thresholds`; default 1.10 for all.
        alpha: significance level of the one-sided tests.
        paired: the files are the two sides of one A/B run (``bench ab``): process k of each ran
            side by side, and each benchmark is judged on its paired process medians.
        across_machines: judge pairs that ran on different machines too (their differences are
            listed among the warnings); otherwise they are not comparable.

    Raises:
        Unusable: a file cannot be read, the schema is too new, the files have no benchmark in
            common, or none of the common ones is comparable (e.g. no raw samples): a CI gate must
            not pass on nothing.
    """
    thresholds = thresholds or {"default": 1.10}
    base, new = (path if isinstance(path, Side) else load(path) for path in (base_path, new_path))
    common, only_base, only_new, notes = pair_sides(base, new)
    pairs = [judge_pair(b, n, thresholds, alpha, paired, across_machines) for b, n in common]
    if all(p.verdict == "not comparable" for p in pairs):
        why, count = Counter(p.why for p in pairs).most_common(1)[0]
        raise Unusable(f"none of the {len(pairs)} common benchmarks is comparable ({count} of them: {why})")
    pairs.sort(key=lambda p: (p.verdict == "not comparable", -(p.ratio or 0)))
    warnings = notes + metadata_warnings(base, new)
    warnings += [f"{name} was made from {side.dirty} with uncommitted changes: its code is not that commit's"
                 for name, side in (("BASE", base), ("NEW", new)) if side.dirty]
    return Comparison(base, new, pairs, only_base, only_new, warnings, alpha)
