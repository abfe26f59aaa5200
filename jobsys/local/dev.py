"""`jobsys dev`: the whole system on one machine, for development.

It starts, as child processes of its own:

1. a private Redis (``jobsys.local.redis_server``) with its append-only file in the
   data dir, unless Redis is configured (REDIS_URL / REDIS_HOST / REDIS_PORT),
   in which case that one is used;
2. the API (``python -m jobsys api``) and one worker (``python -m jobsys worker``),
   with REDIS_URL pointing at that Redis.

Ctrl-C or SIGTERM stops the worker and the API with one SIGTERM each (the worker
gets SHUTDOWN_GRACE_SECONDS to finish its jobs), then Redis, so it flushes its
append-only file. A second Ctrl-C kills the worker and the API at once. When a
child dies on its own, the rest are stopped and dev exits 1. The children sit
in their own process groups and, on Linux, die with dev; see jobsys.local.procs.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

import click

from jobsys.client import Client
from jobsys.errors import ClientError, JobsysError
from jobsys.local.procs import die_with_parent
from jobsys.local.redis_server import RedisServer, free_port, port_is_free
from jobsys.settings import DEFAULT_REDIS_PORT, Settings, is_loopback

logger = logging.getLogger(__name__)

#: How long the API gets to answer GET /health after it was started.
API_START_TIMEOUT_S = 30.0
#: How long the worker and the API may take to stop beyond the worker's grace.
STOP_MARGIN_S = 10.0
#: The signals that stop dev (SIGHUP: the terminal went away).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class DevError(JobsysError):
    """`jobsys dev` could not start (port taken, data dir in use, API never up)."""


@dataclass(frozen=True)
class DevOptions:
    """The flags of `jobsys dev`."""

    host: str = "127.0.0.1"
    port: int = 5001
    data_dir: Path = Path(".jobsys-data")
    #: None: WORKER_CONCURRENCY decides.
    concurrency: int | None = None
    #: None: JOBSYS_TASKS decides.
    tasks_module: str | None = None
    #: The private Redis's port. None: 6379 when free, else any free port; 0: any free port.
    redis_port: int | None = None


def run_dev(settings: Settings, options: DevOptions) -> int:
    """Run Redis (unless configured), the API and a worker until stopped; return the exit code.

    Raises:
        DevError, RedisServerError: something could not start (nothing is left running).
    """
    return _Dev(settings, options).run()


class _Dev:
    def __init__(self, settings: Settings, options: DevOptions) -> None:
        self.settings = settings
        self.options = options
        self.signals: list[int] = []
        self.redis: RedisServer | None = None
        self.children: dict[str, subprocess.Popen[bytes]] = {}

    def run(self) -> int:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            with self._data_dir_lock():
                return self._run()
        finally:
            self._stop_children()
            if self.redis is not None:
                self.redis.stop()
                logger.info("Redis stopped")
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signals.append(signum)
        if len(self.signals) == 2 and self.children:
            logger.warning("%s again: killing the worker and the API", signal.Signals(signum).name)

    def _run(self) -> int:
        self._check_api_port()
        if not self.settings.auth_enabled:
            click.echo(click.style(self._open_warning(), fg="red", bold=True), err=True)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if self.settings.redis_configured:
            redis_shown = f"{self.settings.redacted_redis_url} (configured)"
        else:
            self.redis = RedisServer(
                self.options.data_dir.resolve(),
                port=self._redis_port(),
                appendonly=True,
                supervised=True,
            ).start()
            env["REDIS_URL"] = self.redis.url
            redis_shown = f"{self.redis.url} (private)"
        if self.signals:
            return 0
        api_args = ["api", "--host", self.options.host, "--port", str(self.options.port)]
        self._spawn("api", api_args, env)
        worker_args = ["worker"]
        if self.options.concurrency is not None:
            worker_args += ["--concurrency", str(self.options.concurrency)]
        if self.options.tasks_module:
            worker_args += ["--tasks", self.options.tasks_module]
        self._spawn("worker", worker_args, env)
        self._spawn("webhooks", ["webhooks"], env)  # the webhook dispatcher (docs/events.md)
        if not self._wait_until_healthy():
            return self._stop_or_fail()
        self._print_banner(redis_shown)
        while not self.signals and self._dead_child() is None:
            time.sleep(0.1)
        return self._stop_or_fail()

    @property
    def connect_host(self) -> str:
        """Where to reach the API (a wildcard bind address is reached on loopback)."""
        host = self.options.host
        return "127.0.0.1" if host in {"0.0.0.0", "", "::"} else host

    @property
    def api_url(self) -> str:
        host = self.connect_host
        return f"http://{f'[{host}]' if ':' in host else host}:{self.options.port}"

    def _redis_port(self) -> int:
        wanted = self.options.redis_port
        if wanted is None:
            return DEFAULT_REDIS_PORT if port_is_free(DEFAULT_REDIS_PORT) else free_port()
        return wanted or free_port()

    def _check_api_port(self) -> None:
        if not port_is_free(self.options.port, self.connect_host):
            raise DevError(f"port {self.options.port} is already in use; pick another with --port")

    @contextmanager
    def _data_dir_lock(self) -> Iterator[None]:
        """Hold a lock in the data dir, so two dev runs never share one Redis data dir."""
        if self.settings.redis_configured:
            yield
            return
        data_dir = self.options.data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True)
        with (data_dir / "dev.lock").open("w") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DevError(
                    f"another `jobsys dev` is using the data dir {data_dir}; "
                    "stop it or pass another --data-dir"
                ) from None
            yield

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.children[name] = subprocess.Popen(
            [sys.executable, "-m", "jobsys", *args],
            env=env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            # Only calls prctl (libc is resolved before the fork): safe with threads.
            preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
        logger.info("started the %s (pid %d)", name, self.children[name].pid)

    def _wait_until_healthy(self) -> bool:
        deadline = time.monotonic() + API_START_TIMEOUT_S
        with Client(self.api_url, timeout_s=1.0) as client:
            while not self.signals and self._dead_child() is None:
                try:
                    client.health()
                    return True
                except ClientError:
                    if time.monotonic() > deadline:
                        raise DevError(
                            f"the API did not answer on {self.api_url}/health "
                            f"within {API_START_TIMEOUT_S:.0f}s"
                        ) from None
                time.sleep(0.1)
        return False

    def _dead_child(self) -> str | None:
        """The name of a child that has exited, if any."""
        for name, proc in self.children.items():
            if proc.poll() is not None:
                return name
        redis = self.redis.process if self.redis is not None else None
        if redis is not None and redis.poll() is not None:
            return "Redis"
        return None

    def _stop_or_fail(self) -> int:
        """Stop everything after a signal (exit 0 if all went well) or a child's death (1)."""
        dead = None if self.signals else self._dead_child()
        if dead is not None:
            code = self._exit_code(dead)
            logger.error("the %s exited unexpectedly (%s); stopping the rest", dead, code)
            self._stop_children()
            return 1
        logger.info("stopping: the worker finishes its running jobs first")
        clean = self._stop_children()
        return 0 if clean else 1

    def _exit_code(self, name: str) -> str:
        proc = self.redis.process if name == "Redis" and self.redis else self.children[name]
        code = proc.poll() if proc is not None else None
        if code is not None and code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exit code {code}"

    def _stop_children(self) -> bool:
        """SIGTERM the worker and the API once, wait, kill on timeout or a second signal.

        Returns True when each exited with code 0 by itself.
        """
        running = {n: p for n, p in self.children.items() if p.poll() is None}
        for proc in running.values():
            proc.send_signal(signal.SIGTERM)
        signals_before = len(self.signals)
        deadline = time.monotonic() + self.settings.shutdown_grace_s + STOP_MARGIN_S
        killed = False
        while any(p.poll() is None for p in running.values()):
            if len(self.signals) > signals_before or time.monotonic() > deadline:
                for name, proc in running.items():
                    if proc.poll() is None:
                        logger.warning("killing the %s (pid %d)", name, proc.pid)
                        proc.kill()
                        killed = True
                for proc in running.values():
                    proc.wait()
                break
            time.sleep(0.05)
        for name, proc in running.items():
            if proc.returncode != 0:
                logger.warning("the %s stopped with %s", name, self._exit_code(name))
        self.children.clear()
        return not killed and all(p.returncode == 0 for p in running.values())

    def _open_warning(self) -> str:
        local = is_loopback(self.options.host)
        reach = "any local user and program" if local else "anyone who can reach it"
        return (
            f"WARNING: auth is OFF: no JOBSYS_PRODUCER_TOKENS or JOBSYS_ADMIN_TOKENS is set, so "
            f"{reach} may submit, read and cancel jobs on {self.api_url}"
        )

    def _print_banner(self, redis_shown: str) -> None:
        url = self.api_url
        settings = self.settings
        if settings.auth_enabled:
            auth = (
                f"on ({len(settings.producer_tokens)} producer, {len(settings.admin_tokens)} "
                "admin tokens): send Authorization: Bearer <token>; the CLI reads JOBSYS_TOKEN"
            )
            curl_auth = ' -H "Authorization: Bearer $JOBSYS_TOKEN"'
        else:
            auth = "OFF (open to all): set JOBSYS_PRODUCER_TOKENS / JOBSYS_ADMIN_TOKENS"
            curl_auth = ""
        lines = [
            "",
            "jobsys dev is running",
            f"  API:       {url}",
            f"  Dashboard: {url}/dashboard/",
            f"  Metrics:   {url}/metrics",
            f"  Redis:     {redis_shown}",
            f"  Auth:      {auth}",
        ]
        if not self.settings.redis_configured:
            lines.append(f"  Data dir:  {self.options.data_dir.resolve()}")
        lines += [
            "  Try:",
            f"    curl -s -X POST {url}/submit -H 'Content-Type: application/json'{curl_auth} \\",
            """      -d '{"task": "hello", "payload": {"name": "world"}}'""",
            f'    {_jobsys_command()} submit hello --payload \'{{"name": "world"}}\' '
            f"--wait --url {url}",
            "  Ctrl-C to stop",
            "",
        ]
        click.echo("\n".join(lines))


def _jobsys_command() -> str:
    """How the user can run `jobsys`: its name when on PATH, else its full path."""
    script = Path(sys.executable).parent / "jobsys"
    if shutil.which("jobsys") == str(script) or not script.exists():
        return "jobsys"
    return str(script)
