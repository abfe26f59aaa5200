"""Task handlers used by the tests (loaded with --tasks sample_tasks, PYTHONPATH=tests).

`record` appends "<job payload id>:<pid>" to the Redis list ``test:executions``, a
side effect that counts executions independently of jobsys's own bookkeeping.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

from jobsys import current_job, task
from jobsys.tasks import RateLimited, RetryAfter

_client: redis.Redis | None = None


def _redis() -> redis.Redis:
    global _client
    if _client is None:
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
