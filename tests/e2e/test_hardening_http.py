"""The API's edges, through real HTTP against `jobsys api` (gunicorn) processes:
what an anonymous caller learns, which requests are refused before any view runs,
and the headers of the dashboard."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from jobsys.api.dashboard import STATIC_DIR
from jobsys.redis_server import RedisServer, free_port

from processes import Proc, start_api, stop_gracefully, wait_for


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
