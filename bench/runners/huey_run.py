"""Huey: instance, task and producer. Workers: ``huey_consumer bench.runners.huey_run.huey``."""

from __future__ import annotations

from huey import RedisHuey

from bench.runners.common import redis_url, run_sync, work

huey = RedisHuey("bench", url=redis_url())


@huey.task()
def noop(seq: int) -> None:
    work(seq)


def main(argv: list[str]) -> None:
    run_sync(noop, argv)
