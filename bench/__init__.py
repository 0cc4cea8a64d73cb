"""rnn-cell-bench's harness: grids, timing, results and the CLI (``python -m bench``)."""
