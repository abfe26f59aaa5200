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
- delay: ``tc netem`` on the link, where the kernel has ``sch_netem``
  (`netem_available`); otherwise delay is not offered.
"""

from __future__ import annotations

import os
import random
import shutil
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

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
    if _run("ip", "link", "add", name, "type", "dummy", check=False).returncode != 0:
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
    delays_ms: dict[str, int] = field(default_factory=dict)
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

    def delay(self, key: str, ms: int, jitter_ms: int = 0) -> None:
        """Delay every packet leaving Redis on link `key` (needs sch_netem)."""
        args = ["delay", f"{ms}ms"] + ([f"{jitter_ms}ms"] if jitter_ms else [])
        self._ns("tc", "qdisc", "replace", "dev", self.links[key].ns_if, "root", "netem", *args)
        self.delays_ms[key] = ms

    def heal(self, key: str | None = None) -> None:
        """Undo every fault on link `key` (all links when None)."""
        for k in [key] if key else list(self.links):
            self.faults[k] = None
            if self.delays_ms.pop(k, None) is not None:
                self._ns("tc", "qdisc", "del", "dev", self.links[k].ns_if, "root", check=False)
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


def _valkey_binary() -> str:
    from jobsys.redis_server import find_binary  # noqa: PLC0415

    return find_binary()
