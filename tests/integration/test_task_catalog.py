"""The task catalog: @task defaults, GET /tasks, typed payloads, UNKNOWN_TASKS."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from apps import close_app
from flask import Flask
from flask.testing import FlaskClient

from jobsys import tasks
from jobsys.api import catalog
from jobsys.api.app import create_app
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # registers the test handlers


@pytest.fixture(autouse=True)
def _no_cache(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Each request reads the catalog afresh (else it is read once a second)."""
    monkeypatch.setattr(catalog, "CACHE_S", 0.0)
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


@pytest.fixture
def worker(settings: Settings, store: Store) -> Worker:
    """A worker that has published its catalog (as at its first heartbeat)."""
    w = Worker(settings, store)
    w.flush_telemetry()
    return w


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_get_tasks_lists_what_live_workers_serve(worker: Worker, client: FlaskClient) -> None:
    answer = client.get("/tasks")
    assert answer.status_code == 200
    shown = {t["name"]: t for t in answer.get_json()["tasks"]}
    assert set(shown) == set(tasks.registered()) | {"fail"}
    assert shown["echo"] == {"name": "echo", "kind": "sync", "workers": 1}
    assert shown["async-sleep"]["kind"] == "async"
    assert shown["with-defaults"] == {
        "name": "with-defaults",
        "kind": "sync",
        "queue": "defaults-q",
        "max_retries": 0,
        "timeout_seconds": 30.0,
        "priority": 5,
        "workers": 1,
    }
    schema = shown["typed-resize"]["payload_schema"]
    assert schema["title"] == "Resize"
    assert schema["required"] == ["width"]
    assert schema["properties"]["width"]["type"] == "integer"


def test_no_live_worker_no_tasks(client: FlaskClient) -> None:
    assert client.get("/tasks").get_json() == {"tasks": []}


def test_a_stopped_worker_takes_its_tasks_away(worker: Worker, client: FlaskClient) -> None:
    worker._deregister()
    assert client.get("/tasks").get_json() == {"tasks": []}


def test_a_submit_gets_the_task_defaults_and_its_own_fields_win(
    worker: Worker, client: FlaskClient, store: Store
) -> None:
    plain = client.post("/submit", json={"task": "with-defaults"})
    assert plain.status_code == 202
    job = store.get(plain.get_json()["id"]).to_api()
    assert (job["queue"], job["max_retries"], job["priority"]) == ("defaults-q", 0, 5)
    assert job["timeout_seconds"] == 30
    own = client.post(
        "/submit",
        json={"task": "with-defaults", "queue": "mine", "max_retries": 2, "priority": 1,
              "timeout_seconds": 3},
    )  # fmt: skip
    job = store.get(own.get_json()["id"]).to_api()
    assert (job["queue"], job["max_retries"], job["priority"]) == ("mine", 2, 1)
    assert job["timeout_seconds"] == 3
    # Through Flask's route too (an idempotent submit does not take the lane).
    keyed = client.post("/submit", json={"task": "typed-resize", "payload": {"width": 2}},
                        headers={"Idempotency-Key": "k1"})  # fmt: skip
    assert keyed.status_code == 202
    job = store.get(keyed.get_json()["id"]).to_api()
    assert (job["max_retries"], job["priority"]) == (5, 7)


def test_a_batch_gets_each_task_defaults_but_keeps_its_queue(
    worker: Worker, client: FlaskClient, store: Store
) -> None:
    answer = client.post(
        "/submit/batch", json={"jobs": [{"task": "with-defaults"}, {"task": "echo"}]}
    )
    assert answer.status_code == 202
    first, second = (store.get(i).to_api() for i in answer.get_json()["ids"])
    assert (first["queue"], first["priority"], first["max_retries"]) == ("default", 5, 0)
    assert (second["priority"], second["max_retries"]) == (0, 3)


@pytest.mark.parametrize("idempotent", [False, True])
def test_a_payload_that_breaks_the_model_is_a_400_naming_the_field_and_nothing_is_written(
    worker: Worker, client: FlaskClient, redis_client: redis.Redis, idempotent: bool
) -> None:
    before = redis_client.dbsize()
    headers = {"Idempotency-Key": "k2"} if idempotent else {}
    answer = client.post(
        "/submit", json={"task": "typed-resize", "payload": {"width": "wide"}}, headers=headers
    )
    assert answer.status_code == 400
    body = answer.get_json()
    assert body["field"] == "payload.width", body
    assert "integer" in body["detail"]
    missing = client.post("/submit", json={"task": "typed-resize", "payload": {}})
    assert missing.get_json()["field"] == "payload"
    assert "'width' is a required property" in missing.get_json()["detail"]
    batch = client.post(
        "/submit/batch",
        json={"jobs": [{"task": "echo"}, {"task": "typed-resize", "payload": {"width": 1.5}}]},
    )
    assert batch.status_code == 400
    assert batch.get_json()["field"] == "jobs[1].payload.width"
    assert redis_client.dbsize() == before


def test_the_api_checks_json_types_as_written_where_pydantic_would_convert(
    worker: Worker, client: FlaskClient, redis_client: redis.Redis
) -> None:
    """docs/tasks.md: the schema's types are JSON's. "5" for an int field is a 400 at
    the API, though the handler's model (pydantic, lax) would have made it 5."""
    assert sample_tasks.Resize.model_validate({"width": "5"}).width == 5
    before = redis_client.dbsize()
    answer = client.post("/submit", json={"task": "typed-resize", "payload": {"width": "5"}})
    assert answer.status_code == 400
    assert answer.get_json()["field"] == "payload.width"
    assert redis_client.dbsize() == before


def test_a_typed_handler_receives_its_model(worker: Worker, store: Store) -> None:
    job_id = store.submit("typed-resize", {"width": 3})
    drain(worker)
    assert store.get(job_id).result == {"model": "Resize", "area": 300}


def test_a_payload_the_model_refuses_at_the_worker_fails_at_once(
    worker: Worker, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("typed-resize", {"width": "wide"}, max_retries=3)  # not via the API
    drain(worker)
    job = store.get(job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert "payload does not match Resize" in (job.error or "")
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [job_id]


@pytest.fixture
def rejecting(settings: Settings) -> Iterator[Flask]:
    app = create_app(settings.with_overrides(unknown_tasks="reject"))
    yield app
    close_app(app)


def test_unknown_tasks_reject_refuses_a_task_no_live_worker_serves(
    worker: Worker, rejecting: Flask, redis_client: redis.Redis
) -> None:
    client = rejecting.test_client()
    before = redis_client.dbsize()
    for headers in ({}, {"Idempotency-Key": "k3"}):
        answer = client.post("/submit", json={"task": "typo-task"}, headers=headers)
        assert answer.status_code == 400
        assert answer.get_json()["field"] == "task"
        assert "'typo-task'" in answer.get_json()["detail"]
    batch = client.post("/submit/batch", json={"jobs": [{"task": "echo"}, {"task": "nope"}]})
    assert batch.get_json()["field"] == "jobs[1].task"
    assert redis_client.dbsize() == before
    assert client.post("/submit", json={"task": "echo"}).status_code == 202
    assert client.post("/submit", json={"task": "fail"}).status_code == 202  # built in


def test_unknown_tasks_reject_a_worker_fails_such_a_job_at_once(
    settings: Settings, store: Store
) -> None:
    job_id = store.submit("typo-task", max_retries=3)
    drain(Worker(settings.with_overrides(unknown_tasks="reject"), store))
    job = store.get(job_id)
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.error == "unknown task 'typo-task': no handler in this worker (UNKNOWN_TASKS=reject)"


def test_unknown_tasks_simulate_is_the_default(
    settings: Settings, worker: Worker, client: FlaskClient, store: Store
) -> None:
    assert settings.unknown_tasks == "simulate"
    answer = client.post("/submit", json={"task": "typo-task"})
    assert answer.status_code == 202
    drain(worker)
    assert store.get(answer.get_json()["id"]).status == "completed"
