"""Connecting to Redis the ways REDIS_URL allows: a password, and TLS (rediss://)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsys.errors import StoreUnavailable
from jobsys.redis_server import RedisServer, find_binary, free_port, port_is_free
from jobsys.settings import Settings
from jobsys.store import Store


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
