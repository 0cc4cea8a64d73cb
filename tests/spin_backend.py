"""Puts the calibrated ``spin`` backend (bench.timing.spin) behind an entry point, as a user's
installed distribution would."""

from __future__ import annotations

from pathlib import Path

from bench.timing.spin import FACTOR_ENV, SpinBackend  # noqa: F401  (re-exported for the tests)


def install_entry_point(site: Path, name: str = "spin") -> Path:
    """Make ``site`` (to be put on PYTHONPATH) hold a distribution whose entry point registers
    :class:`bench.timing.spin.SpinBackend` as ``name``; returns ``site``."""
    info = site / "rnn_bench_spin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rnn-bench-spin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[rnn_cell_bench.backends]\n{name} = bench.timing.spin:SpinBackend\n")
    return site
