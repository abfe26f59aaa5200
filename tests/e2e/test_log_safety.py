"""What reaches the logs of real processes: no secret (a worker and the API on a
Redis that wants a password, given it in each form redis-py accepts, log at DEBUG
and never print it), and no field or line forged by a task name or an error text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from jobsys.local.redis_server import RedisServer, free_port
from jobsys.settings import Settings
from jobsys.store import Store

from processes import Proc, start_api, start_worker, stop_gracefully, wait_for

SECRET = "s3cret-redis-password-0f9e8d7c"


@pytest.fixture(scope="module")
def locked_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private Redis with ``requirepass``, on a TCP port and a Unix socket."""
    data = tmp_path_factory.mktemp("locked-redis")
    server = RedisServer(
        data,
        appendonly=False,
        extra_args=[
            "--requirepass", SECRET,
            "--unixsocket", str(data / "redis.sock"), "--unixsocketperm", "700",
        ],
    )  # fmt: skip
    server.start()
    yield server
    server.stop()


def urls(server: RedisServer) -> dict[str, str]:
    hostport = f"{server.host}:{server.port}"
    return {
        "userinfo": f"redis://:{SECRET}@{hostport}/0",
        "user-and-password": f"redis://default:{SECRET}@{hostport}/0",
        "query": f"redis://{hostport}/0?password={SECRET}",
        "query-with-username": f"redis://{hostport}/0?username=default&password={SECRET}",
        "unix": f"unix://{server.data_dir / 'redis.sock'}?db=0&password={SECRET}",
    }


@pytest.mark.parametrize(
    "form", ["userinfo", "user-and-password", "query", "query-with-username", "unix"]
)
def test_a_worker_never_logs_the_redis_password(
    locked_redis: RedisServer, tmp_path: Path, form: str
) -> None:
    url = urls(locked_redis)[form]
    settings = Settings.from_env({"REDIS_URL": url})
    assert SECRET not in repr(settings)
    redis.Redis.from_url(url).flushdb()
    store = Store(settings)
    worker = start_worker(url, tmp_path / "worker.log")
    try:
        job_id = store.submit("echo", {"x": 1})
        wait_for(lambda: store.get(job_id).status == "completed", 15, what="job done")
    finally:
        stop_gracefully(worker)
        store.close()
    worker_env_log = worker.output()
    assert "starting" in worker_env_log and "redis=" in worker_env_log
    assert SECRET not in worker_env_log, worker_env_log


def test_the_api_and_a_worker_that_cannot_reach_redis_never_log_the_password(
    locked_redis: RedisServer, tmp_path: Path
) -> None:
    url = urls(locked_redis)["query"]
    api, base = start_api(url, tmp_path / "api.log", {"LOG_LEVEL": "DEBUG"})
    try:
        assert requests.get(f"{base}/health", timeout=5).json()["status"] == "ok"
    finally:
        stop_gracefully(api)
    assert SECRET not in api.output()
    # Nothing listens there: the worker logs its connection errors.
    gone = f"redis://:{SECRET}@127.0.0.1:{free_port()}/0?password={SECRET}"
    worker = Proc(["worker"], {"REDIS_URL": gone, "LOG_LEVEL": "DEBUG"}, tmp_path / "w.log")
    try:
        wait_for(lambda: "redis" in worker.output().lower(), 10, what="a log line")
        wait_for(lambda: worker.popen.poll() is not None or len(worker.output()) > 400, 10)
    finally:
        stop_gracefully(worker)
    assert SECRET not in worker.output(), worker.output()
    # A bad REDIS_URL is named in the error, without its password.
    bad = Proc(["worker"], {"REDIS_URL": f"http://:{SECRET}@host/0"}, tmp_path / "bad.log")
    assert bad.wait(15) == 2
    bad.stop()
    assert "REDIS_URL=" in bad.output()
    assert SECRET not in bad.output()


#: One logfmt field: key=bare or key="quoted with \\" \\\\ \\n escapes".
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^\s"]*)')


def test_a_task_name_or_an_error_cannot_forge_log_fields(
    worker: Proc, store: Store, redis_client: redis.Redis
) -> None:
    forged = "report job_id=1111 worker=forged"
    done = store.submit(forged, None)  # no handler: simulated work, then completed
    fails = store.submit("boom", "x job_id=2222 worker=forged\n2025-01-01 INFO fake line")
    wait_for(lambda: store.get(done).status == "completed", 15, what="completed")
    wait_for(lambda: store.get(fails).attempts >= 2, 15, what="a retry")
    # The worker writes its lines within WRITE_INTERVAL_S of logging them (logs.py).
    wait_for(lambda: f"job {done} completed" in worker.output(), 5, what="the completed line")
    lines = [
        line
        for line in worker.output().splitlines()
        if " event=" in line and (done in line or fails in line)
    ]
    assert any(" completed " in line for line in lines), lines
    assert any(" retried " in line for line in lines), lines
    # The error's second line shows only escaped, or indented in a traceback.
    for line in worker.output().splitlines():
        assert not line.startswith("2025-01-01"), line
    for line in lines:
        found = FIELD.findall(line)
        keys, values = [k for k, _ in found], dict(found)
        assert keys.count("job_id") == 1 and keys.count("worker") == 1, line
        assert values["job_id"] in {done, fails} and "forged" not in values["worker"], line
        if done in line:
            assert values["task"] == f'"{forged}"', line
