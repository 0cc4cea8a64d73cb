"""PNG plots of a result file and of a machine's history (matplotlib, Agg)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .results import number, read_results


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _ok(rows):
    return [r for r in rows if r["status"] == "ok" and number(r["per_step_s"]) is not None]


def _grid(plt, nrows, ncols, title):
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.4 * nrows), squeeze=False, layout="constrained")
    fig.suptitle(title)
    return fig, axes


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def plot_file(path: str | Path) -> list[Path]:
    """Write PNGs next to result CSV ``path`` and return their paths.

    - ``<stem>.per_step_vs_hidden.png``: seconds per timestep against H (log-log), one
      line per backend, one panel per mode (columns) and batch size (rows), at
      the largest T in the file;
    - ``<stem>.time_vs_timesteps.png``: seconds per call against T, same layout, at
      the largest H;
    - ``<stem>.pct_peak_vs_hidden.png``: achieved FLOP/s as % of the GEMM peak
      measured in the same run, against H (files of schema 2 and later);
    - ``<stem>.speedup_over_numpy.png``: each backend's speedup over ``numpy``
      (numpy time / backend time) as a heatmap over (T, H), one panel per mode
      (columns) and (backend, batch size) (rows).

    The two passes are kept apart: a line per backend and pass (``forward_backward`` lines are
    labelled ``<backend> fwd+bwd``), and speedups over ``numpy`` of the same pass.

    Raises:
        ValueError: the file has no timed rows.
    """
    path = Path(path)
    rows = _ok(read_results(path))
    if not rows:
        raise ValueError(f"{path}: no timed rows to plot")
    plt = _pyplot()
    modes = list(dict.fromkeys(r["mode"] for r in rows))
    backends = list(dict.fromkeys(r["backend"] for r in rows))
    series = list(dict.fromkeys((r["backend"], r["pass"]) for r in rows))
    batches = sorted({int(r["batch"]) for r in rows})
    t_max = max(int(r["timesteps"]) for r in rows)
    h_max = max(int(r["hidden_size"]) for r in rows)
    written = []

    def lines(x_col, y_col, fixed_col, fixed, xlabel, ylabel, title, name):
        fig, axes = _grid(plt, len(batches), len(modes), title)
        for i, b in enumerate(batches):
            for j, m in enumerate(modes):
                ax = axes[i][j]
                for backend, pass_ in series:
                    pts = sorted((int(r[x_col]), float(r[y_col])) for r in rows
                                 if r["mode"] == m and int(r["batch"]) == b and r["backend"] == backend
                                 and r["pass"] == pass_ and int(r[fixed_col]) == fixed)
                    if pts:
                        ax.plot(*zip(*pts), marker="o", label=_label(backend, pass_))
                if len({x for line in ax.lines for x in line.get_xdata()}) > 1:  # a log axis needs a range
                    ax.set_xscale("log")
                    ax.set_yscale("log")
                ax.set_title(f"{m}, B={b}")
                ax.set_xlabel(xlabel)
                ax.set_ylabel(ylabel)
                ax.grid(True, which="both", alpha=0.3)
                if ax.lines:
                    ax.legend(fontsize="small")
        written.append(_save(fig, path.with_name(f"{path.stem}.{name}.png")))

    lines("hidden_size", "per_step_s", "timesteps", t_max, "hidden size H", "median seconds per timestep",
          f"{path.name}: seconds per timestep vs hidden size (T={t_max})", "per_step_vs_hidden")
    lines("timesteps", "median_s", "hidden_size", h_max, "timesteps T", "median seconds per call",
          f"{path.name}: time vs timesteps (H={h_max})", "time_vs_timesteps")
    if all(number(r.get("pct_peak")) is not None for r in rows):
        lines("hidden_size", "pct_peak", "timesteps", t_max, "hidden size H", "% of this machine's GEMM peak",
              f"{path.name}: achieved FLOP/s as % of the measured GEMM peak (T={t_max})", "pct_peak_vs_hidden")

    others = [(b, p, batch) for b, p in series if b != "numpy" and ("numpy", p) in series for batch in batches]
    if others:
        fig, axes = _grid(plt, len(others), len(modes), f"{path.name}: speedup over numpy (numpy time / backend time)")
        for i, (backend, pass_, batch) in enumerate(others):
            for j, m in enumerate(modes):
                sel = [r for r in rows if r["mode"] == m and int(r["batch"]) == batch and r["pass"] == pass_]
                ts = sorted({int(r["timesteps"]) for r in sel})
                hs = sorted({int(r["hidden_size"]) for r in sel})
                cell = {(int(r["timesteps"]), int(r["hidden_size"]), r["backend"]): float(r["median_s"]) for r in sel}
                grid = np.full((len(ts), len(hs)), np.nan)
                for a, t in enumerate(ts):
                    for c, h in enumerate(hs):
                        if (t, h, "numpy") in cell and (t, h, backend) in cell:
                            grid[a, c] = cell[(t, h, "numpy")] / cell[(t, h, backend)]
                ax = axes[i][j]
                image = ax.imshow(np.log2(grid), cmap="RdBu", vmin=-6, vmax=6, origin="lower", aspect="auto")
                for (a, c), v in np.ndenumerate(grid):
                    if np.isfinite(v):
                        ax.text(c, a, f"{v:.2g}", ha="center", va="center", fontsize="small")
                ax.set_xticks(range(len(hs)), [str(h) for h in hs])
                ax.set_yticks(range(len(ts)), [str(t) for t in ts])
                ax.set_xlabel("hidden size H")
                ax.set_ylabel("timesteps T")
                ax.set_title(f"{_label(backend, pass_)}, {m}, B={batch}")
        fig.colorbar(image, ax=axes, label="log2 of the speedup over numpy (blank: not timed)", shrink=0.5)
        written.append(_save(fig, path.with_name(f"{path.stem}.speedup_over_numpy.png")))
    return written


def _label(backend: str, pass_: str) -> str:
    """A line's legend: the backend, with ``fwd+bwd`` for the forward_backward pass."""
    return backend if pass_ == "forward" else f"{backend} fwd+bwd"


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
