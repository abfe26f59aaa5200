"""Connecting to Redis the ways REDIS_URL allows: a password, and TLS (rediss://)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobsys.errors import IdempotencyConflict, StoreFull, StoreUnavailable
from jobsys.local.redis_server import RedisServer, find_binary, free_port, port_is_free
from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys
from jobsys.store.wire import Wire


def roundtrip(url: str) -> None:
    store = Store(Settings.from_env({"REDIS_URL": url}))
    try:
        job_id = store.submit("hello", {"n": 1})
        assert store.get(job_id).payload == {"n": 1}
    finally:
        store.close()


@pytest.fixture
def password_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path, appendonly=False, extra_args=["--requirepass", "s3cret"])
    yield server.start()
    server.stop()


def test_a_password_in_redis_url_is_used(password_server: RedisServer) -> None:
    roundtrip(f"redis://:s3cret@127.0.0.1:{password_server.port}/0")


def test_a_wrong_password_is_store_unavailable(password_server: RedisServer) -> None:
    store = Store(
        Settings.from_env({"REDIS_URL": f"redis://:nope@127.0.0.1:{password_server.port}/0"})
    )
    with pytest.raises(StoreUnavailable):
        store.ping()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    port = free_port()
    log = (tmp_path / "redis.log").open("wb")
    proc = subprocess.Popen(
        [find_binary(), "--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert),
         "--tls-key-file", str(key), "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no",
         "--requirepass", "s3cret", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while proc.poll() is None and port_is_free(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    log.close()
    if proc.poll() is not None:
        out = (tmp_path / "redis.log").read_text(errors="replace")
        pytest.skip(f"this Redis server has no TLS support: {out[-300:]}")
    yield port, cert
    proc.terminate()
    proc.wait(10)


def test_rediss_urls_connect_over_tls(tls_server: tuple[int, Path]) -> None:
    port, cert = tls_server
    roundtrip(f"rediss://:s3cret@localhost:{port}/0?ssl_ca_certs={cert}")


# -- the connections Scripts keeps (Scripts._take) ----------------------------


def test_a_kept_connection_the_server_closed_is_replaced(
    store: Store, redis_client: redis.Redis
) -> None:
    """Redis dropping every client (a restart, a timeout, CLIENT KILL) between two
    submits costs the next submit nothing: the idle connection is checked first."""
    store.submit("a")
    killed = redis_client.client_kill_filter(_type="normal", skipme=True)
    assert killed >= 1
    job_id = store.submit("b")
    assert store.get(job_id).task == "b"


def test_a_connection_left_with_unread_bytes_is_not_reused(
    store: Store, redis_client: redis.Redis
) -> None:
    """A command whose answer was never read (here: an interrupt between send and
    read) must not hand that answer to the next command on the connection."""
    scripts = store.scripts
    conn = scripts._take()
    conn.send_packed_command([b"*2\r\n$4\r\nECHO\r\n$5\r\nstale\r\n"])
    time.sleep(0.05)  # the answer is waiting in the socket
    scripts._idle.append(conn)
    job_id = store.submit("fresh")
    claimed = store.claim("default", "w1", 30, 1)  # would read enqueue's answer
    assert [c.id for c in claimed] == [job_id]


def test_connections_are_not_shared_across_fork(store: Store, redis_client: redis.Redis) -> None:
    """A child process never writes on its parent's sockets."""
    store.submit("before")
    parent_conns = list(store.scripts._idle)
    assert parent_conns
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ok = 0
        try:
            store.submit("child")
            ok = int(not any(c in store.scripts._idle for c in parent_conns))
        finally:
            os.write(write, bytes([ok]))
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x01"
    store.submit("after")  # the parent's connection still works
    assert redis_client.zcard(keys.ready("default")) == 3


def test_script_calls_go_straight_to_the_socket(store: Store) -> None:
    """`Wire` finds the socket of redis-py's connection (a redis-py that keeps it
    elsewhere would silently lose ~15 us per call: this test says so)."""
    store.submit("a")
    [conn] = store.scripts._idle
    assert Wire.of(conn, True) is not None
    assert Wire.of(conn, True) is Wire.of(conn, True)  # one per socket


def test_without_a_socket_where_wire_looks_redis_py_does_the_io(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Wire, "of", classmethod(lambda cls, conn, decode: None))
    job_id = store.submit("a")
    assert store.get(job_id).task == "a"
    with pytest.raises(IdempotencyConflict):  # an error answer, through redis-py
        for request in ({"n": 1}, {"n": 2}):
            store.submit_idempotent([Submission("a")], queue="default", key="k", request=request)


def test_error_answers_are_redis_pys_exceptions(store: Store, redis_client: redis.Redis) -> None:
    """An error answer read by `Wire` is the exception redis-py raises for it, so
    `translate_errors` maps it the same: OOM -> StoreFull, and the connection stays."""
    store.submit("warm")
    redis_client.config_set("maxmemory", 1)
    try:
        with pytest.raises(StoreFull):
            store.submit("a")
    finally:
        redis_client.config_set("maxmemory", 0)
    assert store.get(store.submit("b")).task == "b"
