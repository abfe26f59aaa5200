"""POST /workflows and GET /workflows/<id>: small DAGs of named steps (issue 17)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def drain(settings: Settings, store: Store) -> None:
    worker = Worker(settings.with_overrides(retry_backoff_s=0), store)
    while worker.run_once():
        pass


DIAMOND = [  # given out of order on purpose: D first
    {"name": "D", "task": "parents", "payload": "D", "after": ["B", "C"]},
    {"name": "A", "task": "parents", "payload": "A"},
    {"name": "B", "task": "parents", "payload": "B", "after": ["A"]},
    {"name": "C", "task": "parents", "payload": "C", "after": ["A"]},
]


def test_a_diamond_workflow_runs_in_order_and_shows_its_graph(
    client: FlaskClient, settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    r = client.post("/workflows", json={"queue": "wf", "steps": DIAMOND})
    assert r.status_code == 202, r.get_json()
    body = r.get_json()
    ids = {s["name"]: s["id"] for s in body["steps"]}
    assert [s["name"] for s in body["steps"]] == ["D", "A", "B", "C"]
    assert {s["name"]: s["status"] for s in body["steps"]} == {
        "D": "waiting", "A": "queued", "B": "waiting", "C": "waiting",
    }  # fmt: skip
    assert r.headers["Location"] == f"/workflows/{body['id']}"
    view = client.get(f"/workflows/{body['id']}").get_json()
    assert view["status"] == "running" and view["queue"] == "wf"
    assert [(s["name"], s["after"], s["task"]) for s in view["steps"]] == [
        ("D", ["B", "C"], "parents"), ("A", [], "parents"), ("B", ["A"], "parents"),
        ("C", ["A"], "parents"),
    ]  # fmt: skip

    drain(settings.with_overrides(worker_queues=(("wf", 1),)), store)

    view = client.get(f"/workflows/{body['id']}").get_json()
    assert view["status"] == "completed"
    assert {s["status"] for s in view["steps"]} == {"completed"}
    d = client.get(f"/jobs/{ids['D']}").get_json()
    assert set(d["result"]["parents"]) == {ids["B"], ids["C"]}
    order = [e.split(":")[0] for e in redis_client.lrange("test:executions", 0, -1)]
    assert order[0] == "A" and order[-1] == "D"


def test_a_failing_step_cancels_what_comes_after_and_fails_the_workflow(
    client: FlaskClient, settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    steps = [
        {"name": "A", "task": "boom", "max_retries": 0},
        {"name": "B", "task": "echo", "after": ["A"]},
        {"name": "C", "task": "echo"},
    ]
    body = client.post("/workflows", json={"steps": steps}).get_json()
    drain(settings, store)
    view = client.get(f"/workflows/{body['id']}").get_json()
    assert view["status"] == "failed"
    assert [s["status"] for s in view["steps"]] == ["failed", "cancelled", "completed"]
    redis_client.delete(keys.job(body["steps"][2]["id"]))  # as if C had expired
    view = client.get(f"/workflows/{body['id']}").get_json()
    assert "status" not in view["steps"][2] and view["status"] == "failed"


@pytest.mark.parametrize(
    ("steps", "field", "rule"),
    [
        ([{"name": "A", "task": "t", "after": ["A"]}], "steps", "must not form a cycle: A -> A"),
        ([{"name": "A", "task": "t", "after": ["B"]}, {"name": "B", "task": "t", "after": ["A"]}],
         "steps", "must not form a cycle: A -> B -> A"),
        ([{"name": "A", "task": "t", "after": ["X"]}], "steps.0.after", "names no step: X"),
        ([{"name": "A", "task": "t"}, {"name": "A", "task": "t"}], "steps.1.name",
         "is used twice: A"),
        ([{"name": "a b", "task": "t"}], "steps.0.name", None),
        ([{"task": "t"}], "steps.0.name", "is required"),
        ([{"name": "A", "task": "t", "concurrency_key": "k"}], "steps.0.concurrency_key",
         "is not supported in batches and workflows yet"),
        ([], "steps", None),
    ],
)  # fmt: skip
def test_a_bad_workflow_is_a_400_naming_the_field_and_writes_nothing(
    client: FlaskClient,
    redis_client: redis.Redis,
    steps: list[dict[str, Any]],
    field: str,
    rule: str | None,
) -> None:
    r = client.post("/workflows", json={"steps": steps})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["field"] == field
    if rule is not None:
        assert r.get_json()["detail"] == f"{field}: {rule}"
    assert redis_client.dbsize() == 0


def test_an_unknown_workflow_is_a_404(client: FlaskClient) -> None:
    assert client.get("/workflows/00000000-0000-4000-8000-000000000000").status_code == 404
    assert client.get("/workflows/x").status_code == 404


@pytest.mark.parametrize("path", ["/workflows", "/batches"])
def test_an_idempotency_key_is_refused_not_ignored(
    client: FlaskClient, redis_client: redis.Redis, path: str
) -> None:
    body = (
        {"steps": [{"name": "a", "task": "t"}]}
        if path == "/workflows"
        else {"jobs": [{"task": "t"}]}
    )
    r = client.post(path, json=body, headers={"Idempotency-Key": "k1"})
    assert r.status_code == 400 and r.get_json()["field"] == "Idempotency-Key"
    assert redis_client.dbsize() == 0


def test_a_step_also_waits_for_the_existing_jobs_of_its_own_depends_on(
    client: FlaskClient, settings: Settings, store: Store
) -> None:
    x = client.post("/submit", json={"task": "echo"}).get_json()["id"]
    steps = [
        {"name": "A", "task": "echo", "depends_on": [x]},
        {"name": "B", "task": "echo", "after": ["A"], "depends_on": [x]},
    ]
    body = client.post("/workflows", json={"steps": steps}).get_json()
    assert [s["status"] for s in body["steps"]] == ["waiting", "waiting"]
    b = client.get(f"/jobs/{body['steps'][1]['id']}").get_json()
    assert b["depends_on"] == [x, body["steps"][0]["id"]]
    drain(settings, store)
    view = client.get(f"/workflows/{body['id']}").get_json()
    assert view["status"] == "completed"
