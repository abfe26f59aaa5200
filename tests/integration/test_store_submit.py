"""The submit paths of `Store`: one job, many, idempotent; how they reach Redis."""

from __future__ import annotations

import contextlib
import gc
import json
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import redis
from redis_modes import primaries

from jobsys.errors import StoreUnavailable
from jobsys.store import Claimed, Store, Submission, keys
from jobsys.store.library import library
from jobsys.store.submission import new_job_id, new_job_ids


def test_new_job_ids_are_canonical_uuid4_text() -> None:
    ids = [new_job_id() for _ in range(2000)] + new_job_ids(3000) + new_job_ids(1)
    assert len(set(ids)) == len(ids)
    for job_id in ids:
        parsed = uuid.UUID(job_id)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122
        assert str(parsed) == job_id


def _fields(r: redis.Redis, job_id: str) -> dict[str, str]:
    """A job hash without what differs between two equal submits."""
    fields = r.hgetall(keys.job(job_id))
    for name in ("created_at", "rank", "run_at", "traceparent"):
        fields.pop(name, None)
    return fields


def test_one_job_and_a_batch_of_one_write_the_same_hash(
    store: Store, redis_client: redis.Redis
) -> None:
    run_at = datetime.now(UTC) + timedelta(hours=1)
    cases = [
        Submission("t"),
        Submission("t", None, True),
        Submission("t", {"a": [1, "é"]}, priority=7, max_retries=2, timeout_s=2.5),
        Submission("t", 0, delay_s=30.0),
        Submission("t", "x", run_at=run_at, priority=-3),
    ]
    for sub in cases:
        one = store.submit(
            sub.task,
            sub.payload,
            has_payload=sub.has_payload,
            max_retries=sub.max_retries,
            priority=sub.priority,
            delay_s=sub.delay_s,
            run_at=sub.run_at,
            timeout_s=sub.timeout_s,
        )
        [many] = store.submit_many([sub])
        assert _fields(redis_client, one) == _fields(redis_client, many), sub
    # A (task, payload) pair is a job whose None payload means "no payload".
    pair, sub = store.submit_many([("t", None), ("t", {"a": 1})])
    assert "payload" not in redis_client.hgetall(keys.job(pair))
    assert store.get(sub).payload == {"a": 1}


def test_submits_survive_a_flushed_function_library(
    store: Store, redis_client: redis.Redis
) -> None:
    first = store.submit("echo", 1)
    # As after a Redis restart without persistence: "Function not found", load, run once.
    redis_client.function_flush()
    second = store.submit("echo", 2)
    redis_client.function_flush()
    batch = store.submit_many([("echo", 3), ("echo", 4)])
    redis_client.function_flush()
    done = store.submit_jobs([Submission("echo", 5)], queue="default", key="k", request={"n": 5})
    ids = done.ids
    assert not done.replayed
    everything = [first, second, *batch, *ids]
    assert [store.get(i).payload for i in everything] == [1, 2, 3, 4, 5]
    # Each job was enqueued exactly once, in order.
    assert redis_client.zrange(keys.ready("default"), 0, -1) == everything
    assert redis_client.hget(keys.metrics("default"), "submitted|echo") == "5"


def test_two_versions_libraries_live_side_by_side(store: Store, redis_client: redis.Redis) -> None:
    """A process of another jobsys version (a rolling upgrade) has a library of its
    own; loading either leaves the other in place, and loading twice is harmless."""
    redis_client.function_flush()
    other = (
        "#!lua name=jobsys_000000000000\n"
        "redis.register_function('jobsys_000000000000_enqueue', function() return 1 end)"
    )
    redis_client.function_load(other)
    store.submit("echo", 1)
    store.scripts.load()  # already there: nothing to do
    for node in primaries(redis_client):  # one Redis, or every primary of a cluster
        names = {
            dict(zip(lib[::2], lib[1::2], strict=True))["library_name"]
            for lib in node.function_list()
        }
        assert names == {"jobsys_000000000000", library().name}
    assert library().name.startswith("jobsys_") and len(library().name) == 19


def test_a_connection_killed_under_the_store_is_replaced(
    store: Store, redis_client: redis.Redis
) -> None:
    store.submit("echo", 1)
    redis_client.client_kill_filter(_type="normal", skipme=True)
    # The first submit on the dead connection may fail (never retried: a script
    # could run twice); the connection is then dropped and the next one works.
    with contextlib.suppress(StoreUnavailable):
        store.submit("echo", 2)
    job_id = store.submit("echo", 3)
    assert store.get(job_id).payload == 3


def test_created_at_is_the_redis_clock_across_second_boundaries(
    store: Store, redis_client: redis.Redis
) -> None:
    """created_at is written in Lua as ms and shown by Python as ISO text: every
    stamp must be the Redis clock of its own call, on both sides of a second."""
    seconds = set()
    deadline = time.monotonic() + 1.3
    while time.monotonic() < deadline:
        before = redis_client.time()
        job_id = store.submit("echo")
        after = redis_client.time()
        stamp = datetime.fromisoformat(store.get(job_id).created_at).timestamp()
        low = before[0] + before[1] // 1000 / 1000
        high = after[0] + after[1] // 1000 / 1000
        assert low - 0.0005 <= stamp <= high + 0.0005, (before, stamp, after)
        seconds.add(int(stamp))
    assert len(seconds) >= 2


#: Texts that an encoding of a job's fields could trip on: newlines (the job
#: argument's separator), JSON's own characters, NUL, non-ASCII and non-BMP text.
_ODD_TEXTS = ["a\nb", '"]\n[', "\\", "\x00nul", "é\u2028\u2029", "😀 emoji", " ", "\r\n\t"]


def test_every_field_of_a_job_round_trips_whatever_its_text(
    store: Store, redis_client: redis.Redis
) -> None:
    """A job's fields reach its hash exactly: each job is one script argument (a JSON
    array, then its payload's JSON text after a newline), which must not bend a task
    name, a payload or a trace context, whatever characters they hold."""
    payloads = [*_ODD_TEXTS, {"k\n": ["\n", 2**62, 0.1, None, "😀"]}, [], {}, 0, None]
    subs = [Submission(t, t, priority=-100, max_retries=0, timeout_s=0.25) for t in _ODD_TEXTS]
    subs += [Submission("t", p, True, traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
             for p in payloads]  # fmt: skip
    run_at = datetime(2100, 1, 1, tzinfo=UTC)
    subs.append(Submission("later\n", {"x": "\n"}, run_at=run_at, priority=100))
    ids = store.submit_many(subs, queue="odd")
    for job_id, sub in zip(ids, subs, strict=True):
        fields = redis_client.hgetall(keys.job(job_id))
        assert fields["task"] == sub.task
        assert fields["payload"] == json.dumps(sub.payload, separators=(",", ":"))
        assert fields["max_retries"] == str(3 if sub.max_retries is None else sub.max_retries)
        assert fields.get("priority", "0") == str(sub.priority)
        assert fields.get("traceparent") == sub.traceparent
        assert fields.get("timeout_seconds") == (None if sub.timeout_s is None else "0.25")
        assert fields["queue"] == "odd"
    assert redis_client.hget(keys.job(ids[-1]), "run_at") == str(4102444800000)
    # A (task, payload) pair takes a shorter road to the same argument.
    pairs = [(t, p) for t in _ODD_TEXTS for p in (t, None)]
    pair_ids = store.submit_many(pairs, queue="odd")
    sub_ids = store.submit_many([Submission(t, p) for t, p in pairs], queue="odd")
    for a, b in zip(pair_ids, sub_ids, strict=True):
        assert _fields(redis_client, a) == _fields(redis_client, b)
    assert redis_client.hget(keys.job(pair_ids[0]), "task") == _ODD_TEXTS[0]
    # What a worker is handed is the same text.
    by_id: dict[str, Claimed] = {}
    while batch := store.claim("odd", "w1", 30, 100):  # half the queue at a time
        by_id |= {c.id: c for c in batch}
    for job_id, sub in zip(ids[:-1], subs[:-1], strict=True):
        assert by_id[job_id].task == sub.task
        assert by_id[job_id].payload_json == json.dumps(sub.payload, separators=(",", ":"))


def test_a_thread_that_ends_gives_its_connection_back(
    store: Store, redis_client: redis.Redis
) -> None:
    """Script calls use a client per thread (one connection of the pool): a thread
    that ends returns it, so short-lived threads do not pile up connections. (Counted
    against the connections before: other tests' clients may still be open.)"""

    def jobsys_clients() -> list[dict[str, str]]:
        return [c for c in redis_client.client_list() if c.get("name") == "jobsys"]

    before = len(jobsys_clients())
    for n in range(30):
        t = threading.Thread(target=store.submit, args=(f"t{n}",))
        t.start()
        t.join()
    gc.collect()
    assert len(jobsys_clients()) - before <= 3
    assert redis_client.zcard(keys.ready("default")) == 30
