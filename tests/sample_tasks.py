"""Task handlers used by the tests (loaded with --tasks sample_tasks, PYTHONPATH=tests).

`record` appends "<job payload id>:<pid>" to the Redis list ``test:executions``, a
side effect that counts executions independently of jobsys's own bookkeeping.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, cast

import redis
from pydantic import BaseModel

from jobsys import current_job, task
from jobsys.tasks import RateLimited, RetryAfter

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
        seeds = os.environ.get("REDIS_CLUSTER_NODES")
        if seeds:  # a worker process in cluster mode: its first seed node
            host, _, port = seeds.split(",")[0].rpartition(":")
            cluster = redis.RedisCluster(host=host, port=int(port), decode_responses=True)
            _client = cast(redis.Redis, cluster)
        elif os.environ.get("JOBSYS_TEST_REDIS") == "cluster":
            # The integration tests on a cluster: REDIS_URL names one node of it, and
            # the test keys lie on any shard.
            url = os.environ["REDIS_URL"]
            _client = cast(redis.Redis, redis.RedisCluster.from_url(url, decode_responses=True))
        else:
            _client = redis.Redis.from_url(os.environ["REDIS_URL"], decode_responses=True)
    return _client


@task("echo")
def echo(payload: Any) -> Any:
    return {"echo": payload}


@task("boom")
def boom(payload: Any) -> Any:
    raise ValueError(f"boom: {payload}")


@task("not-json")
def not_json(payload: Any) -> Any:
    return object()


@task("sleep")
def sleep(payload: Any) -> Any:
    time.sleep(float(payload))
    return "slept"


@task("record")
def record(payload: Any) -> Any:
    """Record this execution; sleep `payload["sleep"]` seconds first if given."""
    if isinstance(payload, dict) and payload.get("sleep"):
        time.sleep(float(payload["sleep"]))
    tag = payload["tag"] if isinstance(payload, dict) else payload
    _redis().rpush("test:executions", f"{tag}:{os.getpid()}")
    return {"tag": tag}


@task("cooperative")
def cooperative(payload: Any) -> Any:
    """Work in small steps for up to `payload` seconds, stopping early when cancelled."""
    job = current_job()
    assert job is not None
    deadline = time.monotonic() + float(payload)
    while time.monotonic() < deadline:
        if job.cancel_requested:
            return "stopped early"
        time.sleep(0.02)
    return "ran to the end"


@task("steps")
def steps(payload: Any) -> Any:
    """Report progress in `payload["n"]` steps of `payload["pause"]` seconds each."""
    job = current_job()
    assert job is not None
    n, pause = int(payload["n"]), float(payload["pause"])
    for i in range(n):
        time.sleep(pause)
        job.progress((i + 1) / n, f"step {i + 1} of {n}")
    return n


@task("retry-later")
def retry_later(payload: Any) -> Any:
    """Ask to be retried after `payload` seconds on the first attempt; succeed after."""
    job = current_job()
    assert job is not None
    if job.attempt == 1:
        raise RetryAfter(float(payload), "the remote service said 429")
    return f"done on attempt {job.attempt}"


@task("pid")
def pid(payload: Any) -> Any:
    """The process the handler runs in."""
    return os.getpid()


@task("fail-until-fixed")
def fail_until_fixed(payload: Any) -> Any:
    """Fails until the Redis key ``test:fixed`` exists (a bug fixed, then the job replayed)."""
    if not _redis().exists("test:fixed"):
        raise RuntimeError("not fixed yet")
    return "fixed"


@task("async-sleep")
async def async_sleep(payload: Any) -> Any:
    """Await `payload` seconds (1 when none); answer the job's id as current_job() sees it."""
    job = current_job()
    assert job is not None
    await asyncio.sleep(float(payload) if payload is not None else 1.0)
    assert current_job() is job  # each asyncio task keeps its own current job
    return {"id": job.id}


@task("async-steps")
async def async_steps(payload: Any) -> Any:
    """Report progress in `payload["n"]` steps of `payload["pause"]` seconds each."""
    job = current_job()
    assert job is not None
    n, pause = int(payload["n"]), float(payload["pause"])
    for i in range(n):
        await asyncio.sleep(pause)
        job.progress((i + 1) / n, f"step {i + 1} of {n}")
    return n


@task("async-cancellable")
async def async_cancellable(payload: Any) -> Any:
    """Await `payload` seconds; record in ``test:cancelled`` a CancelledError seen."""
    job = current_job()
    assert job is not None
    try:
        await asyncio.sleep(float(payload))
    except asyncio.CancelledError:
        _redis().rpush("test:cancelled", job.id)
        raise
    return "ran to the end"


@task("async-blocking")
async def async_blocking(payload: Any) -> Any:
    """Block the event loop for `payload` seconds (what a handler must not do)."""
    time.sleep(float(payload))
    return "blocked"


@task("async-boom")
async def async_boom(payload: Any) -> Any:
    await asyncio.sleep(0)
    raise ValueError(f"async boom: {payload}")


class Resize(BaseModel):
    """The payload of `typed-resize`."""

    width: int
    height: int = 100


@task("typed-resize", max_retries=5, priority=7)
def typed_resize(payload: Resize) -> Any:
    """A typed task: it receives a `Resize`, validated from the payload."""
    assert isinstance(payload, Resize)
    return {"model": type(payload).__name__, "area": payload.width * payload.height}


@task("with-defaults", queue="defaults-q", max_retries=0, timeout_seconds=30, priority=5)
def with_defaults(payload: Any) -> Any:
    return "ok"


@task("parents")
def parents(payload: Any) -> Any:
    """Workflows: record this execution, then return the parents' results."""
    _redis().rpush("test:executions", f"{payload}:{os.getpid()}")
    job = current_job()
    assert job is not None
    return {"me": payload, "parents": job.parent_results()}


@task("callback")
def callback(payload: Any) -> Any:
    """Workflows: record the payload a batch callback runs with."""
    _redis().rpush("test:callbacks", json.dumps(payload))
    return payload


@task("slow-first")
def slow_first(payload: Any) -> Any:
    """Workflows: mark `started:<attempt>`, then on the first attempt only sleep
    `payload` seconds (a crash test kills the worker meanwhile)."""
    job = current_job()
    assert job is not None
    _redis().rpush("test:executions", f"started:{job.attempt}:{os.getpid()}")
    if job.attempt == 1:
        time.sleep(float(payload))
    return job.attempt


@task("throttled")
def throttled(payload: Any) -> Any:
    """Raise RateLimited(payload["hold"]) the first time a job runs (a partner's 429),
    succeed after; every run is recorded in ``test:throttled`` as "<tag>:<ms>"."""
    r = _redis()
    s, us = r.time()
    r.rpush("test:throttled", f"{payload['tag']}:{int(s) * 1000 + int(us) // 1000}")
    if r.incr(f"test:throttled:{payload['tag']}") == 1:
        raise RateLimited(float(payload["hold"]), per=payload.get("per", "task"))
    return "ok"


@task("tenant")
def tenant(payload: Any) -> Any:
    """Record "start <key> <n>" / "end <key> <n>" in ``test:tenant`` around `sleep` s
    (the handlers' own record of which concurrency key runs when)."""
    r = _redis()
    r.rpush("test:tenant", f"start {payload['key']} {payload['n']}")
    time.sleep(float(payload.get("sleep", 0)))
    r.rpush("test:tenant", f"end {payload['key']} {payload['n']}")
    return None


@task("stamp")
def stamp(payload: Any) -> Any:
    """Record when it started (ms since the epoch, taken first thing, before the first
    call's connection to Redis) in ``test:stamps``, and by job id in the hash
    ``test:stamped``. The tests that use it run Redis on the same machine (one clock)."""
    ms = int(time.time() * 1000)
    r = _redis()
    r.rpush("test:stamps", ms)
    job = current_job()
    if job is not None:
        r.hset("test:stamped", job.id, ms)
    return None
