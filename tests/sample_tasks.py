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
