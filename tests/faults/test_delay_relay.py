"""The delay relay itself (delay_relay.py), on 127.0.0.1 in front of an echo server:
it delays each direction by the set one-way delay, keeps byte order under jitter,
and passes an end of stream on. No namespace needed, so it runs everywhere."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import delay_relay
import pytest

from jobsys.local.redis_server import free_port


def _echo_server() -> tuple[socket.socket, int]:
    srv = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def echo(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    return srv, srv.getsockname()[1]


class Relay:
    def __init__(self, port: int, control: Path) -> None:
        self.port, self.control = port, control

    def request(self, **req: object) -> dict[str, Any]:
        return delay_relay.request(self.control, **req)


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    srv, upstream = _echo_server()
    port, control = free_port(), tmp_path / "relay.sock"
    proc = delay_relay.start(
        [f"--upstream=127.0.0.1:{upstream}", f"--listen=w=127.0.0.1:{port}",
         f"--control={control}", "--seed=1"]
    )  # fmt: skip
    try:
        yield Relay(port, control)
    finally:
        proc.terminate()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        srv.close()


def _round_trip(port: int, data: bytes) -> tuple[bytes, float]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        t = time.monotonic()
        s.sendall(data)
        got = b""
        while len(got) < len(data):
            chunk = s.recv(65536)
            assert chunk, "the relay closed the connection"
            got += chunk
        return got, time.monotonic() - t


def test_delays_each_direction_and_keeps_byte_order(relay: Relay) -> None:
    _, fast = _round_trip(relay.port, b"ping")
    relay.request(op="delay", key="w", ms=150)
    _, slow = _round_trip(relay.port, b"ping")
    assert 0.3 <= slow < 0.3 + fast + 0.2, (fast, slow)  # 150 ms each way

    # Heavy jitter (10 ± 9 ms) on many small writes: the bytes still come back in order.
    relay.request(op="delay", key="w", ms=10, jitter_ms=9)
    data = b"".join(i.to_bytes(4, "big") for i in range(20000))
    with socket.create_connection(("127.0.0.1", relay.port), timeout=10) as s:
        for i in range(0, len(data), 400):
            s.sendall(data[i : i + 400])
        got = b""
        while len(got) < len(data):
            got += s.recv(65536)
        s.shutdown(socket.SHUT_WR)
        assert s.recv(1) == b""  # the end of stream came back through (echo closed)
    assert got == data
    stats = relay.request(op="stats")["links"]
    assert isinstance(stats, dict) and stats["w"]["delayed_chunks"] > 0
