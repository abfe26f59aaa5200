"""Steered job ids (jobsys.store.slots): valid UUID4s whose ``job:<id>`` hashes to
the slot asked for, and every key of every script call in one slot (cluster layout)."""

from __future__ import annotations

import random
import string
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from jobsys.store import keys, slots
from jobsys.store.scripts import Idempotency, Scripts
from jobsys.store.submission import new_job_id, new_job_ids


def test_steered_ids_are_uuid4s_in_the_slot_asked_for() -> None:
    rng = random.Random(13)
    seen: set[str] = set()
    for slot in [0, 1, 3860, 16383, *rng.sample(range(slots.SLOTS), 2000)]:
        for job_id in slots.steered_ids(slot, 10):
            parsed = uuid.UUID(job_id)
            assert parsed.version == 4 and str(parsed) == job_id
            assert key_slot(keys.job(job_id).encode()) == slot
            seen.add(job_id)
    assert len(seen) == 2004 * 10  # no two alike


def test_every_slot_is_reachable() -> None:
    tail, fifth = slots._tables()
    reach = {t ^ f for t in tail for _, f in fifth}
    assert len(reach) == slots.SLOTS


@pytest.fixture
def cluster_layout() -> Iterator[None]:
    keys.use_cluster_layout(True)
    yield
    keys.use_cluster_layout(False)


def test_ids_follow_the_queue_only_in_the_cluster_layout(cluster_layout: None) -> None:
    for queue in ("default", "critical", "low", "q-42"):
        want = key_slot(keys.ready(queue).encode())
        assert {key_slot(keys.job(i).encode()) for i in new_job_ids(20, queue)} == {want}
        assert key_slot(keys.job(new_job_id(queue)).encode()) == want
    keys.use_cluster_layout(False)
    assert len({key_slot(keys.job(i).encode()) for i in new_job_ids(50, "default")}) > 1


class _Recorder(Scripts):
    """Scripts whose calls are recorded (keys and name), not sent."""

    def __init__(self) -> None:
        super().__init__(redis.Redis(), max_queues=10)
        self.calls: list[tuple[str, list[str]]] = []

    def _run(self, name: str, keys_: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        self.calls.append((name, [k.decode() if isinstance(k, bytes) else k for k in keys_]))
        return _ANSWERS[name]


_ANSWERS: dict[str, Any] = {
    "enqueue": ["new"], "claim": [0], "complete": [], "fail": [], "release": 1,
    "recover": [], "heartbeat": [[], []], "progress": 1, "tick": "enqueued",
    "cancel": "now", "page": ["", "", []], "drop_queue": "dropped", "replay": [],
    "purge": [], "workers_live": [], "pause": 1, "enqueue_flow": ["new"], "rate_limited": [],
    "promote": "promoted", "reprioritize": "ok",
}  # fmt: skip


def _queue_names(n: int) -> list[str]:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits + "-_.:"
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(n)]


def test_every_key_of_every_script_call_is_in_the_queues_slot(cluster_layout: None) -> None:
    rec = _Recorder()
    for queue in _queue_names(300):
        ids = new_job_ids(3, queue)
        rec.calls.clear()
        rec.enqueue(queue, ids, ["x"] * 3)
        rec.enqueue(queue, ids, ["x"] * 3, Idempotency("ab" * 32, "cd" * 32, 60))
        rec.claim(queue, "w", 1000, 5)
        rec.complete(queue, "w", [(i, 1, "null") for i in ids])
        rec.fail(queue, "w", [(i, 1, "boom", 0) for i in ids])
        rec.release(queue, ids[0], "w", 1)
        rec.recover(queue)
        rec.heartbeat(queue, "w", 1000, [(i, 1) for i in ids])
        rec.progress(queue, ids[0], "w", 1, 0.5, "half")
        rec.tick(queue, "nightly", 1, ids[0], "x")
        rec.cancel(queue, ids[1])
        rec.page([(queue, s) for s in keys.INDEXED_STATUSES], 10, None, None, 100, True)
        rec.drop_queue(queue)
        rec.replay(queue, ids)
        rec.purge(queue, ids)
        # flow control (docs/flow-control.md)
        rec.pause(queue, True)
        rec.enqueue_flow(queue, ids, ["x"] * 3, "the-key", 0, Idempotency("ab" * 32, "cd" * 32, 60))
        rec.rate_limited(queue, "w", [(i, 1, 1000, "task") for i in ids])
        rec.promote(queue, ids[0])
        rec.reprioritize(queue, ids[0], 5)
        assert len(rec.calls) == 20
        want = slots.queue_slot(queue)
        for name, ks in rec.calls:
            # The job hashes the scripts derive (claim, recover, heartbeat, page) are
            # ids of this queue: steered like `ids`.
            assert {key_slot(k.encode()) for k in [*ks, *map(keys.job, ids)]} == {want}, name
        # The deployment-wide keys share one slot of their own.
        assert key_slot(keys.workers().encode()) == key_slot(keys.worker("w-1").encode())
        assert key_slot(keys.queues().encode()) == key_slot(keys.schedules().encode())


def test_the_single_redis_layout_keeps_its_names() -> None:
    assert keys.queues() == "jobsys:queues"
    assert keys.workers() == "jobsys:workers"
    assert keys.worker("a") == "jobsys:worker:a"
    assert keys.schedules() == "jobsys:schedules"
    assert keys.dead_list("q") == keys.dead_letter() == "dead_letter"
    assert keys.queue_registry("q") == "jobsys:queues"
    assert keys.idempotency("d", "q") == "jobsys:idem:d"
    assert keys.job("x") == "job:x"
