"""The API through real HTTP: gunicorn in a subprocess, `requests` as the client.

The server helpers live here rather than in a conftest.py so that they cannot
collide with the fixtures of other e2e suites.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from jobsys.local.redis_server import RedisServer, free_port
from jobsys.store import keys


def api_command(port: int, workers: int, threads: int) -> list[str]:
    """How the server is started (equivalent to `jobsys api --host 127.0.0.1 --port PORT ...`)."""
    code = (
        "from jobsys.api.server import serve; from jobsys.settings import Settings; "
        f"serve(Settings.from_env(), host='127.0.0.1', port={port}, "
        f"workers={workers}, threads={threads})"
    )
    return [sys.executable, "-c", code]


class ApiProcess:
    """`serve()` in a child process of its own (session), logging to a file."""

    def __init__(self, redis_url: str, log_path: Path, workers: int = 2, threads: int = 4) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        env = {**os.environ, "REDIS_URL": redis_url, "LOG_LEVEL": "INFO"}
        with log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                api_command(self.port, workers, threads),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"API exited with {self.proc.returncode}:\n{self.output()}")
            try:
                requests.get(f"{self.url}/health", timeout=1)
                return
            except requests.ConnectionError:
                time.sleep(0.05)
        pytest.fail(f"API did not answer within {timeout_s}s:\n{self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of the server's own process group if it lingers."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def api(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiProcess]:
    """One server (2 workers) on the session's Redis for the tests that do not stop it."""
    server = ApiProcess(redis_server.url, tmp_path_factory.mktemp("api") / "api.log")
    yield server
    server.stop()


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def assert_json_error(r: requests.Response, status: int, error: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["Content-Type"] == "application/json"
    body = r.json()
    assert body["error"] == error
    assert body["detail"]
    assert r.headers["X-Request-ID"]
    return body


JSON = {"Content-Type": "application/json"}


def chunked(body: bytes) -> Iterator[bytes]:
    """`body` as a generator, which requests sends with chunked transfer encoding."""
    return (body[i : i + 65536] for i in range(0, len(body), 65536))


def job_keys(client: redis.Redis) -> list[str]:
    return list(client.scan_iter(match=keys.job("*"), count=1000))


def test_submit_then_get(api: ApiProcess, http: requests.Session, redis_client: redis.Redis):
    r = http.post(f"{api.url}/submit", json={"task": "email", "payload": {"to": "a@b.c"}})
    assert r.status_code == 202
    job_id = r.json()["id"]
    assert r.json() == {"status": "queued", "task": "email", "id": job_id}

    got = http.get(f"{api.url}/jobs/{job_id}", headers={"X-Request-ID": "e2e-1"})
    assert got.status_code == 200
    assert got.headers["X-Request-ID"] == "e2e-1"
    assert got.json()["payload"] == {"to": "a@b.c"}
    assert got.json()["status"] == "queued"
    assert job_keys(redis_client) == [keys.job(job_id)]


def test_a_burst_of_concurrent_submits_loses_nothing(api: ApiProcess, redis_client: redis.Redis):
    local = threading.local()

    def session() -> requests.Session:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session

    def submit(i: int) -> str:
        r = session().post(f"{api.url}/submit", json={"task": "burst", "payload": i}, timeout=10)
        assert r.status_code == 202, r.text
        return str(r.json()["id"])

    def payload_of(job_id: str) -> Any:
        r = session().get(f"{api.url}/jobs/{job_id}", timeout=10)
        assert r.status_code == 200, r.text
        return r.json()["payload"]

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(submit, range(500)))
        payloads = list(pool.map(payload_of, ids))

    assert len(set(ids)) == 500
    assert payloads == list(range(500))  # each id answers with its own job
    assert len(job_keys(redis_client)) == 500


def test_a_2_mib_body_is_413(api: ApiProcess, http: requests.Session, redis_client: redis.Redis):
    body = json.dumps({"task": "big", "payload": "x" * (2 * 1024 * 1024)})
    r = http.post(f"{api.url}/submit", data=body, headers={"Content-Type": "application/json"})
    assert_json_error(r, 413, "request entity too large")
    # Sent chunked, with no Content-Length to refuse it by; valid JSON in the
    # first MiB does not make the truncated body acceptable.
    padded = b'{"task": "t"}' + b" " * (2 * 1024 * 1024)
    r = http.post(f"{api.url}/submit", data=chunked(padded), headers=JSON)
    assert_json_error(r, 413, "request entity too large")
    assert job_keys(redis_client) == []
    # The same connection serves the next request: the body was read to its end.
    assert http.get(f"{api.url}/health").status_code == 200


def test_a_chunked_body_of_exactly_1_mib_is_accepted(api: ApiProcess, http: requests.Session):
    head, tail = b'{"task": "big", "payload": "', b'"}'
    body = head + b"x" * (1024 * 1024 - len(head) - len(tail)) + tail
    r = http.post(f"{api.url}/submit", data=chunked(body), headers=JSON)
    assert r.status_code == 202, r.text
    assert "Content-Length" not in r.request.headers


def test_errors_are_json(api: ApiProcess, http: requests.Session, redis_client: redis.Redis):
    assert_json_error(http.get(f"{api.url}/nope"), 404, "not found")
    assert_json_error(http.get(f"{api.url}/jobs/{uuid.uuid4()}"), 404, "not found")
    assert_json_error(http.get(f"{api.url}/jobs/not-a-uuid"), 404, "not found")
    for method, path in [("GET", "/submit"), ("TRACE", "/health"), ("QUERY", "/submit")]:
        r = http.request(method, f"{api.url}{path}")
        assert_json_error(r, 405, "method not allowed")
        assert r.headers["Allow"]
    r = http.post(f"{api.url}/submit", data="task=t")  # form-encoded
    assert_json_error(r, 415, "unsupported media type")
    r = http.post(f"{api.url}/submit", json={"task": "t", "extra": 1})
    assert assert_json_error(r, 400, "invalid request")["field"] == "extra"
    assert job_keys(redis_client) == []


def test_openapi_is_served(api: ApiProcess, http: requests.Session):
    doc = http.get(f"{api.url}/openapi.json").json()
    assert set(doc["paths"]) == {
        "/submit",
        "/submit/batch",
        "/jobs",
        "/jobs/{job_id}",
        "/jobs/{job_id}/cancel",
        "/queues",
        "/workers",
        "/metrics",
        "/schedules",
        "/schedules/{name}",
        "/health",
        "/auth/whoami",
        "/openapi.json",
        "/dead-letter",
        "/dead-letter/retry",
        "/dead-letter/purge",
        "/events",
        "/jobs/{job_id}/webhooks",
        "/webhooks",
        "/webhooks/{sub_id}",
        # flow control (docs/flow-control.md)
        "/queues/{name}/pause",
        "/queues/{name}/resume",
        "/queues/{name}/limits",
        "/jobs/{job_id}/promote",
        "/jobs/{job_id}/retry",
        "/tasks",
        # workflows (docs/workflows.md)
        "/batches",
        "/batches/{batch_id}",
        "/batches/{batch_id}/cancel",
        "/workflows",
        "/workflows/{workflow_id}",
    }


def test_health_and_submits_follow_redis_down_and_up(tmp_path: Path, http: requests.Session):
    own = RedisServer(tmp_path / "redis", appendonly=False).start()
    server = ApiProcess(own.url, tmp_path / "api.log")
    try:
        assert http.get(f"{server.url}/health").json() == {"status": "ok", "redis": "ok"}
        own.stop()

        started = time.monotonic()
        r = http.get(f"{server.url}/health", timeout=5)
        assert time.monotonic() - started < 1.0
        assert r.status_code == 503
        assert r.json()["status"] == "unavailable"
        started = time.monotonic()
        r = http.post(f"{server.url}/submit", json={"task": "t"}, timeout=5)
        assert time.monotonic() - started < 2.5
        assert_json_error(r, 503, "store unavailable")

        own = RedisServer(own.data_dir, port=own.port, appendonly=False).start()
        deadline = time.monotonic() + 5
        while http.get(f"{server.url}/health").status_code != 200:
            assert time.monotonic() < deadline, "health did not recover"
            time.sleep(0.1)
        assert http.post(f"{server.url}/submit", json={"task": "t"}).status_code == 202
    finally:
        server.stop()
        own.stop()


def test_a_frozen_redis_fails_health_within_1s(tmp_path: Path, http: requests.Session):
    own = RedisServer(tmp_path / "redis", appendonly=False).start()
    server = ApiProcess(own.url, tmp_path / "api.log", workers=1)
    assert own.process is not None
    try:
        assert http.get(f"{server.url}/health").status_code == 200
        own.process.send_signal(signal.SIGSTOP)  # connections are accepted, nothing answers
        started = time.monotonic()
        r = http.get(f"{server.url}/health", timeout=5)
        assert time.monotonic() - started < 1.0
        assert r.status_code == 503
    finally:
        own.process.send_signal(signal.SIGCONT)
        server.stop()
        own.stop()


def test_sigterm_stops_the_server_promptly_with_exit_0(
    redis_server: RedisServer, tmp_path: Path, http: requests.Session
):
    server = ApiProcess(redis_server.url, tmp_path / "api.log")
    # A kept-alive idle connection must not hold the shutdown up.
    assert http.get(f"{server.url}/health", headers={"X-Request-ID": "before-term"}).ok
    started = time.monotonic()
    server.proc.send_signal(signal.SIGTERM)
    try:
        code = server.proc.wait(10)
    finally:
        server.stop()
    assert time.monotonic() - started < 5.0
    assert code == 0, server.output()
    log = server.output()
    # The access log line (api/access_log.py): client, request line, status, bytes,
    # duration, request id, user agent.
    assert re.search(
        r'^127\.0\.0\.1 "GET /health HTTP/1\.1" 200 \d+ \d+ms rid=before-term "python-requests/',
        log,
        re.MULTILINE,
    ), log
    assert "Traceback" not in log
