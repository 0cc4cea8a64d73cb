"""``python -m bench peaks``: this machine's GEMM peaks and memory bandwidth as one line of JSON
(:func:`bench.roofline.measure_peaks`); a run measures them in a process of this kind."""

from __future__ import annotations

import json

from ..roofline import measure_peaks
from .base import OK, Command


class Peaks(Command):
    name = "peaks"
    help = "this machine's GEMM peaks and memory bandwidth, as JSON"

    def run(self, args) -> int:
        print(json.dumps(measure_peaks()))
        return OK


COMMAND = Peaks()
