"""Following the primary through Sentinel failovers.

redis-py's ``Sentinel.master_for`` asks the Sentinels for the primary whenever a
connection connects, and closes a connection that meets a demoted node's READONLY.
Measured (docs/scaling.md), that leaves gaps this module closes:

- a pooled connection to an old primary that still takes writes (a forced
  ``SENTINEL FAILOVER`` keeps it writable until the Sentinels reconfigure it, ~10 s)
  is never re-checked: writes acknowledged there are lost. `SwitchWatcher`
  subscribes to ``+switch-master`` on **every** Sentinel and bumps a generation;
  `FollowingConnection` compares it before each command and reconnects when it
  moved, in the thread that owns the connection (closing sockets other threads
  are using would race them).
- ``discover_master`` takes the first Sentinel's answer, which may still name the
  old primary for a second or two after another Sentinel switched. `EpochSentinel`
  asks them all and takes the answer with the highest ``config-epoch``.
- a connection that reached a node which is not (or no longer) a primary: the
  connection asks ``ROLE`` when it connects and refuses a replica; and a
  connection that answers MASTERDOWN, LOADING, TRYAGAIN or NOREPLICAS is closed so
  the next call asks the Sentinels again (each is still raised: a 503 at the API,
  a back-off in a worker).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any

import redis
from redis.sentinel import (
    MasterNotFoundError,
    Sentinel,
    SentinelConnectionPool,
    SentinelManagedConnection,
)

logger = logging.getLogger(__name__)

#: The channel every Sentinel publishes a completed failover on:
#: ``<master name> <old ip> <old port> <new ip> <new port>``.
SWITCH_CHANNEL = "+switch-master"
#: Error answers after which a connection is closed (its node may no longer be the
#: primary, or not yet be one): the next call asks the Sentinels again.
_DROP_CODES = ("NOREPLICAS ",)
_DROP_ERRORS = (
    redis.exceptions.MasterDownError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
)


class EpochSentinel(Sentinel):
    """A `Sentinel` whose `discover_master` asks every Sentinel and believes the
    one with the newest configuration (highest ``config-epoch``), not the first to
    answer: during a failover the Sentinels learn the new primary one by one."""

    def discover_master(self, service_name: str) -> tuple[str, int]:
        best: tuple[int, tuple[str, int]] | None = None
        errors = []
        for sentinel in self.sentinels:
            try:
                state = sentinel.sentinel_master(service_name)
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as e:
                errors.append(f"{sentinel}: {e}")
                continue
            if isinstance(state, dict) and self._usable(state, service_name):
                epoch = int(state.get("config-epoch", 0))
                if best is None or epoch > best[0]:
                    best = (epoch, (str(state["ip"]), int(state["port"])))
        if best is None:
            detail = f" ({'; '.join(errors)})" if errors else ""
            raise MasterNotFoundError(f"No master found for {service_name!r}{detail}")
        return best[1]

    def _usable(self, state: dict[str, Any], service_name: str) -> bool:
        return bool(self.check_master_state(state, service_name))  # type: ignore[no-untyped-call]


class SwitchWatcher:
    """Counts the failovers of one primary that any of its Sentinels announces.

    One daemon thread per Sentinel per process, started on first use in each
    process (a forked child starts its own: threads do not survive a fork), and
    ended within a second once no pool uses the watcher any more. A thread whose
    Sentinel is unreachable tries again every second; when it subscribes again
    after a break it also bumps the generation (a switch may have happened
    meanwhile; reconnecting costs one connect per connection).
    """

    def __init__(
        self, sentinels: list[tuple[str, int]], master: str, sentinel_kwargs: dict[str, Any]
    ) -> None:
        self.sentinels = sentinels
        self.master = master
        self._kwargs = sentinel_kwargs
        #: Bumped on every ``+switch-master`` for `master` (read without a lock: an
        #: int read is atomic, and a stale read only delays a reconnect by a command).
        self.generation = 0
        #: The pools that follow this watcher: its threads end when none is left.
        self._pools: weakref.WeakSet[Any] = weakref.WeakSet()
        #: The current listeners' run: (process id, token); their loops end when it
        #: changes (a fork, or no pool left).
        self._run: tuple[int, object] | None = None
        self._lock = threading.Lock()

    def attach(self, pool: Any) -> None:
        """Count `pool` as a user of this watcher (held weakly)."""
        self._pools.add(pool)

    def ensure_running(self) -> None:
        """Start the listeners in this process unless they run."""
        pid = os.getpid()
        run = self._run
        if run is not None and run[0] == pid:
            return
        with self._lock:
            run = self._run
            if run is not None and run[0] == pid:
                return
            run = self._run = (pid, object())
            for host, port in self.sentinels:
                threading.Thread(
                    target=self._listen,
                    args=(host, port, run),
                    name=f"jobsys-sentinel-{host}:{port}",
                    daemon=True,
                ).start()

    def _current(self, run: tuple[int, object]) -> bool:
        """True while `run` is this process's listeners' and a pool still follows them."""
        if self._run is not run:
            return False
        if len(self._pools) == 0:
            with self._lock:
                if self._run is run:
                    self._run = None
            return False
        return True

    def bump(self, why: str) -> None:
        self.generation += 1
        logger.info("Sentinel: %s; connections reconnect to the primary", why)

    def _listen(self, host: str, port: int, run: tuple[int, object]) -> None:
        broken = False
        while self._current(run):
            client = redis.Redis(
                host=host,
                port=port,
                decode_responses=True,
                health_check_interval=10,
                **self._kwargs,
            )
            try:
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(SWITCH_CHANNEL)
                if broken:
                    self.bump(f"listening to {host}:{port} again")
                    broken = False
                while self._current(run):
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._on_message(str(message["data"]), f"{host}:{port}")
            except redis.RedisError as e:
                if not broken:
                    logger.warning("Sentinel %s:%s unreachable (%s); retrying", host, port, e)
                broken = True
                time.sleep(1.0)
            finally:
                client.close()

    def _on_message(self, data: str, source: str) -> None:
        name, *addresses = data.split()
        if name == self.master and len(addresses) == 4:
            self.bump(f"{source} switched {name} to {addresses[2]}:{addresses[3]}")


_watchers: dict[tuple[Any, ...], SwitchWatcher] = {}
_watchers_lock = threading.Lock()


def watcher_for(
    sentinels: list[tuple[str, int]], master: str, sentinel_kwargs: dict[str, Any]
) -> SwitchWatcher:
    """The process's one `SwitchWatcher` of these Sentinels and this master (every
    client of the same deployment shares its listener threads)."""
    key = (tuple(sentinels), master, tuple(sorted(sentinel_kwargs.items())))
    with _watchers_lock:
        watcher = _watchers.get(key)
        if watcher is None:
            watcher = _watchers[key] = SwitchWatcher(sentinels, master, sentinel_kwargs)
        return watcher


class FollowingPool(SentinelConnectionPool):
    """A Sentinel pool whose connections follow `watcher` (passed as ``watcher=``)."""

    def __init__(self, service_name: str, sentinel_manager: Sentinel, **kwargs: Any) -> None:
        self.watcher: SwitchWatcher = kwargs.pop("watcher")
        ssl = kwargs.pop("ssl", False)
        following = FollowingSSLConnection if ssl else FollowingConnection
        kwargs.setdefault("connection_class", following)
        super().__init__(service_name, sentinel_manager, **kwargs)  # type: ignore[no-untyped-call]
        # What a connection holds as its `connection_pool` (redis-py's proxy).
        self.proxy.watcher = self.watcher  # type: ignore[attr-defined]
        self.watcher.attach(self)

    def disconnect(self, inuse_connections: bool = True) -> None:
        """Close the connections; a full close (`Store.close`) also closes those to
        the Sentinels that find the primary (they open again when needed), so it
        leaves no socket behind. (redis-py closes only the idle ones when the
        primary moved, in the middle of other threads' lookups.)"""
        super().disconnect(inuse_connections)
        if inuse_connections:
            for sentinel in self.proxy.sentinel_manager.sentinels:
                sentinel.connection_pool.disconnect()


class FollowingConnection(SentinelManagedConnection):
    """A connection to the primary that reconnects after a switch (see the module)."""

    #: The watcher's generation when this connection's socket was made; -1 while it
    #: has none (set on connect, reset by every disconnect: redis-py drops a socket
    #: only through `disconnect`), so no private attribute of redis-py is read.
    _generation = -1

    def on_connect_check_health(self, check_health: bool = True) -> None:
        watcher: SwitchWatcher = self.connection_pool.watcher
        watcher.ensure_running()
        self._generation = watcher.generation
        super().on_connect_check_health(check_health=check_health)
        self.send_command("ROLE", check_health=False)  # type: ignore[no-untyped-call]
        role = self.read_response()
        kind = role[0].decode() if isinstance(role[0], bytes) else str(role[0])
        if kind != "master":
            self.disconnect()
            raise redis.ConnectionError(
                f"{self.host}:{self.port} is a {kind}, not the primary (the Sentinels "
                "have not switched yet)"
            )

    def disconnect(self, *args: Any, **kwargs: Any) -> None:
        self._generation = -1
        super().disconnect(*args, **kwargs)  # type: ignore[no-untyped-call]

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        watcher: SwitchWatcher = self.connection_pool.watcher
        if self._generation != watcher.generation:
            # No socket, or one made before the primary switched. Connection's own
            # send_packed_command would reconnect to the same address (after any
            # disconnect, a READONLY one too): connect() asks the Sentinels.
            self.disconnect()
            self.connect()  # type: ignore[no-untyped-call]
        send = super().send_packed_command
        send(command, check_health=check_health)  # type: ignore[no-untyped-call]

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except _DROP_ERRORS:
            self.disconnect()
            raise
        except redis.ResponseError as e:
            if str(e).startswith(_DROP_CODES):
                self.disconnect()
            raise


class FollowingSSLConnection(FollowingConnection, redis.SSLConnection):
    pass
