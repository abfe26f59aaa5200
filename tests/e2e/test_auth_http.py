"""Authentication through real HTTP: `jobsys api` (gunicorn) in a child process,
the CLI as a user runs it, and the API's own log afterwards."""

from __future__ import annotations

import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from jobsys import Client
from jobsys.api import create_app
from jobsys.errors import ClientError
from jobsys.local.redis_server import RedisServer, free_port
from jobsys.settings import Settings

from processes import Proc, run_jobsys, wait_for_http

PRODUCER = "e2e-producer-token-AAAAAAAAAAAAAAAA"
ADMIN = "e2e-admin-token-BBBBBBBBBBBBBBBB"
WRONG = "e2e-wrong-token-CCCCCCCCCCCCCCCC"
TOKENS = (PRODUCER, ADMIN, WRONG)


class Api:
    def __init__(self, url: str, proc: Proc) -> None:
        self.url = url
        self.proc = proc


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """`jobsys api` with one producer and one admin token, logging at DEBUG."""
    tmp = tmp_path_factory.mktemp("auth")
    (tmp / "admin_tokens").write_text(f"{ADMIN}\n")
    port = free_port()
    env = {
        "REDIS_URL": redis_server.url,
        "API_WORKERS": "1",
        "LOG_LEVEL": "DEBUG",
        "JOBSYS_PRODUCER_TOKENS": PRODUCER,
        "JOBSYS_ADMIN_TOKENS_FILE": str(tmp / "admin_tokens"),  # a Docker secret's way
        # These tests send hundreds of wrong tokens from one address on purpose.
        "JOBSYS_AUTH_MAX_FAILURES": "0",
    }
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp / "api.log")
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health")
    except AssertionError:
        proc.stop()
        pytest.fail(f"the API did not start:\n{proc.output()[-4000:]}")
    yield Api(url, proc)
    proc.stop()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_fast_path_submit_needs_a_producer_or_admin_token(
    api: Api, redis_client: redis.Redis
) -> None:
    body = b'{"task": "t", "payload": 1}'  # a submit the submit lane takes
    headers = {"Content-Type": "application/json"}
    for bad in ({}, bearer(WRONG), {"Authorization": PRODUCER}, {"Authorization": "Bearer"}):
        r = requests.post(f"{api.url}/submit", data=body, headers=headers | bad, timeout=5)
        assert r.status_code == 401, r.text
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert r.json()["field"] == "Authorization"
    assert redis_client.dbsize() == 0
    for token in (PRODUCER, ADMIN):
        r = requests.post(
            f"{api.url}/submit", data=body, headers=headers | bearer(token), timeout=5
        )
        assert r.status_code == 202, r.text
    # A keep-alive connection carries on after a refused submit with an unread body.
    with requests.Session() as s:
        for _ in range(3):
            assert (
                s.post(f"{api.url}/submit", data=body, headers=headers, timeout=5).status_code
                == 401
            )
            r = s.post(
                f"{api.url}/submit", data=body, headers=headers | bearer(PRODUCER), timeout=5
            )
            assert r.status_code == 202


def test_every_route_over_http(api: Api, redis_server: RedisServer) -> None:
    """The routes of the app as built from the same code, asked over real HTTP."""
    app = create_app(Settings.from_env({"REDIS_URL": redis_server.url}))
    for rule in app.url_map.iter_rules():
        url = api.url + re.sub(r"<[^>]+>", lambda _: str(uuid.uuid4()), rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            public = method == "GET" and (
                rule.rule == "/health" or rule.rule.startswith("/dashboard")
            )
            for headers in ({}, bearer(WRONG), {"Authorization": f"Basic {ADMIN}"}):
                r = requests.request(method, url, headers=headers, json={}, timeout=5)
                assert (r.status_code == 401) != public, (method, rule.rule, r.status_code)
            # stream: GET /events answers an endless event stream; only the status counts.
            with requests.request(
                method, url, headers=bearer(ADMIN), json={}, timeout=5, stream=True
            ) as r:
                assert r.status_code not in {401, 403}, (method, rule.rule, r.status_code)


def test_client_roles(api: Api) -> None:
    with Client(api.url, token=PRODUCER) as producer, Client(api.url, token=ADMIN) as admin:
        assert producer.whoami() == "producer"
        assert admin.whoami() == "admin"
        job_id = producer.submit("hello")
        assert producer.get(job_id)["id"] == job_id
        with pytest.raises(ClientError) as e:
            producer.cancel(job_id)
        assert e.value.status == 403
        assert e.value.error == "forbidden"
        assert admin.cancel(job_id)["status"] == "cancelled"
    with Client(api.url) as anonymous, pytest.raises(ClientError) as e:
        anonymous.get(job_id)
    assert e.value.status == 401
    assert "Authorization: Bearer <token>" in (e.value.detail or "")


def jobsys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return run_jobsys(*args, env=env)


def test_cli_sends_the_token_from_jobsys_token_or_token(api: Api) -> None:
    refused = jobsys("submit", "hello", "--url", api.url)
    assert refused.returncode == 2
    assert "HTTP 401: unauthorized" in refused.stderr
    submitted = jobsys("submit", "hello", "--url", api.url, env={"JOBSYS_TOKEN": PRODUCER})
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    status = jobsys("status", job_id, "--url", api.url, "--token", PRODUCER)
    assert status.returncode == 0, status.stderr
    cancel = jobsys("cancel", job_id, "--url", api.url, env={"JOBSYS_TOKEN": PRODUCER})
    assert cancel.returncode == 2
    assert "HTTP 403: forbidden" in cancel.stderr
    # --token wins over JOBSYS_TOKEN.
    cancel = jobsys(
        "cancel", job_id, "--url", api.url, "--token", ADMIN, env={"JOBSYS_TOKEN": WRONG}
    )
    assert cancel.returncode == 0, cancel.stderr


def test_no_token_ever_reaches_the_api_log(api: Api, tmp_path: Path) -> None:
    """Runs last in this module: after every test above sent every token."""
    for token in TOKENS:
        requests.post(f"{api.url}/jobs/{uuid.uuid4()}/cancel", headers=bearer(token), timeout=5)
        requests.get(f"{api.url}/nope?x=1", headers=bearer(token), timeout=5)
    api.proc.signal(signal.SIGTERM)
    api.proc.wait(15)
    log = api.proc.output()
    assert '"GET /nope?x=1' in log  # the access log is there, at DEBUG
    assert "auth is OFF" not in log
    for token in TOKENS:
        assert token not in log


def test_an_open_api_says_so_in_its_log(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "API_WORKERS": "1"}
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health")
        r = requests.get(f"http://127.0.0.1:{port}/auth/whoami", timeout=5)
        assert r.json() == {"role": "open"}
        assert "WARNING jobsys.api.server auth is OFF: no JOBSYS_PRODUCER_TOKENS" in proc.output()
    finally:
        proc.stop()


@pytest.mark.parametrize(
    ("var", "value"),
    [("JOBSYS_ADMIN_TOKENS_FILE", "blank lines"), ("JOBSYS_PRODUCER_TOKENS", " , ")],
)
def test_a_token_setting_without_a_token_stops_the_api(
    redis_server: RedisServer, tmp_path: Path, var: str, value: str
) -> None:
    """An empty secret file once started the API open to all, with a mere warning."""
    if var.endswith("_FILE"):
        (tmp_path / "tokens").write_text("\n  \n\n")
        value = str(tmp_path / "tokens")
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "API_WORKERS": "1", var: value}
    proc = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    try:
        assert proc.wait(15) == 2
    finally:
        proc.stop()
    assert f"error: {var} is set but holds no token" in proc.output()
    with pytest.raises(requests.ConnectionError):
        requests.post(f"http://127.0.0.1:{port}/dead-letter/purge", json={"all": True}, timeout=2)
