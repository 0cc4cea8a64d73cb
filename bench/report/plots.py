"""PNG plots of a result file and of a machine's history (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results.files import read_results
from ..results.schema import number


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(rows):
    """The timed rows: status ok and a positive finite time (a log axis and a ratio need one)."""
    def positive(value):
        v = number(value)
        return v is not None and 0 < v < float("inf")

    return [r for r in rows if r["status"] == "ok" and positive(r.get("per_step_s")) and positive(r.get("median_s"))]


def _grid(plt, nrows, ncols, title):
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False, layout="constrained")
    fig.suptitle(title)
    return fig, axes


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def spec_label(row: dict) -> str:
    """The cell a row is of, for a panel title: its mode, then each spec field that differs from
    the grids' defaults (one layer, unidirectional, time-major, with bias, I = H, float32),
    e.g. ``gru, 2 layers, bidirectional``."""
    parts = [row["mode"]]
    if int(row.get("num_layers") or 1) != 1:
        parts.append(f"{row['num_layers']} layers")
    parts += [word for field, word in (("bidirectional", "bidirectional"), ("batch_first", "batch_first"))
              if str(row.get(field)) == "True"]
    if str(row.get("bias")) == "False":
        parts.append("no bias")
    if row.get("input_size") not in (None, "", row.get("hidden_size")):
        parts.append(f"I={row['input_size']}")
    if row.get("dtype") not in (None, "", "float32"):
        parts.append(row["dtype"])
    if row.get("proj_size") not in (None, "", "0"):
        parts.append(f"proj_size {row['proj_size']}")
    if row.get("lengths") not in (None, "", "full"):
        parts.append(f"lengths {row['lengths']}")
    return ", ".join(parts)


def _pass(row: dict) -> str:
    """A row's pass; files before the ``pass`` column hold only the forward pass."""
    return row.get("pass") or "forward"


def _label(backend: str, pass_: str) -> str:
    """A line's legend: the backend, with ``fwd+bwd`` for the forward_backward pass."""
    return backend if pass_ == "forward" else f"{backend} fwd+bwd"


def _family(row: dict) -> tuple:
    """What a panel holds fixed besides its x column and its other size: the spec, all but H
    (I only where it is not H), the lengths, and B."""
    i = "" if row.get("input_size") == row.get("hidden_size") else row.get("input_size")
    return (row["mode"], row.get("num_layers"), row.get("bidirectional"), row.get("batch_first"), row.get("bias"),
            row.get("dtype"), i, row.get("proj_size") or "0", row.get("lengths") or "full", int(row["batch"]))


def line_panels(rows: list[dict], x_col: str, fixed_col: str) -> list[tuple[str, list[dict]]]:
    """``[(title, rows)]``: one panel per cell spec and batch size present in ``rows``, at the value
    of ``fixed_col`` (T or H) with the most distinct ``x_col`` values there (the largest on a tie),
    so every panel shows what the file has and its title names it."""
    families: dict = {}
    for r in rows:
        families.setdefault(_family(r), []).append(r)
    panels = []
    for family, members in families.items():
        xs: dict = {}
        for r in members:
            xs.setdefault(int(r[fixed_col]), set()).add(int(r[x_col]))
        fixed = max(xs, key=lambda v: (len(xs[v]), v))
        short = {"timesteps": "T", "hidden_size": "H"}[fixed_col]
        panels.append((f"{spec_label(members[0])}, B={family[-1]}, {short}={fixed}",
                       [r for r in members if int(r[fixed_col]) == fixed]))
    return panels


def _panel_grid(plt, n: int, title: str, most_columns: int = 4):
    """A figure with ``n`` panels in rows of at most ``most_columns``; the spare axes removed."""
    ncols = min(most_columns, n)
    nrows = -(-n // ncols)
    fig, axes = _grid(plt, nrows, ncols, title)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        fig.delaxes(ax)
    return fig, flat[:n]


def _log_axis(axis, values) -> None:
    """A log axis ticked at ``values`` (the sizes the file has), with no minor labels to overlap."""
    from matplotlib.ticker import NullLocator

    axis.set_ticks(sorted(values), [str(v) for v in sorted(values)])
    axis.set_minor_locator(NullLocator())


def figures(rows: list[dict], name: str) -> dict:
    """The plots of :func:`plot_file` as matplotlib Figures, ``{file suffix: Figure}``, from the
    rows of a result file called ``name``; untimed rows are left out.

    Raises:
        ValueError: no timed rows.
    """
    rows = _ok(rows)
    if not rows:
        raise ValueError(f"{name}: no timed rows to plot")
    plt = _pyplot()
    series = list(dict.fromkeys((r["backend"], _pass(r)) for r in rows))
    out = {}

    def lines(x_col, y_col, fixed_col, xlabel, ylabel, title, key):
        panels = line_panels(rows, x_col, fixed_col)
        fig, axes = _panel_grid(plt, len(panels), title)
        for ax, (panel_title, members) in zip(axes, panels):
            for backend, pass_ in series:
                pts = sorted((int(r[x_col]), float(r[y_col])) for r in members
                             if r["backend"] == backend and _pass(r) == pass_)
                if pts:
                    ax.plot(*zip(*pts), marker="o", label=_label(backend, pass_))
            xs = {int(r[x_col]) for r in members}
            ys = [float(r[y_col]) for r in members]
            if len(xs) > 1:  # a log axis needs a range
                ax.set_xscale("log")
                _log_axis(ax.xaxis, xs)
            else:
                ax.set_xticks(sorted(xs), [str(x) for x in sorted(xs)])
            if min(ys) > 0 and max(ys) > min(ys):
                ax.set_yscale("log")  # matplotlib labels some minor ticks where no decade is in range
            ax.set_title(panel_title, fontsize="medium")
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize="small")
        out[key] = fig

    lines("hidden_size", "per_step_s", "timesteps", "hidden size H", "median seconds per timestep",
          f"{name}: seconds per timestep vs hidden size", "per_step_vs_hidden")
    lines("timesteps", "median_s", "hidden_size", "timesteps T", "median seconds per call",
          f"{name}: time vs timesteps", "time_vs_timesteps")
    if all(number(r.get("pct_peak")) is not None for r in rows):
        lines("hidden_size", "pct_peak", "timesteps", "hidden size H", "% of this machine's GEMM peak",
              f"{name}: achieved FLOP/s as % of the measured GEMM peak", "pct_peak_vs_hidden")

    families: dict = {}
    for r in rows:
        families.setdefault((_pass(r), *_family(r)), []).append(r)
    panels = [(backend, pass_, family, members) for backend, pass_ in series if backend != "numpy"
              for family, members in families.items() if family[0] == pass_
              if any(r["backend"] == backend for r in members) and any(r["backend"] == "numpy" for r in members)]
    if panels:
        fig, axes = _panel_grid(plt, len(panels), f"{name}: speedup over numpy (numpy time / backend time)")
        for ax, (backend, pass_, family, sel) in zip(axes, panels):
            ts = sorted({int(r["timesteps"]) for r in sel})
            hs = sorted({int(r["hidden_size"]) for r in sel})
            cell = {(int(r["timesteps"]), int(r["hidden_size"]), r["backend"]): float(r["median_s"]) for r in sel}
            grid = np.full((len(ts), len(hs)), np.nan)
            for a, t in enumerate(ts):
                for c, h in enumerate(hs):
                    if (t, h, "numpy") in cell and (t, h, backend) in cell:
                        grid[a, c] = cell[(t, h, "numpy")] / cell[(t, h, backend)]
            image = ax.imshow(np.log2(grid), cmap="RdBu", vmin=-6, vmax=6, origin="lower", aspect="auto")
            for (a, c), v in np.ndenumerate(grid):
                if np.isfinite(v):
                    ax.text(c, a, f"{v:.2g}", ha="center", va="center", fontsize="small")
            ax.set_xticks(range(len(hs)), [str(h) for h in hs])
            ax.set_yticks(range(len(ts)), [str(t) for t in ts])
            ax.set_xlabel("hidden size H")
            ax.set_ylabel("timesteps T")
            ax.set_title(f"{_label(backend, pass_)}: {spec_label(sel[0])}, B={family[-1]}", fontsize="medium")
        fig.colorbar(image, ax=axes, label="log2 of the speedup over numpy (blank: not timed)", shrink=0.5)
        out["speedup_over_numpy"] = fig
    return out


def plot_file(path: str | Path) -> list[Path]:
    """Write PNGs next to result CSV ``path`` and return their paths.

    One panel per cell spec and batch size in the file (:func:`line_panels`; its title names the
    spec, B, and the T or H it is drawn at: the one with the most sizes there):

    - ``<stem>.per_step_vs_hidden.png``: seconds per timestep against H (log-log), one
      line per backend and pass (``fwd+bwd`` marks forward_backward);
    - ``<stem>.time_vs_timesteps.png``: seconds per call against T, same layout;
    - ``<stem>.pct_peak_vs_hidden.png``: achieved FLOP/s as % of the GEMM peak
      measured in the same run, against H (files of schema 2 and later);
    - ``<stem>.speedup_over_numpy.png``: each backend's speedup over ``numpy``
      (numpy time / backend time, in the same pass) as a heatmap over (T, H), one panel per
      backend, pass, cell spec and batch size.

    Raises:
        ValueError: the file has no timed rows.
        FileNotFoundError: no such file.
    """
    path = Path(path)
    figs = figures(read_results(path), path.name)
    return [_save(fig, path.with_name(f"{path.stem}.{key}.png")) for key, fig in figs.items()]


def plot_history(trends, out: Path, machine: str) -> Path:
    """Median of each benchmark relative to its first saved run, one panel per backend; steps marked."""
    plt = _pyplot()
    backends = list(dict.fromkeys(t.key[0] for t in trends))
    fig, axes = _grid(plt, 1, len(backends), f"{machine}: history (median / first run's median)")
    for ax, backend in zip(axes[0], backends):
        for t in (t for t in trends if t.key[0] == backend):
            rel = np.asarray(t.medians) / t.medians[0]
            ax.plot(range(len(rel)), rel, marker=".", alpha=0.6)
            for s in t.steps:
                ax.plot(s.index, rel[s.index], marker="o", color="red", fillstyle="none", markersize=9)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(backend)
        ax.set_xlabel("saved run (oldest = 0)")
        ax.set_ylabel("median / first run's median")
        ax.grid(True, alpha=0.3)
    return _save(fig, out)
