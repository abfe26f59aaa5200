"""The API's edges, through real HTTP against `jobsys api` (gunicorn) processes:
what an anonymous caller learns, which requests are refused before any view runs,
and the headers of the dashboard."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import requests

from jobsys import Client
from jobsys.api.dashboard import STATIC_DIR
from jobsys.local.redis_server import RedisServer, free_port

from processes import Proc, run_jobsys, start_api, stop_gracefully, wait_for


def serve(env: dict[str, str], log: Path) -> tuple[Proc, str]:
    """`jobsys api` on a free loopback port, once it answers anything at all."""
    port = free_port()
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env, log)
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            requests.get(f"{base}/health", timeout=2)
        except requests.ConnectionError:
            return False
        return True

    try:
        wait_for(answers, 20, 0.1, what=f"{base}/health")
    except AssertionError:
        proc.stop()
        raise AssertionError(f"`jobsys api` did not come up:\n{proc.output()[-3000:]}") from None
    return proc, base


@pytest.fixture
def api_without_redis(tmp_path: Path) -> Iterator[tuple[Proc, str, int]]:
    """An open API whose Redis port has nothing listening."""
    redis_port = free_port()
    proc, base = serve({"REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}, tmp_path / "api.log")
    yield proc, base, redis_port
    stop_gracefully(proc)


def test_health_and_503s_tell_no_caller_where_redis_is(
    api_without_redis: tuple[Proc, str, int],
) -> None:
    proc, base, redis_port = api_without_redis
    health = requests.get(f"{base}/health", timeout=5)
    submit = requests.post(f"{base}/submit", json={"task": "t", "payload": 1}, timeout=5)
    batch = requests.post(f"{base}/submit/batch", json={"jobs": [{"task": "t"}]}, timeout=5)
    for r in (health, submit, batch):
        assert r.status_code == 503, r.text
        body = r.json()
        assert body["error"] == "store unavailable" and "Redis" in body["detail"]
        assert str(redis_port) not in r.text and "127.0.0.1" not in r.text, r.text
    assert health.json()["status"] == "unavailable"
    assert health.json()["redis"] == health.json()["detail"]
    # The reason is in the API's log, for the operator.
    wait_for(lambda: str(redis_port) in proc.output(), 5, what="the reason in the log")


@pytest.fixture(scope="module")
def open_api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jobsys api` with no token, on the session's Redis: its base URL."""
    proc, base = start_api(redis_server.url, tmp_path_factory.mktemp("api") / "api.log")
    yield base
    stop_gracefully(proc)


@pytest.mark.parametrize(
    "path", ["/dashboard/", "/dashboard/static/js/app.js", "/dashboard/static/style.css"]
)
def test_the_dashboard_forbids_framing_inline_code_and_sniffing(open_api: str, path: str) -> None:
    r = requests.get(open_api + path, timeout=5)
    assert r.status_code == 200
    policy = {d.split()[0]: d.split()[1:] for d in r.headers["Content-Security-Policy"].split("; ")}
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["default-src"] == ["'none'"]
    assert policy["script-src"] == ["'self'"] and policy["style-src"] == ["'self'"]
    assert "unsafe" not in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["X-Content-Type-Options"] == "nosniff"


def test_the_dashboard_has_no_inline_script_or_style() -> None:
    """What the policy would refuse: checked in the files too, not only in a browser."""
    html = (STATIC_DIR / "index.html").read_text()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline <script>"
    assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", html, re.IGNORECASE)
    for js in (STATIC_DIR / "js").glob("*.js"):
        text = js.read_text()
        assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|eval\(|new Function", text), (
            js
        )
        assert not re.search(r"""setAttribute\(\s*["']style""", text), js
        assert not re.search(r"\bstyle:\s*`", text), js  # h(..., {style: `...`}): an attribute


def test_an_open_api_answers_only_its_own_host_names(
    open_api: str, redis_client: redis.Redis
) -> None:
    """DNS rebinding: a page at rebound.example (now resolving to 127.0.0.1) calls
    the API same-origin, but its requests still name rebound.example as their Host."""
    port = urlsplit(open_api).port
    evil = {"Host": f"rebound.example:{port}"}
    for method, path, body in [
        ("GET", "/jobs", None),
        ("GET", "/dashboard/", None),
        ("POST", "/submit", {"task": "t", "payload": 1}),  # the submit lane
        ("POST", "/submit/batch", {"jobs": [{"task": "t"}]}),
        ("POST", "/dead-letter/purge", {"all": True}),
    ]:
        r = requests.request(method, open_api + path, json=body, headers=evil, timeout=5)
        assert r.status_code == 400, (method, path, r.text)
        assert r.json()["error"] == "host not allowed" and r.json()["field"] == "Host"
        assert "JOBSYS_ALLOWED_HOSTS" in r.json()["detail"]
    assert redis_client.dbsize() == 0
    # /health answers any Host (probes call it by address); the own names work.
    assert requests.get(f"{open_api}/health", headers=evil, timeout=5).status_code == 200
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "localhost"):
        r = requests.get(f"{open_api}/jobs", headers={"Host": host}, timeout=5)
        assert r.status_code == 200, (host, r.text)


def test_a_state_changing_request_needs_a_json_content_type(
    open_api: str, redis_client: redis.Redis
) -> None:
    """A cross-site HTML form posts form-encoded or text/plain: refused, body or none."""
    with Client(open_api) as client:
        job_id = client.submit("t")
        for method, path, kwargs in [
            ("POST", f"/jobs/{job_id}/cancel", {}),
            ("POST", f"/jobs/{job_id}/cancel", {"data": {"x": "1"}}),
            ("POST", "/dead-letter/purge", {"data": {"all": "true"}}),
            ("POST", "/dead-letter/retry", {"data": '{"all": true}', "headers": TEXT}),
            ("POST", "/submit", {"data": '{"task": "t"}', "headers": TEXT}),
            ("POST", "/schedules", {"data": "{}", "headers": TEXT}),
            ("DELETE", "/schedules/nightly", {}),
        ]:
            r = requests.request(method, open_api + path, timeout=5, **kwargs)
            assert r.status_code == 415, (method, path, r.text)
            assert r.json()["error"] == "unsupported media type", r.text
            assert "Content-Type: application/json" in r.json()["detail"]
        assert client.get(job_id)["status"] == "queued"
        # The Python client sends the type on every such request, with a body or none.
        assert client.cancel(job_id)["status"] == "cancelled"
        client.put_schedule("nightly", "0 3 * * *", "t")
        client.delete_schedule("nightly")
        assert client.purge_dead(all=True)["purged"] == 0
        assert client.retry_dead(all=True)["retried"] == 0
    # And so does the CLI, which uses it.
    job_id = run_jobsys("submit", "t", "--url", open_api).stdout.strip()
    cancelled = run_jobsys("cancel", job_id, "--url", open_api)
    assert cancelled.returncode == 0, cancelled.stderr


TEXT = {"Content-Type": "text/plain"}
ADMIN = "hardening-admin-token-" + "a" * 24
PRODUCER = "hardening-producer-token-" + "b" * 24
WRONG = "hardening-wrong-token-" + "c" * 24


@pytest.fixture
def locking_api(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    """`jobsys api` with tokens that locks an address out after 3 failures for 3 s."""
    env = {
        "REDIS_URL": redis_server.url,
        "JOBSYS_ADMIN_TOKENS": ADMIN,
        "JOBSYS_PRODUCER_TOKENS": PRODUCER,
        "JOBSYS_AUTH_MAX_FAILURES": "3",
        "JOBSYS_AUTH_LOCKOUT_SECONDS": "3",
    }
    proc, base = serve(env, tmp_path / "api.log")
    yield base
    stop_gracefully(proc)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_failed_token_attempts_lock_the_address_out(
    locking_api: str, redis_client: redis.Redis
) -> None:
    base = locking_api
    started = time.monotonic()
    for headers in (bearer(WRONG), {"Authorization": f"Basic {ADMIN}"}, bearer(WRONG)):
        assert requests.get(f"{base}/jobs", headers=headers, timeout=5).status_code == 401
    # No header is no guess: it neither counts nor is refused with 429.
    assert requests.get(f"{base}/jobs", timeout=5).status_code == 401
    r = requests.get(f"{base}/jobs", headers=bearer(WRONG), timeout=5)
    assert r.status_code == 429, r.text
    assert r.json()["error"] == "too many requests" and r.json()["field"] == "Authorization"
    assert 1 <= int(r.headers["Retry-After"]) <= 3
    # While locked out, a right token is refused too, before it is looked at, on the
    # submit lane of POST /submit as well: the 429 tells a guesser nothing.
    for method, path, token in [
        ("GET", "/jobs", ADMIN),
        ("POST", "/submit", PRODUCER),
        ("POST", "/jobs/x/cancel", ADMIN),
    ]:
        r = requests.request(
            method, base + path, json={"task": "t"}, headers=bearer(token), timeout=5
        )
        assert r.status_code == 429, (method, path, r.text)
    assert redis_client.dbsize() == 0
    assert requests.get(f"{base}/health", timeout=5).status_code == 200
    # After the window, the address may try again.
    time.sleep(max(0.0, started + 3.2 - time.monotonic()))
    assert requests.get(f"{base}/jobs", headers=bearer(ADMIN), timeout=5).status_code == 200
    # With tokens, the Host check is off by default (the token defends).
    r = requests.get(
        f"{base}/jobs", headers=bearer(PRODUCER) | {"Host": "jobs.example.com"}, timeout=5
    )
    assert r.status_code == 200
