"""``python -m bench COMMAND ...``: dispatches to :mod:`bench.commands`."""

import sys

from bench.commands import main

if __name__ == "__main__":
    sys.exit(main())
