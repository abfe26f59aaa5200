"""Builds the redis-py client from Settings (the only place that does)."""

from __future__ import annotations

from typing import Any, cast

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from jobsys.settings import Settings
from jobsys.store.cluster import connect_cluster
from jobsys.store.sentinel import EpochSentinel, FollowingPool, watcher_for


def connect(settings: Settings, *, socket_timeout_s: float | None = None) -> redis.Redis:
    """A client for ``settings.redis_url``, or, with REDIS_SENTINELS, for the primary
    the Sentinels name; it never retries by itself.

    Callers decide what a failure means (the API answers 503 at once; workers
    back off and try again), so redis-py's own retry loop is switched off: a
    retried Lua script could otherwise run twice.

    Through Sentinel, REDIS_URL gives only the data nodes' credentials, database
    and TLS. A connection asks the Sentinels for the primary whenever it connects
    (the newest answer of all of them), checks with ROLE that it reached a primary,
    and reconnects after any Sentinel announces a switch; one that meets a demoted
    node's READONLY (or MASTERDOWN, LOADING, TRYAGAIN, NOREPLICAS) is closed and
    that call raises (so: `StoreUnavailable`); the next call connects afresh
    (jobsys.store.sentinel).
    """
    timeout = socket_timeout_s if socket_timeout_s is not None else settings.redis_socket_timeout_s
    options: dict[str, Any] = {
        "decode_responses": True,
        "socket_timeout": timeout,
        "socket_connect_timeout": min(timeout, 2.0),
        "socket_keepalive": True,
        "health_check_interval": 30,
        "retry": Retry(NoBackoff(), 0),
        "client_name": "jobsys",
        "max_connections": settings.redis_max_connections,
    }
    if settings.redis_cluster_nodes:
        # A RedisCluster is used as a Redis (the commands jobsys sends are common
        # to both); jobsys/store/cluster.py has the steps that differ.
        return cast(redis.Redis, connect_cluster(settings, options))
    if not settings.redis_sentinels:
        if settings.redis_url.startswith("unix:"):
            # A Unix socket has no TCP keepalive: redis-py's UnixDomainSocketConnection
            # refuses the option.
            del options["socket_keepalive"]
        # A burst of calls (an API process serves up to 1,000 requests at once) waits
        # for a free connection rather than failing with "Too many connections".
        pool = redis.BlockingConnectionPool.from_url(settings.redis_url, timeout=timeout, **options)
        # The client owns its pool, as Sentinel's master_for makes it: its close()
        # closes every connection, those threads' clients hold included.
        return redis.Redis.from_pool(pool)
    node = redis.ConnectionPool.from_url(settings.redis_url)
    for name, value in node.connection_kwargs.items():
        if name in ("db", "username", "password") or name.startswith("ssl_"):
            options[name] = value
    if issubclass(node.connection_class, redis.SSLConnection):
        options["ssl"] = True
    sentinels = list(settings.redis_sentinels)
    name = settings.redis_sentinel_master or ""
    sentinel_kwargs = sentinel_options(settings, min(timeout, 2.0))
    sentinel = EpochSentinel(sentinels, sentinel_kwargs=sentinel_kwargs)
    watcher = watcher_for(sentinels, name, sentinel_kwargs)
    master: redis.Redis = sentinel.master_for(
        name, connection_pool_class=FollowingPool, watcher=watcher, **options
    )
    return master


def sentinel_options(settings: Settings, timeout_s: float) -> dict[str, Any]:
    """redis-py's options for the connections to the Sentinels themselves."""
    options: dict[str, Any] = {"socket_timeout": timeout_s, "socket_connect_timeout": timeout_s}
    if settings.redis_sentinel_password is not None:
        options["password"] = settings.redis_sentinel_password
    return options
