"""RQ: tasks and producer. Workers: ``rq worker --worker-class rq.SimpleWorker`` (see systems)."""

from __future__ import annotations

from redis import Redis
from rq import Queue

from bench.runners.common import redis_url, run_sync, work


def noop(seq: int) -> None:
    work(seq)


def main(argv: list[str]) -> None:
    queue = Queue("default", connection=Redis.from_url(redis_url()))
    run_sync(lambda seq: queue.enqueue(noop, seq), argv)
