"""A TCP relay that delays every chunk it forwards: network delay without ``tc netem``.

    python delay_relay.py --upstream HOST:PORT --listen KEY=HOST:PORT [...] --control PATH

The fault suite runs it *inside* Redis's network namespace (``ip netns exec``), so
workers and the API reach Redis through it over the real veth links of `netns`,
and the link's nftables faults still apply on the way. Each ``--listen`` is one
path (``w`` for the workers, ``a`` for the API) with a delay of its own, set at
run time over the control socket (a Unix socket; one JSON object per line)::

    {"op": "delay", "key": "w", "ms": 200, "jitter_ms": 50}  ->  {"ok": true}
    {"op": "stats"}                                          ->  {"ok": true, "links": {...}}

What it does to a connection: the TCP handshake with the client is the kernel's
(not delayed); the relay then connects to the upstream at once. Every chunk it
reads, in either direction, is written on ``ms`` ± ``jitter_ms`` (uniform) later,
one-way, so a request-response round trip takes twice the delay. A chunk is never
sent before the chunk read before it on the same connection and direction (its
release time is at least the previous one's): byte order is kept and jitter
never reorders. A new delay applies to chunks read from then on; chunks already
waiting keep theirs, like packets already in flight. An end of stream (FIN) is
delayed like data. A connection the other side reset drops what still waits for
it. Stdlib only, so it runs under any Python.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHUNK = 65536


@dataclass
class LinkState:
    """The delay of one path, and what passed through it."""

    key: str
    ms: float = 0.0
    jitter_ms: float = 0.0
    connections: int = 0
    open: int = 0
    chunks: int = 0
    bytes: int = 0
    delayed_chunks: int = 0
    max_wait_ms: float = 0.0
    rng: random.Random = field(default_factory=random.Random)

    def sample_s(self) -> float:
        """The one-way delay of the next chunk, in seconds (never negative)."""
        jitter = self.rng.uniform(-self.jitter_ms, self.jitter_ms) if self.jitter_ms else 0.0
        return max(0.0, self.ms + jitter) / 1000.0

    def stats(self) -> dict[str, Any]:
        return {
            "ms": self.ms,
            "jitter_ms": self.jitter_ms,
            "connections": self.connections,
            "open": self.open,
            "chunks": self.chunks,
            "bytes": self.bytes,
            "delayed_chunks": self.delayed_chunks,
            "max_wait_ms": round(self.max_wait_ms, 1),
        }


async def _pump(
    link: LinkState,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    """Copy `reader` to `writer`, each chunk released `link.sample_s()` after it was read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        last = 0.0
        while True:
            try:
                data = await reader.read(CHUNK)
            except (ConnectionError, OSError):
                data = b""
            release = max(loop.time() + link.sample_s(), last)
            last = release
            queue.put_nowait((release, data))
            if not data:
                return
            link.chunks += 1
            link.bytes += len(data)

    async def write() -> None:
        while True:
            release, data = await queue.get()
            wait = release - loop.time()
            if wait > 0:
                link.delayed_chunks += 1
                link.max_wait_ms = max(link.max_wait_ms, wait * 1000)
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    reading = asyncio.create_task(read())
    try:
        await write()
    except (ConnectionError, OSError):
        pass  # the receiving side is gone: what still waits for it is dropped
    finally:
        reading.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await reading


async def _serve(
    link: LinkState,
    upstream: tuple[str, int],
    client_r: asyncio.StreamReader,
    client_w: asyncio.StreamWriter,
) -> None:
    link.connections += 1
    link.open += 1
    try:
        try:
            up_r, up_w = await asyncio.open_connection(*upstream)
        except OSError:
            client_w.transport.abort()
            return
        try:
            # Both directions until each has ended (or its receiver is gone); a
            # direction that breaks takes the whole connection down.
            _, rest = await asyncio.wait(
                [
                    asyncio.create_task(_pump(link, client_r, up_w)),
                    asyncio.create_task(_pump(link, up_r, client_w)),
                ],
                return_when=asyncio.FIRST_COMPLETED,
            )
            if any(w.is_closing() for w in (client_w, up_w)):
                for task in rest:
                    task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)
        finally:
            for w in (up_w, client_w):
                w.close()
    finally:
        link.open -= 1


async def _control(
    links: dict[str, LinkState], reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while line := await reader.readline():
            try:
                req = json.loads(line)
                if req["op"] == "delay":
                    link = links[req["key"]]
                    link.ms = float(req["ms"])
                    link.jitter_ms = float(req.get("jitter_ms", 0))
                    reply: dict[str, Any] = {"ok": True}
                elif req["op"] == "stats":
                    reply = {"ok": True, "links": {k: v.stats() for k, v in links.items()}}
                else:
                    reply = {"ok": False, "error": f"unknown op {req['op']!r}"}
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            writer.write(json.dumps(reply).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream", required=True, type=_addr)
    parser.add_argument("--listen", action="append", required=True, help="KEY=HOST:PORT")
    parser.add_argument("--control", required=True, help="path of the control Unix socket")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)

    links: dict[str, LinkState] = {}
    servers = []
    for spec in args.listen:
        key, _, addr = spec.partition("=")
        link = links[key] = LinkState(key, rng=random.Random(args.seed))
        host, port = _addr(addr)

        async def handle(
            r: asyncio.StreamReader, w: asyncio.StreamWriter, link: LinkState = link
        ) -> None:
            # Cancelled at shutdown: end quietly (asyncio would log the cancelled task).
            with contextlib.suppress(asyncio.CancelledError):
                await _serve(link, args.upstream, r, w)

        servers.append(await asyncio.start_server(handle, host, port, reuse_address=True))
    with contextlib.suppress(FileNotFoundError):
        os.unlink(args.control)
    servers.append(
        await asyncio.start_unix_server(lambda r, w: _control(links, r, w), args.control)
    )

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(json.dumps({"ready": True, "pid": os.getpid()}), flush=True)
    await stop.wait()
    for s in servers:
        s.close()


# -- for the processes that start and steer a relay ------------------------------


def start(args: Sequence[str], prefix: Sequence[str] = (), **popen: Any) -> subprocess.Popen[str]:
    """Start this relay with command line `args`, after `prefix` (``ip netns exec NS``
    to run it in a namespace); return once it listens. `popen`: more Popen options.
    Raises RuntimeError when it does not start."""
    proc = subprocess.Popen(
        [*prefix, sys.executable, "-u", __file__, *args], stdout=subprocess.PIPE, text=True, **popen
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # {"ready": true} once it listens
    if not line.startswith('{"ready"'):
        proc.kill()
        proc.wait(5)
        raise RuntimeError(f"the delay relay did not start: {line!r}")
    return proc


def request(control: str | Path, **req: Any) -> dict[str, Any]:
    """Send one request to the control socket `control`; its answer. Raises
    RuntimeError when the relay refuses it."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(str(control))
        s.sendall(json.dumps(req).encode() + b"\n")
        reply: dict[str, Any] = json.loads(s.makefile().readline())
    if not reply.get("ok"):
        raise RuntimeError(f"delay relay: {reply}")
    return reply


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
