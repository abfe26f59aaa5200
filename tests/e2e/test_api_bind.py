"""Where `jobsys api` and `jobsys dev` bind: an API with no token serves loopback only.

Real processes: an open API on every interface is refused at start (exit 2) before
anything is served or started, and `jobsys api` binds loopback unless told otherwise.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest

from jobsys.local.redis_server import RedisServer, free_port

from processes import Proc, stop_gracefully, wait_for

#: Longest a refusal may take: it happens before gunicorn, gevent or Redis start.
REFUSE_WITHIN_S = 10.0


def assert_refused(command: str, tmp_path: Path) -> None:
    """`jobsys COMMAND --host 0.0.0.0` with no token exits 2 at once, saying why."""
    port = str(free_port())
    log = tmp_path / f"{command}.log"
    proc = Proc([command, "--host", "0.0.0.0", "--port", port], {}, log, cwd=tmp_path)
    try:
        start = time.monotonic()
        try:
            code = proc.wait(REFUSE_WITHIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running after {REFUSE_WITHIN_S} s:\n{proc.output()[-3000:]}")
        took = time.monotonic() - start
    finally:
        proc.stop()
    output = proc.output()
    assert code == 2, output
    assert output.startswith("error: refusing to start the API open on 0.0.0.0: "), output
    for name in ("JOBSYS_PRODUCER_TOKENS", "JOBSYS_ADMIN_TOKENS", "JOBSYS_ALLOW_OPEN=1"):
        assert name in output
    assert "Traceback" not in output
    print(f"refused in {took:.2f} s")


def test_api_refuses_to_start_open_on_every_interface(tmp_path: Path) -> None:
    assert_refused("api", tmp_path)


def test_dev_refuses_to_start_open_on_every_interface(tmp_path: Path) -> None:
    assert_refused("dev", tmp_path)  # before it starts Redis (no data dir either)
    assert not (tmp_path / ".jobsys-data").exists()


def test_api_binds_loopback_by_default(redis_server: RedisServer, tmp_path: Path) -> None:
    port = free_port()
    env = {"REDIS_URL": redis_server.url, "API_WORKERS": "1"}
    proc = Proc(["api", "--port", str(port)], env, tmp_path / "api.log")
    try:
        wait_for(lambda: "Listening at:" in proc.output(), 15, what="gunicorn's bind line")
        listening = re.findall(r"Listening at: (\S+)", proc.output())
        assert listening == [f"http://127.0.0.1:{port}"], proc.output()[-3000:]
    finally:
        stop_gracefully(proc)
