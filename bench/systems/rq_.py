"""RQ: `rq worker` xW. SimpleWorker (no fork per job) is the fair comparison;
the default forking Worker is measured for reference with fewer jobs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.systems.base import System


def _workers(worker_class: str | None) -> Callable[[Path, Path, int], list[list[str]]]:
    # The Redis URL reaches `rq worker` through RQ_REDIS_URL (set by the harness).
    def workers(python: Path, bin_dir: Path, count: int) -> list[list[str]]:
        cmd = [str(bin_dir / "rq"), "worker"]
        if worker_class:
            cmd += ["--worker-class", worker_class]
        return [cmd for _ in range(count)]

    return workers


SYSTEM = System(
    name="rq",
    label="RQ (SimpleWorker)",
    venv="rq",
    runner="rq",
    workers=_workers("rq.SimpleWorker"),
    setup="`rq worker --worker-class rq.SimpleWorker` xW processes, defaults otherwise",
    drain_scale=0.25,
)

FORKING = System(
    name="rq-fork",
    label="RQ (forking Worker)",
    venv="rq",
    runner="rq",
    workers=_workers(None),
    setup="`rq worker` xW processes (default Worker: forks a work horse per job)",
    drain_scale=0.05,
    latency=False,
    scaling=False,
)
