"""Workflows on a real Redis Cluster, with real worker processes and real signals
(issue 17; docs/workflows.md, "Redis Cluster"); its own private 3-primary cluster.

A worker killed (SIGKILL) in the middle of its relay, between applying a parent's
end to one child and acknowledging the outbox entry: the next worker's recovery
pass applies the rest and repeats nothing. The worker that finishes a batch's last
job killed before, during and after its settle: each callback runs once."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from batch_checks import CRASH_BATCH_JOBS, assert_callbacks_ran_once, crash_batch, kill_at
from redis_cluster import RedisCluster, cluster_store

from jobsys.store import Store, Submission, keys
from jobsys.store.slots import queue_slot

from processes import Proc, Procs, wait_for


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    with RedisCluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture
def store(cluster: RedisCluster) -> Iterator[Store]:
    with cluster_store(cluster) as s:
        yield s


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    procs = Procs(tmp_path)
    yield procs
    procs.stop_all()


def worker(procs: Procs, cluster: RedisCluster, queues: list[str]) -> Proc:
    env = {
        "REDIS_CLUSTER_NODES": cluster.seeds,
        "JOB_LEASE_SECONDS": "2",
        "WORKER_POLL_SECONDS": "0.2",
    }
    args = ["worker", "--tasks", "sample_tasks", "--concurrency", "1", "--queues"]
    return procs.start([*args, ",".join(queues)], env, "worker")


def test_a_worker_killed_between_applying_and_acknowledging_repeats_nothing(
    store: Store, cluster: RedisCluster, procs: Procs
) -> None:
    client = store.redis
    node_of = {}  # primary index -> a queue on it
    ports = [n.port for n in cluster.nodes]
    for i in range(300):
        port = client.get_node_from_key(keys.ready(f"q{i}")).port  # type: ignore[attr-defined]
        node_of.setdefault(ports.index(port), f"q{i}")
    qa, qx, qy = node_of[0], node_of[1], node_of[2]
    qb = "parked"  # served by no worker: b ends when the test says
    (b,) = store.submit_jobs([Submission("echo", "b")], queue=qb).ids
    (a,) = store.submit_jobs([Submission("sleep", 1.0)], queue=qa).ids
    # Two children of a in two other slots, each also waiting for b.
    (k1,) = store.submit_jobs([Submission("echo", 1, depends_on=(a, b))], queue=qx).ids
    (k2,) = store.submit_jobs([Submission("echo", 2, depends_on=(a, b))], queue=qy).ids
    first, second = sorted([(k1, 1), (k2, 2)])  # the relay applies in id order
    held: redis.Redis = cluster.client(second[1])  # the second child's primary
    victim = worker(procs, cluster, [qa])
    held.execute_command("CLIENT", "PAUSE", 20000, "WRITE")
    try:
        # a completes; the relay applies a to the first child, then its call for the
        # second waits in the paused primary: the outbox entry is not acknowledged.
        wait_for(lambda: store.get(first[0]).to_api().get("waiting_on") == 1, 30, what="k1")
        assert store.get(a).status == "completed"
        victim.signal(signal.SIGKILL)
        victim.wait(10)
    finally:
        held.execute_command("CLIENT", "UNPAUSE")
        held.close()
    assert client.xlen(keys.ended(qa)) == 1
    assert store.get(second[0]).to_api()["waiting_on"] == 2
    # The next worker's recovery pass relays the entry again: the first child had it.
    survivor = worker(procs, cluster, [qa, qx, qy])
    wait_for(lambda: client.xlen(keys.ended(qa)) == 0, 30, what="the relay")
    for kid in (k1, k2):
        view = store.get(kid).to_api()
        assert view["status"] == "waiting" and view["waiting_on"] == 1, view
    # b completes: both children run, once each.
    (job,) = store.claim(qb, "test", 30, 1)
    assert store.complete(qb, job.id, "test", job.attempt, "null")
    wait_for(lambda: all(store.get(k).status == "completed" for k in (k1, k2)), 30)
    for kid, q in ((k1, qx), (k2, qy)):
        types = [f["type"] for _, f in client.xrange(keys.events(q)) if f.get("job") == kid]
        assert types.count("queued") == 1 and types.count("completed") == 1, types
    survivor.signal(signal.SIGTERM)


def same_slot_queue(queue: str) -> str:
    """Another queue name in the hash slot of `queue` (a batch's callback_queue must
    be, in Redis Cluster mode)."""
    for i in range(1_000_000):
        name = f"cb-{i}"
        if queue_slot(name) == queue_slot(queue):
            return name
    raise AssertionError("no name found")


def started(client: redis.Redis, attempt: int) -> bool:
    return any(e.startswith(f"started:{attempt}:") for e in client.lrange("test:executions", 0, -1))


@pytest.mark.parametrize("slot", ["same", "other"])
@pytest.mark.parametrize("point", ["before", "during", "after"])
def test_a_batchs_callbacks_run_once_whenever_the_last_jobs_worker_is_killed(
    point: str, slot: str, store: Store, cluster: RedisCluster, procs: Procs
) -> None:
    """As tests/e2e/test_batch_crash.py on one Redis. With a callback queue in the
    batch queue's slot, the script that ends the last job queues the callbacks; in
    another slot, that script's outbox entries and the relay do (the victim's relay,
    or the survivor's recovery pass when the victim died before it)."""
    client = store.redis
    cbq = same_slot_queue("work") if slot == "same" else "callbacks"
    assert (queue_slot(cbq) == queue_slot("work")) == (slot == "same")
    batch_id, done, cbs = crash_batch(store, point, cbq)
    last = done.ids[-1]
    victim = worker(procs, cluster, ["work"])  # never runs a callback itself
    wait_for(lambda: started(client, 1), 30, what="the last job to start")
    node = client.get_node_from_key(keys.ready("work"))  # type: ignore[attr-defined]
    with redis.Redis(host=node.host, port=node.port) as paused:  # the queue's node
        kill_at(point, victim, store, last, paused)
    survivor = worker(procs, cluster, ["work", cbq])
    assert_callbacks_ran_once(client, store, batch_id, cbs, total=CRASH_BATCH_JOBS)
    survivor.signal(signal.SIGTERM)
