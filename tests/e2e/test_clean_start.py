"""A clean start of `jobsys api` prints no warning.

gevent must patch ssl before anything imports it, or each gunicorn worker warns
(MonkeyPatchWarning: "Monkey-patching ssl after ssl has already been imported
may lead to errors, including RecursionError"). `jobsys dev`'s own clean start
is in test_dev.py.
"""

from __future__ import annotations

from pathlib import Path

from jobsys.local.redis_server import RedisServer

from processes import start_api, stop_gracefully

#: With a token set, the API has no reason to warn (auth off is a deliberate warning).
ENV = {"JOBSYS_ADMIN_TOKENS": "clean-start-admin-token-0123456789"}


def warnings_in(output: str) -> list[str]:
    """The lines of a process's output that speak of a warning (Python's or a log's)."""
    return [line for line in output.splitlines() if "warning" in line.lower()]


def test_the_api_starts_and_stops_without_a_warning(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # One gunicorn worker: once /health answers, it has patched and built the app.
    proc, _ = start_api(redis_server.url, tmp_path / "api.log", ENV)
    stop_gracefully(proc)
    assert proc.popen.returncode == 0, proc.output()[-3000:]
    assert warnings_in(proc.output()) == []
