"""Builds the redis-py client from Settings (the only place that does)."""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobsys.settings import Settings


def connect(settings: Settings, *, socket_timeout_s: float | None = None) -> redis.Redis:
    """A client for ``settings.redis_url`` that never retries by itself.

    Callers decide what a failure means (the API answers 503 at once; workers
    back off and try again), so redis-py's own retry loop is switched off: a
    retried Lua script could otherwise run twice.
    """
    timeout = socket_timeout_s if socket_timeout_s is not None else settings.redis_socket_timeout_s
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=min(timeout, 2.0),
        socket_keepalive=True,
        health_check_interval=30,
        retry=Retry(NoBackoff(), 0),
        client_name="jobsys",
    )
