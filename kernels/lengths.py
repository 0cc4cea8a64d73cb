"""The sequence lengths of a variable-length batch: their rule and their one validation.

Its own module, below both the argument checks (:mod:`kernels.checks`, which call
:func:`check_lengths` on every ``forward`` and re-export it) and the FLOP model
(:meth:`kernels.CellSpec.flops`, which counts valid steps only), so that neither imports the other.
"""

from __future__ import annotations

import numpy as np


def check_lengths(lengths, timesteps: int, batch: int | None) -> np.ndarray:
    """Validate the sequence lengths of a variable-length batch and return them as one array.

    Semantics (every backend): those of ``pack_padded_sequence(x, lengths,
    enforce_sorted=False)``, then the module, then ``pad_packed_sequence(total_length=T)``.
    Sequence b is its first ``lengths[b]`` steps; ``output`` past its end is zero; ``h_n`` (and
    ``c_n``) hold its last valid state, the reverse direction starting at its last valid step;
    its padding is never read (NaN there changes nothing) and gets zero gradients, and
    ``grad_output`` there is ignored.  Any order: sorted or not.

    Args:
        lengths: integers (B,), each in 1..T: a NumPy integer array in any layout and byte
            order, or anything ``numpy.asarray`` makes one of (a list, a CPU tensor).
        timesteps, batch: T and B of the checked input; ``batch`` ``None`` for unbatched input.

    Returns:
        ``lengths`` as int64 (B,), C-contiguous, aligned, writeable, native byte order
        (the argument itself when it is so already).

    Raises:
        ValueError: naming ``lengths``: unbatched input, not integers (floats, bools, objects),
            a shape other than (B,), or a length below 1 or above T.
    """
    if batch is None:
        raise ValueError("lengths: variable-length batches take batched input (T, B, I) or (B, T, I); "
                         "x is unbatched (T, I)")
    try:
        array = np.asarray(lengths)
    except (TypeError, ValueError) as exc:  # a ragged list
        raise ValueError(f"lengths: expected an integer array of shape ({batch},) (B,): {exc}") from None
    if array.dtype.kind not in "iu":  # bools are kind "b": torch refuses them too
        raise ValueError(f"lengths: expected integers, got dtype {array.dtype}")
    if array.shape != (batch,):
        raise ValueError(f"lengths: expected shape ({batch},) (B,), got {array.shape}")
    if array.size and (array.min() < 1 or array.max() > timesteps):
        bad = array[(array < 1) | (array > timesteps)]
        raise ValueError(f"lengths: expected each length in 1..{timesteps} (1..T), got {bad[:5].tolist()}")
    return np.require(array, np.int64, "CAW")
