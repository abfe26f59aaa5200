"""jobsys: `jobsys worker --tasks bench.tasks_jobsys`, one process per worker."""

from __future__ import annotations

from pathlib import Path

from bench.systems.base import System


def _workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
    cmd = [str(python), "-m", "jobsys", "worker", "--tasks", "bench.tasks_jobsys"]
    return [cmd for _ in range(count)]


SYSTEM = System(
    name="jobsys",
    label="jobsys",
    venv=None,
    runner="jobsys",
    workers=_workers,
    setup="`jobsys worker` xW processes, defaults (WORKER_CONCURRENCY=1, LOG_LEVEL=INFO)",
)
