"""GET /jobs and the dead-letter endpoints through the Flask app, on a real Redis."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.store import Store, keys
from jobsys.store.listing import TASK_SCAN_BUDGET, encode_cursor


def all_pages(client: FlaskClient, path: str, limit: int) -> tuple[list[dict[str, Any]], int]:
    """Every job of a listing, following next_cursor; and the number of pages."""
    jobs: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        r = client.get(url)
        assert r.status_code == 200, r.get_json()
        body = r.get_json()
        jobs += body["jobs"]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return jobs, pages


def kill(store: Store, queue: str = "default", n: int = 1000) -> list[str]:
    """Claim and fail every attempt of up to `n` jobs of `queue`; the ids that died."""
    dead = []
    while len(dead) < n:
        claimed = store.claim(queue, "w", 30, 100)
        if not claimed:
            break
        out = store.fail_many(queue, "w", [(c.id, c.attempt, f"boom {c.id}", 0) for c in claimed])
        dead += [c.id for c, o in zip(claimed, out, strict=True) if o == "dead"]
    return dead


def test_jobs_are_listed_newest_first_across_pages_with_ties(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    batch = store.submit_many([("t", i) for i in range(25)])  # one ms: 25 equal scores
    time.sleep(0.002)
    singles = [store.submit("t", i, queue="other") for i in range(5)]
    jobs, pages = all_pages(client, "/jobs", 4)
    ids = [j["id"] for j in jobs]
    assert pages == 8 and len(ids) == 30 and set(ids) == set(batch + singles)

    def position(job_id: str) -> tuple[float, str]:
        q = "other" if job_id in singles else "default"
        return (redis_client.zscore(keys.index(q, "queued"), job_id) or 0, job_id)

    assert ids == sorted(ids, key=position, reverse=True)
    assert ids[:5] == sorted(singles, key=position, reverse=True)
    assert all(j["status"] == "queued" and "queue" in j for j in jobs)


def test_a_cursor_stays_valid_when_its_job_moves_on(client: FlaskClient, store: Store) -> None:
    ids = store.submit_many([("t", i) for i in range(10)])
    first = client.get("/jobs?limit=3").get_json()
    seen = [j["id"] for j in first["jobs"]]
    [claimed] = store.claim("default", "w", 30, 1)  # oldest rank: not on the first page
    store.cancel(seen[-1])  # the cursor's own job leaves the queued index
    rest = client.get(f"/jobs?status=queued&limit=50&cursor={first['next_cursor']}").get_json()
    later = [j["id"] for j in rest["jobs"]]
    assert not set(later) & set(seen)
    assert set(seen) | set(later) | {claimed.id} == set(ids)


def test_filters_by_status_queue_and_task(client: FlaskClient, store: Store) -> None:
    # Apart by more than a millisecond each: equal scores would be ordered by id.
    a = store.submit("alpha", queue="q1")
    time.sleep(0.002)
    b = store.submit("beta", queue="q2")
    time.sleep(0.002)
    c = store.submit("alpha", queue="q2", delay_s=60)
    time.sleep(0.002)
    [running] = store.claim("q1", "w", 30, 1)
    assert running.id == a

    def ids(query: str) -> list[str]:
        r = client.get(f"/jobs?{query}")
        assert r.status_code == 200, r.get_json()
        return [j["id"] for j in r.get_json()["jobs"]]

    assert ids("status=processing") == [a]
    assert ids("status=scheduled") == [c]
    assert ids("queue=q2") == [c, b]
    assert ids("task=alpha") == [a, c]  # a's claim is the latest change
    assert ids("task=alpha&queue=q2&status=scheduled") == [c]
    assert ids("queue=nowhere") == []


def test_the_task_filter_walks_a_bounded_budget_and_gives_a_cursor(
    client: FlaskClient, store: Store
) -> None:
    wanted = store.submit("needle")
    time.sleep(0.002)
    store.submit_many([("hay", None)] * (TASK_SCAN_BUDGET + 10))
    first = client.get("/jobs?task=needle").get_json()
    assert first["jobs"] == [] and first["next_cursor"] is not None
    second = client.get(f"/jobs?task=needle&cursor={first['next_cursor']}").get_json()
    assert [j["id"] for j in second["jobs"]] == [wanted]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=done", "status"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("limit=ten", "limit"),
        ("limit=", "limit"),
        ("cursor=abc", "cursor"),
        ("cursor=" + "!" * 32, "cursor"),
        ("queue=a%20b", "queue"),
        ("task=", "task"),
        ("task=" + "x" * 201, "task"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(
    client: FlaskClient, query: str, field: str
) -> None:
    for path in ("/jobs", "/dead-letter"):
        if field == "status" and path == "/dead-letter":
            continue
        r = client.get(f"{path}?{query}")
        assert r.status_code == 400, (path, query)
        assert r.get_json()["field"] == field


def test_a_well_formed_cursor_from_elsewhere_is_just_a_position(client: FlaskClient) -> None:
    cursor = encode_cursor(0, "00000000-0000-4000-8000-000000000000")
    r = client.get(f"/jobs?cursor={cursor}")
    assert r.status_code == 200 and r.get_json() == {"jobs": [], "next_cursor": None}


def test_the_dead_letter_lists_errors_and_history(client: FlaskClient, store: Store) -> None:
    store.submit_many([("t", i) for i in range(3)], queue="q")
    store.submit("t", max_retries=0)
    dead = kill(store, "q") + kill(store)
    body = client.get("/dead-letter?queue=q").get_json()
    assert body["total"] == 3 and len(body["jobs"]) == 3
    assert {j["id"] for j in body["jobs"]} == set(dead[:3])
    assert client.get("/dead-letter").get_json()["total"] == 4
    job = body["jobs"][0]
    assert job["status"] == "failed" and job["error"].startswith("boom")
    assert job["attempts"] == job["max_retries"] + 1
    assert [h["attempt"] for h in job["history"]] == list(range(1, job["attempts"] + 1))
    assert job["history"][0]["worker"] == "w"
    stats = {q["name"]: q for q in client.get("/queues").get_json()["queues"]}
    assert stats["q"]["dead"] == 3 and stats["default"]["dead"] == 1


def test_retry_by_ids_queues_the_jobs_again_after_those_waiting(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    [a, b] = store.submit_many([("t", 1), ("t", 2)], queue="q")
    dead = kill(store, "q")
    assert sorted(dead) == sorted([a, b])
    history = client.get(f"/jobs/{a}").get_json()["history"]
    waiting = store.submit("t", queue="q")
    unknown = "00000000-0000-4000-8000-000000000000"
    r = client.post("/dead-letter/retry", json={"ids": [a.upper(), unknown]})
    assert r.status_code == 200
    assert r.get_json() == {"retried": 1, "ids": [a], "skipped": 1}
    job = client.get(f"/jobs/{a}").get_json()
    assert job["status"] == "queued" and job["attempts"] == 0 and job["replayed"] == 1
    assert "replayed_at" in job and "failed_at" not in job and job["history"] == history
    assert redis_client.ttl(keys.job(a)) == -1
    assert a not in redis_client.lrange(keys.dead_letter(), 0, -1)
    assert [c.id for c in store.claim("q", "w", 30, 1)] == [waiting]  # a comes after
    assert [c.id for c in store.claim("q", "w", 30, 1)] == [a]
    assert client.get("/dead-letter?queue=q").get_json()["total"] == 1


def test_retry_all_goes_in_chunks(client: FlaskClient, store: Store) -> None:
    n = 1234  # more than two chunks of 500
    store.submit_many([("t", None)] * n, queue="big")
    store.submit("other", max_retries=0)
    kill(store, "big", n)
    kill(store)
    assert client.get("/dead-letter").get_json()["total"] == n + 1
    r = client.post("/dead-letter/retry", json={"queue": "big"})
    assert r.get_json()["retried"] == n and len(r.get_json()["ids"]) == 1000
    assert client.get("/dead-letter").get_json()["total"] == 1
    stats = {q["name"]: q for q in client.get("/queues").get_json()["queues"]}
    assert stats["big"]["depth"] == n and stats["big"]["dead"] == 0
    r = client.post("/dead-letter/retry", json={"all": True})
    assert r.get_json()["retried"] == 1


def test_purge_by_task_and_all(
    client: FlaskClient, store: Store, redis_client: redis.Redis
) -> None:
    store.submit_many([("keep", 1), ("drop", 2), ("drop", 3)], queue="q")
    kill(store, "q")
    r = client.post("/dead-letter/purge", json={"task": "drop"})
    assert r.status_code == 200 and r.get_json() == {"purged": 2, "skipped": 0}
    [left] = client.get("/dead-letter").get_json()["jobs"]
    assert left["task"] == "keep"
    assert redis_client.llen(keys.dead_letter()) == 1
    assert client.post("/dead-letter/purge", json={"all": True}).get_json()["purged"] == 1
    assert not redis_client.keys("job:*")
    assert redis_client.llen(keys.dead_letter()) == 0


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ([], "body"),
        ({"ids": []}, "ids"),
        ({"ids": ["nope"]}, "ids.0"),
        ({"ids": ["00000000-0000-4000-8000-000000000000"], "all": True}, "ids"),
        ({"all": False}, "all"),
        ({"all": True, "task": "t"}, "all"),
        ({"task": ""}, "task"),
        ({"queue": "a b"}, "queue"),
        ({"task": 3}, "task"),
        ({"every": True}, "every"),
    ],
)
def test_a_selection_that_selects_nothing_is_400(
    client: FlaskClient, body: Any, field: str
) -> None:
    for path in ("/dead-letter/retry", "/dead-letter/purge"):
        r = client.post(path, json=body)
        assert r.status_code == 400, (path, body)
        assert r.get_json()["field"] == field
