"""Authentication through the Flask test client (and the submit lane in front of it, api/lane.py).

The route tests enumerate ``app.url_map``, so a route added later is covered
without touching this file; what each route should allow is written out here,
independently of the table in api/auth.py.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator

import pytest
import redis
from apps import PRODUCER_ALLOWED, close_app
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.routing import Rule

from jobsys.api import create_app
from jobsys.settings import Settings

PRODUCER = "producer-token-aaaaaaaaaaaaaaaa"
ADMIN = "admin-token-bbbbbbbbbbbbbbbbbbbb"
WRONG = "wrong-token-cccccccccccccccccccc"


def exempt(method: str, rule: str) -> bool:
    """Reachable without a token: GET /health and the dashboard's static shell."""
    return method in {"GET", "HEAD"} and (
        rule == "/health" or rule == "/dashboard" or rule.startswith("/dashboard/")
    )


JSON = "application/json"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def auth_app(settings: Settings) -> Iterator[Flask]:
    """Tokens on; no limit of failed attempts (these tests send hundreds from one address)."""
    tokens = {"producer_tokens": (PRODUCER,), "admin_tokens": (ADMIN,)}
    app = create_app(settings.with_overrides(**tokens, auth_max_failures=0))
    yield app
    close_app(app)


@pytest.fixture
def auth_client(auth_app: Flask) -> FlaskClient:
    return auth_app.test_client()


@pytest.fixture
def client(settings: Settings) -> Iterator[FlaskClient]:
    """An app in open mode (no tokens)."""
    app = create_app(settings)
    yield app.test_client()
    close_app(app)


def url_of(rule: Rule) -> str:
    """A URL that matches `rule`, with made-up values for its arguments."""
    return re.sub(r"<(?:[^:>]+:)?[^>]+>", lambda _: str(uuid.uuid4()), rule.rule)


def every_route(app: Flask) -> list[tuple[str, str, str]]:
    """(method, rule, url) of every route, every method (HEAD and OPTIONS too)."""
    return sorted(
        (method, rule.rule, url_of(rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods or ()
    )


def test_every_route_refuses_a_missing_wrong_or_malformed_token(
    auth_app: Flask, auth_client: FlaskClient, redis_client: redis.Redis
) -> None:
    routes = every_route(auth_app)
    assert len(routes) >= 20
    malformed = [
        {},
        bearer(WRONG),
        bearer(PRODUCER + "x"),
        {"Authorization": PRODUCER},
        {"Authorization": f"Basic {ADMIN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {ADMIN} {ADMIN}"},
    ]
    checked = 0
    for method, rule, url in routes:
        for headers in malformed:
            r = auth_client.open(url, method=method, headers=headers, json={"task": "t"})
            r.close()  # a served file (the dashboard's) stays open until closed
            if exempt(method, rule):
                assert r.status_code != 401, (method, rule, headers)
                continue
            assert r.status_code == 401, (method, rule, headers, r.status_code)
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            if method != "HEAD":
                body = r.get_json()
                assert body["error"] == "unauthorized"
                assert body["field"] == "Authorization"
                assert "Authorization: Bearer <token>" in body["detail"]
                assert ADMIN not in body["detail"] and PRODUCER not in body["detail"]
            checked += 1
    assert checked > 100
    # Nothing was written by any of those requests (the submits among them).
    assert redis_client.dbsize() == 0


def test_a_producer_is_forbidden_on_every_admin_endpoint(
    auth_app: Flask, auth_client: FlaskClient
) -> None:
    forbidden = set()
    for method, rule, url in every_route(auth_app):
        if method in {"HEAD", "OPTIONS"} or exempt(method, rule):
            continue
        r = auth_client.open(url, method=method, headers=bearer(PRODUCER), json={"task": "t"})
        if (method, rule) in PRODUCER_ALLOWED:
            assert r.status_code not in {401, 403}, (method, rule, r.get_json())
        else:
            assert r.status_code == 403, (method, rule, r.status_code)
            assert r.get_json()["error"] == "forbidden"
            assert "needs an admin token" in r.get_json()["detail"]
            forbidden.add((method, rule))
        # An admin may call everything.
        r = auth_client.open(url, method=method, headers=bearer(ADMIN), json={"task": "t"})
        assert r.status_code not in {401, 403}, (method, rule, r.get_json())
    assert {
        ("POST", "/jobs/<job_id>/cancel"),
        ("POST", "/schedules"),
        ("DELETE", "/schedules/<name>"),
    } <= forbidden


def test_a_route_nobody_marked_is_admin_only(settings: Settings) -> None:
    app = create_app(settings.with_overrides(producer_tokens=(PRODUCER,), admin_tokens=(ADMIN,)))
    app.add_url_rule("/brand-new", "brand_new", lambda: {"secret": 1})
    app.add_url_rule("/brand-new", "brand_new_post", lambda: {"secret": 2}, methods=["POST"])
    client = app.test_client()
    try:
        for method in ("GET", "POST"):
            assert client.open("/brand-new", method=method).status_code == 401
            assert (
                client.open("/brand-new", method=method, headers=bearer(PRODUCER)).status_code
                == 403
            )
            assert (
                client.open(
                    "/brand-new", method=method, headers=bearer(ADMIN), content_type=JSON
                ).status_code
                == 200
            )
    finally:
        close_app(app)


def test_submit_and_read_with_tokens(auth_client: FlaskClient) -> None:
    # The submit lane takes both (it hands a refused submit to the Flask route).
    for body in ({"task": "t"}, {"task": "t", "priority": 1}):
        r = auth_client.post("/submit", json=body, headers=bearer(PRODUCER))
        assert r.status_code == 202, r.get_json()
        job_id = r.get_json()["id"]
        assert auth_client.get(f"/jobs/{job_id}", headers=bearer(PRODUCER)).status_code == 200
        assert (
            auth_client.post(
                f"/jobs/{job_id}/cancel", headers=bearer(PRODUCER), content_type=JSON
            ).status_code
            == 403
        )
        r = auth_client.post(f"/jobs/{job_id}/cancel", headers=bearer(ADMIN), content_type=JSON)
        assert r.get_json()["status"] == "cancelled"
    r = auth_client.post("/submit/batch", json={"jobs": [{"task": "a"}]}, headers=bearer(PRODUCER))
    assert r.status_code == 202


def test_the_fast_path_refuses_like_the_app(
    auth_client: FlaskClient, redis_client: redis.Redis
) -> None:
    for headers in ({}, bearer(WRONG), {"Authorization": "Token abc"}):
        r = auth_client.post("/submit", json={"task": "t", "payload": 1}, headers=headers)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == 'Bearer realm="jobsys"'
        assert r.headers["X-Request-ID"]
    assert redis_client.dbsize() == 0


def test_health_is_open_and_unknown_paths_need_a_token(auth_client: FlaskClient) -> None:
    assert auth_client.get("/health").status_code == 200
    assert auth_client.get("/nope").status_code == 401
    assert auth_client.get("/nope", headers=bearer(PRODUCER)).status_code == 404
    assert auth_client.put("/submit").status_code == 401
    assert auth_client.put("/submit", headers=bearer(PRODUCER)).status_code == 405


def test_whoami(auth_client: FlaskClient, client: FlaskClient) -> None:
    assert auth_client.get("/auth/whoami", headers=bearer(ADMIN)).get_json() == {"role": "admin"}
    r = auth_client.get("/auth/whoami", headers=bearer(PRODUCER))
    assert r.get_json() == {"role": "producer"}
    assert auth_client.get("/auth/whoami").status_code == 401
    # Open mode: anyone, any header.
    assert client.get("/auth/whoami").get_json() == {"role": "open"}
    assert client.get("/auth/whoami", headers=bearer(WRONG)).get_json() == {"role": "open"}
    assert client.post("/submit", json={"task": "t"}, headers=bearer(WRONG)).status_code == 202


def test_openapi_declares_bearer_auth_on_every_operation_but_health(
    auth_client: FlaskClient, client: FlaskClient
) -> None:
    doc = auth_client.get("/openapi.json", headers=bearer(PRODUCER)).get_json()
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        **doc["components"]["securitySchemes"]["bearerAuth"],
        "type": "http",
        "scheme": "bearer",
    }
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/health":
                assert op["security"] == []
                continue
            assert op["security"] == [{"bearerAuth": []}], (path, method)
            assert "401" in op["responses"]
            rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
            assert ("403" in op["responses"]) == ((method.upper(), rule) not in PRODUCER_ALLOWED)
    # Open mode: the token is optional, as the API treats it.
    open_doc = client.get("/openapi.json").get_json()
    assert open_doc["paths"]["/queues"]["get"]["security"] == [{"bearerAuth": []}, {}]


def test_no_token_reaches_the_logs(
    auth_app: Flask, auth_client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    def boom() -> None:
        raise RuntimeError("handler failed")

    auth_app.add_url_rule("/boom", "boom", boom)
    caplog.set_level(logging.DEBUG)
    for token in (PRODUCER, ADMIN, WRONG):
        auth_client.post("/submit", json={"task": "t"}, headers=bearer(token))
        auth_client.post("/jobs/x/cancel", headers=bearer(token))
        auth_client.get("/boom", headers=bearer(token))
    assert "handler failed" in caplog.text  # the error path did log
    for token in (PRODUCER, ADMIN, WRONG):
        assert token not in caplog.text
