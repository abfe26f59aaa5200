"""Where an open API may start (Settings.check_exposure), and the Compose file's defaults.

An API with no token lets anyone who reaches it submit, read, cancel and purge jobs,
so it may start open only on a loopback address, unless the operator opts in.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml  # PyYAML: installed with the dev extra (schemathesis depends on it)

from jobsys.errors import ConfigError
from jobsys.settings import Settings, is_loopback

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"
#: 32 characters or more: valid under any token length rule.
TOKEN = "exposure-admin-token-0123456789abcdef"

OPEN = Settings.from_env({})
WITH_TOKEN = Settings.from_env({"JOBSYS_ADMIN_TOKENS": TOKEN})
PRODUCER_ONLY = Settings.from_env({"JOBSYS_PRODUCER_TOKENS": TOKEN})
OPTED_IN = Settings.from_env({"JOBSYS_ALLOW_OPEN": "1"})


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.7", "[2001:db8::1]", "api.example"])
def test_an_open_api_is_refused_beyond_loopback(host: str) -> None:
    with pytest.raises(ConfigError) as e:
        OPEN.check_exposure(host)
    message = str(e.value)
    assert message.startswith("refusing to start the API open on ")
    for name in ("JOBSYS_PRODUCER_TOKENS", "JOBSYS_ADMIN_TOKENS", "JOBSYS_ALLOW_OPEN=1"):
        assert name in message
    assert "--host 127.0.0.1" in message


def test_the_message_names_the_address() -> None:
    with pytest.raises(ConfigError, match=r"open on 0\.0\.0\.0: "):
        OPEN.check_exposure("0.0.0.0")


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LocalHost", "::ffff:127.0.0.1"]
)
def test_an_open_api_may_bind_loopback(host: str) -> None:
    assert is_loopback(host)
    OPEN.check_exposure(host)


@pytest.mark.parametrize("settings", [WITH_TOKEN, PRODUCER_ONLY, OPTED_IN], ids=str)
def test_tokens_or_the_opt_in_allow_every_interface(settings: Settings) -> None:
    settings.check_exposure("0.0.0.0")


def test_a_published_host_is_judged_instead_of_the_bind_address() -> None:
    # A container binds 0.0.0.0; where Docker publishes the port decides who reaches it.
    Settings.from_env({"JOBSYS_PUBLISHED_HOST": "127.0.0.1"}).check_exposure("0.0.0.0")
    wide = Settings.from_env({"JOBSYS_PUBLISHED_HOST": "0.0.0.0"})
    with pytest.raises(ConfigError, match=r"published on 0\.0\.0\.0 \(JOBSYS_PUBLISHED_HOST\)"):
        wide.check_exposure("0.0.0.0")
    with pytest.raises(ConfigError, match=r"JOBSYS_API_PUBLISH=127\.0\.0\.1"):
        wide.check_exposure("127.0.0.1")  # the port is published wide all the same
    wide.with_overrides(allow_open=True).check_exposure("0.0.0.0")
    wide.with_overrides(admin_tokens=(TOKEN,)).check_exposure("0.0.0.0")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("1", True), ("true", True), ("YES", True), ("on", True), ("0", False), ("false", False)],
)
def test_allow_open_reads_a_flag(raw: str, expected: bool) -> None:
    assert Settings.from_env({"JOBSYS_ALLOW_OPEN": raw}).allow_open is expected


def test_allow_open_and_published_host_are_off_by_default() -> None:
    assert (OPEN.allow_open, OPEN.published_host) == (False, None)


# -- docker-compose.yml ------------------------------------------------------------


def with_defaults(value: str) -> str:
    """`value` as Compose interpolates it when no variable is set: ${VAR:-default} -> default."""
    return re.sub(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}", lambda m: m.group(1) or "", value)


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services[name]


def test_compose_publishes_the_api_and_redis_on_loopback_by_default() -> None:
    api_ports = [with_defaults(p) for p in service("api")["ports"]]
    redis_ports = [with_defaults(p) for p in service("redis")["ports"]]
    assert api_ports == ["127.0.0.1:5001:5001"]
    assert redis_ports == ["127.0.0.1:6379:6379"]


def test_compose_tells_the_api_where_its_port_is_published() -> None:
    # The API binds 0.0.0.0 in its container: JOBSYS_PUBLISHED_HOST must follow the
    # published address, and the default must neither open nor break it.
    api = service("api")
    publish = api["ports"][0].rsplit(":", 2)[0]
    # What the container gets when no variable is set (a key with no value: nothing).
    env = {k: with_defaults(str(v)) for k, v in api["environment"].items() if v is not None}
    assert api["environment"]["JOBSYS_PUBLISHED_HOST"] == publish
    assert not env.get("JOBSYS_ALLOW_OPEN")
    assert not env.get("JOBSYS_ADMIN_TOKENS") and not env.get("JOBSYS_PRODUCER_TOKENS")
    Settings.from_env(env).check_exposure("0.0.0.0")  # as the Dockerfile's CMD binds
