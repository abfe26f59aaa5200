"""jobsys.Client against a small scripted HTTP server: requests sent, answers parsed.

The real API is exercised end to end in tests/e2e/test_cli.py; here the server's
answers are chosen to reach every branch of the client (error bodies that are
not JSON, jobs that change between polls, a server that is not there).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from http_servers import serving

from jobsys import Client
from jobsys.errors import ApiUnreachable, ClientError
from jobsys.local.redis_server import free_port


class FakeApi(ThreadingHTTPServer):
    """Answers from `routes`: path -> list of (status, body); the last answer repeats."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.routes: dict[str, list[tuple[int, Any]]] = {}
        self.requests: list[tuple[str, str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        script = self.routes.get(f"{method} {path.partition('?')[0]}")
        if not script:
            return 404, {"error": "not found", "detail": f"no route {path}"}
        return script.pop(0) if len(script) > 1 else script[0]


class Handler(BaseHTTPRequestHandler):
    server: FakeApi

    def do_GET(self) -> None:
        self._reply(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        self._reply(json.loads(self.rfile.read(length)))

    def _reply(self, body: Any) -> None:
        status, answer = self.server.answer(self.command, self.path, body)
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self.send_response(status)
        ctype = "text/html" if isinstance(answer, str) else "application/json"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[FakeApi]:
    server = FakeApi()
    with serving(server):
        yield server


@pytest.fixture
def client(api: FakeApi) -> Iterator[Client]:
    with Client(api.url + "/", timeout_s=2) as c:
        yield c


JOB_ID = "0b7c9a9e-4a8e-4c1e-9a39-1f0e5f7f2a11"


def job(status: str, attempts: int = 0, **extra: Any) -> dict[str, Any]:
    return {"id": JOB_ID, "status": status, "task": "t", "attempts": attempts, **extra}


def test_submit_sends_the_payload_only_when_given(api: FakeApi, client: Client) -> None:
    api.routes["POST /submit"] = [(202, {"id": JOB_ID, "status": "queued", "task": "t"})]
    assert client.submit("t") == JOB_ID
    assert client.submit("t", None) == JOB_ID
    assert client.submit("t", {"n": [1, 2]}) == JOB_ID
    assert [body for _, _, body in api.requests] == [
        {"task": "t"},
        {"task": "t", "payload": None},
        {"task": "t", "payload": {"n": [1, 2]}},
    ]


def test_get_and_health_return_the_json(api: FakeApi, client: Client) -> None:
    api.routes[f"GET /jobs/{JOB_ID}"] = [(200, job("queued"))]
    api.routes["GET /health"] = [(200, {"status": "ok", "redis": "ok"})]
    assert client.get(JOB_ID) == job("queued")
    assert client.health() == {"status": "ok", "redis": "ok"}


def test_an_error_answer_raises_client_error_from_its_json_body(client: Client) -> None:
    with pytest.raises(ClientError) as e:
        client.get("nope")
    assert (e.value.status, e.value.error, e.value.detail) == (
        404,
        "not found",
        "no route /jobs/nope",
    )
    assert str(e.value) == "HTTP 404: not found (no route /jobs/nope)"


def test_a_structured_detail_is_kept_as_json_text(api: FakeApi, client: Client) -> None:
    api.routes["POST /submit"] = [(400, {"error": "invalid request", "detail": {"field": "task"}})]
    with pytest.raises(ClientError) as e:
        client.submit("")
    assert (e.value.status, e.value.detail) == (400, '{"field": "task"}')


def test_an_error_answer_that_is_not_json_keeps_its_text(api: FakeApi, client: Client) -> None:
    api.routes["GET /health"] = [(502, "<html>Bad Gateway</html>")]
    with pytest.raises(ClientError) as e:
        client.health()
    assert (e.value.status, e.value.error, e.value.detail) == (
        502,
        "Bad Gateway",
        "<html>Bad Gateway</html>",
    )


def test_a_success_that_is_not_json_is_an_error(api: FakeApi, client: Client) -> None:
    api.routes["POST /submit"] = [(202, "queued!")]
    with pytest.raises(ClientError, match="bad_response"):
        client.submit("t")


def test_an_unreachable_api_raises_api_unreachable_with_status_0() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout_s=2) as c, pytest.raises(ApiUnreachable) as e:
        c.health()
    assert isinstance(e.value, ClientError)
    assert e.value.status == 0
    assert str(e.value) == f"cannot reach the jobsys API at {url}: connection refused"


def test_wait_reports_each_change_and_returns_the_finished_job(
    api: FakeApi, client: Client
) -> None:
    api.routes[f"GET /jobs/{JOB_ID}"] = [
        (200, job("queued")),
        (200, job("queued")),
        (200, job("processing", 1, worker="w1")),
        (200, job("queued", 1, error="boom")),
        (200, job("processing", 2, worker="w1", error="boom")),
        (200, job("completed", 2, result=42)),
    ]
    seen: list[dict[str, Any]] = []
    final = client.wait(JOB_ID, timeout_s=5, poll_s=0.01, on_update=seen.append)
    assert final == job("completed", 2, result=42)
    assert [(j["status"], j["attempts"]) for j in seen] == [
        ("queued", 0),
        ("processing", 1),
        ("queued", 1),
        ("processing", 2),
        ("completed", 2),
    ]


def test_wait_returns_a_failed_job_too(api: FakeApi, client: Client) -> None:
    api.routes[f"GET /jobs/{JOB_ID}"] = [(200, job("failed", 4, error="boom"))]
    assert client.wait(JOB_ID, timeout_s=1)["status"] == "failed"


def test_wait_times_out(api: FakeApi, client: Client) -> None:
    api.routes[f"GET /jobs/{JOB_ID}"] = [(200, job("queued"))]
    with pytest.raises(TimeoutError, match=r"still queued after 0\.2s"):
        client.wait(JOB_ID, timeout_s=0.2, poll_s=0.05)


def test_wait_raises_http_errors(client: Client) -> None:
    with pytest.raises(ClientError) as e:
        client.wait(JOB_ID, timeout_s=1)
    assert e.value.status == 404
