"""A machine's figures as a markdown document, generated from its committed result files
(``python -m bench report results/<machine_id>/ > docs/results/<machine_id>.md``), never typed.

For the latest saved run of each grid in the folder: who wins where (:mod:`bench.report.wins`),
``numba`` against the fastest other backend on every row (the rows where it is behind listed with
their ratio), the best % of the GEMM peak at the largest sizes, and at B = 1 the recurrent weights'
bandwidth beside the machine's ``sgemv_gbps``.  Then the tuned plan, the calibrations of the A/B
gate and the character RNN's tables when the folder has them.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from ..lengths import lengths_of
from ..results.catalog import catalog
from ..results.files import read_results
from ..results.schema import number
from .table import headline, markdown
from .wins import regime_tables


def _numeric(text) -> bool:
    try:
        float(str(text).rstrip("x%"))
    except ValueError:
        return str(text) in ("–", "")
    return True


def _table(columns: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table; a column of numbers is right-aligned, one of words left-aligned."""
    align = ["---:" if rows and all(_numeric(r[i]) for r in rows) else "---" for i in range(len(columns))]
    out = ["| " + " | ".join(columns) + " |", "|" + "|".join(align) + "|"]
    return out + ["| " + " | ".join(map(str, r)) + " |" for r in rows]


def _per_pass_times(rows: list[dict]) -> dict:
    """``{(pass, case_id): {backend: per_step_s}}`` of the timed rows."""
    found: dict = {}
    for r in rows:
        value = number(r.get("per_step_s"))
        if r["status"] == "ok" and value:
            found.setdefault((r.get("pass") or "forward", r["case_id"]), {})[r["backend"]] = value
    return found


def numba_standing(rows: list[dict], most: int = 40) -> list[str]:
    """``numba`` against the fastest other backend with the same pass, per row: how many rows it is
    at least 1.0x there, and every row where it is behind, slowest first."""
    lines = []
    for pass_ in dict.fromkeys(r.get("pass") or "forward" for r in rows):
        ratios = []
        for (p, case), times in _per_pass_times(rows).items():
            others = {b: t for b, t in times.items() if b != "numba" and not b.startswith("numba:")}
            if p == pass_ and "numba" in times and others:
                best = min(others, key=others.get)
                ratios.append((others[best] / times["numba"], case, best))
        if not ratios:
            continue
        ahead = sum(r >= 1.0 for r, _, _ in ratios)
        lines += [f"**{pass_}**: numba at least 1.0x the fastest other backend in {ahead} of {len(ratios)} rows "
                  f"({100 * ahead / len(ratios):.0f}%).", ""]
        behind = sorted((r for r in ratios if r[0] < 1.0))
        if behind:
            lines += _table(["case", "fastest other", "numba speed / its"],
                            [[case, best, f"{r:.2f}x"] for r, case, best in behind[:most]])
            if len(behind) > most:
                lines.append(f"... and {len(behind) - most} more")
            lines.append("")
    return lines


def peak_lines(rows: list[dict]) -> list[str]:
    """The best % of the GEMM peak per pass and mode at the largest B*H, and at B = 1 the best
    recurrent-weight bandwidth against the machine's ``sgemv_gbps``."""
    timed = [r for r in rows if r["status"] == "ok" and number(r.get("pct_peak")) is not None]
    if not timed:
        return []
    largest = max(int(r["batch"]) * int(r["hidden_size"]) for r in timed)
    body = {}
    for r in timed:
        if int(r["batch"]) * int(r["hidden_size"]) == largest:
            k = (r.get("pass") or "forward", r["mode"], int(r["timesteps"]))
            if k not in body or number(r["pct_peak"]) > number(body[k]["pct_peak"]):
                body[k] = r
    lines = [f"Best % of the GEMM peak measured in the same run, at B*H = {largest}:", ""]
    lines += _table(["pass", "mode", "T", "best backend", "% of peak"],
                    [[p, m, t, r["backend"], f"{number(r['pct_peak']):.1f}"] for (p, m, t), r in sorted(body.items())])
    b1 = [r for r in timed if int(r["batch"]) == 1 and number(r.get("weight_gbps")) and int(r["hidden_size"]) >= 1024]
    if b1:
        best = max(b1, key=lambda r: number(r["weight_gbps"]))
        sgemv = number(best.get("sgemv_gbps"))
        lines += ["", f"B = 1, H = {best['hidden_size']}: the recurrent weights are read at up to "
                  f"{number(best['weight_gbps']):.1f} GB/s ({best['backend']}, {best['case_id']}); NumPy's own sgemv "
                  f"in the same run: {sgemv:.1f} GB/s." if sgemv else ""]
    return lines + [""]


def varlen_lines(rows: list[dict]) -> list[str]:
    """Packed against padded: per backend, pass and lengths distribution, the geometric mean over the
    sizes of the time of a variable-length batch over the time of the same batch all T steps long
    (``full``), beside the share of its steps that are valid (what a backend that skips the
    padding would take)."""
    full = {}
    for r in rows:
        if r["status"] == "ok" and r.get("lengths") == "full" and number(r.get("median_s")):
            full[(r["backend"], r.get("pass"), r["mode"], r["timesteps"], r["batch"], r["hidden_size"])] = r
    ratios: dict = {}
    for r in rows:
        base = full.get((r["backend"], r.get("pass"), r["mode"], r["timesteps"], r["batch"], r["hidden_size"]))
        if r["status"] != "ok" or r.get("lengths") in ("", "full", None) or base is None:
            continue
        lengths = lengths_of(r["lengths"], int(r["timesteps"]), int(r["batch"]))
        share = float(lengths.sum()) / (int(r["timesteps"]) * int(r["batch"]))
        ratios.setdefault((r["backend"], r.get("pass"), r["lengths"]), []).append(
            (number(r["median_s"]) / number(base["median_s"]), share))
    if not ratios:
        return []
    body = [[b, p, d, str(len(v)), f"{np.exp(np.mean(np.log([x for x, _ in v]))):.2f}",
             f"{np.mean([s for _, s in v]):.2f}"] for (b, p, d), v in sorted(ratios.items())]
    return ["Variable-length batches, packed against padded: a batch's time with its lengths over its time with "
            "every sequence T steps long, geometric mean over the sizes; beside it the share of valid steps "
            "(a backend that skips all padding would take that share of the time):", "",
            *_table(["backend", "pass", "lengths", "sizes", "time / full", "valid steps"], body), ""]


def run_section(path: Path) -> list[str]:
    """The section of one saved run."""
    rows = read_results(path)
    first = rows[0] if rows else {}
    counted = ", instruction counts" if first.get("measure") == "instructions" else ""
    lines = [f"## {'Grid `' + first['grid'] + '`' if first.get('grid') else 'Run'}{counted}: `{path.name}`", "",
             f"Commit {str(first.get('git_commit', ''))[:7] or 'none'}, {first.get('threads')} thread(s) per worker, "
             f"{first.get('processes')} processes per backend, CPU `{first.get('cpu_model')}`, BLAS of NumPy "
             f"`{first.get('blas')}`; {sum(r['status'] == 'ok' for r in rows)} of {len(rows)} benchmarks timed.", ""]
    if counted:  # counts: no seconds, so no regimes, wins or peaks; the table as a run of counts prints it
        head = headline(rows)
        return lines + ["Instructions per timestep (counted under valgrind, one thread; "
                        "[instructions.md](../instructions.md)):", "",
                        markdown(rows, head["column"], head["scale"], spec=head["spec"]), ""]
    for table in regime_tables(rows):
        lines += [f"Who wins where, {table['title']} (per regime: how often each backend was fastest, and each "
                  "backend's geometric mean of its time over the fastest's on the cases where all were timed):", ""]
        lines += _table(table["columns"], table["rows"]) + [""]
    lines += numba_standing(rows) + peak_lines(rows) + varlen_lines(rows)
    return lines


def extras(folder: Path) -> list[str]:
    """The plan, calibrations and character-RNN tables of ``folder``, where present."""
    lines = []
    plan = folder / "plan.json"
    if plan.is_file():
        doc = json.loads(plan.read_text())
        lines += ["## Tuned plan", "", f"`{plan.name}`: {len(doc.get('entries', []))} entries from grid "
                  f"`{doc.get('grid')}` at commit {str(doc.get('git_commit', ''))[:7]} (source `{doc.get('source')}`).", ""]
    for path in sorted(folder.glob("calibration-*.json")):
        s = json.loads(path.read_text())
        if "aa" in s and "ab" in s:
            lines += [f"Calibration `{path.name}`: A/A flagged {s['aa']['regressions'] + s['aa']['improvements']} of "
                      f"{s['aa']['rows']} rows; A/B x{s['slowdown']} detected {s['ab']['regressions']} of "
                      f"{s['ab']['rows']} (threshold {s['threshold']}, alpha {s['alpha']}, {s['processes']} paired "
                      "processes).", ""]
    for path in sorted(folder.glob("charrnn-*.csv")):
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        last = {}
        for r in rows:
            last[r["backend"]] = r
        lines += [f"Character RNN `{path.name}` (last printed epoch per backend):", ""]
        lines += _table(["backend", "epoch", "loss", "prediction", "ms/epoch"],
                        [[b, r["epoch"], f"{float(r['loss']):.6g}", r["prediction"], f"{float(r['seconds']) * 1e3:.3f}"]
                         for b, r in last.items()]) + [""]
    return lines


def machine_document(folder: Path) -> str:
    """The markdown of ``folder`` (``results/<machine_id>/``).

    Raises:
        ValueError: the folder holds no saved run.
    """
    folder = Path(folder)
    saved = [f.path for f in catalog(folder.parent) if f.kind == "saved" and f.path.parent == folder]
    if not saved:
        raise ValueError(f"{folder}: no saved run (save one with `python -m bench run --save`)")
    latest: dict = {}
    for path in sorted(saved):
        rows = read_results(path)
        first = rows[0] if rows else {}
        latest[(first.get("grid") or path.stem, first.get("measure") or "time")] = path
    lines = [f"# Results on `{folder.name}`", "",
             f"Generated by `python -m bench report {folder}/` from the committed files; do not edit by hand.", ""]
    for path in latest.values():
        lines += run_section(path)
    lines += extras(folder)
    return "\n".join(lines).rstrip() + "\n"
