"""A real network between jobsys and Redis: Redis in a network namespace of its own.

The namespace is created and removed by the test. Redis runs inside it and is
reached from the root namespace over veth pairs, one per path, each a private
/30 in 10.213.N.0/24 that exists only between this machine's root namespace and
the namespace made here (no route leads anywhere else)::

    root namespace                         namespace <name>
    workers ── 10.213.N.1 ═ veth "w" ═ 10.213.N.2 ──┐
    API     ── 10.213.N.5 ═ veth "a" ═ 10.213.N.6 ──┼── redis-server
    checker ── 10.213.N.9 ═ veth "c" ═ 10.213.N.10 ─┘

so the workers' path and the API's path to Redis can be cut separately while the
suite's own checks still see Redis. Faults are applied inside the namespace:

- a partition: nftables drops every packet of the link in both directions (a
  black hole: TCP sees silence and times out, as across a real cut);
- loss: nftables drops a random share of the link's packets (``numgen random``);
- delay: a userspace TCP relay (`delay_relay.py`, started by `start_relay`) that
  runs inside the namespace and listens on the workers' and the API's links; the
  clients of a delay scenario connect to it instead of to Redis, and it forwards
  every chunk after the link's one-way delay (± jitter), keeping byte order. It
  is not ``tc netem`` (kernels without the ``sch_netem`` module have none;
  `netem_available` says whether this one has): the TCP handshake is not delayed,
  and there is no packet-level reordering or loss, only per-chunk delay (see the
  relay's docstring).
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import signal
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import delay_relay

from jobsys.local.procs import die_with_parent

#: The three paths to Redis, in the order of their /30 subnets.
LINKS = ("w", "a", "c")


def _run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=15)


def unavailable_reason() -> str | None:
    """Why network namespaces cannot be used here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed (apt-get install iproute2 nftables)"
    probe = f"jfprobe{os.getpid() % 100000}"
    made = _run("ip", "netns", "add", probe, check=False)
    if made.returncode != 0:
        return f"`ip netns add` is not permitted here: {made.stderr.strip()}"
    try:
        nft = _run(
            "ip", "netns", "exec", probe, "nft", "add", "table", "inet", "probe", check=False
        )
        if nft.returncode != 0:
            return f"nftables is not usable in a namespace: {nft.stderr.strip()}"
    finally:
        _run("ip", "netns", "del", probe, check=False)
    return None


def netem_available() -> bool:
    """True when the kernel offers ``tc qdisc ... netem`` (module sch_netem)."""
    name = f"jfq{os.getpid() % 100000}"
    # A veth pair (the dummy link type is a module too, and may be missing as well).
    made = _run("ip", "link", "add", name, "type", "veth", "peer", "name", f"{name}p", check=False)
    if made.returncode != 0:
        return False
    try:
        return (
            _run(
                "tc", "qdisc", "add", "dev", name, "root", "netem", "delay", "1ms", check=False
            ).returncode
            == 0
        )
    finally:
        _run("ip", "link", "del", name, check=False)


@dataclass
class Link:
    """One veth pair between the root namespace and Redis's namespace."""

    key: str
    host_if: str
    ns_if: str
    host_ip: str
    ns_ip: str


@dataclass
class RedisNetns:
    """A network namespace for Redis with one veth link per path (see the module doc)."""

    name: str = field(default_factory=lambda: f"jf{os.getpid() % 100000}{random.randrange(100)}")
    links: dict[str, Link] = field(default_factory=dict)
    #: Per link: None (healthy), "cut", or a loss percentage.
    faults: dict[str, int | str | None] = field(default_factory=dict)
    delays_ms: dict[str, float] = field(default_factory=dict)
    relay: DelayRelay | None = None
    created: bool = False

    def create(self) -> RedisNetns:
        subnet = self._free_subnet()
        _run("ip", "netns", "add", self.name)
        self.created = True
        self._ns("ip", "link", "set", "lo", "up")
        for i, key in enumerate(LINKS):
            base = 4 * i
            link = Link(
                key=key,
                host_if=f"{self.name}{key}h"[-15:],
                ns_if=f"{self.name}{key}n"[-15:],
                host_ip=f"10.213.{subnet}.{base + 1}",
                ns_ip=f"10.213.{subnet}.{base + 2}",
            )
            _run("ip", "link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if)
            _run("ip", "link", "set", link.ns_if, "netns", self.name)
            _run("ip", "addr", "add", f"{link.host_ip}/30", "dev", link.host_if)
            _run("ip", "link", "set", link.host_if, "up")
            self._ns("ip", "addr", "add", f"{link.ns_ip}/30", "dev", link.ns_if)
            self._ns("ip", "link", "set", link.ns_if, "up")
            self.links[key] = link
            self.faults[key] = None
        self._ns("nft", "add", "table", "inet", "faults")
        for chain, hook in (("in", "input"), ("out", "output")):
            spec = f"{{ type filter hook {hook} priority 0; policy accept; }}"
            self._ns("nft", "add", "chain", "inet", "faults", chain, spec)
        return self

    def ip(self, key: str) -> str:
        """Redis's address on link `key` (what clients on that path connect to)."""
        return self.links[key].ns_ip

    def launcher(self, directory: Path) -> str:
        """An executable that runs ``redis-server`` inside the namespace (for RedisServer)."""
        binary = shutil.which("redis-server") or _valkey_binary()
        path = directory / "redis-in-netns"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.name} {binary} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    # -- faults ----------------------------------------------------------------

    def cut(self, key: str) -> None:
        """Partition: drop every packet on link `key`, both ways."""
        self.faults[key] = "cut"
        self._apply()

    def loss(self, key: str, percent: int) -> None:
        """Drop `percent` % of the packets on link `key`, at random, both ways."""
        self.faults[key] = percent
        self._apply()

    def start_relay(self, upstream_port: int, directory: Path, port: int) -> DelayRelay:
        """Start the delay relay in the namespace: it listens on `port` of the workers'
        and the API's links and forwards to Redis (``upstream_port``, reached inside
        the namespace). Clients that should see delay connect to `relay_url`."""
        self.relay = DelayRelay.start(self, upstream_port, directory, port)
        return self.relay

    def delay(self, key: str, ms: float, jitter_ms: float = 0) -> None:
        """Delay every chunk on link `key` by `ms` ± `jitter_ms`, each way (needs the relay)."""
        if self.relay is None:
            raise RuntimeError("delay needs the relay: call start_relay first")
        self.relay.set_delay(key, ms, jitter_ms)
        self.delays_ms[key] = ms

    def heal(self, key: str | None = None) -> None:
        """Undo every fault on link `key` (all links when None)."""
        for k in [key] if key else list(self.links):
            self.faults[k] = None
            if self.delays_ms.pop(k, None) is not None and self.relay is not None:
                self.relay.set_delay(k, 0)
        self._apply()

    def _apply(self) -> None:
        for chain in ("in", "out"):
            self._ns("nft", "flush", "chain", "inet", "faults", chain)
        for key, fault in self.faults.items():
            if fault is None:
                continue
            ifname = self.links[key].ns_if
            match = [] if fault == "cut" else ["numgen", "random", "mod", "100", "<", str(fault)]
            for chain, direction in (("in", "iifname"), ("out", "oifname")):
                self._ns(
                    "nft", "add", "rule", "inet", "faults", chain, direction, ifname, *match, "drop"
                )

    # -- teardown --------------------------------------------------------------

    def destroy(self) -> None:
        """Remove the namespace and its links (safe to call twice, or after a failed create)."""
        if self.relay is not None:
            self.relay.stop()
            self.relay = None
        if not self.created:
            return
        for link in self.links.values():
            _run("ip", "link", "del", link.host_if, check=False)
        _run("ip", "netns", "del", self.name, check=False)
        self.created = False

    def _ns(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", self.name, *args, check=check)

    @staticmethod
    def _free_subnet() -> int:
        used = _run("ip", "-4", "addr", "show").stdout
        for _ in range(200):
            n = random.randrange(1, 250)
            if f"10.213.{n}." not in used:
                return n
        raise RuntimeError("no free 10.213.N.0/24 subnet for the fault namespace")


class DelayRelay:
    """`delay_relay.py` running inside a `RedisNetns`, on the links "w" and "a"."""

    #: The links the relay serves (the checker's link "c" always goes straight to Redis).
    KEYS = ("w", "a")

    def __init__(self, ns: RedisNetns, port: int, control: Path, popen: subprocess.Popen[str]):
        self.ns, self.port, self.control, self.popen = ns, port, control, popen

    @classmethod
    def start(cls, ns: RedisNetns, upstream_port: int, directory: Path, port: int) -> DelayRelay:
        directory.mkdir(parents=True, exist_ok=True)
        control = directory / "relay.sock"
        log = (directory / "relay.log").open("a")
        listen = [f"--listen={k}={ns.ip(k)}:{port}" for k in cls.KEYS]
        try:
            popen = delay_relay.start(
                [f"--upstream={ns.ip('c')}:{upstream_port}", *listen, f"--control={control}"],
                ["ip", "netns", "exec", ns.name],
                stderr=log, stdin=subprocess.DEVNULL,
                process_group=0, preexec_fn=die_with_parent(),
            )  # fmt: skip
        except RuntimeError as e:
            raise RuntimeError(f"{e} (log in {directory})") from None
        finally:
            log.close()
        return cls(ns, port, control, popen)

    def url(self, key: str, db: int = 0) -> str:
        """The Redis URL of path `key` through the relay."""
        return f"redis://{self.ns.ip(key)}:{self.port}/{db}"

    def request(self, **req: Any) -> dict[str, Any]:
        return delay_relay.request(self.control, **req)

    def set_delay(self, key: str, ms: float, jitter_ms: float = 0) -> None:
        self.request(op="delay", key=key, ms=ms, jitter_ms=jitter_ms)

    def stats(self) -> dict[str, dict[str, Any]]:
        links: dict[str, dict[str, Any]] = self.request(op="stats")["links"]
        return links

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        if self.popen.stdout is not None:
            self.popen.stdout.close()


def _valkey_binary() -> str:
    from jobsys.local.redis_server import find_binary  # noqa: PLC0415

    return find_binary()
