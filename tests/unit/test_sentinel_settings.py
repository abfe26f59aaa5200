"""Sentinel settings (issue 13): the Sentinels' own password, inline or from a file,
and the error answers that mean "not now" (a 503, a worker's back-off)."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from jobsys.errors import ConfigError, StoreUnavailable
from jobsys.settings import Settings
from jobsys.store.sentinel import SwitchWatcher
from jobsys.store.translate import translate_errors

SENTINELS = {"REDIS_SENTINELS": "s1:26379,s2:26379", "REDIS_SENTINEL_MASTER": "mymaster"}


def test_the_sentinel_password_comes_inline_or_from_a_file(tmp_path: Path) -> None:
    s = Settings.from_env({**SENTINELS, "REDIS_SENTINEL_PASSWORD": "pw with spaces"})
    assert s.redis_sentinel_password == "pw with spaces"
    assert "pw with spaces" not in repr(s)
    secret = tmp_path / "pw"
    secret.write_text("from-a-file\n")  # a Docker secret ends with a newline
    s = Settings.from_env({**SENTINELS, "REDIS_SENTINEL_PASSWORD_FILE": str(secret)})
    assert s.redis_sentinel_password == "from-a-file"
    assert Settings.from_env(SENTINELS).redis_sentinel_password is None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_SENTINEL_PASSWORD": ""}, "REDIS_SENTINEL_PASSWORD is set but empty"),
        ({"REDIS_SENTINEL_PASSWORD_FILE": " "}, "REDIS_SENTINEL_PASSWORD_FILE is set but empty"),
        (
            {"REDIS_SENTINEL_PASSWORD_FILE": "/nope/pw"},
            "REDIS_SENTINEL_PASSWORD_FILE=.*cannot be read",
        ),
        (
            {"REDIS_SENTINEL_PASSWORD": "a", "REDIS_SENTINEL_PASSWORD_FILE": "/x"},
            "set REDIS_SENTINEL_PASSWORD or REDIS_SENTINEL_PASSWORD_FILE, not both",
        ),
        ({"REDIS_SENTINEL_PASSWORD": "a\nb"}, "line break"),
    ],
)
def test_bad_sentinel_passwords_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        Settings.from_env({**SENTINELS, **env})
    assert "a\nb" not in str(e.value)


def test_a_sentinel_password_without_sentinels_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_SENTINEL_PASSWORD .* REDIS_SENTINELS is not"):
        Settings.from_env({"REDIS_SENTINEL_PASSWORD": "pw"})


def test_the_wait_timeout_must_end_before_the_socket_times_out() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_WAIT_TIMEOUT_SECONDS=5\.0 must be less than"):
        Settings.from_env({"REDIS_WAIT_REPLICAS": "1", "REDIS_WAIT_TIMEOUT_SECONDS": "5"})
    # Without waiting, the timeout does not matter (a short socket timeout stays valid).
    Settings.from_env({"REDIS_SOCKET_TIMEOUT_SECONDS": "1", "WORKER_POLL_SECONDS": "0.2"})
    with pytest.raises(ConfigError, match="REDIS_WAIT_REPLICAS='-1' is invalid"):
        Settings.from_env({"REDIS_WAIT_REPLICAS": "-1"})


@pytest.mark.parametrize(
    "error",
    [
        redis.exceptions.ReadOnlyError("You can't write against a read only replica."),
        redis.exceptions.MasterDownError("Link with MASTER is down"),
        redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
        redis.exceptions.TryAgainError("Multiple keys request during rehashing of slot"),
        redis.ResponseError("NOREPLICAS Not enough good replicas to write."),
    ],
    ids=["READONLY", "MASTERDOWN", "LOADING", "TRYAGAIN", "NOREPLICAS"],
)
def test_not_now_answers_are_store_unavailable(error: redis.RedisError) -> None:
    with pytest.raises(StoreUnavailable), translate_errors():
        raise error


def test_only_a_switch_of_our_master_counts() -> None:
    watcher = SwitchWatcher([("s1", 26379)], "mymaster", {})
    watcher._on_message("other 10.0.0.1 6379 10.0.0.2 6379", "s1")
    assert watcher.generation == 0
    watcher._on_message("mymaster 10.0.0.1 6379 10.0.0.2 6379", "s1")
    assert watcher.generation == 1


def test_redis_url_names_the_sentinels_in_one_url() -> None:
    s = Settings.from_env(
        {"REDIS_URL": "redis+sentinel://:node-pw@s1:26379,[::1]:26380/jobs/2?ssl_cert_reqs=none"}
    )
    assert s.redis_sentinels == (("s1", 26379), ("::1", 26380))
    assert s.redis_sentinel_master == "jobs"
    assert s.redis_url == "redis://:node-pw@sentinel-primary/2?ssl_cert_reqs=none"
    assert s.redis_configured
    assert "node-pw" not in repr(s)
    tls = Settings.from_env({"REDIS_URL": "rediss+sentinel://s1:26379/m"})
    assert tls.redis_url == "rediss://sentinel-primary/0"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"REDIS_URL": "redis+sentinel://s1:26379"}, "master name"),
        ({"REDIS_URL": "redis+sentinel://s1/m"}, "'s1' is not host:port"),
        ({"REDIS_URL": "redis+sentinel://s1:26379/m/x"}, "database 'x' is not a number"),
        ({"REDIS_URL": "redis+sentinel://:pw@s1:1/m", **SENTINELS}, "leave REDIS_SENTINELS"),
    ],
)
def test_bad_sentinel_urls_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as e:
        Settings.from_env(env)
    assert ":pw@" not in str(e.value)
