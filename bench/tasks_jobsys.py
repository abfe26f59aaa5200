"""The jobsys tasks module of the benchmark: ``jobsys worker --tasks bench.tasks_jobsys``."""

from __future__ import annotations

import jobsys
from bench.runners.common import record


@jobsys.task("noop")
def noop(seq: int) -> None:
    record(seq)
