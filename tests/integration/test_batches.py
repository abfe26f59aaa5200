"""Batches with completion callbacks against a real Redis: issue 17, docs/workflows.md."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def drain(settings: Settings, store: Store) -> None:
    worker = Worker(settings.with_overrides(retry_backoff_s=0, worker_prefetch=100), store)
    while worker.run_once():
        pass


def callbacks(r: redis.Redis) -> list[Any]:
    return [json.loads(x) for x in r.lrange("test:callbacks", 0, -1)]


def make_batch(store: Store, failing: int, n: int = 1000) -> tuple[str, dict[str, str]]:
    jobs = [
        Submission("boom", i, max_retries=0) if i < failing else Submission("echo", i)
        for i in range(n)
    ]
    batch_id, done, cbs = store.create_batch(
        jobs,
        on_complete=Submission("callback", {"role": "complete"}),
        on_success=Submission("callback", {"role": "success"}),
    )
    assert done.statuses == ["queued"] * n
    return batch_id, cbs


def test_a_batch_of_1000_with_3_failing_runs_on_complete_once_and_never_on_success(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    batch_id, cbs = make_batch(store, failing=3)
    assert store.get(cbs["on_complete"]).status == "waiting"
    drain(settings, store)

    counts = {"id": batch_id, "total": 1000, "completed": 997, "failed": 3, "cancelled": 0}
    assert callbacks(redis_client) == [{"batch": counts, "payload": {"role": "complete"}}]
    assert store.get(cbs["on_complete"]).status == "completed"
    success = store.get(cbs["on_success"]).to_api()
    assert success["status"] == "cancelled" and success["attempts"] == 0
    assert success["error"] == f"batch {batch_id} did not succeed: 3 failed, 0 cancelled"
    info = store.batch(batch_id)
    assert (info.total, info.pending, info.completed, info.failed, info.cancelled) == (
        1000, 0, 997, 3, 0,
    )  # fmt: skip
    assert info.finished_at is not None
    # A dead job retried from the dead letter neither counts again nor re-runs a callback.
    store.retry_dead(queue="default")
    drain(settings, store)
    assert len(callbacks(redis_client)) == 1
    assert store.batch(batch_id).failed == 3


def test_a_batch_with_none_failing_runs_both_callbacks_once(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    batch_id, cbs = make_batch(store, failing=0)
    drain(settings, store)
    counts = {"id": batch_id, "total": 1000, "completed": 1000, "failed": 0, "cancelled": 0}
    got = sorted(callbacks(redis_client), key=lambda c: c["payload"]["role"])
    assert got == [
        {"batch": counts, "payload": {"role": "complete"}},
        {"batch": counts, "payload": {"role": "success"}},
    ]
    assert store.get(cbs["on_success"]).status == "completed"


def test_cancelling_a_batch_cancels_its_waiting_jobs_and_runs_no_on_success(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    (gate,) = store.submit_jobs([Submission("echo", "gate")]).ids
    jobs = [Submission("echo", i, depends_on=(gate,)) for i in range(10)]
    batch_id, done, cbs = store.create_batch(
        jobs,
        on_complete=Submission("callback", "complete"),
        on_success=Submission("callback", "success"),
    )
    assert done.statuses == ["waiting"] * 10
    info = store.cancel_batch(batch_id)
    assert (info.pending, info.cancelled, info.finished_at is not None) == (0, 10, True)
    assert info.cancelled_at is not None
    assert all(store.get(i).status == "cancelled" for i in done.ids)
    drain(settings, store)  # the gate, then on_complete
    assert [c["payload"] for c in callbacks(redis_client)] == ["complete"]
    assert callbacks(redis_client)[0]["batch"]["cancelled"] == 10
    assert store.get(cbs["on_success"]).status == "cancelled"
    assert redis_client.zcard(keys.index("default", "waiting")) == 0


def test_cancelling_a_running_batch_asks_its_running_jobs_and_still_skips_on_success(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    batch_id, _, cbs = store.create_batch(
        [Submission("echo", i) for i in range(3)], on_success=Submission("callback", "success")
    )
    (claimed,) = store.claim("default", "w", 30, 1)
    info = store.cancel_batch(batch_id)
    assert (info.pending, info.cancelled) == (1, 2)
    store.complete("default", claimed.id, "w", claimed.attempt, "1")  # ends `cancelled`
    assert store.get(claimed.id).status == "cancelled"
    assert store.batch(batch_id).finished_at is not None
    assert store.get(cbs["on_success"]).status == "cancelled"


def test_batches_over_http(client: FlaskClient, redis_client: redis.Redis) -> None:
    r = client.post(
        "/batches",
        json={
            "queue": "imgs",
            "jobs": [{"task": "echo", "payload": i} for i in range(3)],
            "on_complete": {"task": "callback"},
        },
    )
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    assert body["count"] == 3 and body["statuses"] == ["queued"] * 3
    assert "on_success" not in body
    assert r.headers["Location"] == f"/batches/{body['id']}"
    view = client.get(f"/batches/{body['id'].upper()}").get_json()
    assert view == {
        "id": body["id"], "queue": "imgs", "status": "running", "total": 3, "pending": 3,
        "completed": 0, "failed": 0, "cancelled": 0, "created_at": view["created_at"],
        "on_complete": body["on_complete"],
    }  # fmt: skip
    assert client.get(f"/jobs/{body['ids'][0]}").get_json()["batch"] == body["id"]
    cancelled = client.post(f"/batches/{body['id']}/cancel", json={}).get_json()
    assert cancelled["status"] == "finished" and cancelled["cancelled"] == 3
    again = client.post(f"/batches/{body['id']}/cancel", json={}).get_json()
    assert again == cancelled  # a finished batch is answered unchanged
    assert client.get(f"/jobs/{body['on_complete']}").get_json()["status"] == "queued"
    assert client.get("/batches/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/batches/nope").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"jobs": []}, "jobs"),
        ({"jobs": [{"task": "a"}], "on_complete": {"payload": 1}}, "on_complete.task"),
        ({"jobs": [{"task": "a"}], "on_success": {"task": "b", "depends_on": [
            "00000000-0000-4000-8000-000000000000"]}}, "on_success.depends_on"),
        ({"jobs": [{"task": "a", "depends_on": ["00000000-0000-4000-8000-000000000000"]}]},
         "depends_on"),
        ({"jobs": [{"task": "a"}], "on_failure": {"task": "b"}}, "on_failure"),
        # not written by enqueue_graph.lua: refused, not dropped
        ({"jobs": [{"task": "a", "concurrency_key": "k"}]}, "jobs.0.concurrency_key"),
        ({"jobs": [{"task": "a"}], "on_complete": {"task": "b", "concurrency_key": "k"}},
         "on_complete.concurrency_key"),
    ],
)  # fmt: skip
def test_a_bad_batch_is_a_400_naming_the_field_and_writes_nothing(
    client: FlaskClient, redis_client: redis.Redis, body: dict[str, Any], field: str
) -> None:
    r = client.post("/batches", json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field
    assert redis_client.dbsize() == 0
