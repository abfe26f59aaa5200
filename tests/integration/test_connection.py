"""Connecting to Redis the ways REDIS_URL allows: a password, and TLS (rediss://)."""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_modes import CLUSTER_MODE, every_primary, total

from jobsys.errors import IdempotencyConflict, StoreFull, StoreUnavailable
from jobsys.local.redis_server import RedisServer, find_binary, free_port, port_is_free
from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys


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


# -- connections: redis-py's pool, as the store uses it ----------------------------


@pytest.mark.skipif(CLUSTER_MODE, reason="a cluster client closes its nodes' connections itself")
def test_close_closes_every_connection_a_threads_too(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """`Store.close` leaves no socket open: not the pool's idle connections, nor one
    that a thread's client still holds (a pool given to redis-py's client is not
    closed by the client's close())."""

    def jobsys_clients() -> int:
        return sum(1 for c in redis_client.client_list() if c.get("name") == "jobsys")

    before = jobsys_clients()
    other = Store(settings)
    held = threading.Event()
    done = threading.Event()

    def hold() -> None:  # a thread whose client keeps its connection while it lives
        other.submit("t")
        held.set()
        done.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    other.submit("main")
    assert jobsys_clients() >= before + 2
    other.close()
    try:
        # Redis drops a closed client at its next event loop turn: poll for it.
        deadline = time.monotonic() + 5
        while jobsys_clients() > before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert jobsys_clients() == before
    finally:
        done.set()
        thread.join()


def test_connections_the_server_closed_are_replaced(
    store: Store, redis_client: redis.Redis
) -> None:
    """Redis dropping every client (a restart, a timeout, CLIENT KILL) between two
    submits costs the next submit nothing: an idle connection is checked first."""
    store.submit("a")
    killed = redis_client.client_kill_filter(_type="normal", skipme=True, **every_primary())
    assert total(killed) >= 1
    job_id = store.submit("b")
    assert store.get(job_id).task == "b"


def test_a_command_interrupted_before_its_answer_does_not_confuse_the_next(
    store: Store, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command whose answer was never read (an interrupt between send and read)
    must not hand that answer to the next command."""
    store.ping()  # a connection in the pool
    if CLUSTER_MODE:
        # A queue's first submit on a cluster also registers the queue (on another
        # shard, jobsys/store/cluster.py): done now, so that the enqueue is interrupted.
        store.submit("warm")
        assert [c.task for c in store.claim("default", "w0", 30, 1)] == ["warm"]
    pool = (
        store.redis.get_node_from_key(keys.ready("default")).redis_connection.connection_pool
        if CLUSTER_MODE  # the pool of the node that takes the submits
        else store.redis.connection_pool
    )
    conn_class = pool.connection_class
    real_read = conn_class.read_response
    calls = {"n": 0}

    def interrupted(self: object, *args: object, **kwargs: object) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # after the send, before the read
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(conn_class, "read_response", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.submit("lost")
    monkeypatch.setattr(conn_class, "read_response", real_read)
    time.sleep(0.05)  # the unread answer is waiting in the socket
    job_id = store.submit("fresh")
    assert store.get(job_id).task == "fresh"  # would read enqueue's answer
    assert [c.task for c in store.claim("default", "w1", 30, 1)] == ["lost"]


def test_connections_are_not_shared_across_fork(store: Store, redis_client: redis.Redis) -> None:
    """A child process never writes on its parent's sockets: it opens its own."""
    store.submit("before")
    parent_addrs = {c["addr"] for c in _clients(redis_client)}
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        ok = 0
        try:
            store.submit("child")
            ok = int(store.redis.client_info()["addr"] not in parent_addrs)
        finally:
            os.write(write, bytes([ok]))
            os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"\x01"
    store.submit("after")  # the parent's connection still works
    assert redis_client.zcard(keys.ready("default")) == 3


def _clients(client: redis.Redis) -> list[dict[str, str]]:
    return [c for c in client.client_list() if c.get("name") == "jobsys"]


def test_error_answers_are_translated(store: Store, redis_client: redis.Redis) -> None:
    """An error answer is the exception redis-py raises for it, so `translate_errors`
    maps it: OOM -> StoreFull, and the store keeps working after."""
    store.submit("warm")
    redis_client.config_set("maxmemory", 1, **every_primary())
    try:
        with pytest.raises(StoreFull):
            store.submit("a")
    finally:
        redis_client.config_set("maxmemory", 0, **every_primary())
    assert store.get(store.submit("b")).task == "b"
    with pytest.raises(IdempotencyConflict):  # an error answer of a script
        for request in ({"n": 1}, {"n": 2}):
            store.submit_jobs([Submission("a")], queue="default", key="k", request=request)
