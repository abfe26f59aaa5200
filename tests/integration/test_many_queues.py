"""Many queues: every request's work in Redis stays bounded (issue 12, defect 3).

The listing of every queue is read by several page.lua calls of at most
`KEYS_PER_CALL` indexes each, merged in Python; these tests check that the pages
are those of one call over every index, and that no call reads more indexes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.store import Store, keys, listing

Listed = list[tuple[list[str], str | None]]


def fill(store: Store, redis_client: redis.Redis, queues: int) -> None:
    """`queues` queues with jobs in several statuses, of tasks a and b, with equal
    scores within and across queues (the cursor's tie-break by id matters)."""
    for i in range(queues):
        q = f"q{i:02d}"
        store.submit_many([("a" if j % 3 else "b", j) for j in range(6)], queue=q)
        claimed = store.claim(q, "w", 30, 3)
        store.complete(q, claimed[0].id, "w", claimed[0].attempt, "null")
        store.fail(q, claimed[1].id, "w", claimed[1].attempt, "boom", 60)
        if i % 2:  # every other queue: its queued jobs at one score shared across queues
            queued = keys.index(q, "queued")
            for job_id in redis_client.zrange(queued, 0, -1):
                redis_client.zadd(queued, {job_id: 1_000}, xx=True)


def pages(store: Store, limit: int, **filters: Any) -> Listed:
    """Every page of a listing: (ids, next_cursor) each."""
    out: Listed = []
    cursor = None
    while True:
        page = store.list_jobs(limit=limit, cursor=cursor, **filters)
        out.append(([j.id for j in page.jobs], page.next_cursor))
        cursor = page.next_cursor
        if cursor is None or len(out) > 500:
            return out


@pytest.mark.parametrize("limit", [1, 4, 7, 50])
@pytest.mark.parametrize("status", [None, "queued", "completed"])
def test_the_split_listing_gives_the_pages_of_one_call(
    store: Store,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
    limit: int,
    status: str | None,
) -> None:
    fill(store, redis_client, 12)  # 72 indexes
    monkeypatch.setattr(listing, "KEYS_PER_CALL", 100_000)
    one_call = pages(store, limit, status=status)
    one_call_task = pages(store, limit, status=status, task="a")
    monkeypatch.setattr(listing, "KEYS_PER_CALL", 5)  # 15 calls per page (3 with a status)
    assert pages(store, limit, status=status) == one_call
    split_task = pages(store, limit, status=status, task="a")
    # With a task filter the last page may differ: one call cannot tell that the
    # entries after its last job are all of other tasks, so it may end with an
    # empty page; the jobs, in order, and every other page are the same.
    flat = [i for ids, _ in split_task for i in ids]
    assert flat == [i for ids, _ in one_call_task for i in ids]
    assert split_task[:-1] == one_call_task[: len(split_task) - 1]
    listed = {i for ids, _ in one_call for i in ids}
    assert len(listed) == {None: 72, "queued": 48, "completed": 12}[status]


def test_a_page_resumes_from_any_cursor_alike(
    store: Store, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    fill(store, redis_client, 10)
    monkeypatch.setattr(listing, "KEYS_PER_CALL", 100_000)
    cursors = [c for _, c in pages(store, 3) if c is not None]
    expected = [store.list_jobs(limit=5, cursor=c, task="b") for c in cursors]
    monkeypatch.setattr(listing, "KEYS_PER_CALL", 7)
    got = [store.list_jobs(limit=5, cursor=c, task="b") for c in cursors]
    assert len(cursors) == 19  # 60 jobs, 3 a page
    for mine, theirs in zip(got, expected, strict=True):
        assert mine.jobs == theirs.jobs
        if mine.next_cursor != theirs.next_cursor:
            # Only at the end (see above): one call's cursor then leads to nothing.
            assert mine.next_cursor is None and theirs.next_cursor is not None
            rest = store.list_jobs(limit=5, cursor=theirs.next_cursor, task="b")
            assert rest.jobs == [] and rest.next_cursor is None


def test_a_task_filter_over_many_calls_keeps_its_budget_and_moves_on(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(8):
        store.submit_many([("noise", j) for j in range(60)], queue=f"n{i}")
    store.submit("needle", queue="n0")
    monkeypatch.setattr(listing, "KEYS_PER_CALL", 6)  # 8 calls share the budget
    monkeypatch.setattr(listing, "TASK_SCAN_BUDGET", 80)
    monkeypatch.setattr(listing, "MIN_CALL_BUDGET", 4)
    found, cursor, requests = [], None, 0
    while True:
        page = store.list_jobs(task="noise", limit=500, cursor=cursor)
        requests += 1
        assert len(page.jobs) <= 8 * 10  # each of 8 calls examined at most 80 / 8
        found += [j.id for j in page.jobs]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert len(found) == len(set(found)) == 480 and requests > 1


@pytest.fixture
def slowlog(redis_client: redis.Redis) -> Iterator[redis.Redis]:
    """The SLOWLOG records every command while the test runs."""
    before = redis_client.config_get("slowlog-log-slower-than")["slowlog-log-slower-than"]
    redis_client.config_set("slowlog-max-len", 100_000)
    redis_client.config_set("slowlog-log-slower-than", 0)
    redis_client.slowlog_reset()
    yield redis_client
    redis_client.config_set("slowlog-log-slower-than", before)
    redis_client.slowlog_reset()


def page_calls(r: redis.Redis) -> list[int]:
    """The number of keys of every page.lua FCALL in the SLOWLOG."""
    out = []
    for entry in r.slowlog_get(100_000):
        command = entry["command"]  # bytes, whatever the client decodes
        words = (command.decode() if isinstance(command, bytes) else command).split()
        if words[:1] == ["FCALL"] and words[1].endswith("_page"):
            out.append(int(words[2]))
    return out


def test_no_page_call_reads_more_than_the_bound_of_indexes(
    client: FlaskClient, store: Store, redis_client: redis.Redis, slowlog: redis.Redis
) -> None:
    for i in range(40):  # 240 status indexes
        store.submit("t", queue=f"q{i}")
    slowlog.slowlog_reset()
    for path in ["/jobs", "/jobs?task=t", "/jobs?status=queued", "/dead-letter"]:
        r = client.get(path)
        assert r.status_code == 200, r.get_json()
        if path != "/dead-letter":
            assert len(r.get_json()["jobs"]) == 40
    calls = page_calls(slowlog)
    assert len(calls) >= 4 + 4 + 1 + 1
    assert max(calls) <= listing.KEYS_PER_CALL == 64
