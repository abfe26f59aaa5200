"""The pure parts of api/guards.py: Host names and the count of failed attempts."""

from __future__ import annotations

import socket

import pytest

from jobsys.api.guards import (
    FailedAttempts,
    allowed_hosts,
    check_host,
    default_hosts,
    host_name,
)
from jobsys.api.validation import is_json
from jobsys.errors import HostNotAllowed, TooManyAttempts
from jobsys.settings import Settings

TOKEN = "t" * 32


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("localhost:5001", "localhost"),
        ("LocalHost", "localhost"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:5001", "[::1]"),
        ("[::1]", "[::1]"),
        ("evil.example:5001", "evil.example"),
    ],
)
def test_host_name_drops_the_port(header: str, name: str) -> None:
    assert host_name(header) == name


def test_an_open_api_allows_loopback_and_its_own_names_only() -> None:
    hosts = allowed_hosts(Settings())
    assert hosts is not None
    assert {"localhost", "127.0.0.1", "[::1]", socket.gethostname().lower()} <= hosts
    for ok in ("localhost:5001", "127.0.0.1", "[::1]:5001", None):
        check_host(ok, hosts)
    with pytest.raises(HostNotAllowed, match="JOBSYS_ALLOWED_HOSTS"):
        check_host("rebound.attacker.example:5001", hosts)
    assert "10.0.0.5" in default_hosts("10.0.0.5") and "0.0.0.0" not in default_hosts("0.0.0.0")
    assert "[fd00::1]" in default_hosts("fd00::1")


def test_with_tokens_any_host_unless_set() -> None:
    with_tokens = Settings(admin_tokens=(TOKEN,))
    assert allowed_hosts(with_tokens) is None
    assert allowed_hosts(with_tokens.with_overrides(allowed_hosts=("api",))) == {"api"}
    assert allowed_hosts(Settings(allowed_hosts=("*",))) is None


def test_json_types() -> None:
    assert is_json("application/json") and is_json("application/merge-patch+json")
    for other in ("", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        assert not is_json(other)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_client_is_locked_out_after_max_failures_until_its_window_ends() -> None:
    clock = Clock()
    attempts = FailedAttempts(3, 60.0, clock=clock)
    for _ in range(3):
        attempts.check("10.0.0.1")
        attempts.failed("10.0.0.1")
        clock.now += 1
    with pytest.raises(TooManyAttempts) as e:
        attempts.check("10.0.0.1")
    assert e.value.retry_after_s == 57  # the window began at the first failure
    attempts.check("10.0.0.2")  # another address is not affected
    clock.now += 57
    attempts.check("10.0.0.1")  # the window is over: a clean slate
    assert len(attempts) == 0


def test_failures_of_an_old_window_do_not_add_up() -> None:
    clock = Clock()
    attempts = FailedAttempts(2, 10.0, clock=clock)
    attempts.failed("a")
    clock.now += 11
    attempts.failed("a")
    attempts.check("a")  # one failure in this window, not two


def test_memory_is_bounded_dropping_the_least_recent_first() -> None:
    clock = Clock()
    attempts = FailedAttempts(1, 60.0, max_clients=100, clock=clock)
    for n in range(1000):
        attempts.failed(f"10.0.{n // 256}.{n % 256}")
    assert len(attempts) == 100
    attempts.check("10.0.0.0")  # dropped: the oldest
    with pytest.raises(TooManyAttempts):
        attempts.check("10.0.3.231")  # the last one
