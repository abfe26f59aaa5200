"""What the tests need to know of the Redis mode they run in (JOBSYS_TEST_REDIS, see
tests/conftest.py), for the few commands that are per node rather than per key.

On a cluster, redis-py sends a keyless command (KEYS, CONFIG SET, CLIENT KILL...) to
one node; a test that means "the server" sends it to every primary instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, cast

import redis
from redis_cluster import RedisCluster

from jobsys.settings import Settings

#: "single" (the default), "sentinel" or "cluster".
REDIS_MODE = os.environ.get("JOBSYS_TEST_REDIS", "single")
#: True when the tests run on a private Redis Cluster.
CLUSTER_MODE = REDIS_MODE == "cluster"


def every_primary() -> dict[str, Any]:
    """Keyword arguments that send a keyless command to every primary of the cluster
    (nothing on one Redis): ``client.config_set("maxmemory", 1, **every_primary())``."""
    return {"target_nodes": redis.RedisCluster.PRIMARIES} if CLUSTER_MODE else {}


def total(answer: Any) -> int:
    """The sum of a per-node answer ({node: n} on a cluster), or the answer itself."""
    return sum(int(n) for n in answer.values()) if isinstance(answer, dict) else int(answer)


def all_keys(client: redis.Redis, pattern: str) -> list[Any]:
    """KEYS `pattern` over the whole deployment: every primary of a cluster."""
    return list(client.keys(pattern, **every_primary()))


class Unreachable:
    """Settings whose Redis is unreachable, for tests of "Redis is down".

    One Redis: port 1, where nothing listens. A cluster: a process needs a seed node
    reachable when it starts (docs/scaling.md), so a private one-primary cluster of
    its own, up until `stop` (call it once the store or the app under test exists).
    """

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self._cluster: RedisCluster | None = None
        if CLUSTER_MODE:
            self._cluster = RedisCluster(data_dir, primaries=1).start()
            node = self._cluster.nodes[0]
            self.settings = settings.with_overrides(redis_cluster_nodes=((node.host, node.port),))
        else:
            self.settings = settings.with_overrides(
                redis_url="redis://127.0.0.1:1/0", redis_sentinels=()
            )

    def stop(self) -> None:
        """Make the Redis of `settings` unreachable (on one Redis it already is)."""
        if self._cluster is not None:
            self._cluster.stop()


def primaries(client: redis.Redis) -> list[redis.Redis]:
    """A plain client on each primary of a cluster (to read per-node state such as
    FUNCTION LIST), or `client` itself on one Redis."""
    if not CLUSTER_MODE:
        return [client]
    cluster = cast(redis.RedisCluster, client)
    return [n.redis_connection for n in cluster.get_primaries()]
