"""The submit lane (api/lane.py) answers exactly as Flask does: for a table of good and
bad submits, an app with the lane and one without give the same status, headers and
body over real HTTP (two in-process werkzeug servers on the session's Redis), and
queue the same job."""

from __future__ import annotations

import http.client
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from apps import close_app
from http_servers import serving
from redis_modes import Unreachable
from werkzeug.serving import make_server

from jobsys.api import create_app
from jobsys.api.validation import MAX_BATCH_BODY_BYTES, MAX_BODY_BYTES
from jobsys.settings import Settings

PRODUCER = "producer-token-aaaaaaaaaaaaaaaa"
ADMIN = "admin-token-bbbbbbbbbbbbbbbbbbbb"
JSON = {"Content-Type": "application/json"}
#: A due time a month ahead (run_at may be at most a year ahead).
SOON = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
TRACE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Headers that differ between any two answers.
VOLATILE = {"date", "server"}
#: What a queued job must have alike on both paths.
JOB_FIELDS = ("task", "payload", "queue", "priority", "status", "max_retries", "timeout_seconds")


@contextmanager
def served(settings: Settings, submit_lane: bool) -> Iterator[int]:
    app = create_app(settings, submit_lane=submit_lane)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    try:
        with serving(server):
            yield server.port
    finally:
        close_app(app)


@contextmanager
def both(settings: Settings) -> Iterator[tuple[int, int]]:
    """(port of the app with the lane, port of the plain Flask app)."""
    with served(settings, True) as lane, served(settings, False) as flask:
        yield lane, flask


def call(
    port: int, path: str, body: bytes, headers: dict[str, str], method: str = "POST"
) -> tuple[int, list[tuple[str, str]], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        chunked = headers.get("Transfer-Encoding") == "chunked"
        if chunked:
            conn.putrequest(method, path)
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.endheaders(message_body=body, encode_chunked=True)
        else:
            conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.getheaders(), resp.read()
    finally:
        conn.close()


def normal(answer: tuple[int, list[tuple[str, str]], bytes]) -> tuple[Any, ...]:
    """An answer with job ids and made-up request ids masked."""
    status, headers, body = answer
    shown = []
    for name, value in headers:
        if name.lower() in VOLATILE:
            continue
        made_up = name.lower() == "x-request-id" and re.fullmatch("[0-9a-f]{32}", value)
        shown.append((name, "<new id>" if made_up else UUID.sub(b"<id>", value.encode()).decode()))
    return status, shown, UUID.sub(b"<id>", body)


def queued_job(port: int, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    """The job a 202 answer named, as GET /jobs/<id> shows it (the fields that matter)."""
    job_id = json.loads(body)["id"]
    auth = {k: v for k, v in headers.items() if k == "Authorization"}
    status, _, got = call(port, f"/jobs/{job_id}", b"", auth, "GET")
    assert status == 200
    job = json.loads(got)
    fields = JOB_FIELDS + (("traceparent",) if headers.get("traceparent") == TRACE else ())
    return {k: job.get(k) for k in fields}


def agree(ports: tuple[int, int], path: str, body: bytes, headers: dict[str, str]) -> int:
    """Send one request to both apps; assert they answer alike; return the status."""
    lane, flask = (call(port, path, body, headers) for port in ports)
    assert normal(lane) == normal(flask), (path, body[:200], headers)
    if lane[0] == 202 and path == "/submit":
        assert queued_job(ports[0], lane[2], headers) == queued_job(ports[1], flask[2], headers)
    return lane[0]


def j(value: Any) -> bytes:
    return json.dumps(value).encode()


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


SUBMITS: list[tuple[str, bytes, dict[str, str], int]] = [
    ("plain", j({"task": "noop"}), JSON, 202),
    ("every field", j({"task": "t", "payload": {"a": [1, None]}, "priority": 5,
     "max_retries": 2, "timeout_seconds": 1.5, "queue": "q.1"}), JSON, 202),
    ("delayed", j({"task": "t", "delay_seconds": 60}), JSON, 202),
    ("run_at", j({"task": "t", "run_at": SOON}), JSON, 202),
    ("past run_at", j({"task": "t", "run_at": "2020-01-01T00:00:00Z"}), JSON, 202),
    ("run_at over a year ahead", j({"task": "t", "run_at": "2999-01-01T00:00:00Z"}), JSON, 400),
    ("null payload", j({"task": "t", "payload": None}), JSON, 202),
    ("unicode task", '{"task": "h\u00e9 \U0001f600 \\"q\\""}'.encode(), JSON, 202),
    ("+json type", j({"task": "t"}), {"Content-Type": "application/x+json; charset=UTF-8"}, 202),
    ("traceparent", j({"task": "t"}), JSON | {"traceparent": TRACE}, 202),
    ("bad traceparent", j({"task": "t"}), JSON | {"traceparent": "00-zz"}, 202),
    ("request id", j({"task": "t"}), JSON | {"X-Request-ID": "abc.123"}, 202),
    ("bad request id", j({"task": "t"}), JSON | {"X-Request-ID": "a b"}, 202),
    ("chunked", j({"task": "t"}), JSON | {"Transfer-Encoding": "chunked"}, 202),
    ("empty task", j({"task": ""}), JSON, 400),
    ("long task", j({"task": "x" * 201}), JSON, 400),
    ("control char task", j({"task": "a\u0007"}), JSON, 400),
    ("no task", j({"payload": 1}), JSON, 400),
    ("bad queue", j({"task": "t", "queue": "no spaces"}), JSON, 400),
    ("high priority", j({"task": "t", "priority": 10**6}), JSON, 400),
    ("text priority", j({"task": "t", "priority": "1"}), JSON, 400),
    ("float priority", j({"task": "t", "priority": 1.5}), JSON, 400),
    ("naive run_at", j({"task": "t", "run_at": "2030-01-01T00:00:00"}), JSON, 400),
    ("unknown field", j({"task": "t", "colour": "red"}), JSON, 400),
    ("an array", j([{"task": "t"}]), JSON, 400),
    ("not JSON", b"{task", JSON, 400),
    ("NaN", b'{"task": "t", "payload": NaN}', JSON, 400),
    ("not UTF-8", b'{"task": "\xff"}', JSON, 400),
    ("too deep", j({"task": "t", "payload": deep(130)}), JSON, 400),
    ("empty body", b"", JSON, 400),
    ("text/plain", j({"task": "t"}), {"Content-Type": "text/plain"}, 415),
    ("no type", j({"task": "t"}), {}, 415),
    ("latin-1", j({"task": "t"}), {"Content-Type": "application/json; charset=latin-1"}, 415),
    ("bad idempotency key", j({"task": "t"}), JSON | {"Idempotency-Key": "a b"}, 400),
    ("foreign host", j({"task": "t"}), JSON | {"Host": "evil.example"}, 400),
    # Checked by the Flask route alone: the lane hands them over.
    ("loopback callback_url", j({"task": "t", "callback_url": "http://127.0.0.1:9/x"}), JSON, 400),
]  # fmt: skip


@pytest.mark.parametrize(("body", "headers", "status"), [c[1:] for c in SUBMITS],
                         ids=[c[0] for c in SUBMITS])  # fmt: skip
def test_a_submit_is_answered_alike_with_and_without_the_lane(
    settings: Settings, body: bytes, headers: dict[str, str], status: int
) -> None:
    with both(settings) as ports:
        assert agree(ports, "/submit", body, headers) == status


DELAYED = {"queue": "q", "jobs": [{"task": "a", "delay_seconds": 5}]}
BATCHES: list[tuple[bytes, dict[str, str], int]] = [
    (j({"jobs": [{"task": "a"}, {"task": "b", "payload": 2, "priority": -3}]}), JSON, 202),
    (j(DELAYED), JSON | {"traceparent": TRACE, "X-Request-ID": "r"}, 202),
    (j({"jobs": []}), JSON, 400),
    (j({"jobs": [{"task": "a", "queue": "q"}]}), JSON, 400),
    (j({"jobs": [{"task": ""}]}), JSON, 400),
    (b"[]", JSON, 400),
    (j({"jobs": [{"task": "a"}]}), {"Content-Type": "text/plain"}, 415),
    (j({"jobs": [{"task": "a"}, {"task": "b", "callback_url": "http://127.0.0.1:9/x"}]}),
     JSON, 400),
]  # fmt: skip


@pytest.mark.parametrize(("body", "headers", "status"), BATCHES)
def test_a_batch_is_answered_alike_with_and_without_the_lane(
    settings: Settings, body: bytes, headers: dict[str, str], status: int
) -> None:
    with both(settings) as ports:
        assert agree(ports, "/submit/batch", body, headers) == status


def test_a_unique_key_is_answered_alike(settings: Settings) -> None:
    body = j({"task": "t", "unique_key": "lane-unique"})
    with both(settings) as ports:
        assert call(ports[1], "/submit", body, JSON)[0] == 202  # the first holds the key
        assert agree(ports, "/submit", body, JSON) == 200  # then both: the duplicate


@pytest.mark.parametrize(
    ("path", "size"), [("/submit", MAX_BODY_BYTES), ("/submit/batch", MAX_BATCH_BODY_BYTES)]
)
def test_a_body_over_the_limit_is_answered_alike(settings: Settings, path: str, size: int) -> None:
    # Through the test client: the werkzeug development server's input never ends, so
    # the 413 handler's drain of the rest of the body would wait for the client.
    body = j({"task": "t", "payload": "x" * size})
    answers = []
    for submit_lane in (True, False):
        app = create_app(settings, submit_lane=submit_lane)
        got = app.test_client().post(path, data=body, headers=JSON)
        answers.append((got.status_code, got.data, got.headers.get("X-Content-Type-Options")))
        close_app(app)
    assert answers[0] == answers[1]
    assert answers[0][0] == 413


def test_other_methods_and_paths_are_answered_alike(settings: Settings) -> None:
    with both(settings) as ports:
        for method, path in [("GET", "/submit"), ("PUT", "/submit"), ("POST", "/submit/")]:
            lane, flask = (call(p, path, j({"task": "t"}), JSON, method) for p in ports)
            assert normal(lane) == normal(flask)
            assert lane[0] in {404, 405}


def test_an_idempotent_submit_is_answered_alike(settings: Settings) -> None:
    with both(settings) as (lane, flask):
        # One key per app (they share Redis): first 202, then 200 replayed.
        answers = [
            normal(call(port, "/submit", j({"task": "t"}), JSON | {"Idempotency-Key": key}))
            for key, port in [("k1", lane), ("k2", flask), ("k1", lane), ("k2", flask)]
        ]
        assert answers[0] == answers[1] and answers[0][0] == 202
        assert answers[2] == answers[3] and answers[2][0] == 200


TOKENS = {"producer_tokens": (PRODUCER,), "admin_tokens": (ADMIN,)}


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong-token-cccccccccccccccccccc"}, 401),
        ({"Authorization": PRODUCER}, 401),
        ({"Authorization": f"Bearer {PRODUCER}"}, 202),
        ({"Authorization": f"bearer  {ADMIN} "}, 202),
        ({"Content-Type": "text/plain", "Authorization": f"Bearer {PRODUCER}"}, 415),
        ({"Content-Type": "text/plain"}, 401),
    ],
)
def test_auth_is_answered_alike(settings: Settings, headers: dict[str, str], status: int) -> None:
    with both(settings.with_overrides(**TOKENS, auth_max_failures=0)) as ports:
        assert agree(ports, "/submit", j({"task": "t"}), JSON | headers) == status
        assert agree(ports, "/submit/batch", j({"jobs": [{"task": "t"}]}), JSON | headers) == status


def test_a_failed_token_counts_once_on_either_path(settings: Settings) -> None:
    wrong = JSON | {"Authorization": "Bearer wrong-token-cccccccccccccccccccc"}
    good = JSON | {"Authorization": f"Bearer {PRODUCER}"}
    limited = settings.with_overrides(**TOKENS, auth_max_failures=3, auth_lockout_s=60)
    with both(limited) as ports:
        statuses = [agree(ports, "/submit", j({"task": "t"}), wrong) for _ in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert agree(ports, "/submit", j({"task": "t"}), good) == 429
        assert agree(ports, "/submit", j({"task": "t"}), JSON) == 401  # no token: no lockout


def test_a_store_error_is_answered_alike_and_not_replayed(
    settings: Settings, tmp_path: Path
) -> None:
    gone = Unreachable(settings, tmp_path)
    with both(gone.settings) as ports:
        gone.stop()
        assert agree(ports, "/submit", j({"task": "t"}), JSON) == 503
        assert agree(ports, "/submit/batch", j({"jobs": [{"task": "t"}]}), JSON) == 503


def test_the_queue_cap_is_answered_alike(settings: Settings) -> None:
    # MAX_QUEUES=1: the default queue fills the cap, so a new queue is refused on both paths.
    capped = settings.with_overrides(max_queues=1)
    with both(capped) as ports:
        assert agree(ports, "/submit", j({"task": "t"}), JSON) == 202
        assert agree(ports, "/submit", j({"task": "t", "queue": "other"}), JSON) == 409
        assert (
            agree(ports, "/submit/batch", j({"jobs": [{"task": "t"}], "queue": "b"}), JSON) == 409
        )
