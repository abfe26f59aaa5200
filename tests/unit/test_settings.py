"""Settings.from_env: every variable, its default, and the message of each bad value."""

from __future__ import annotations

import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from jobsys.errors import ConfigError
from jobsys.settings import Settings


def test_defaults_when_nothing_is_set() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    assert settings.redis_url == "redis://localhost:6379/0"
    assert settings.redis_configured is False
    assert settings.max_retries == 3
    assert settings.max_attempts == 4
    assert settings.simulated_work_s == 2.0
    assert settings.tasks_module is None
    assert settings.log_level == "INFO"
    assert settings.log_format == "text"
    assert settings.api_url == "http://localhost:5001"
    assert settings.max_queues == 1000


def test_blank_values_mean_unset() -> None:
    assert Settings.from_env({"MAX_RETRIES": "", "REDIS_HOST": "  ", "JOBSYS_TASKS": ""}) == (
        Settings()
    )


TOKEN_A = "producer-token-0123456789abcdefghijk"
TOKEN_B = "second.token_ABCDEFGHIJKLMNOPQR+/=="

#: (variable, raw value, Settings field, parsed value)
VALID = [
    ("SIMULATED_WORK_SECONDS", "0.5", "simulated_work_s", 0.5),
    ("SIMULATED_WORK_SECONDS", "0", "simulated_work_s", 0.0),
    ("MAX_RETRIES", "0", "max_retries", 0),
    ("MAX_RETRIES", " 7 ", "max_retries", 7),
    ("RETRY_BACKOFF_SECONDS", "0.25", "retry_backoff_s", 0.25),
    ("RETRY_BACKOFF_MAX_SECONDS", "60", "retry_backoff_max_s", 60.0),
    ("JOB_LEASE_SECONDS", "10", "job_lease_s", 10.0),
    ("SHUTDOWN_GRACE_SECONDS", "0", "shutdown_grace_s", 0.0),
    ("JOBSYS_TASKS", "myapp.tasks", "tasks_module", "myapp.tasks"),
    ("WORKER_CONCURRENCY", "8", "worker_concurrency", 8),
    ("WORKER_POLL_SECONDS", "0.2", "worker_poll_s", 0.2),
    ("WORKER_LIVENESS_SECONDS", "5", "worker_liveness_s", 5.0),
    ("WORKER_PREFETCH", "1", "worker_prefetch", 1),
    ("ASYNC_CONCURRENCY", "500", "async_concurrency", 500),
    ("UNKNOWN_TASKS", "Reject", "unknown_tasks", "reject"),
    ("WORKER_PROCESSES", "3", "worker_processes", 3),
    ("WORKER_PROCESSES", "auto", "worker_processes", os.cpu_count() or 1),
    ("WORKER_MAX_JOBS_PER_CHILD", "100", "worker_max_jobs_per_child", 100),
    ("WORKER_MAX_MEMORY_MB", "512", "worker_max_memory_mb", 512),
    ("WORKER_QUEUES", "high, low", "worker_queues", (("high", 0), ("low", 0))),
    ("WORKER_QUEUES", "a:3,b:1", "worker_queues", (("a", 3), ("b", 1))),
    ("COMPLETED_RETENTION_SECONDS", "3600", "completed_retention_s", 3600),
    ("IDEMPOTENCY_TTL_SECONDS", "60", "idempotency_ttl_s", 60),
    ("FAILED_RETENTION_SECONDS", "0", "failed_retention_s", 0),
    ("DEAD_LETTER_MAX_LENGTH", "500", "dead_letter_max_length", 500),
    ("MAX_QUEUES", "20", "max_queues", 20),
    ("EVENTS_MAX_LEN", "500", "events_max_len", 500),
    ("JOBSYS_WEBHOOK_SECRET", "whsec_abc", "webhook_secret", "whsec_abc"),
    (
        "WEBHOOK_ALLOWED_HOSTS",
        "127.0.0.1, hooks.lan,10.0.0.0/8",
        "webhook_allowed_hosts",
        ("127.0.0.1", "hooks.lan", "10.0.0.0/8"),
    ),
    ("WEBHOOK_BACKOFF_SECONDS", "0.5", "webhook_backoff_s", 0.5),
    ("WEBHOOK_MAX_AGE_SECONDS", "3600", "webhook_max_age_s", 3600.0),
    ("WEBHOOK_TIMEOUT_SECONDS", "3", "webhook_timeout_s", 3.0),
    ("WEBHOOK_CONCURRENCY", "2", "webhook_concurrency", 2),
    ("MAX_QUEUES", "0", "max_queues", 0),
    ("API_WORKERS", "4", "api_workers", 4),
    ("API_THREADS", "16", "api_threads", 16),
    ("API_WORKER_CLASS", "gthread", "api_worker_class", "gthread"),
    ("JOBSYS_ALLOW_OPEN", "1", "allow_open", True),
    ("JOBSYS_PUBLISHED_HOST", "127.0.0.1", "published_host", "127.0.0.1"),
    ("REDIS_SOCKET_TIMEOUT_SECONDS", "1.5", "redis_socket_timeout_s", 1.5),
    ("REDIS_MAX_CONNECTIONS", "50", "redis_max_connections", 50),
    ("REDIS_WAIT_REPLICAS", "1", "redis_wait_replicas", 1),
    ("REDIS_WAIT_TIMEOUT_SECONDS", "0.25", "redis_wait_timeout_s", 0.25),
    ("LOG_LEVEL", "debug", "log_level", "DEBUG"),
    ("LOG_FORMAT", "JSON", "log_format", "json"),
    ("LOG_FORMAT", "text", "log_format", "text"),
    ("JOBSYS_URL", "https://jobs.example.com/", "api_url", "https://jobs.example.com"),
    ("JOBSYS_PRODUCER_TOKENS", f" {TOKEN_A} , {TOKEN_B}", "producer_tokens", (TOKEN_A, TOKEN_B)),
    ("JOBSYS_ADMIN_TOKENS", TOKEN_A, "admin_tokens", (TOKEN_A,)),
    ("JOBSYS_TOKEN", TOKEN_B, "api_token", TOKEN_B),
    (
        "JOBSYS_ALLOWED_HOSTS",
        "API, jobs.example.com,::1",
        "allowed_hosts",
        ("api", "jobs.example.com", "[::1]"),
    ),
    ("JOBSYS_ALLOWED_HOSTS", "*", "allowed_hosts", ("*",)),
    ("JOBSYS_AUTH_MAX_FAILURES", "0", "auth_max_failures", 0),
    ("JOBSYS_AUTH_LOCKOUT_SECONDS", "300", "auth_lockout_s", 300.0),
]


@pytest.mark.parametrize(("var", "raw", "field", "expected"), VALID)
def test_each_variable_is_parsed(var: str, raw: str, field: str, expected: Any) -> None:
    settings = Settings.from_env({var: raw})
    assert getattr(settings, field) == expected
    # ...and nothing else moved.
    others = {f.name for f in fields(Settings)} - {field}
    assert {n: getattr(settings, n) for n in others} == {n: getattr(Settings(), n) for n in others}


def test_every_settings_field_has_a_variable_tested() -> None:
    derived = {"redis_url", "redis_configured"}  # from REDIS_URL / REDIS_HOST / REDIS_PORT
    # Read only together (test_sentinels_and_their_master_name_are_read_together).
    derived |= {"redis_sentinels", "redis_sentinel_master"}
    # Needs REDIS_SENTINELS too (tests/unit/test_sentinel_settings.py).
    derived |= {"redis_sentinel_password"}
    # Sets redis_configured too (tests/unit/test_settings_cluster.py).
    derived |= {"redis_cluster_nodes"}
    assert {f.name for f in fields(Settings)} - derived == {field for _, _, field, _ in VALID}


#: (variable, bad value)
INVALID = [
    ("EVENTS_MAX_LEN", "0"),
    ("WEBHOOK_ALLOWED_HOSTS", "10.0.0.0/99"),
    ("WEBHOOK_CONCURRENCY", "0"),
    ("JOBSYS_ALLOWED_HOSTS", "localhost:5001"),
    ("JOBSYS_ALLOWED_HOSTS", "http://api"),
    ("JOBSYS_ALLOWED_HOSTS", "api,,localhost"),
    ("JOBSYS_AUTH_MAX_FAILURES", "-1"),
    ("MAX_QUEUES", "-1"),
    ("MAX_QUEUES", "many"),
    ("JOBSYS_AUTH_LOCKOUT_SECONDS", "0"),
    ("REDIS_URL", "localhost:6379"),
    ("REDIS_URL", "http://localhost:6379"),
    ("REDIS_HOST", "redis:6379/0"),
    ("REDIS_HOST", "user@redis"),
    ("REDIS_HOST", "two words"),
    ("REDIS_PORT", "0"),
    ("REDIS_PORT", "65536"),
    ("REDIS_PORT", "six"),
    ("SIMULATED_WORK_SECONDS", "-1"),
    ("SIMULATED_WORK_SECONDS", "nan"),
    ("SIMULATED_WORK_SECONDS", "inf"),
    ("MAX_RETRIES", "-1"),
    ("MAX_RETRIES", "2.5"),
    ("MAX_RETRIES", "three"),
    ("RETRY_BACKOFF_SECONDS", "-0.1"),
    ("RETRY_BACKOFF_MAX_SECONDS", "x"),
    ("JOB_LEASE_SECONDS", "0"),
    ("SHUTDOWN_GRACE_SECONDS", "-5"),
    ("WORKER_CONCURRENCY", "0"),
    ("WORKER_POLL_SECONDS", "0"),
    ("WORKER_PREFETCH", "0"),
    ("ASYNC_CONCURRENCY", "0"),
    ("UNKNOWN_TASKS", "drop"),
    ("WORKER_PROCESSES", "0"),
    ("WORKER_PROCESSES", "many"),
    ("WORKER_MAX_JOBS_PER_CHILD", "-1"),
    ("WORKER_MAX_MEMORY_MB", "1.5"),
    ("WORKER_LIVENESS_SECONDS", "0"),
    ("WORKER_QUEUES", "a,a"),
    ("IDEMPOTENCY_TTL_SECONDS", "0"),
    ("FAILED_RETENTION_SECONDS", "-1"),
    ("DEAD_LETTER_MAX_LENGTH", "x"),
    ("API_WORKER_CLASS", "sync"),
    ("JOBSYS_ALLOW_OPEN", "maybe"),
    ("JOBSYS_PUBLISHED_HOST", "http://host/"),
    ("COMPLETED_RETENTION_SECONDS", "1.5"),
    ("API_WORKERS", "0"),
    ("API_THREADS", "-2"),
    ("REDIS_SOCKET_TIMEOUT_SECONDS", "0"),
    ("REDIS_MAX_CONNECTIONS", "0"),
    ("LOG_LEVEL", "verbose"),
    ("LOG_FORMAT", "xml"),
    ("JOBSYS_URL", "localhost:5001"),
    ("JOBSYS_URL", "http://"),
]


@pytest.mark.parametrize(("var", "raw"), INVALID)
def test_a_bad_value_names_the_variable_and_the_value(var: str, raw: str) -> None:
    with pytest.raises(ConfigError) as e:
        Settings.from_env({var: raw})
    assert f"{var}={raw!r}" in str(e.value)


def test_lease_must_leave_room_for_heartbeats() -> None:
    with pytest.raises(ConfigError, match=r"JOB_LEASE_SECONDS=.*WORKER_POLL_SECONDS"):
        Settings.from_env({"JOB_LEASE_SECONDS": "1", "WORKER_POLL_SECONDS": "1"})


def test_an_idle_workers_blocking_read_must_end_before_the_socket_timeout() -> None:
    with pytest.raises(ConfigError, match=r"WORKER_POLL_SECONDS=.*REDIS_SOCKET_TIMEOUT_SECONDS"):
        Settings.from_env({"WORKER_POLL_SECONDS": "5", "REDIS_SOCKET_TIMEOUT_SECONDS": "5"})


def test_redis_host_and_port_build_the_url() -> None:
    settings = Settings.from_env({"REDIS_HOST": "redis", "REDIS_PORT": "6380"})
    assert settings.redis_url == "redis://redis:6380/0"
    assert settings.redis_configured is True


@pytest.mark.parametrize(
    ("env", "url"),
    [
        ({"REDIS_HOST": "redis"}, "redis://redis:6379/0"),
        ({"REDIS_PORT": "6380"}, "redis://localhost:6380/0"),
    ],
)
def test_either_host_or_port_alone_counts_as_configured(env: dict[str, str], url: str) -> None:
    settings = Settings.from_env(env)
    assert settings.redis_url == url
    assert settings.redis_configured is True


def test_redis_url_overrides_host_and_port() -> None:
    settings = Settings.from_env(
        {"REDIS_URL": "redis://cache:7000/2", "REDIS_HOST": "redis", "REDIS_PORT": "6380"}
    )
    assert settings.redis_url == "redis://cache:7000/2"
    assert settings.redis_configured is True


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:s3cret@redis:6379/0", "redis://***@redis:6379/0"),
        ("redis://app:s3cret@redis:6379/0", "redis://app:***@redis:6379/0"),
        ("rediss://app:p@ss@word@redis:6380/0", "rediss://app:***@redis:6380/0"),
        ("unix:///run/redis.sock", "unix:///run/redis.sock"),
        ("redis://redis:6379/0?password=s3cret", "redis://redis:6379/0?password=***"),
        (
            "rediss://redis/0?username=app&password=s3cret&db=1",
            "rediss://redis/0?username=app&password=***&db=1",
        ),
        ("unix:///run/r.sock?db=2&password=s3cret", "unix:///run/r.sock?db=2&password=***"),
        ("unix://app:s3cret@/run/r.sock?db=2", "unix://app:***@/run/r.sock?db=2"),
        ("redis://s3cret@redis/0", "redis://***@redis/0"),  # user only: may be a password
        ("redis://:s3/cr?et@redis/0?Password=s3cret", "redis://***@redis/0?Password=***"),
        ("redis://redis/0?password=s3cr@et#s3cret", "redis://redis/0?password=***"),
        ("redis://:s3#cret@redis/0", "redis://***@redis/0"),
    ],
)
def test_redacted_url_hides_the_password(url: str, redacted: str) -> None:
    settings = Settings.from_env({"REDIS_URL": url})
    assert settings.redis_url == url
    assert settings.redacted_redis_url == redacted
    assert "s3cr" not in settings.redacted_redis_url
    assert "s3cr" not in repr(settings)
    assert "s3cr" not in str(settings)


def test_a_bad_redis_url_is_named_without_its_password() -> None:
    with pytest.raises(ConfigError, match=r"REDIS_URL=.*is invalid") as e:
        Settings.from_env({"REDIS_URL": "http://:s3cret@redis/0?password=s3cret"})
    assert "s3cret" not in str(e.value)


def test_with_overrides_replaces_fields_and_rejects_unknown_ones() -> None:
    settings = Settings().with_overrides(worker_concurrency=4, tasks_module="app.tasks")
    assert (settings.worker_concurrency, settings.tasks_module) == (4, "app.tasks")
    with pytest.raises(TypeError, match="concurency"):
        Settings().with_overrides(concurency=4)


def test_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_RETRIES", "9")
    assert Settings.from_env().max_retries == 9


# -- API tokens ------------------------------------------------------------------


def test_no_token_means_open_mode() -> None:
    assert not Settings.from_env({}).auth_enabled
    assert not Settings.from_env({"JOBSYS_TOKEN": ""}).auth_enabled
    assert Settings.from_env({"JOBSYS_ADMIN_TOKENS": TOKEN_A}).auth_enabled
    assert Settings.from_env({"JOBSYS_PRODUCER_TOKENS": TOKEN_A}).auth_enabled


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (f"{TOKEN_A},,{TOKEN_B}", "token 2 is empty"),
        (f"{TOKEN_A},", "token 2 is empty"),
        ("short-token", "token 1 has 11 characters; a token must have 32"),
        ("0123456789abcdef", "token 1 has 16 characters; a token must have 32 to 4096"),
        ("0123456789abcdef0123456789abcde", "token 1 has 31 characters"),
        (f"{TOKEN_A},with space in it 0123456789abcdef", "token 2 has a character"),
        ("x" * 5000, "token 1 has 5000 characters"),
    ],
)
def test_a_bad_token_is_refused_without_quoting_it(raw: str, message: str) -> None:
    for var in ("JOBSYS_PRODUCER_TOKENS", "JOBSYS_ADMIN_TOKENS"):
        with pytest.raises(ConfigError) as e:
            Settings.from_env({var: raw})
        assert str(e.value).startswith(f"{var}: {message}")
        for token in raw.split(","):
            if token:
                assert token not in str(e.value)


@pytest.mark.parametrize("raw", ["", " ", ",", " , ,", "\t"])
def test_a_token_variable_that_is_set_must_hold_a_token(raw: str) -> None:
    """Set but empty (``X=$(cat missing)``, a Compose default) must not open the API."""
    for var in ("JOBSYS_PRODUCER_TOKENS", "JOBSYS_ADMIN_TOKENS"):
        with pytest.raises(ConfigError) as e:
            Settings.from_env({var: raw})
        assert str(e.value).startswith(f"{var} is set but holds no token")
        assert f"unset {var}" in str(e.value)


@pytest.mark.parametrize("text", ["", "\n\n", "  \n\t\n", ",\n,"])
def test_an_empty_token_file_refuses_to_start(tmp_path: Path, text: str) -> None:
    secret = tmp_path / "admin_tokens"
    secret.write_text(text)
    with pytest.raises(ConfigError, match=r"^JOBSYS_ADMIN_TOKENS_FILE is set but holds no token"):
        Settings.from_env({"JOBSYS_ADMIN_TOKENS_FILE": str(secret)})
    with pytest.raises(ConfigError, match=r"^JOBSYS_PRODUCER_TOKENS_FILE is set but empty"):
        Settings.from_env({"JOBSYS_PRODUCER_TOKENS_FILE": " "})


def test_tokens_come_from_a_file_for_docker_secrets(tmp_path: Path) -> None:
    secret = tmp_path / "admin_tokens"
    secret.write_text(f"{TOKEN_A}\n{TOKEN_B},\n\n")
    settings = Settings.from_env({"JOBSYS_ADMIN_TOKENS_FILE": str(secret)})
    assert settings.admin_tokens == (TOKEN_A, TOKEN_B)
    with pytest.raises(ConfigError, match="JOBSYS_ADMIN_TOKENS or JOBSYS_ADMIN_TOKENS_FILE"):
        Settings.from_env({"JOBSYS_ADMIN_TOKENS_FILE": str(secret), "JOBSYS_ADMIN_TOKENS": TOKEN_A})
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"JOBSYS_PRODUCER_TOKENS_FILE=.*nope.* cannot be read"):
        Settings.from_env({"JOBSYS_PRODUCER_TOKENS_FILE": str(missing)})
    secret.write_text("tooshort\n")
    with pytest.raises(ConfigError, match="JOBSYS_ADMIN_TOKENS_FILE: token 1 has 8 characters"):
        Settings.from_env({"JOBSYS_ADMIN_TOKENS_FILE": str(secret)})


def test_a_token_has_one_role() -> None:
    with pytest.raises(ConfigError, match="both in JOBSYS_PRODUCER_TOKENS and in") as e:
        Settings.from_env({"JOBSYS_PRODUCER_TOKENS": TOKEN_A, "JOBSYS_ADMIN_TOKENS": TOKEN_A})
    assert TOKEN_A not in str(e.value)


def test_tokens_never_show_in_the_settings_repr() -> None:
    settings = Settings.from_env(
        {"JOBSYS_PRODUCER_TOKENS": TOKEN_A, "JOBSYS_ADMIN_TOKENS": TOKEN_B, "JOBSYS_TOKEN": TOKEN_B}
    )
    assert TOKEN_A not in repr(settings)
    assert TOKEN_B not in repr(settings)
    with pytest.raises(ConfigError, match="JOBSYS_TOKEN has a character") as e:
        Settings.from_env({"JOBSYS_TOKEN": "bad token"})
    assert "bad token" not in str(e.value)


def test_sentinels_and_their_master_name_are_read_together() -> None:
    s = Settings.from_env(
        {"REDIS_SENTINELS": "10.0.0.1:26379, sentinel-2:26380", "REDIS_SENTINEL_MASTER": "jobs"}
    )
    assert s.redis_sentinels == (("10.0.0.1", 26379), ("sentinel-2", 26380))
    assert s.redis_sentinel_master == "jobs"
    assert s.redis_configured  # `jobsys dev` starts no Redis of its own
    assert Settings.from_env({}).redis_sentinels == ()


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"REDIS_SENTINELS": "h1", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h1:0", "REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
        ({"REDIS_SENTINELS": "h1:26379"}, "REDIS_SENTINEL_MASTER"),
        ({"REDIS_SENTINEL_MASTER": "m"}, "REDIS_SENTINELS"),
    ],
)
def test_bad_sentinel_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)
