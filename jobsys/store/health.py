"""`HealthProbe`: PING Redis within one total deadline, for GET /health.

A redis-py client bounds each socket operation, not a request: a fresh connection
of redis-py 8 sends HELLO 3, CLIENT SETNAME and two CLIENT SETINFO, then a
health-check PING, before the PING itself, so with a slow link one health check
took about seven round trips, each under the timeout (2.8 s with 200 ms one-way
delay). The probe instead keeps connections of
its own that send nothing on connect (RESP2, no client name, no library info, no
SELECT: PING needs none), and gives the connect and the PING together one deadline.
With REDIS_SENTINELS, each probe first asks the Sentinels for the primary's
address (within the same deadline; the newest answer of all of them) and PINGs
that node.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.connection import Connection, parse_url
from redis.retry import Retry

from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store.cluster import ClusterProbe
from jobsys.store.connection import sentinel_options
from jobsys.store.sentinel import EpochSentinel
from jobsys.store.translate import translate_errors

#: Idle connections kept for the next probes (one per concurrent probe at most).
MAX_IDLE = 4


class HealthProbe:
    """PINGs Redis and raises `StoreUnavailable` unless PONG comes within `deadline_s`.

    Thread-safe: each probe takes an idle connection of its own, or opens one. A
    connection whose probe failed is closed (a late PONG would confuse the next).
    With a password in the URL, a fresh connection also sends AUTH (one more
    round trip, bounded by the same remaining time but not counted against it).
    """

    def __init__(self, settings: Settings, deadline_s: float) -> None:
        self.deadline_s = deadline_s
        kwargs: dict[str, Any] = dict(parse_url(settings.redis_url))
        self._connection_class: type[Connection] = kwargs.pop("connection_class", Connection)
        kwargs.update(
            db=0,
            protocol=2,  # RESP3 would cost a HELLO round trip first
            client_name=None,
            driver_info=None,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 0),
        )
        self._kwargs = kwargs
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._master = settings.redis_sentinel_master or ""
        #: REDIS_CLUSTER_NODES: the cluster's own probe (jobsys/store/cluster.py).
        self._cluster = ClusterProbe(settings, deadline_s) if settings.redis_cluster_nodes else None
        self._sentinel = (
            EpochSentinel(
                list(settings.redis_sentinels),
                sentinel_kwargs=sentinel_options(settings, deadline_s),
            )
            if settings.redis_sentinels
            else None
        )

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless Redis answers PING before the deadline."""
        if self._cluster is not None:
            self._cluster.ping()
            return
        deadline = time.monotonic() + self.deadline_s
        conn: Connection | None = None
        ok = False
        try:
            with translate_errors():
                conn = self._connection(deadline)
                conn.send_command("PING", check_health=False)
                reply = conn.read_response(timeout=_remaining(deadline))
            if reply not in ("PONG", b"PONG"):
                raise StoreUnavailable(f"Redis answered PING with {reply!r}")
            ok = True
        finally:
            if conn is not None:
                self._put_back(conn, ok)

    def close(self) -> None:
        """Close the idle connections."""
        if self._cluster is not None:
            self._cluster.close()
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.disconnect()
        if self._sentinel is not None:
            for sentinel in self._sentinel.sentinels:
                sentinel.connection_pool.disconnect()

    def _connection(self, deadline: float) -> Connection:
        address: dict[str, Any] = {}
        if self._sentinel is not None:
            host, port = self._sentinel.discover_master(self._master)
            address = {"host": host, "port": port}
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        # An idle connection that reads as ready was closed by Redis (or holds a
        # stray reply), or one to a node that is no longer the primary: open a
        # new one instead.
        same_node = not address or (
            conn is not None and (conn.host, conn.port) == (address["host"], address["port"])
        )
        if conn is not None and same_node and not conn.can_read(timeout=0):
            return conn
        if conn is not None:
            conn.disconnect()
        remaining = _remaining(deadline)
        conn = self._connection_class(
            **(self._kwargs | address), socket_connect_timeout=remaining, socket_timeout=remaining
        )
        try:
            conn.connect()
        except redis.RedisError:
            conn.disconnect()
            raise
        return conn

    def _put_back(self, conn: Connection, ok: bool) -> None:
        if ok:
            with self._lock:
                if len(self._idle) < MAX_IDLE:
                    self._idle.append(conn)
                    return
        conn.disconnect()


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise redis.TimeoutError("the health check's deadline passed")
    return left
