"""bench plot on the quick grid's rows: what the file has, labelled, without warnings."""

import warnings

import pytest

from bench.grids import get_grid
from bench.report.plots import figures

BACKENDS = ("numpy", "numba", "torch_cpu", "torch_cuda")


def quick_rows():
    """The quick grid's rows as a run writes them, with made-up times; torch_cuda not timed."""
    rows = []
    for case in get_grid("quick"):
        for k, backend in enumerate(BACKENDS):
            ok = backend != "torch_cuda"
            t = 1e-6 * case.timesteps * case.spec.hidden_size * (k + 1)
            rows.append({"case_id": case.id, "backend": backend, **{f: str(v) for f, v in case.fields().items()},
                         "status": "ok" if ok else "unavailable", "median_s": str(t) if ok else "",
                         "per_step_s": str(t / case.timesteps) if ok else "", "pct_peak": "1.5" if ok else ""})
    return rows


def panels(fig):
    """``{title: {backend: x values}}`` of the visible axes of ``fig``."""
    return {ax.get_title(): {line.get_label(): list(line.get_xdata()) for line in ax.lines} for ax in fig.axes
            if ax.get_title()}


def test_quick_grid_plots_show_what_the_file_has_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # matplotlib's "identical low and high xlims" among them
        figs = figures(quick_rows(), "quick.csv")
        for fig in figs.values():
            fig.canvas.draw()  # ticks and layout are computed at draw time
    try:
        assert list(figs) == ["per_step_vs_hidden", "time_vs_timesteps", "pct_peak_vs_hidden", "speedup_over_numpy"]
        timed = {"numpy", "numba", "torch_cpu"}
        modes = ("rnn_tanh", "rnn_relu", "lstm", "gru")
        by_h = panels(figs["per_step_vs_hidden"])
        assert by_h == {**{f"{m}, B={b}, T=50": {k: [16, 128] for k in timed} for m in modes for b in (1, 32)},
                        "gru, 2 layers, bidirectional, B=4, T=20": {k: [32] for k in timed},
                        "lstm, proj_size 16, B=4, T=20": {k: [64] for k in timed},
                        "lstm, lengths uniform:0.5, B=8, T=20": {k: [32] for k in timed}}
        by_t = panels(figs["time_vs_timesteps"])
        assert by_t == {**{f"{m}, B={b}, H=128": {k: [1, 50] for k in timed} for m in modes for b in (1, 32)},
                        "gru, 2 layers, bidirectional, B=4, H=32": {k: [20] for k in timed},
                        "lstm, proj_size 16, B=4, H=64": {k: [20] for k in timed},
                        "lstm, lengths uniform:0.5, B=8, H=32": {k: [20] for k in timed}}
        assert panels(figs["pct_peak_vs_hidden"]) == by_h
        heat = [ax.get_title() for ax in figs["speedup_over_numpy"].axes if ax.get_title()]
        assert len(heat) == 22 and "torch_cpu: gru, 2 layers, bidirectional, B=4" in heat
        ax = figs["per_step_vs_hidden"].axes[0]
        assert [t.get_text() for t in ax.get_xticklabels()] == ["16", "128"]  # the sizes, not overlapping 10^k
    finally:
        import matplotlib.pyplot as plt

        for fig in figs.values():
            plt.close(fig)


def test_a_file_without_timed_rows_is_refused():
    rows = [r for r in quick_rows() if r["backend"] == "torch_cuda"]
    with pytest.raises(ValueError, match="no timed rows to plot"):
        figures(rows, "x.csv")
