"""The completed index is a LIST of "<ms>:<id>", newest first: the listing reads it
in the same total order as the ZSET indexes (ms, then id, descending), resumes
exactly after any cursor, and complete.lua prunes its tail as the jobs expire."""

from __future__ import annotations

import random
import time

import redis

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
    """(ms, id) of the completed LIST, head (newest) first."""
    return [keys.completed_entry(e) for e in client.lrange(keys.index(queue, "completed"), 0, -1)]


def restamp(client: redis.Redis, stamped: list[tuple[int, str]], queue: str = Q) -> None:
    """Rewrite the completed LIST as `stamped` [(ms, id)], in that order from the head
    (the ms must not increase along it, as complete.lua guarantees)."""
    key = keys.index(queue, "completed")
    client.delete(key)
    client.rpush(key, *(f"{ms}:{job_id}" for ms, job_id in stamped))


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
    store: Store, redis_client: redis.Redis
) -> None:
    store.submit_many([("t", i) for i in range(40)])
    done = run_all(store)
    assert len(done) == 40
    stamped = entries(redis_client)
    assert [job_id for _, job_id in stamped] != newest_first(stamped)  # LPUSH order differs
    for limit in (1, 3, 16, 17, 100):
        assert walk(store, "completed", limit) == newest_first(stamped), limit

    # Runs of equal ms longer than a read (16 + 1 elements at limit 1), in LPUSH order.
    ids = [job_id for _, job_id in stamped]
    random.shuffle(ids)
    crafted = [(5000, i) for i in ids[:3]] + [(4000, i) for i in ids[3:38]] + [(3000, ids[38])]
    crafted += [(2000, ids[39])]
    restamp(redis_client, crafted)
    for limit in (1, 2, 5, 16, 17, 50):
        assert walk(store, "completed", limit) == newest_first(crafted), limit


def test_a_cursor_resumes_inside_a_run_and_across_the_list_and_zset_merge(
    store: Store, redis_client: redis.Redis
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
    restamp(redis_client, crafted)
    zset = [(7000, queued[0]), (6000, queued[1]), (6000, cancelled[0]), (4000, queued[2])]
    zset += [(3000, queued[3]), (9000, cancelled[1])]
    for score, job_id in zset:
        status = "cancelled" if job_id in cancelled else "queued"
        redis_client.zadd(keys.index(Q, status), {job_id: score})
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
    settings: Settings, redis_client: redis.Redis
) -> None:
    store = Store(settings.with_overrides(completed_retention_s=1))
    try:
        old = []
        for _ in range(30):  # one complete call each
            old.append(store.submit("t"))
            run_all(store)
        assert [i for _, i in entries(redis_client)] == old[::-1]
        time.sleep(1.1)
        assert not any(redis_client.exists(keys.job(i)) for i in old)  # expired
        [fresh] = [store.submit("t")]
        run_all(store)  # pops at most 2 x 1 + 8 old entries from the tail
        left = [i for _, i in entries(redis_client)]
        assert left == [fresh, *old[::-1][:20]]
        time.sleep(0.002)  # the batch completes in a later ms than `fresh`
        batch = store.submit_many([("t", i) for i in range(10)])
        run_all(store)  # up to 2 x 10 + 8: the 20 old ones go; the live ones stay
        assert {i for _, i in entries(redis_client)} == {fresh, *batch}
        assert store.list_jobs(status="completed", limit=50).jobs[-1].id == fresh
    finally:
        store.close()


def test_a_cursor_whose_element_was_pruned_is_still_a_position(
    settings: Settings, redis_client: redis.Redis
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
        assert {i for _, i in entries(redis_client)} == set(newer)
        after = store.list_jobs(status="completed", limit=50, cursor=page.next_cursor)
        assert after.jobs == [] and after.next_cursor is None  # the new ones come before it

        # The cursor's element gone from the middle of a run of equal ms (as when a
        # bounded prune stops inside a run): the rest of the run still follows it.
        run = sorted(newer)
        restamp(redis_client, [(1000, i) for i in run])
        cut = store.list_jobs(status="completed", limit=8)  # run[19] .. run[12]
        assert [j.id for j in cut.jobs] == run[12:][::-1]
        redis_client.lrem(keys.index(Q, "completed"), 1, f"1000:{run[12]}")
        rest = walk(store, "completed", 3, cut.next_cursor)
        assert rest == run[:12][::-1]
    finally:
        store.close()


def test_the_list_ms_never_decrease_even_if_the_clock_steps_back(
    store: Store, redis_client: redis.Redis
) -> None:
    store.submit("t")
    run_all(store)
    [(ms, first)] = entries(redis_client)
    future = ms + 60_000
    restamp(redis_client, [(future, first)])
    store.submit("t")
    [second] = run_all(store)
    assert entries(redis_client) == [(future, second), (future, first)]
    assert walk(store, "completed", 1) == sorted([first, second], reverse=True)
