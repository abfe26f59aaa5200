"""The jobsys tasks module of the benchmark: ``jobsys worker --tasks bench.tasks_jobsys``.

With ``BENCH_JOB=async`` (``python -m bench --job async``) the task is an ``async
def`` handler, run on the worker's event loop; else a sync one.
"""

from __future__ import annotations

import jobsys
from bench.runners.common import JOB, awork, work

if JOB == "async":

    @jobsys.task("noop")
    async def noop_async(seq: int) -> None:
        await awork(seq)

else:

    @jobsys.task("noop")
    def noop(seq: int) -> None:
        work(seq)
