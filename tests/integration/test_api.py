"""The HTTP contract through Flask's test client, against a real private Redis."""

from __future__ import annotations

import io
import json
import re
import signal
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from apps import close_app
from flask import Flask
from flask.testing import FlaskClient
from openapi_outline import resolve

from jobsys.api import create_app
from jobsys.api.validation import MAX_BODY_BYTES, MAX_JSON_DEPTH, printable_pattern
from jobsys.local.redis_server import RedisServer
from jobsys.models import Job
from jobsys.settings import Settings
from jobsys.store import keys


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, which it may stop, freeze or fill."""
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def private_client(private_redis: RedisServer) -> Iterator[FlaskClient]:
    app = create_app(Settings.from_env({"REDIS_URL": private_redis.url}))
    yield app.test_client()
    close_app(app)


def post_raw(client: FlaskClient, data: bytes | str, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return client.post("/submit", data=data, headers=headers)


#: The fields `GET /jobs/<id>` shows, in order (the model's order).
API_FIELDS = tuple(Job.model_fields)


def assert_error(response: Any, status: int, error: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if error is not None:
        assert body["error"] == error
    return body


# -- submit and read back -----------------------------------------------------------


def test_submit_queues_a_job_and_get_returns_it(client: FlaskClient, redis_client: redis.Redis):
    r = client.post("/submit", json={"task": "resize-image", "payload": {"w": 100, "tags": ["a"]}})

    assert r.status_code == 202
    body = r.get_json()
    assert body == {"status": "queued", "task": "resize-image", "id": body["id"]}
    assert uuid.UUID(body["id"]).version == 4
    assert r.headers["Location"] == f"/jobs/{body['id']}"
    assert redis_client.hget(keys.job(body["id"]), "status") == "queued"

    job = client.get(f"/jobs/{body['id']}")
    assert job.status_code == 200
    got = job.get_json()
    assert got["id"] == body["id"]
    assert got["status"] == "queued"
    assert got["task"] == "resize-image"
    assert got["payload"] == {"w": 100, "tags": ["a"]}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", got["created_at"])
    assert list(got) == [f for f in API_FIELDS if f in got]  # documented order
    assert set(got) <= set(API_FIELDS)


def test_payload_absent_null_and_values_round_trip(client: FlaskClient):
    def submit_and_get(body: dict[str, Any]) -> dict[str, Any]:
        r = client.post("/submit", json=body)
        assert r.status_code == 202
        return client.get(f"/jobs/{r.get_json()['id']}").get_json()

    assert "payload" not in submit_and_get({"task": "t"})
    explicit_null = submit_and_get({"task": "t", "payload": None})
    assert "payload" in explicit_null and explicit_null["payload"] is None
    for payload in [0, -1.5, "text", "ünïcødé ✓", [], {}, [1, [2, [3]]], True, 10**40]:
        assert submit_and_get({"task": "t", "payload": payload})["payload"] == payload


def test_task_of_200_printable_characters_and_non_ascii_are_accepted(client: FlaskClient):
    for task in ["x" * 200, "größe ändern", "a b", "émoji 🎉"]:
        r = client.post("/submit", json={"task": task})
        assert r.status_code == 202, task
        assert client.get(f"/jobs/{r.get_json()['id']}").get_json()["task"] == task


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON; charset=UTF-8",
        "application/vnd.jobsys+json",
        "application/merge-patch+json",
    ],
)
def test_json_media_types_are_accepted(client: FlaskClient, content_type: str):
    assert post_raw(client, '{"task": "t"}', content_type).status_code == 202


def test_nesting_up_to_the_limit_is_accepted(client: FlaskClient):
    payload: Any = 1
    for _ in range(MAX_JSON_DEPTH - 1):  # the body object is one level
        payload = [payload]
    r = client.post("/submit", json={"task": "deep", "payload": payload})
    assert r.status_code == 202
    assert client.get(f"/jobs/{r.get_json()['id']}").get_json()["payload"] == payload


def test_a_body_of_exactly_1_mib_is_accepted(client: FlaskClient):
    head, tail = b'{"task": "big", "payload": "', b'"}'
    body = head + b"x" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    assert len(body) == MAX_BODY_BYTES
    assert post_raw(client, body).status_code == 202


# -- rejected requests: the status, the JSON error, and nothing written -------------------

_DEEP = "[" * 100_000 + "]" * 100_000
_JUST_TOO_DEEP = '{"task": "t", "payload": ' + "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH + "}"


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("[]", "body", "must be a JSON object"),
        ('"task"', "body", "must be a JSON object"),
        ("null", "body", "must be a JSON object"),
        ("42", "body", "must be a JSON object"),
        ("", "body", "valid JSON"),
        ("{", "body", "valid JSON"),
        ("{'task': 't'}", "body", "valid JSON"),
        ('{"task": "t",}', "body", "valid JSON"),
        ('{"task": "t"} trailing', "body", "valid JSON"),
        (b'{"task": "\xff\xfe"}', "body", "UTF-8"),
        (b'\xef\xbb\xbf{"task": "t"}', "body", "valid JSON"),  # a BOM
        ('{"task": "t", "payload": NaN}', "body", "valid JSON"),
        ('{"task": "t", "payload": -Infinity}', "body", "valid JSON"),
        ('{"task": "t", "payload": 1e400}', "body", "out of range"),
        ('{"task": "t", "payload": ' + "9" * 5000 + "}", "body", "valid JSON"),
        (_DEEP, "body", "nest"),
        ('{"task": "t", "payload": ' + _DEEP + "}", "body", "nest"),
        (_JUST_TOO_DEEP, "body", f"deeper than {MAX_JSON_DEPTH}"),
        ("{}", "task", "is required"),
        ('{"payload": {"a": 1}}', "task", "is required"),
        ('{"task": null}', "task", "must be a string"),
        ('{"task": 7}', "task", "must be a string"),
        ('{"task": ["t"]}', "task", "must be a string"),
        ('{"task": ""}', "task", "must not be empty"),
        (json.dumps({"task": "x" * 201}), "task", "at most 200 characters"),
        (json.dumps({"task": "nul\u0000byte"}), "task", "printable"),
        (json.dumps({"task": "line\nbreak"}), "task", "printable"),
        (json.dumps({"task": "tab\there"}), "task", "printable"),
        (json.dumps({"task": "no\u00a0break"}), "task", "printable"),
        (json.dumps({"task": "zero\u200bwidth"}), "task", "printable"),
        ('{"task": "lone \\ud800 surrogate"}', "task", "valid Unicode"),
        ('{"task": "t", "prio": 5}', "prio", "not a known field"),
        ('{"task": "t", "priority": 101}', "priority", "must be at most 100"),
        ('{"task": "t", "priority": "high"}', "priority", "must be a whole number"),
        ('{"task": "t", "priority": 1.5}', "priority", "must be a whole number"),
        ('{"task": "t", "queue": "a{b}"}', "queue", "A-Z a-z 0-9"),
        ('{"task": "t", "queue": ""}', "queue", "A-Z a-z 0-9"),
        ('{"task": "t", "delay_seconds": -1}', "delay_seconds", "at least 0"),
        ('{"task": "t", "delay_seconds": "5"}', "delay_seconds", "must be a number"),
        ('{"task": "t", "run_at": "tomorrow"}', "run_at", "RFC 3339"),
        ('{"task": "t", "run_at": ""}', "run_at", "RFC 3339"),
        ('{"task": "t", "run_at": 5}', "run_at", "RFC 3339"),
        ('{"task": "t", "run_at": "2026-12-01T08:00:00"}', "run_at", "UTC offset"),
        ('{"task": "t", "max_retries": -1}', "max_retries", "at least 0"),
        ('{"task": "t", "max_retries": 101}', "max_retries", "at most 100"),
        ('{"task": "t", "timeout_seconds": 0}', "timeout_seconds", "more than 0"),
        ('{"task": "t", "timeout_seconds": 86401}', "timeout_seconds", "at most 86400"),
        ('{"task": "t", "Payload": 5}', "Payload", "not a known field"),
    ],
)
def test_bad_bodies_are_400_naming_field_and_rule(
    client: FlaskClient, redis_client: redis.Redis, body: str | bytes, field: str, words: str
):
    body_json = assert_error(post_raw(client, body), 400, "invalid request")
    assert body_json["field"] == field
    assert body_json["detail"].startswith(f"{field}: ")
    assert words in body_json["detail"]
    assert redis_client.dbsize() == 0


def test_an_unknown_field_name_is_echoed_shortened(client: FlaskClient):
    body = assert_error(client.post("/submit", json={"task": "t", "k" * 10_000: 1}), 400)
    assert len(body["field"]) <= 100
    # The name is echoed shortened (the rule then lists the allowed fields).
    assert body["detail"].startswith(f"{body['field']}: is not a known field")
    assert "k" * 101 not in body["detail"]


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "application/+json",
        "application/json; charset=latin-1",
    ],
)
def test_non_json_media_types_are_415(
    client: FlaskClient, redis_client: redis.Redis, content_type: str | None
):
    assert_error(post_raw(client, '{"task": "t"}', content_type), 415, "unsupported media type")
    assert redis_client.dbsize() == 0


def test_a_body_over_1_mib_is_413(client: FlaskClient, redis_client: redis.Redis):
    head, tail = b'{"task": "big", "payload": "', b'"}'
    body = head + b"x" * (MAX_BODY_BYTES - len(head) - len(tail) + 1) + tail
    assert_error(post_raw(client, body), 413, "request entity too large")
    assert redis_client.dbsize() == 0


def post_chunked(client: FlaskClient, body: bytes):
    """A body with no Content-Length, as a server that decodes chunked bodies hands it over."""
    return client.post(
        "/submit",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},  # werkzeug then ignores Content-Length
        environ_overrides={"wsgi.input_terminated": True},
    )


def test_chunked_bodies_obey_the_same_limit(client: FlaskClient, redis_client: redis.Redis):
    head, tail = b'{"task": "big", "payload": "', b'"}'
    exact = head + b"x" * (MAX_BODY_BYTES - len(head) - len(tail)) + tail
    r = post_chunked(client, exact)
    assert r.status_code == 202, r.get_data(as_text=True)

    redis_client.flushall()
    # Valid JSON within the first MiB must not be accepted as a truncated body.
    padded = b'{"task": "t"}' + b" " * MAX_BODY_BYTES
    assert_error(post_chunked(client, padded), 413, "request entity too large")
    assert redis_client.dbsize() == 0


# -- reading jobs -----------------------------------------------------------------------


def test_unknown_and_malformed_job_ids_are_404(client: FlaskClient, redis_client: redis.Redis):
    for job_id in [str(uuid.uuid4()), "nope", "x" * 300, "1234", "%00", str(uuid.uuid4()) + "0"]:
        body = assert_error(client.get(f"/jobs/{job_id}"), 404, "not found")
        assert "no job with id" in body["detail"]
        assert len(body["detail"]) < 200
    assert redis_client.dbsize() == 0


def test_job_ids_are_case_insensitive(client: FlaskClient):
    job_id = client.post("/submit", json={"task": "t"}).get_json()["id"]
    r = client.get(f"/jobs/{job_id.upper()}")
    assert r.status_code == 200
    assert r.get_json()["id"] == job_id


# -- routes and methods -------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/nope", "/submit/", "/jobs/", "/jobs/a/b"])
def test_unknown_routes_are_404_json(client: FlaskClient, path: str):
    assert_error(client.get(path), 404, "not found")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/submit", {"POST"}),
        ("PUT", "/submit", {"POST"}),
        ("DELETE", "/jobs/0b4ee0c4-6c42-4f51-9d4e-1f1c6a3f7d2e", {"GET"}),
        ("POST", "/jobs/whatever", {"GET"}),
        ("POST", "/health", {"GET"}),
        ("PATCH", "/openapi.json", {"GET"}),
        ("TRACE", "/health", {"GET"}),
    ],
)
def test_wrong_methods_are_405_json_with_allow(
    client: FlaskClient, redis_client: redis.Redis, method: str, path: str, allowed: set[str]
):
    r = client.open(path, method=method, json={"task": "t"})
    assert_error(r, 405, "method not allowed")
    assert allowed <= {m.strip() for m in r.headers["Allow"].split(",")}
    assert redis_client.dbsize() == 0


# -- request ids ---------------------------------------------------------------------------


def test_a_sane_request_id_is_echoed(client: FlaskClient):
    for rid in ["abc-123", str(uuid.uuid4()), "trace:span.1_x"]:
        assert client.get("/health", headers={"X-Request-ID": rid}).headers["X-Request-ID"] == rid


def test_an_insane_or_missing_request_id_is_replaced(client: FlaskClient):
    for headers in [{}, {"X-Request-ID": "has space"}, {"X-Request-ID": "x" * 129}]:
        rid = client.get("/health", headers=headers).headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", rid)
    a = client.get("/nope").headers["X-Request-ID"]
    b = client.post("/submit", data="{").headers["X-Request-ID"]
    assert a != b


# -- health and outages -----------------------------------------------------------------


def test_health_is_ok_when_redis_answers(client: FlaskClient):
    r = client.get("/health")
    assert r.status_code == 200
    assert r.get_json() == {"status": "ok", "redis": "ok"}


def test_a_stopped_redis_makes_everything_503_at_once(
    private_client: FlaskClient, private_redis: RedisServer
):
    job_id = private_client.post("/submit", json={"task": "t"}).get_json()["id"]
    private_redis.stop()

    for request in [
        lambda: private_client.get("/health"),
        lambda: private_client.post("/submit", json={"task": "t"}),
        lambda: private_client.get(f"/jobs/{job_id}"),
    ]:
        started = time.monotonic()
        r = request()
        assert time.monotonic() - started < 1.0
        body = assert_error(r, 503, "store unavailable")
        assert "Redis" in body["detail"]
    health = private_client.get("/health").get_json()
    assert health["status"] == "unavailable"
    assert health["redis"]

    # Back once Redis is (on the same port, with its data gone: no AOF here).
    again = RedisServer(private_redis.data_dir, port=private_redis.port, appendonly=False).start()
    try:
        assert private_client.get("/health").status_code == 200
        assert private_client.post("/submit", json={"task": "t"}).status_code == 202
    finally:
        again.stop()


def test_a_hung_redis_fails_health_within_1s_and_submits_within_2s(
    private_client: FlaskClient, private_redis: RedisServer
):
    assert private_client.get("/health").status_code == 200
    assert private_redis.process is not None
    private_redis.process.send_signal(signal.SIGSTOP)  # accepts connections, answers nothing
    try:
        started = time.monotonic()
        assert_error(private_client.get("/health"), 503)
        assert time.monotonic() - started < 1.0

        started = time.monotonic()
        assert_error(private_client.post("/submit", json={"task": "t"}), 503, "store unavailable")
        assert time.monotonic() - started < 3.0
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    assert private_client.get("/health").status_code == 200


def test_redis_out_of_memory_is_507(private_client: FlaskClient, private_redis: RedisServer):
    job_id = private_client.post("/submit", json={"task": "t"}).get_json()["id"]
    admin = redis.Redis.from_url(private_redis.url)
    admin.config_set("maxmemory", 1)
    try:
        body = assert_error(private_client.post("/submit", json={"task": "t"}), 507, "store full")
        assert "memory" in body["detail"]
        assert private_client.get(f"/jobs/{job_id}").status_code == 200  # reads still work
    finally:
        admin.config_set("maxmemory", 0)
        admin.close()
    assert private_client.post("/submit", json={"task": "t"}).status_code == 202


def test_an_unexpected_error_is_a_json_500(settings: Settings):
    app = create_app(settings)

    def boom() -> str:
        raise RuntimeError("a bug")

    app.add_url_rule("/boom", view_func=boom)
    try:
        r = app.test_client().get("/boom")
        body = assert_error(r, 500, "internal error")
        assert "a bug" not in body["detail"]  # no internals leak
        assert r.headers["X-Request-ID"]
    finally:
        close_app(app)


# -- the OpenAPI document -----------------------------------------------------------------


def test_openapi_documents_every_route_and_status(app: Flask, client: FlaskClient):
    r = client.get("/openapi.json")
    assert r.status_code == 200
    doc = r.get_json()
    assert doc["openapi"].startswith("3.1")

    # The dashboard's HTML and static files are a web page, not part of the JSON API.
    routes = {
        (re.sub(r"<(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and not rule.endpoint.startswith("dashboard.")
        for method in rule.methods or ()
        if method not in {"HEAD", "OPTIONS"}
    }
    documented = {(path, method) for path, ops in doc["paths"].items() for method in ops}
    assert documented == routes

    submit = doc["paths"]["/submit"]["post"]["responses"]
    assert {"202", "400", "405", "413", "415", "503", "507", "500"} <= set(submit)
    get_job = doc["paths"]["/jobs/{job_id}"]["get"]["responses"]
    assert {"200", "404", "405", "503"} <= set(get_job)
    assert {"200", "503"} <= set(doc["paths"]["/health"]["get"]["responses"])

    # Every $ref resolves, and every error response carries the Error schema.
    text = json.dumps(doc)
    for ref in set(re.findall(r'"\$ref": "([^"]+)"', text)):
        assert resolve(doc, {"$ref": ref}) is not None, ref
    for ops in doc["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                if status.startswith(("4", "5")) and op["operationId"] != "health":
                    schema = response_schema(doc, response)
                    assert schema == {"$ref": "#/components/schemas/Error"}, (status, schema)


def response_schema(doc: dict[str, Any], response: dict[str, Any]) -> Any:
    return resolve(doc, response)["content"]["application/json"]["schema"]


def test_openapi_schemas_match_what_the_api_does(client: FlaskClient):
    doc = client.get("/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    submit = schemas["SubmitRequest"]
    assert submit["required"] == ["task"]
    assert submit["additionalProperties"] is False
    assert set(submit["properties"]) == {
        "task",
        "payload",
        "queue",
        "priority",
        "delay_seconds",
        "run_at",
        "max_retries",
        "timeout_seconds",
        "expires_at",  # flow control (docs/flow-control.md)
        "ttl_seconds",
        "unique_key",
        "unique_for_seconds",
        "depends_on",
        "on_parent_failure",
        "callback_url",
        "concurrency_key",
    }
    task = submit["properties"]["task"]
    assert (task["minLength"], task["maxLength"]) == (1, 200)
    assert "default" not in submit["properties"]["payload"]
    assert set(schemas["Job"]["properties"]) == set(API_FIELDS)

    # Real answers have only the documented fields.
    job_id = client.post("/submit", json={"task": "t", "payload": 1}).get_json()["id"]
    assert set(client.get(f"/jobs/{job_id}").get_json()) <= set(schemas["Job"]["properties"])
    error = client.post("/submit", json={"task": ""}).get_json()
    assert set(error) <= set(schemas["Error"]["properties"])


def test_the_documented_task_pattern_is_exactly_isprintable(client: FlaskClient):
    """Fuzzers draw tasks from the pattern: it must accept what the API accepts, no more."""
    doc = client.get("/openapi.json").get_json()
    text = doc["components"]["schemas"]["SubmitRequest"]["properties"]["task"]["pattern"]
    assert text == printable_pattern()
    pattern = re.compile(text)
    for code in range(sys.maxunicode + 1):
        char = chr(code)
        assert bool(pattern.fullmatch(char)) == char.isprintable(), hex(code)
    assert pattern.fullmatch("resize-image 🎉 ]-[^&~|\\")
    assert not pattern.fullmatch("a\nb")


def test_a_plain_submit_answers_like_the_full_route(client: FlaskClient, redis_client: redis.Redis):
    """A plain submit and one with another field answer alike (there was once a fast
    path for plain ones)."""
    plain = client.post(
        "/submit", json={"task": "t", "payload": [1]}, headers={"X-Request-ID": "r-1"}
    )
    full = client.post("/submit", json={"task": "t", "payload": [1], "priority": 0})
    for r in (plain, full):
        assert r.status_code == 202
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["Location"] == f"/jobs/{r.get_json()['id']}"
        assert set(r.get_json()) == {"status", "task", "id"}
    assert plain.headers["X-Request-ID"] == "r-1"
    assert redis_client.zcard(keys.ready("default")) == 2
