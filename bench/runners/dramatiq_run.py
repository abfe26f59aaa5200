"""Dramatiq: broker, actor and producer. Workers: ``dramatiq bench.runners.dramatiq_run``."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench.runners.common import redis_url, run_sync, work

dramatiq.set_broker(RedisBroker(url=redis_url()))


@dramatiq.actor
def noop(seq: int) -> None:
    work(seq)


def main(argv: list[str]) -> None:
    run_sync(noop.send, argv)
