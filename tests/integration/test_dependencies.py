"""Job dependencies (depends_on) against a real Redis: issue 17, docs/workflows.md."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.errors import UnknownParent
from jobsys.settings import Settings
from jobsys.store import ORIGIN_EVENT_ID, Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def drain(settings: Settings, store: Store, **overrides: Any) -> Worker:
    worker = Worker(settings.with_overrides(retry_backoff_s=0, **overrides), store)
    while worker.run_once():
        pass
    return worker


def sub(task: str, payload: Any = None, *parents: str, **kw: Any) -> Submission:
    return Submission(task, payload, depends_on=tuple(parents), **kw)


def executions(r: redis.Redis) -> list[str]:
    return [e.split(":")[0] for e in r.lrange("test:executions", 0, -1)]


def test_a_diamond_runs_d_after_b_and_c_with_both_results(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    (a,) = store.submit_jobs([Submission("parents", "A")]).ids
    b, c = store.submit_jobs([sub("parents", "B", a), sub("parents", "C", a)]).ids
    done = store.submit_jobs([sub("parents", "D", b, c)])
    (d,) = done.ids
    assert done.statuses == ["waiting"]
    view = store.get(d).to_api()
    assert view["status"] == "waiting" and view["depends_on"] == [b, c]
    assert view["waiting_on"] == 2
    # waiting jobs are in no ready set: only A can be claimed
    assert redis_client.zrange(keys.ready("default"), 0, -1) == [a]
    assert set(redis_client.zrange(keys.index("default", "waiting"), 0, -1)) == {b, c, d}

    drain(settings, store)

    order = executions(redis_client)
    assert order[0] == "A" and order[-1] == "D" and sorted(order[1:3]) == ["B", "C"]
    result = store.get(d).to_api()["result"]
    assert result["parents"] == {
        b: {"me": "B", "parents": {a: {"me": "A", "parents": {}}}},
        c: {"me": "C", "parents": {a: {"me": "A", "parents": {}}}},
    }
    assert redis_client.zcard(keys.index("default", "waiting")) == 0
    assert not redis_client.exists(keys.children(a), keys.children(b), keys.children(c))


def test_b_failing_for_good_cancels_d_with_the_reason_and_d_never_runs(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    (a,) = store.submit_jobs([Submission("parents", "A")]).ids
    b, c = store.submit_jobs([sub("boom", "B", a, max_retries=1), sub("parents", "C", a)]).ids
    (d,) = store.submit_jobs([sub("parents", "D", b, c)]).ids
    (e,) = store.submit_jobs([sub("parents", "E", d)]).ids  # a grandchild

    drain(settings, store)

    assert store.get(b).status == "failed"
    job = store.get(d).to_api()
    assert job["status"] == "cancelled"
    assert job["error"] == f"dependency {b} ended failed"
    assert job["attempts"] == 0
    grandchild = store.get(e).to_api()
    assert grandchild["status"] == "cancelled"
    assert grandchild["error"] == f"dependency {d} ended cancelled"
    assert "D" not in executions(redis_client) and "E" not in executions(redis_client)
    assert d in redis_client.zrange(keys.index("default", "cancelled"), 0, -1)
    assert redis_client.zcard(keys.index("default", "waiting")) == 0


def test_run_anyway_runs_the_child_with_none_for_the_failed_parent(
    settings: Settings, store: Store
) -> None:
    (a,) = store.submit_jobs([Submission("boom", "A", max_retries=0)]).ids
    (b,) = store.submit_jobs([Submission("parents", "B")]).ids
    (c,) = store.submit_jobs([sub("parents", "C", a, b, on_parent_failure="run")]).ids
    drain(settings, store)
    job = store.get(c).to_api()
    assert job["status"] == "completed"
    assert job["result"]["parents"] == {a: None, b: {"me": "B", "parents": {}}}


def test_a_parent_that_already_ended_counts_at_submit(settings: Settings, store: Store) -> None:
    (ok,) = store.submit_jobs([Submission("echo", 1)]).ids
    (bad,) = store.submit_jobs([Submission("boom", 2, max_retries=0)]).ids
    drain(settings, store)
    done = store.submit_jobs([sub("echo", 3, ok), sub("echo", 4, bad), sub("echo", 5, ok, bad)])
    assert done.statuses == ["queued", "cancelled", "cancelled"]
    assert store.get(done.ids[1]).to_api()["error"] == f"dependency {bad} ended failed"


def test_cancelling_a_parent_cancels_its_waiting_children(store: Store) -> None:
    (a,) = store.submit_jobs([Submission("echo", 1)]).ids
    (b,) = store.submit_jobs([sub("echo", 2, a)]).ids
    store.cancel(a)
    job = store.get(b).to_api()
    assert job["status"] == "cancelled" and job["error"] == f"dependency {a} ended cancelled"


def test_a_waiting_job_can_be_cancelled_and_its_parent_then_ends_normally(
    settings: Settings, store: Store
) -> None:
    (a,) = store.submit_jobs([Submission("echo", 1)]).ids
    (b,) = store.submit_jobs([sub("echo", 2, a)]).ids
    assert store.cancel(b).status == "cancelled"
    drain(settings, store)
    assert store.get(a).status == "completed"
    assert store.get(b).status == "cancelled"


def test_an_unknown_parent_is_refused_and_nothing_is_written(
    store: Store, redis_client: redis.Redis
) -> None:
    (a,) = store.submit_jobs([Submission("echo", 1)]).ids
    before = set(redis_client.keys("*"))
    missing = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(UnknownParent):
        store.submit_jobs([sub("echo", 2, a), sub("echo", 3, missing)])
    assert set(redis_client.keys("*")) == before


def test_submit_over_http(client: FlaskClient, redis_client: redis.Redis) -> None:
    a = client.post("/submit", json={"task": "echo"}).get_json()["id"]
    r = client.post("/submit", json={"task": "echo", "depends_on": [a.upper()]})
    assert r.status_code == 202 and r.get_json()["status"] == "waiting"
    job = client.get(f"/jobs/{r.get_json()['id']}").get_json()
    assert job["depends_on"] == [a] and job["status"] == "waiting"
    listed = client.get("/jobs?status=waiting").get_json()
    assert [j["id"] for j in listed["jobs"]] == [r.get_json()["id"]]
    batch = client.post("/submit/batch", json={"jobs": [{"task": "x", "depends_on": [a]}]})
    assert batch.status_code == 202 and batch.get_json()["statuses"] == ["waiting"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"task": "x", "depends_on": ["00000000-0000-4000-8000-000000000000"]}, "depends_on"),
        ({"task": "x", "depends_on": ["nope"]}, "depends_on.0"),
        ({"task": "x", "depends_on": []}, "depends_on"),
        ({"task": "x", "depends_on": ["00000000-0000-4000-8000-000000000000"],
          "on_parent_failure": "maybe"}, "on_parent_failure"),
    ],
)  # fmt: skip
def test_bad_depends_on_is_a_400_naming_the_field(
    client: FlaskClient, redis_client: redis.Redis, body: dict[str, Any], field: str
) -> None:
    before = redis_client.dbsize()
    r = client.post("/submit", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field
    assert redis_client.dbsize() == before


def test_ten_thousand_children_of_a_hundred_parents_all_run_after_their_parent(
    store: Store, redis_client: redis.Redis
) -> None:
    parents = store.submit_jobs([Submission("p", i) for i in range(100)]).ids
    children: list[str] = []
    for chunk in range(10):  # 10 submits of 1,000 dependents
        subs = [sub("c", i, parents[i % 100]) for i in range(chunk * 1000, (chunk + 1) * 1000)]
        done = store.submit_jobs(subs)
        assert set(done.statuses) == {"waiting"}
        children += done.ids
    assert redis_client.zcard(keys.ready("default")) == 100
    # Workers claim and complete in batches of 200, without handlers: a child is
    # claimable only once its parent's completion released it.
    completed_at: dict[str, int] = {}
    started = 0
    while batch := store.claim("default", "w", 30, 200):
        for job in batch:
            parent = redis_client.hget(keys.job(job.id), "depends_on")
            if parent is not None:
                assert parent in completed_at, "a child ran before its parent completed"
                assert job.claimed_ms >= completed_at[parent]
            started += 1
        store.complete_many("default", "w", [(j.id, j.attempt, "null") for j in batch])
        for j in batch:
            completed_at[j.id] = int(redis_client.hget(keys.job(j.id), "completed_at") or 0)
    assert started == 10_100
    assert all(store.get(c).status == "completed" for c in children[::97])
    assert redis_client.zcard(keys.index("default", "waiting")) == 0
    assert not any(redis_client.exists(keys.children(p)) for p in parents)


def test_each_dependency_change_is_an_event_of_the_jobs_queue(
    settings: Settings, store: Store
) -> None:
    # Events (docs/events.md) are written by the scripts that release or cancel a
    # waiting job too, into the stream of that job's own queue.
    (a,) = store.submit_jobs([Submission("parents", "A")]).ids
    (b,) = store.submit_jobs([sub("parents", "B", a)], queue="children").ids
    (c,) = store.submit_jobs([sub("fail", None, a, max_retries=0)], queue="children").ids
    (d,) = store.submit_jobs([sub("parents", "D", c)], queue="children").ids
    drain(settings, store, worker_queues=(("default", 0), ("children", 0)))

    def seen(job_id: str) -> list[str]:
        read = store.events.read({"children": ORIGIN_EVENT_ID}, 0)
        return [e.type for e in read if e.job_id == job_id]

    assert seen(b) == ["waiting", "queued", "started", "completed"]
    assert seen(c)[:2] == ["waiting", "queued"] and "dead_lettered" in seen(c)
    assert seen(d) == ["waiting", "cancelled"]
    assert store.get(d).status == "cancelled"


def test_a_parent_in_another_queue_releases_its_child_into_the_childs_queue(
    store: Store, redis_client: redis.Redis
) -> None:
    (a,) = store.submit_jobs([Submission("echo", 1)], queue="first").ids
    (b,) = store.submit_jobs([sub("echo", 2, a)], queue="second").ids
    assert store.drop_queue("second") == "not_empty"  # b waits in it
    (job,) = store.claim("first", "w", 30, 1)
    store.complete("first", job.id, "w", job.attempt, "1")
    assert redis_client.zrange(keys.ready("second"), 0, -1) == [b]
    assert redis_client.zrange(keys.index("second", "queued"), 0, -1) == [b]
    assert redis_client.zcard(keys.index("second", "waiting")) == 0
    assert store.get(b).status == "queued"


def test_a_parent_retried_from_the_dead_letter_does_not_bring_its_children_back(
    settings: Settings, store: Store
) -> None:
    (a,) = store.submit_jobs([Submission("boom", 1, max_retries=0)]).ids
    (b,) = store.submit_jobs([sub("echo", 2, a)]).ids
    drain(settings, store)
    assert store.get(b).status == "cancelled"
    store.retry_dead([a])
    drain(settings, store)
    assert store.get(b).status == "cancelled"


def test_depends_on_with_an_idempotency_key_is_queued_once(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    a = client.post("/submit", json={"task": "echo"}).get_json()["id"]
    body = {"task": "echo", "depends_on": [a]}
    first = client.post("/submit", json=body, headers={"Idempotency-Key": "k"})
    assert first.status_code == 202 and first.get_json()["status"] == "waiting"
    keys_before = set(redis_client.keys("*"))
    again = client.post("/submit", json=body, headers={"Idempotency-Key": "k"})
    assert again.status_code == 200
    assert again.get_json() == first.get_json() | {"replayed": True}
    assert set(redis_client.keys("*")) == keys_before
    batch = {"jobs": [body, {"task": "x", "depends_on": [a]}]}
    r = client.post("/submit/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert r.status_code == 202 and r.get_json()["statuses"] == ["waiting", "waiting"]
    r2 = client.post("/submit/batch", json=batch, headers={"Idempotency-Key": "b"})
    assert r2.status_code == 200 and r2.get_json()["ids"] == r.get_json()["ids"]
    other = client.post("/submit", json={**body, "task": "y"}, headers={"Idempotency-Key": "k"})
    assert other.status_code == 409
    assert redis_client.zcard(keys.index("default", "waiting")) == 3


def test_a_child_with_a_timeout_reads_its_parents_results_in_its_process(
    settings: Settings, store: Store
) -> None:
    (a,) = store.submit_jobs([Submission("parents", "A")]).ids
    (b,) = store.submit_jobs([sub("parents", "B", a, timeout_s=30)]).ids
    drain(settings, store, tasks_module="sample_tasks")
    job = store.get(b).to_api()
    assert job["status"] == "completed", job
    assert job["result"]["parents"] == {a: {"me": "A", "parents": {}}}
