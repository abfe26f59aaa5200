"""Serve the API under gunicorn (gevent workers by default), started from Python.

Each worker process builds its own app, and with it its own Redis connections,
after the fork: no connection is ever shared between processes.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from flask import Flask
from gunicorn.app.base import BaseApplication

from jobsys.api import guards
from jobsys.api.access_log import AccessLog
from jobsys.api.app import create_app
from jobsys.settings import Settings

logger = logging.getLogger(__name__)

#: How long a stopping worker lets in-flight requests finish (requests take
#: milliseconds, so SIGTERM stops the server promptly).
GRACEFUL_TIMEOUT_S = 3
#: Access log line: the usual fields plus the duration and the request id.
ACCESS_LOG_FORMAT = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms rid=%({x-request-id}o)s "%(a)s"'


class ApiServer(BaseApplication):  # type: ignore[misc]  # gunicorn is untyped
    """A gunicorn application whose workers each run `create_app(settings)`."""

    def __init__(self, settings: Settings, options: dict[str, Any]) -> None:
        self.settings = settings
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            # Skip settings an older gunicorn does not know (control_socket_disable).
            if key in self.cfg.settings:
                self.cfg.set(key, value)

    def load(self) -> Flask:
        # Runs in each worker after the fork (preload_app is off).
        # No line the API writes names the file and line that logged it (neither
        # gunicorn's formats nor jobsys's): logging need not look them up for every
        # record, the access line's included (the logging HOWTO's "Optimization").
        logging._srcfile = None
        return create_app(self.settings)


def options(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 5001,
    workers: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The gunicorn settings `serve` runs with."""
    bind_host = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return {
        "bind": [f"{bind_host}:{port}"],
        "worker_class": settings.api_worker_class,
        "workers": workers if workers is not None else settings.api_workers,
        "threads": threads if threads is not None else settings.api_threads,
        # gevent: at most this many connections per worker process at once.
        "worker_connections": 1000,
        # A connection that sends nothing for this long is closed (gevent).
        "keepalive": 2,
        # The longest request line gunicorn accepts (its maximum, 4094 by default), so
        # that long query strings (GET /jobs?task=...) reach the app, which answers a
        # rule-breaking one with a JSON 400 rather than gunicorn's bare 414.
        "limit_request_line": 8190,
        "graceful_timeout": GRACEFUL_TIMEOUT_S,
        "accesslog": "-",
        "access_log_format": ACCESS_LOG_FORMAT,
        "logger_class": AccessLog,
        "errorlog": "-",
        "loglevel": settings.log_level.lower(),
        "proc_name": "jobsys-api",
        "preload_app": False,
        # gunicorn >= 25.1 otherwise opens a control socket in $HOME, which two
        # servers on one machine would fight over.
        "control_socket_disable": True,
    }


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 5001,
    workers: int | None = None,
    threads: int | None = None,
) -> None:
    """Run the API until SIGTERM or SIGINT (blocks; returns after a clean stop).

    `workers` and `threads` default to ``settings.api_workers`` / ``api_threads``.

    Raises:
        ConfigError: no token is set and `host` is not loopback (`Settings.check_exposure`).
    """
    settings.check_exposure(host)
    logging.getLogger("jobsys").setLevel(settings.log_level)
    if not logging.getLogger().handlers:
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not settings.auth_enabled:
        logger.warning(
            "auth is OFF: no JOBSYS_PRODUCER_TOKENS or JOBSYS_ADMIN_TOKENS is set, so anyone "
            "who can reach the API may submit, read and cancel jobs"
        )
    if settings.allowed_hosts is None and not settings.auth_enabled:
        # An open API answers the name it is served under too (see api/guards.py).
        settings = settings.with_overrides(allowed_hosts=guards.default_hosts(host))
    master = os.getpid()
    try:
        ApiServer(settings, options(settings, host, port, workers, threads)).run()
    except SystemExit as e:
        # gunicorn ends the master with sys.exit(0) after a clean stop: return
        # instead. Worker processes (forked inside run) must exit, never return.
        if os.getpid() != master or e.code not in (0, None):
            raise
