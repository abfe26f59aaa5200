"""Many hosts on one machine: one network namespace per host, on a bridge of their own.

`MultiHost.create()` makes a switch namespace holding a bridge, and `add_host(name)`
a namespace per host, joined to the bridge by a veth, with an address in a private
/24 chosen for the run (10.216.N.0/24, N unused on this machine)::

    namespace <p>-sw: bridge br0
      ├── veth ── namespace <p>-redis   10.216.N.10   redis-server
      ├── veth ── namespace <p>-api     10.216.N.11   jobsys api
      ├── veth ── namespace <p>-w1      10.216.N.12   jobsys worker (hostname host-w1)
      ├── veth ── namespace <p>-w2      10.216.N.13   jobsys worker (hostname host-w2)
      └── veth ── root namespace        10.216.N.1    the test's own checks and load

The root namespace's end is the only change to it: an address on that veth, so the
/24 is routed there and nowhere else; `route_check` asserts it (``ip route get``)
before the test sends anything. A process runs on a host with
``ip netns exec <ns> unshare --uts sh -c 'hostname <h> && exec "$@"'``: its own
network and its own host name (so its worker id and ``GET /workers`` name it), while
its PID, process group and parent-death signal are those of the child started
(`prefix`). `cut(name)` drops every packet of that host, both ways, with nftables
inside its namespace: the others see silence, as across a pulled cable.
"""

from __future__ import annotations

import os
import random
import stat
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from netns import _run

#: The second octet of the run's /24 (10.216.N.0/24).
NET = "10.216"


@dataclass
class MultiHost:
    """A bridge and one namespace per host (see the module docstring)."""

    prefix: str = field(default_factory=lambda: f"jh{os.getpid() % 10000}{random.randrange(100)}")
    subnet: int = 0
    hosts: dict[str, str] = field(default_factory=dict)  # name -> address
    _links: list[str] = field(default_factory=list)
    created: bool = False

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def ns(self, name: str) -> str:
        return f"{self.prefix}-{name}"

    def create(self) -> MultiHost:
        used = _run("ip", "-4", "addr", "show").stdout + _run("ip", "-4", "route", "show").stdout
        free = [n for n in range(1, 250) if f"{NET}.{n}." not in used]
        if not free:
            raise RuntimeError(f"no free {NET}.N.0/24 subnet")
        self.subnet = random.choice(free)
        _run("ip", "netns", "add", self.switch)
        self.created = True
        self._in(self.switch, "ip", "link", "set", "lo", "up")
        self._in(self.switch, "ip", "link", "add", "br0", "type", "bridge")
        self._in(self.switch, "ip", "link", "set", "br0", "up")
        # The root namespace's leg: an address in the /24, so it is routed here only.
        root_if = f"{self.prefix}r"[-15:]
        self._veth(root_if, None, f"{NET}.{self.subnet}.1")
        return self

    def add_host(self, name: str) -> str:
        """A namespace for host `name`, on the bridge; returns its address."""
        address = f"{NET}.{self.subnet}.{10 + len(self.hosts)}"
        _run("ip", "netns", "add", self.ns(name))
        self._in(self.ns(name), "ip", "link", "set", "lo", "up")
        self._veth(f"{self.prefix}{len(self.hosts)}"[-15:], self.ns(name), address)
        for chain, hook in (("in", "input"), ("out", "output")):
            if chain == "in":
                self._in(self.ns(name), "nft", "add", "table", "inet", "cut")
            spec = f"{{ type filter hook {hook} priority 0; policy accept; }}"
            self._in(self.ns(name), "nft", "add", "chain", "inet", "cut", chain, spec)
        self.hosts[name] = address
        return address

    def prefix_for(self, name: str, hostname: str | None = None) -> list[str]:
        """The argv prefix that runs a command on host `name` with its own host name."""
        return [
            "ip", "netns", "exec", self.ns(name), "unshare", "--uts", "sh", "-c",
            f'hostname {hostname or name} && exec "$@"', "sh",
        ]  # fmt: skip

    def launcher(self, name: str, binary: str, directory: Path) -> str:
        """An executable that runs `binary` on host `name` (for RedisServer(binary=...))."""
        path = directory / f"{Path(binary).name}-on-{name}"
        path.write_text(f'#!/bin/sh\nexec ip netns exec {self.ns(name)} {binary} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        return str(path)

    def route_check(self, address: str) -> None:
        """Assert that the root namespace reaches `address` through the run's own veth."""
        route = _run("ip", "route", "get", address).stdout
        if f"dev {self.prefix}r" not in route:
            raise AssertionError(f"{address} is not routed to the test bridge: {route!r}")

    def cut(self, name: str) -> None:
        """Drop every packet of host `name`, both ways."""
        for chain in ("in", "out"):
            self._in(self.ns(name), "nft", "add", "rule", "inet", "cut", chain, "drop")

    def isolate(self, name: str, *, but: str) -> None:
        """Drop every packet of host `name` except those to and from address `but`
        (a partition that leaves one side able to reach it: split brain)."""
        self._in(
            self.ns(name),
            "nft",
            "add",
            "rule",
            "inet",
            "cut",
            "in",
            "ip",
            "saddr",
            "!=",
            but,
            "drop",
        )
        self._in(
            self.ns(name),
            "nft",
            "add",
            "rule",
            "inet",
            "cut",
            "out",
            "ip",
            "daddr",
            "!=",
            but,
            "drop",
        )

    @property
    def root_address(self) -> str:
        """The root namespace's address on the bridge (the test's own leg)."""
        return f"{NET}.{self.subnet}.1"

    def heal(self, name: str) -> None:
        for chain in ("in", "out"):
            self._in(self.ns(name), "nft", "flush", "chain", "inet", "cut", chain)

    def destroy(self) -> None:
        """Remove every namespace and link (safe to call twice)."""
        if not self.created:
            return
        for link in self._links:
            _run("ip", "link", "del", link, check=False)
        for name in self.hosts:
            _run("ip", "netns", "del", self.ns(name), check=False)
        _run("ip", "netns", "del", self.switch, check=False)
        self.created = False

    def _veth(self, name: str, ns: str | None, address: str) -> None:
        peer = f"{name}b"[-15:]
        _run("ip", "link", "add", name, "type", "veth", "peer", "name", peer)
        if ns is None:
            self._links.append(name)  # the root namespace's end: deleted by destroy()
        else:
            _run("ip", "link", "set", name, "netns", ns)
        _run("ip", "link", "set", peer, "netns", self.switch)
        self._in(self.switch, "ip", "link", "set", peer, "master", "br0")
        self._in(self.switch, "ip", "link", "set", peer, "up")
        where = [] if ns is None else ["ip", "netns", "exec", ns]
        _run(*where, "ip", "addr", "add", f"{address}/24", "dev", name)
        _run(*where, "ip", "link", "set", name, "up")

    def _in(self, ns: str, *args: str) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", ns, *args)
