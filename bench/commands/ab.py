"""``python -m bench ab BASE NEW``: an A/B of two revisions on this machine, paired and interleaved.

Each side is a git revision checked out to a temporary worktree (or ``WORKTREE``: this checkout as
it is, uncommitted changes included).  Both sides' workers run in one sweep: for every case, the
two sides' processes are paired (process k of BASE with process k of NEW) and their bursts
alternate back to back, so the machine's drift falls on both alike.  Each benchmark is judged on
its paired process medians (:func:`bench.judge.stats.judge_paired`); with ``--measure
instructions``, one counting process per backend and side, judged by the ratio of the counts
(:func:`bench.judge.stats.judge_counts`, default threshold 1.01).  The two result files and
the report (``<results>/<machine_id>/ab-<run id>-base.csv``, ``-new.csv``, ``ab-<run id>.json``)
are kept; every row records the commit of the side that timed it.  Exit: ``compare``'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import subprocess
import tempfile
from pathlib import Path

from ..environment import REPO, machine_id
from ..grids import get_grid, no_match
from ..judge.compare import compare
from ..judge.formats import format_comparison, records, summary
from ..judge.sides import Unusable
from ..judge.stats import COUNT_THRESHOLD, parse_thresholds
from ..results.files import atomic_write_text
from ..results.paths import machine_dir
from ..runner import UsageError, resolve, run_to_files, sweep_of
from ..timing.options import COUNT_PROCESSES, RunOptions
from ..timing.process import Side
from .base import FOUND, OK, Command, add_judgement_args, add_run_options, fail

#: The name of "this checkout as it is" among the revisions.
WORKTREE = "WORKTREE"
#: Default slowdown that counts in an A/B run: paired processes resolve 5%.
AB_THRESHOLD = 1.05
#: Paired processes per benchmark unless --processes says otherwise: enough for the paired t-test
#: to resolve a 10% change on a noisy machine (docs/comparing.md).  Counting instructions: one
#: (bench.timing.options.COUNT_PROCESSES): a count has no noise to pair away.
AB_PROCESSES = 5
#: The checkouts' folder names: of one length, so that the two sides' paths (on sys.path, in
#: every module's __file__) take the same memory, and instruction counts differ only by the code.
CHECKOUT_NAMES = ("base", "head")


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


def run_ab(base_rev: str, new_rev: str, sweep, outputs: dict, progress=print, sides_env=((), ())) -> dict:
    """Run ``sweep`` with BASE and NEW checked out, each side's rows into the new file
    ``outputs[label]`` (:func:`bench.runner.run_to_files`); returns ``{label: rows}``.
    ``sides_env``: extra environment of each side's workers.

    Raises:
        Unusable: a revision git does not know.
    """
    with tempfile.TemporaryDirectory(prefix="rnn-bench-ab-") as tmp:
        base_dir, new_dir = (Path(tmp) / name for name in CHECKOUT_NAMES)
        with checkout(base_rev, base_dir) as base_root, checkout(new_rev, new_dir) as new_root:
            sides = [Side("base", base_root, tuple(sides_env[0])), Side("new", new_root, tuple(sides_env[1]))]
            return run_to_files(dataclasses.replace(sweep, sides=sides), outputs, progress=progress)


def report(path: Path, args, result, outputs: dict, rows: dict) -> Path:
    """Keep the A/B's verdicts as JSON next to its result files: the revisions and their commits,
    the threshold and alpha, every pair's verdict with its paired ratios, and the summary."""
    commits = {label: next((r.get("git_commit") for r in side if r.get("git_commit")), "") for label, side in rows.items()}
    paired = {p.label: [n / b for b, n in zip(p_base, p_new)] for p, p_base, p_new in _paired(result)}
    doc = {"format": "rnn-cell-bench ab", "version": 1, "base": args.base, "new": args.new,
           "base_commit": commits.get("base", ""), "new_commit": commits.get("new", ""),
           "files": {k: str(v) for k, v in outputs.items()}, "alpha": args.alpha,
           "rows": [{**rec, "paired_ratios": paired.get(rec["benchmark"], [])} for rec in records(result)],
           "summary": summary(result)}
    atomic_write_text(path, json.dumps(doc, indent=1, allow_nan=False) + "\n")
    return path


def _paired(result):
    """Each pair with its BASE and NEW process medians, in process order."""
    for p in result.pairs:
        b, n = result.base.entries.get(p.key), result.new.entries.get(p.key)
        if b is not None and n is not None:
            yield p, b.measurement.process_medians, n.measurement.process_medians


class Ab(Command):
    name = "ab"
    help = "A/B of two git revisions on this machine, paired and interleaved; exit 1 on a regression"
    description = ("Time two revisions (git revisions, or WORKTREE for this checkout as it is) side by side: paired "
                   "worker processes, bursts alternating. Exit 0: no regression, 1: regression, 2: unusable input.")

    def add_arguments(self, parser):
        add_judgement_args(parser, "git revision (e.g. HEAD~1, a tag, WORKTREE)",
                           f"{AB_THRESHOLD}; instruction counts {COUNT_THRESHOLD}",
                           "paired t-test on process medians")
        # its files go under <results>/<machine_id>/ab-<run id>-*, and it pairs both revisions' processes on
        # this machine, whole: no --out, --save, --resume, --shard or --dask
        add_run_options(parser, leave_out=("out", "save", "resume", "shard", "dask"))

    def run(self, args) -> int:
        options = RunOptions.read(vars(args).get)
        default = COUNT_PROCESSES if options.counting else AB_PROCESSES
        options = dataclasses.replace(options, processes=default if options.processes is None else options.processes)
        try:
            resolved = resolve(options)
            if resolved.options.counts()[1] < 2 and not options.counting:
                raise UsageError(f"--processes: expected at least 2 paired processes, got {options.processes}")
            thresholds = parse_thresholds(args.threshold, AB_THRESHOLD)
        except ValueError as exc:
            return fail(exc)
        if not resolved.cases:
            return fail(no_match(resolved.options.grid, get_grid(resolved.options.grid, options.passes), options.where))
        sweep = sweep_of(resolved, [Side("base", REPO), Side("new", REPO)], "ab")
        folder = machine_dir(machine_id())
        outputs = {label: folder / f"ab-{sweep.run_id}-{label}.csv" for label in ("base", "new")}
        print(f"ab: {args.base} against {args.new}: {len(sweep.cases)} cases x {len(sweep.backends)} backends, "
              f"{sweep.options.processes} " + ("process each counting instructions under valgrind"
                                                  if options.counting else "paired processes each")
              + f", seed {sweep.seed}", flush=True)
        try:
            rows = run_ab(args.base, args.new, sweep, outputs, progress=lambda line: print(line, flush=True))
            result = compare(outputs["base"], outputs["new"], thresholds, args.alpha, paired=True)
        except (Unusable, UsageError) as exc:
            return fail(exc)
        print(format_comparison(result, args.format), end="")
        kept = report(folder / f"ab-{sweep.run_id}.json", args, result, outputs, rows)
        print(f"results: {outputs['base']} and {outputs['new']}; report: {kept}")
        return FOUND if result.regressions else OK


COMMAND = Ab()
