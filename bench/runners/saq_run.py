"""saq: queue, task and producer. Workers: ``saq bench.runners.saq_run.settings``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from saq import Queue

from bench.runners.common import awork, redis_url, run_async


async def noop(ctx: dict[str, Any], *, seq: int) -> None:
    await awork(seq)


# saq's defaults otherwise (concurrency 10 per worker process).
settings = {"queue": Queue.from_url(redis_url()), "functions": [noop]}


async def _setup() -> Callable[[int], Awaitable[object]]:
    queue = Queue.from_url(redis_url())
    await queue.connect()
    return lambda seq: queue.enqueue("noop", seq=seq)


def main(argv: list[str]) -> None:
    run_async(_setup, argv)
