"""The API's edges, through real HTTP against `jobsys api` (gunicorn) processes:
what an anonymous caller learns, which requests are refused before any view runs,
and the headers of the dashboard."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobsys.redis_server import free_port

from processes import Proc, stop_gracefully, wait_for


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
