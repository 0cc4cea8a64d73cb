"""``python -m bench worker JOB``: one worker process of a run (:mod:`bench.timing.worker`), started
by the parent and spoken to on stdin/stdout; ``--probe NAME...`` prints each backend's
availability here as JSON and exits (a run starts no worker for a backend that cannot run)."""

from __future__ import annotations

import json

from kernels import availability

from ..timing.worker import main as serve_job
from ..timing.worker import register_extra_backends
from .base import OK, Command


class Worker(Command):
    name = "worker"
    help = "(internal) one worker process of a run, started by the runner"

    def add_arguments(self, parser):
        parser.add_argument("job", nargs="?", help="the job file the runner wrote")
        parser.add_argument("--probe", nargs="+", metavar="NAME", help="print {name: reason or null} and exit")
        parser.add_argument("--extra", default="{}", help="(with --probe) register_backend()s as JSON")

    def run(self, args) -> int:
        if args.probe:
            register_extra_backends(json.loads(args.extra))
            print(json.dumps({name: availability(name) for name in args.probe}))
            return OK
        return serve_job(args.job)


COMMAND = Worker()
