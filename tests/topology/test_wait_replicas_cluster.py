"""REDIS_WAIT_REPLICAS on a Redis Cluster (docs/scaling.md): a submit waits for the
replicas of its own queue's shard, so a shard whose replica is down refuses (503)
the submits of its queues only, and a 202 still means the job is on a replica."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_cluster import RedisCluster

from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Store, keys


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[RedisCluster]:
    c = RedisCluster(tmp_path, primaries=3, replicas=1).start()
    deadline = time.monotonic() + 30
    for i in range(c.primaries, len(c.nodes)):  # each replica in sync with its primary
        replica = c.client(i)
        while replica.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "a replica did not sync"
            time.sleep(0.05)
        replica.close()
    yield c
    c.stop()


@pytest.fixture
def store(cluster: RedisCluster) -> Iterator[Store]:
    layout = keys.cluster_layout()  # this process's, restored after
    env = {
        "REDIS_CLUSTER_NODES": cluster.seeds,
        "REDIS_WAIT_REPLICAS": "1",
        "REDIS_WAIT_TIMEOUT_SECONDS": "1",
    }
    s = Store(Settings.from_env(env))
    yield s
    s.close()
    keys.use_cluster_layout(layout)


def _replica_of(cluster: RedisCluster, primary: str) -> int:
    """The index in `cluster.nodes` of the replica of the primary at `primary`."""
    for i in range(cluster.primaries, len(cluster.nodes)):
        c = cluster.client(i)
        info = c.info("replication")
        c.close()
        if f"{info['master_host']}:{info['master_port']}" == primary:
            return i
    raise AssertionError(f"no replica of {primary}")


def test_a_submit_waits_for_its_own_shards_replica_only(
    cluster: RedisCluster, store: Store
) -> None:
    client = store.redis
    assert isinstance(client, redis.RedisCluster)
    shards: dict[str, str] = {}  # primary -> a queue on it
    for i in range(300):
        shards.setdefault(client.get_node_from_key(keys.ready(f"q{i}")).name, f"q{i}")
    assert len(shards) == 3
    for queue in shards.values():  # every replica up: every submit acknowledged
        store.submit("t", queue=queue)
    primaries = sorted(shards)
    down, up = primaries[0], primaries[1]
    up_replica = _replica_of(cluster, up)
    cluster.nodes[_replica_of(cluster, down)].stop()
    time.sleep(0.2)
    with pytest.raises(StoreUnavailable, match="0 of 1 replicas"):
        store.submit("t", queue=shards[down])
    job_id = store.submit("t", queue=shards[up])  # another shard's replica is up
    replica = cluster.client(up_replica)
    replica.execute_command("READONLY")  # reads of its primary's slots, on the replica
    assert replica.hget(keys.job(job_id), "status") == "queued"  # before the 202
    replica.close()
