"""A/B of two revisions on this machine: ``python -m bench ab BASE NEW``.

Each side is a git revision checked out to a temporary worktree (or
``WORKTREE``: this checkout as it is, uncommitted changes included).  Both
sides' workers run in one :class:`bench.runner.Sweep`: for every case the
two sides' processes are paired (process k of BASE with process k of NEW)
and their bursts alternate back to back, so the machine's drift falls on
both alike.  Each benchmark is judged on its paired process medians
(:func:`bench.compare.judge_paired`); both result files are written, and the
report and exit status are ``compare``'s: 0 no regression, 1 a regression,
2 unusable input.
"""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import tempfile
from pathlib import Path

from .compare import Comparison, Unusable, judge_paired, load, metadata_warnings
from .runner import Side, Sweep

REPO = Path(__file__).resolve().parent.parent
#: The name of "this checkout as it is" among the revisions.
WORKTREE = "WORKTREE"
#: Default slowdown that counts in an A/B run: paired processes resolve 5%.
AB_THRESHOLD = 1.05


@contextlib.contextmanager
def checkout(rev: str, where: Path):
    """A directory holding revision ``rev`` of this repository (``WORKTREE``: this checkout), for
    the duration of the block.

    Raises:
        Unusable: ``rev`` is not a revision git knows here.
    """
    if rev == WORKTREE:
        yield REPO
        return
    proc = subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(where), rev],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise Unusable(f"{rev}: not a revision of {REPO} ({(proc.stderr.strip().splitlines() or ['?'])[-1]})")
    try:
        yield where
    finally:
        subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(where)], capture_output=True)


def judge_files(base_path: Path, new_path: Path, thresholds: dict, alpha: float) -> Comparison:
    """Pair the two result files of an A/B run and judge each benchmark on its paired process
    medians.

    Raises:
        Unusable: a file cannot be read, no benchmark is in both, or none of them is comparable.
    """
    base, new = load(base_path), load(new_path)
    common = [k for k in new.entries if k in base.entries]
    if not common:
        raise Unusable(f"no benchmarks in common between {base.path} and {new.path}")
    pairs = []
    for k in common:
        b, n = base.entries[k], new.entries[k]
        threshold = thresholds.get(k[0], thresholds.get(k[1], thresholds["default"]))
        pair = judge_paired(n.label, k, b.process_medians or [], n.process_medians or [], threshold, alpha)
        if b.status != "ok" or n.status != "ok":
            pair.verdict, pair.ratio = "not comparable", None
            pair.why = f"status {b.status if b.status != 'ok' else n.status} in {'BASE' if b.status != 'ok' else 'NEW'}"
        pairs.append(pair)
    if all(p.verdict == "not comparable" for p in pairs):  # a gate must not pass on nothing
        from collections import Counter

        why, n = Counter(p.why for p in pairs).most_common(1)[0]
        raise Unusable(f"none of the {len(pairs)} common benchmarks is comparable ({n} of them: {why})")
    pairs.sort(key=lambda p: (p.verdict == "not comparable", -(p.ratio or 0)))
    only_base = [base.entries[k].label for k in base.entries if k not in new.entries]
    only_new = [new.entries[k].label for k in new.entries if k not in base.entries]
    return Comparison(base, new, pairs, only_base, only_new, metadata_warnings(base, new), alpha)


def run_ab(base_rev: str, new_rev: str, sweep: Sweep, progress=print, sides_env=((), ())) -> tuple[Path, Path]:
    """Run ``sweep`` (its ``sides`` and ``outputs`` are replaced) with BASE and NEW checked out;
    returns the two result files.  ``sides_env``: extra environment of each side's workers."""
    with tempfile.TemporaryDirectory(prefix="rnn-bench-ab-") as tmp:
        with checkout(base_rev, Path(tmp) / "base") as base_root, checkout(new_rev, Path(tmp) / "new") as new_root:
            sides = [Side("base", base_root, tuple(sides_env[0])), Side("new", new_root, tuple(sides_env[1]))]
            run = dataclasses.replace(sweep, sides=sides)
            run.run(progress)
    return Path(sweep.outputs["base"]), Path(sweep.outputs["new"])
