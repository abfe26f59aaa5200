"""The completed index is a LIST of 22-byte (ms, id) elements (`keys.completed_entry`),
newest first: the listing reads it
in the same total order as the ZSET indexes (ms, then id, descending), resumes
exactly after any cursor, and complete.lua prunes its tail as the jobs expire."""

from __future__ import annotations

import random
import time

import pytest
import redis
from redis_modes import CLUSTER_MODE

from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Store, keys

Q = "default"


def run_all(store: Store, queue: str = Q) -> list[str]:
    """Claim and complete every ready job of `queue`, each batch in one complete call."""
    done = []
    while claimed := store.claim(queue, "w", 30, 100):
        random.shuffle(claimed)  # LPUSH order != id order
        store.complete_many(queue, "w", [(c.id, c.attempt, "1") for c in claimed])
        done += [c.id for c in claimed]
    return done


def entries(client: redis.Redis, queue: str = Q) -> list[tuple[int, str]]:
    """(ms, id) of the completed LIST, head (newest) first (`client` returns bytes)."""
    return [keys.completed_entry(e) for e in client.lrange(keys.index(queue, "completed"), 0, -1)]


def restamp(client: redis.Redis, stamped: list[tuple[int, str]], queue: str = Q) -> None:
    """Rewrite the completed LIST as `stamped` [(ms, id)], in that order from the head
    (the ms must not increase along it, as complete.lua guarantees)."""
    key = keys.index(queue, "completed")
    client.delete(key)
    client.rpush(key, *(keys.completed_element(ms, job_id) for ms, job_id in stamped))


def walk(store: Store, status: str | None, limit: int, cursor: str | None = None) -> list[str]:
    """Every id of a listing from `cursor` on, page by page."""
    ids: list[str] = []
    while True:
        page = store.list_jobs(status=status, limit=limit, cursor=cursor)
        ids += [j.id for j in page.jobs]
        if page.next_cursor is None:
            return ids
        cursor = page.next_cursor


def newest_first(stamped: list[tuple[int, str]]) -> list[str]:
    return [job_id for _, job_id in sorted(stamped, reverse=True)]


def test_ties_within_one_ms_are_listed_by_id_descending(
    store: Store, raw_redis: redis.Redis
) -> None:
    store.submit_many([("t", i) for i in range(40)])
    done = run_all(store)
    assert len(done) == 40
    stamped = entries(raw_redis)
    assert [job_id for _, job_id in stamped] != newest_first(stamped)  # LPUSH order differs
    for limit in (1, 3, 16, 17, 100):
        assert walk(store, "completed", limit) == newest_first(stamped), limit

    # Runs of equal ms longer than a read (16 + 1 elements at limit 1), in LPUSH order.
    ids = [job_id for _, job_id in stamped]
    random.shuffle(ids)
    crafted = [(5000, i) for i in ids[:3]] + [(4000, i) for i in ids[3:38]] + [(3000, ids[38])]
    crafted += [(2000, ids[39])]
    restamp(raw_redis, crafted)
    for limit in (1, 2, 5, 16, 17, 50):
        assert walk(store, "completed", limit) == newest_first(crafted), limit


def test_a_cursor_resumes_inside_a_run_and_across_the_list_and_zset_merge(
    store: Store, raw_redis: redis.Redis
) -> None:
    store.submit_many([("t", i) for i in range(12)])
    done = run_all(store)
    waiting = store.submit_many([("t", i) for i in range(6)])
    cancelled = waiting[:2]
    for job_id in cancelled:
        store.cancel(job_id)
    queued = waiting[2:]
    # Put ZSET entries at the list's ms, so ties cross the two kinds of index.
    ms = [7000, 7000, 7000, 7000, 6000, 6000, 6000, 5000, 5000, 4000, 4000, 4000]
    crafted = list(zip(ms, done, strict=True))
    restamp(raw_redis, crafted)
    zset = [(7000, queued[0]), (6000, queued[1]), (6000, cancelled[0]), (4000, queued[2])]
    zset += [(3000, queued[3]), (9000, cancelled[1])]
    for score, job_id in zset:
        status = "cancelled" if job_id in cancelled else "queued"
        raw_redis.zadd(keys.index(Q, status), {job_id: score})
    everything = newest_first(crafted + zset)
    for limit in (1, 2, 3, 4, 7):
        assert walk(store, None, limit) == everything, limit

    # A cursor at every position resumes exactly after it.
    first = store.list_jobs(limit=len(everything))
    assert [j.id for j in first.jobs] == everything and first.next_cursor is None
    for k in range(1, len(everything)):
        page = store.list_jobs(limit=k)
        assert page.next_cursor is not None
        assert walk(store, None, 5, page.next_cursor) == everything[k:], k


def test_the_tail_is_pruned_as_jobs_expire_a_bounded_number_per_call(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    store = Store(settings.with_overrides(completed_retention_s=1))
    try:
        old = []
        for _ in range(30):  # one complete call each
            old.append(store.submit("t"))
            run_all(store)
        assert [i for _, i in entries(raw_redis)] == old[::-1]
        time.sleep(1.1)
        assert not any(raw_redis.exists(keys.job(i)) for i in old)  # expired
        [fresh] = [store.submit("t")]
        run_all(store)  # pops at most 2 x 1 + 8 old entries from the tail
        left = [i for _, i in entries(raw_redis)]
        assert left == [fresh, *old[::-1][:20]]
        time.sleep(0.002)  # the batch completes in a later ms than `fresh`
        batch = store.submit_many([("t", i) for i in range(10)])
        run_all(store)  # up to 2 x 10 + 8: the 20 old ones go; the live ones stay
        assert {i for _, i in entries(raw_redis)} == {fresh, *batch}
        assert store.list_jobs(status="completed", limit=50).jobs[-1].id == fresh
    finally:
        store.close()


def test_a_cursor_whose_element_was_pruned_is_still_a_position(
    settings: Settings, raw_redis: redis.Redis
) -> None:
    store = Store(settings.with_overrides(completed_retention_s=1))
    try:
        store.submit_many([("t", i) for i in range(20)])
        run_all(store)
        page = store.list_jobs(status="completed", limit=5)
        assert page.next_cursor is not None
        time.sleep(1.1)
        store.submit_many([("t", i) for i in range(20)])
        newer = run_all(store)  # prunes every expired entry: the cursor's too
        assert {i for _, i in entries(raw_redis)} == set(newer)
        after = store.list_jobs(status="completed", limit=50, cursor=page.next_cursor)
        assert after.jobs == [] and after.next_cursor is None  # the new ones come before it

        # The cursor's element gone from the middle of a run of equal ms (as when a
        # bounded prune stops inside a run): the rest of the run still follows it.
        run = sorted(newer)
        restamp(raw_redis, [(1000, i) for i in run])
        cut = store.list_jobs(status="completed", limit=8)  # run[19] .. run[12]
        assert [j.id for j in cut.jobs] == run[12:][::-1]
        raw_redis.lrem(keys.index(Q, "completed"), 1, keys.completed_element(1000, run[12]))
        rest = walk(store, "completed", 3, cut.next_cursor)
        assert rest == run[:12][::-1]
    finally:
        store.close()


def test_the_list_ms_never_decrease_even_if_the_clock_steps_back(
    store: Store, raw_redis: redis.Redis
) -> None:
    store.submit("t")
    run_all(store)
    [(ms, first)] = entries(raw_redis)
    future = ms + 60_000
    restamp(raw_redis, [(future, first)])
    store.submit("t")
    [second] = run_all(store)
    assert entries(raw_redis) == [(future, second), (future, first)]
    assert walk(store, "completed", 1) == sorted([first, second], reverse=True)


def test_elements_are_22_bytes_that_sort_in_listing_order(
    store: Store, raw_redis: redis.Redis
) -> None:
    store.submit_many([("t", i) for i in range(20)])
    run_all(store)
    raw = raw_redis.lrange(keys.index(Q, "completed"), 0, -1)
    assert {len(e) for e in raw} == {22}
    assert raw == [keys.completed_element(*keys.completed_entry(e)) for e in raw]
    crafted = [(ms, job_id) for ms in (1, 255, 256, 2**40 + 7) for _, job_id in entries(raw_redis)]
    packed = [keys.completed_element(ms, job_id) for ms, job_id in crafted]
    assert [keys.completed_entry(e) for e in sorted(packed)] == sorted(crafted)


def test_elements_of_the_older_text_form_are_still_read(
    store: Store, raw_redis: redis.Redis
) -> None:
    store.submit_many([("t", i) for i in range(6)])
    done = sorted(run_all(store))
    key = keys.index(Q, "completed")
    raw_redis.delete(key)
    raw_redis.rpush(key, keys.completed_element(9000, done[0]))
    raw_redis.rpush(key, *(f"{ms}:{i}" for ms, i in [(8000, done[1]), (8000, done[2])]))
    raw_redis.rpush(key, *(f"{ms}:{i}" for ms, i in [(7000, done[3]), (6000, done[4])]))
    raw_redis.rpush(key, keys.completed_element(6000, done[5]))
    want = [done[0], done[2], done[1], done[3], done[5], done[4]]
    for limit in (1, 2, 5):
        assert walk(store, "completed", limit) == want, limit
    store.submit("t")
    [fresh] = run_all(store)  # pushed on top of the text form, ms read from its head
    assert entries(raw_redis)[0][1] == fresh and len(raw_redis.lindex(key, 0)) == 22
    assert walk(store, "completed", 3)[0] == fresh


def test_a_job_id_that_is_not_a_lower_case_uuid_is_refused_before_any_write(
    store: Store, raw_redis: redis.Redis
) -> None:
    job_id = store.submit("t")
    [claimed] = store.claim(Q, "w", 30, 1)
    # On a cluster `job:x` lies in another slot than the queue's keys: the client
    # refuses the call before it reaches Redis (a 503 at the API), so nothing runs.
    refused = (
        (StoreUnavailable, "same key slot")
        if CLUSTER_MODE
        else (redis.ResponseError, "not a lower-case UUID")
    )
    with pytest.raises(refused[0], match=refused[1]):
        store.complete_many(Q, "w", [(job_id, claimed.attempt, "1"), ("x", 1, "1")])
    assert store.get(job_id).status == "processing"
    assert raw_redis.llen(keys.index(Q, "completed")) == 0
