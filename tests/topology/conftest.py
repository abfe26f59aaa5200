"""Fixtures of the topology tests: each starts its own servers (a Sentinel group,
replicas, a Redis Cluster), whatever `JOBSYS_TEST_REDIS` says."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from redis_cluster import RedisCluster, server_binaries

BINARIES = server_binaries()


@pytest.fixture(scope="module", params=BINARIES, ids=[Path(b).name for b in BINARIES])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisCluster]:
    """A 3-primary cluster per module and per server binary (redis-server, valkey-server)."""
    with RedisCluster(tmp_path_factory.mktemp("cluster"), binary=request.param) as c:
        yield c
