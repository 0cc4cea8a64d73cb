"""The sequence lengths of a variable-length batch, as a named distribution: part of a benchmark's key.

A batch of sentences is padded to its longest and packed (``pack_padded_sequence``); how much of
it is padding decides what packing costs and saves.  A case names its lengths by distribution, so
that the same name gives the same lengths on every run and machine:

* ``full`` -- every sequence T steps long (no padding: a plain batch);
* ``uniform:F`` -- drawn uniformly from [ceil(F*T), T] (``uniform:0.5``: half to full length);
* ``tail`` -- a long tail: most sequences short, a few long, ``ceil(T * u^4)`` for u uniform in
  [0, 1) (mean about T/5), as lengths of real text often are.

Every distribution but ``full`` gives its first sequence T steps, so the padded batch is (T, B)
as given; the rest are drawn from a generator seeded by the distribution, T and B
(:func:`lengths_of`).
"""

from __future__ import annotations

import math
import zlib

import numpy as np

#: The names ``--where lengths=...`` and the grids use, besides ``uniform:F``.
NAMES = ("full", "tail")


def check(name: str) -> str:
    """``name`` when it names a distribution.

    Raises:
        ValueError: naming ``lengths``: not ``full``, ``tail`` or ``uniform:F`` with F in (0, 1].
    """
    kind, sep, value = str(name).partition(":")
    if (not sep and kind in NAMES) or (kind == "uniform" and sep and _fraction(value) is not None):
        return name
    raise ValueError(f"lengths: expected full, tail or uniform:F with F in (0, 1], got {name!r}")


def _fraction(text: str) -> float | None:
    try:
        f = float(text)
    except ValueError:
        return None
    return f if 0 < f <= 1 else None


def lengths_of(name: str, timesteps: int, batch: int) -> np.ndarray | None:
    """The lengths (B,) int64 of distribution ``name`` for a batch of ``batch`` sequences padded to
    ``timesteps``; ``None`` for ``full`` (every sequence T steps: no lengths to pass)."""
    check(name)
    if name == "full":
        return None
    rng = np.random.default_rng(zlib.crc32(f"{name}:{timesteps}:{batch}".encode()))
    if name == "tail":
        drawn = np.ceil(timesteps * rng.random(batch) ** 4)
    else:
        low = math.ceil(_fraction(name.partition(":")[2]) * timesteps)
        drawn = rng.integers(low, timesteps + 1, batch)
    lengths = np.clip(drawn, 1, timesteps).astype(np.int64)
    lengths[0] = timesteps  # the batch's longest is T, as the padded input has it
    return lengths


def suffix(name: str) -> str:
    """A case id's mark of ``name``: ``""`` for ``full``, ``-tail``, ``-uniform0.5``."""
    return "" if name == "full" else "-" + name.replace(":", "")
