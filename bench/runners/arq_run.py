"""arq: settings, task and producer. Workers: ``arq bench.runners.arq_run.WorkerSettings``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from arq import create_pool
from arq.connections import RedisSettings

from bench.runners.common import awork, redis_url, run_async


async def noop(ctx: dict[str, Any], seq: int) -> None:
    await awork(seq)


class WorkerSettings:
    """arq's defaults otherwise (max_jobs 10, poll_delay 0.5 s, keep_result 1 h)."""

    functions: ClassVar[list[Any]] = [noop]
    redis_settings = RedisSettings.from_dsn(redis_url())


async def _setup() -> Callable[[int], Awaitable[object]]:
    pool = await create_pool(RedisSettings.from_dsn(redis_url()))
    return lambda seq: pool.enqueue_job("noop", seq)


def main(argv: list[str]) -> None:
    run_async(_setup, argv)
