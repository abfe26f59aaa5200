"""The one place that reads the environment.

`Settings.from_env()` reads every variable jobsys understands, validates it and
returns a frozen, typed object that the rest of the package receives as an
argument. A bad value raises `ConfigError` naming the variable and the value.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from jobsys.errors import ConfigError
from jobsys.worker.queues import parse_queue_spec

T = TypeVar("T")

#: Where Redis is found when neither REDIS_URL nor REDIS_HOST is set. The
#: container images set REDIS_HOST=redis (the Compose service name) instead.
DEFAULT_REDIS_HOST = "localhost"
DEFAULT_REDIS_PORT = 6379
#: Where the CLI finds the API when JOBSYS_URL is not set.
DEFAULT_API_URL = "http://localhost:5001"
#: Fewest characters of an API token: 32, what `openssl rand -hex 16` gives (128 bits).
#: A shorter token may be a word, a name or a test value; guessing 128 random bits is
#: out of reach however many attempts an attacker gets.
MIN_TOKEN_CHARS = 32
#: Most characters of an API token.
MAX_TOKEN_CHARS = 4096
#: The Host names an open API answers when JOBSYS_ALLOWED_HOSTS is not set (the
#: machine's own host name and the address `jobsys api --host` binds to are added).
DEFAULT_ALLOWED_HOSTS = ("localhost", "127.0.0.1", "[::1]")
#: The default of MAX_QUEUES: far above the few dozen queues a deployment uses, low
#: enough that GET /queues and GET /metrics (O(queues) each) stay small answers.
DEFAULT_MAX_QUEUES = 1000
#: RFC 6750's b64token: what may follow "Bearer " in an Authorization header.
TOKEN_PATTERN = re.compile(r"[A-Za-z0-9._~+/-]+=*")


@dataclass(frozen=True)
class Settings:
    """Every tunable of jobsys, with its environment variable in the comment."""

    #: REDIS_URL, or made of REDIS_HOST and REDIS_PORT. repr shows it redacted.
    redis_url: str = field(
        default=f"redis://{DEFAULT_REDIS_HOST}:{DEFAULT_REDIS_PORT}/0", repr=False
    )
    #: True when REDIS_URL, REDIS_HOST, REDIS_PORT, REDIS_SENTINELS or REDIS_CLUSTER_NODES was set
    #: (`jobsys dev` starts its own Redis only when this is False).
    redis_configured: bool = False
    #: REDIS_SENTINELS: ``host:port,...`` of the Sentinels that name the primary
    #: (empty: none; REDIS_URL is then the node). With them, REDIS_URL gives only
    #: the data nodes' credentials, database and TLS.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    #: REDIS_SENTINEL_MASTER: the name the Sentinels monitor the primary by.
    redis_sentinel_master: str | None = None
    # -- Sentinel failover (issue 13) --
    #: REDIS_SENTINEL_PASSWORD or REDIS_SENTINEL_PASSWORD_FILE: the Sentinels' own
    #: password (``requirepass`` in sentinel.conf; the data nodes' is REDIS_URL's).
    redis_sentinel_password: str | None = field(default=None, repr=False)
    #: REDIS_WAIT_REPLICAS: replicas a submit must reach (WAIT) before its 202 (0: none).
    redis_wait_replicas: int = 0
    #: REDIS_WAIT_TIMEOUT_SECONDS: longest a submit waits for them; then it is a 503.
    redis_wait_timeout_s: float = 1.0
    # -- Redis Cluster (issue 13, docs/scaling.md "Redis Cluster") --
    #: REDIS_CLUSTER_NODES: ``host:port,...`` of seed nodes of a Redis Cluster
    #: (empty: not a cluster). With them, REDIS_URL gives only the nodes'
    #: credentials and TLS.
    redis_cluster_nodes: tuple[tuple[str, int], ...] = ()
    #: SIMULATED_WORK_SECONDS: how long a task with no handler "works".
    simulated_work_s: float = 2.0
    #: MAX_RETRIES: retries after the first attempt (3 means 4 attempts in all).
    max_retries: int = 3
    #: RETRY_BACKOFF_SECONDS: base of the exponential backoff between attempts.
    retry_backoff_s: float = 1.0
    #: RETRY_BACKOFF_MAX_SECONDS: cap of that backoff.
    retry_backoff_max_s: float = 300.0
    #: JOB_LEASE_SECONDS: how long a claimed job stays leased without a heartbeat.
    job_lease_s: float = 30.0
    #: SHUTDOWN_GRACE_SECONDS: how long a stopping worker lets running jobs finish.
    shutdown_grace_s: float = 30.0
    #: JOBSYS_TASKS: module whose @task handlers the worker loads.
    tasks_module: str | None = None
    #: WORKER_CONCURRENCY: jobs one worker process runs at once.
    worker_concurrency: int = 1
    # -- async handlers, process pool (issue 15) --
    #: ASYNC_CONCURRENCY: async (``async def``) jobs one worker process runs at once
    #: on its event loop, beside its WORKER_CONCURRENCY sync ones.
    async_concurrency: int = 100
    #: UNKNOWN_TASKS: what happens to a job of a task no live worker serves:
    #: ``simulate`` (SIMULATED_WORK_SECONDS of work, then completed) or ``reject``
    #: (the API answers 400; a worker fails such a job at once, without retries).
    unknown_tasks: str = "simulate"
    #: WORKER_PROCESSES: worker processes `jobsys worker` runs under one supervisor
    #: (``auto``: one per CPU core). 1 with no recycling: a single process, no supervisor.
    worker_processes: int = 1
    #: WORKER_MAX_JOBS_PER_CHILD: a supervised worker process that has started this
    #: many jobs stops cleanly and is replaced (0: never).
    worker_max_jobs_per_child: int = 0
    #: WORKER_MAX_MEMORY_MB: a supervised worker process whose resident memory passes
    #: this stops cleanly and is replaced (0: no ceiling).
    worker_max_memory_mb: int = 0
    #: WORKER_QUEUES: the queues a worker serves, "a,b,c" (strict order) or
    #: "a:5,b:2,c:1" (weighted random order); see `parse_queue_spec`.
    worker_queues: tuple[tuple[str, int], ...] = (("default", 0),)
    #: WORKER_PREFETCH: most jobs a worker claims at once (it claims fewer when
    #: jobs are slow: about 50 ms of work per claim).
    worker_prefetch: int = 100
    #: WORKER_POLL_SECONDS: longest an idle worker blocks before it looks for
    #: due retries and expired leases again.
    worker_poll_s: float = 1.0
    #: WORKER_LIVENESS_SECONDS: a worker whose last heartbeat (about one a second)
    #: is older than this is left out of GET /workers and the metrics.
    worker_liveness_s: float = 3.0
    #: COMPLETED_RETENTION_SECONDS: how long a completed (or cancelled) job is kept
    #: (0 = forever).
    completed_retention_s: int = 7 * 86400
    #: FAILED_RETENTION_SECONDS: how long a failed job is kept (0 = forever); its id
    #: leaves dead_letter with it.
    failed_retention_s: int = 30 * 86400
    #: DEAD_LETTER_MAX_LENGTH: most ids kept in dead_letter, newest first (0 = no cap).
    dead_letter_max_length: int = 100_000
    #: IDEMPOTENCY_TTL_SECONDS: how long an Idempotency-Key is remembered.
    idempotency_ttl_s: int = 86400
    #: MAX_QUEUES: most queues that may exist (0 = no cap). A submit that would
    #: create one more is refused (409); a periodic schedule (admin-only) may still
    #: create its queue.
    max_queues: int = DEFAULT_MAX_QUEUES
    #: API_WORKERS: gunicorn worker processes for `jobsys api`.
    api_workers: int = 2
    #: API_WORKER_CLASS: gunicorn's worker class for `jobsys api`: ``gevent`` (a
    #: greenlet per connection: slow clients cost nothing) or ``gthread``.
    api_worker_class: str = "gevent"
    #: API_THREADS: threads per gunicorn worker (gthread only).
    api_threads: int = 8
    #: JOBSYS_ALLOW_OPEN: 1 lets the API start with no token on an address other
    #: machines can reach, which `check_exposure` refuses otherwise.
    allow_open: bool = False
    #: JOBSYS_PUBLISHED_HOST: the address the API's port is published on, when that is
    #: not the address it binds: a container binds 0.0.0.0 and Docker publishes the port
    #: where it is told (docker-compose.yml sets this from JOBSYS_API_PUBLISH).
    #: `check_exposure` judges this address instead of the bind address.
    published_host: str | None = None
    #: REDIS_SOCKET_TIMEOUT_SECONDS: longest any Redis call may take before it
    #: counts as Redis being unreachable.
    redis_socket_timeout_s: float = 5.0
    #: REDIS_MAX_CONNECTIONS: most connections one process opens to Redis. A call
    #: that finds them all busy waits for one (at most the socket timeout) instead
    #: of opening another; with Sentinel or Cluster it fails at once instead.
    redis_max_connections: int = 200
    #: LOG_LEVEL: the level of jobsys's own loggers.
    log_level: str = "INFO"
    #: LOG_FORMAT: ``text`` (readable lines) or ``json`` (one JSON object a line).
    log_format: str = "text"
    #: JOBSYS_URL: the API that `jobsys submit` / `jobsys status` talk to.
    api_url: str = DEFAULT_API_URL
    #: JOBSYS_PRODUCER_TOKENS (comma-separated) or JOBSYS_PRODUCER_TOKENS_FILE: bearer
    #: tokens that may submit jobs and read everything. Never shown by repr.
    producer_tokens: tuple[str, ...] = field(default=(), repr=False)
    #: JOBSYS_ADMIN_TOKENS or JOBSYS_ADMIN_TOKENS_FILE: bearer tokens that may do anything.
    #: No token of either kind: the API is open to anyone who can reach it.
    admin_tokens: tuple[str, ...] = field(default=(), repr=False)
    #: JOBSYS_TOKEN: the bearer token `jobsys submit` / `status` / `cancel` send.
    api_token: str | None = field(default=None, repr=False)
    #: JOBSYS_ALLOWED_HOSTS: the host names (comma-separated, ``*`` for any) the API
    #: answers in a request's Host header; others get 400 (DNS rebinding). Unset: an
    #: open API allows `DEFAULT_ALLOWED_HOSTS`, one with tokens allows any host.
    allowed_hosts: tuple[str, ...] | None = None
    #: JOBSYS_AUTH_MAX_FAILURES: failed token attempts one client address may make
    #: within JOBSYS_AUTH_LOCKOUT_SECONDS before its requests with a token get 429
    #: (per API process; 0 = no limit).
    auth_max_failures: int = 10
    #: JOBSYS_AUTH_LOCKOUT_SECONDS: that window, counted from the first failure: the
    #: longest a client is locked out.
    auth_lockout_s: float = 60.0

    # -- events and webhooks (issue 14, docs/events.md) --
    #: EVENTS_MAX_LEN: about how many events each queue's event stream keeps (the
    #: window a GET /events client may resume in; trimmed approximately).
    events_max_len: int = 10_000
    #: JOBSYS_WEBHOOK_SECRET: the key that signs per-job callbacks (``callback_url``);
    #: ``whsec_<base64>`` (its decoded bytes are the key) or any text (its UTF-8
    #: bytes). Unset: a submit with callback_url is refused. Never shown by repr.
    webhook_secret: str | None = field(default=None, repr=False)
    #: WEBHOOK_ALLOWED_HOSTS: host names, addresses or networks (CIDR) a webhook URL may
    #: reach although they are not public (loopback, private, link-local ...).
    webhook_allowed_hosts: tuple[str, ...] = ()
    #: WEBHOOK_BACKOFF_SECONDS: the first retry delay of a delivery; doubles per attempt.
    webhook_backoff_s: float = 5.0
    #: WEBHOOK_MAX_AGE_SECONDS: how long a delivery is retried before it is dead-lettered.
    webhook_max_age_s: float = 86400.0
    #: WEBHOOK_TIMEOUT_SECONDS: the longest one delivery attempt may take (connect + answer).
    webhook_timeout_s: float = 10.0
    #: WEBHOOK_CONCURRENCY: deliveries one dispatcher makes at once.
    webhook_concurrency: int = 8

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate the environment (``os.environ`` by default)."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        url, configured = _redis_url(reader)
        no_sentinels: tuple[tuple[str, int], ...] = ()
        sentinels = reader.get("REDIS_SENTINELS", _host_ports, no_sentinels)
        master = env.get("REDIS_SENTINEL_MASTER", "").strip() or None
        if url.startswith(SENTINEL_SCHEMES):  # Sentinel failover (issue 13): the URL form
            if sentinels or master:
                raise ConfigError(
                    "REDIS_URL names Sentinels (redis+sentinel://): leave REDIS_SENTINELS "
                    "and REDIS_SENTINEL_MASTER unset, or give them and a redis:// REDIS_URL"
                )
            url, sentinels, master = reader.get("REDIS_URL", sentinel_url, (url, sentinels, ""))
        cluster_nodes = reader.get("REDIS_CLUSTER_NODES", _host_ports, no_sentinels)
        settings = cls(
            redis_url=url,
            redis_configured=configured or bool(sentinels) or bool(cluster_nodes),
            redis_cluster_nodes=cluster_nodes,
            redis_sentinels=sentinels,
            redis_sentinel_master=master,
            redis_sentinel_password=_secret(env, "REDIS_SENTINEL_PASSWORD"),
            redis_wait_replicas=reader.get("REDIS_WAIT_REPLICAS", _non_negative_int, 0),
            redis_wait_timeout_s=reader.get("REDIS_WAIT_TIMEOUT_SECONDS", _positive_float, 1.0),
            simulated_work_s=reader.get("SIMULATED_WORK_SECONDS", _non_negative_float, 2.0),
            max_retries=reader.get("MAX_RETRIES", _non_negative_int, 3),
            retry_backoff_s=reader.get("RETRY_BACKOFF_SECONDS", _non_negative_float, 1.0),
            retry_backoff_max_s=reader.get("RETRY_BACKOFF_MAX_SECONDS", _non_negative_float, 300.0),
            job_lease_s=reader.get("JOB_LEASE_SECONDS", _positive_float, 30.0),
            shutdown_grace_s=reader.get("SHUTDOWN_GRACE_SECONDS", _non_negative_float, 30.0),
            tasks_module=env.get("JOBSYS_TASKS") or None,
            worker_concurrency=reader.get("WORKER_CONCURRENCY", _positive_int, 1),
            async_concurrency=reader.get("ASYNC_CONCURRENCY", _positive_int, 100),
            unknown_tasks=reader.get("UNKNOWN_TASKS", _unknown_tasks, "simulate"),
            worker_processes=reader.get("WORKER_PROCESSES", worker_processes, 1),
            worker_max_jobs_per_child=reader.get("WORKER_MAX_JOBS_PER_CHILD", _non_negative_int, 0),
            worker_max_memory_mb=reader.get("WORKER_MAX_MEMORY_MB", _non_negative_int, 0),
            worker_queues=reader.get("WORKER_QUEUES", parse_queue_spec, (("default", 0),)),
            worker_prefetch=reader.get("WORKER_PREFETCH", _positive_int, 100),
            worker_poll_s=reader.get("WORKER_POLL_SECONDS", _positive_float, 1.0),
            worker_liveness_s=reader.get("WORKER_LIVENESS_SECONDS", _positive_float, 3.0),
            completed_retention_s=reader.get(
                "COMPLETED_RETENTION_SECONDS", _non_negative_int, 7 * 86400
            ),
            failed_retention_s=reader.get(
                "FAILED_RETENTION_SECONDS", _non_negative_int, 30 * 86400
            ),
            dead_letter_max_length=reader.get("DEAD_LETTER_MAX_LENGTH", _non_negative_int, 100_000),
            idempotency_ttl_s=reader.get("IDEMPOTENCY_TTL_SECONDS", _positive_int, 86400),
            max_queues=reader.get("MAX_QUEUES", _non_negative_int, DEFAULT_MAX_QUEUES),
            api_workers=reader.get("API_WORKERS", _positive_int, 2),
            api_threads=reader.get("API_THREADS", _positive_int, 8),
            api_worker_class=reader.get("API_WORKER_CLASS", _worker_class, "gevent"),
            allow_open=reader.get("JOBSYS_ALLOW_OPEN", _flag, False),
            published_host=reader.get("JOBSYS_PUBLISHED_HOST", _hostname, None),
            redis_socket_timeout_s=reader.get("REDIS_SOCKET_TIMEOUT_SECONDS", _positive_float, 5.0),
            redis_max_connections=reader.get("REDIS_MAX_CONNECTIONS", _positive_int, 200),
            log_level=reader.get("LOG_LEVEL", _log_level, "INFO"),
            log_format=reader.get("LOG_FORMAT", _log_format, "text"),
            api_url=reader.get("JOBSYS_URL", http_url, DEFAULT_API_URL),
            producer_tokens=_tokens(env, "JOBSYS_PRODUCER_TOKENS"),
            admin_tokens=_tokens(env, "JOBSYS_ADMIN_TOKENS"),
            api_token=_client_token(env),
            allowed_hosts=reader.get("JOBSYS_ALLOWED_HOSTS", host_names, None),
            auth_max_failures=reader.get("JOBSYS_AUTH_MAX_FAILURES", _non_negative_int, 10),
            auth_lockout_s=reader.get("JOBSYS_AUTH_LOCKOUT_SECONDS", _positive_float, 60.0),
            # events and webhooks (issue 14)
            events_max_len=reader.get("EVENTS_MAX_LEN", _positive_int, 10_000),
            webhook_secret=env.get("JOBSYS_WEBHOOK_SECRET") or None,
            webhook_allowed_hosts=reader.get("WEBHOOK_ALLOWED_HOSTS", _name_list, ()),
            webhook_backoff_s=reader.get("WEBHOOK_BACKOFF_SECONDS", _positive_float, 5.0),
            webhook_max_age_s=reader.get("WEBHOOK_MAX_AGE_SECONDS", _positive_float, 86400.0),
            webhook_timeout_s=reader.get("WEBHOOK_TIMEOUT_SECONDS", _positive_float, 10.0),
            webhook_concurrency=reader.get("WEBHOOK_CONCURRENCY", _positive_int, 8),
        )
        if bool(settings.redis_sentinels) != bool(settings.redis_sentinel_master):
            raise ConfigError(
                "set REDIS_SENTINELS and REDIS_SENTINEL_MASTER together (the Sentinels, "
                "and the name they monitor the primary by), or neither"
            )
        if settings.redis_sentinel_password is not None and not settings.redis_sentinels:
            raise ConfigError(
                "REDIS_SENTINEL_PASSWORD (or its _FILE form) is set but REDIS_SENTINELS is "
                "not: the data node's password goes in REDIS_URL"
            )
        if (
            settings.redis_wait_replicas
            and settings.redis_wait_timeout_s >= settings.redis_socket_timeout_s
        ):
            raise ConfigError(
                f"REDIS_WAIT_TIMEOUT_SECONDS={settings.redis_wait_timeout_s} must be less than "
                f"REDIS_SOCKET_TIMEOUT_SECONDS={settings.redis_socket_timeout_s}: the socket "
                "would time out before the replicas' answer"
            )
        if settings.redis_sentinels and settings.redis_cluster_nodes:
            raise ConfigError(
                "set REDIS_SENTINELS or REDIS_CLUSTER_NODES, not both (a Redis Cluster "
                "fails over by itself)"
            )
        both = set(settings.producer_tokens) & set(settings.admin_tokens)
        if both:
            raise ConfigError(
                f"{len(both)} token(s) are both in JOBSYS_PRODUCER_TOKENS and in "
                "JOBSYS_ADMIN_TOKENS: give each token one role"
            )
        if settings.job_lease_s < 2 * settings.worker_poll_s:
            raise ConfigError(
                f"JOB_LEASE_SECONDS={settings.job_lease_s} must be at least twice "
                f"WORKER_POLL_SECONDS={settings.worker_poll_s} so heartbeats can renew leases"
            )
        if settings.worker_poll_s >= settings.redis_socket_timeout_s:
            raise ConfigError(
                f"WORKER_POLL_SECONDS={settings.worker_poll_s} must be less than "
                f"REDIS_SOCKET_TIMEOUT_SECONDS={settings.redis_socket_timeout_s}: an idle "
                "worker's blocking read must end before the socket times out"
            )
        return settings

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some fields replaced (used by CLI flags and tests)."""
        known = {f.name for f in fields(self)}
        unknown = set(changes) - known
        if unknown:
            raise TypeError(f"unknown settings: {sorted(unknown)}")
        return replace(self, **changes)

    @property
    def max_attempts(self) -> int:
        """Attempts in all: the first one plus `max_retries` retries."""
        return self.max_retries + 1

    @property
    def auth_enabled(self) -> bool:
        """True when any API token is configured: the API then wants a bearer token."""
        return bool(self.producer_tokens or self.admin_tokens)

    def check_exposure(self, bind_host: str) -> None:
        """Refuse to serve an open API (no token) where other machines can reach it.

        The API may run open on a loopback address (see `is_loopback`): `bind_host`,
        or JOBSYS_PUBLISHED_HOST when set. Anywhere else it needs a producer or admin
        token, or the operator's JOBSYS_ALLOW_OPEN=1.

        Raises:
            ConfigError: the API would be open to other machines.
        """
        if self.auth_enabled or self.allow_open:
            return
        exposed = self.published_host or bind_host
        if is_loopback(exposed):
            return
        if self.published_host:
            where = f", published on {exposed} (JOBSYS_PUBLISHED_HOST)"
            narrow = "publish the port on loopback only (JOBSYS_API_PUBLISH=127.0.0.1)"
        else:
            where = f" on {exposed or 'every interface'}"
            narrow = (
                "bind a loopback address (--host 127.0.0.1; in a container whose port is "
                "published on loopback only, set JOBSYS_PUBLISHED_HOST=127.0.0.1)"
            )
        raise ConfigError(
            f"refusing to start the API open{where}: no JOBSYS_PRODUCER_TOKENS or "
            "JOBSYS_ADMIN_TOKENS (nor their _FILE forms) is set, so anyone who can reach it "
            f"could submit, read, cancel and purge jobs. Set tokens, {narrow}, or set "
            "JOBSYS_ALLOW_OPEN=1 to serve it open anyway"
        )

    @property
    def redacted_redis_url(self) -> str:
        """The Redis URL with every password replaced (see `redact_url`), safe to log."""
        return redact_url(self.redis_url)

    def __repr__(self) -> str:
        # The dataclass repr, with the Redis URL redacted (tokens are left out).
        shown = [f"redis_url={self.redacted_redis_url!r}"]
        shown += [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr]
        return f"{type(self).__name__}({', '.join(shown)})"


#: Query parameters of a URL whose values are secrets (redis-py reads ``password``;
#: the rest are caught for safety): a name holding any of these words, any case.
_SECRET_PARAM = re.compile(r"pass|secret|token|auth|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with every credential redis-py accepts replaced by ``***``: the password of
    ``user:password@`` (and the whole user part when it has no ``:``, which could be
    a password too) and the value of a ``?password=`` parameter (or any whose name
    looks secret), for redis://, rediss:// and unix:// alike. A password may hold
    ``@``, ``/``, ``?`` or ``#`` unescaped: when in doubt, more is hidden, never less."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme}{sep}{_redact_rest(rest)}"


def _redact_rest(rest: str) -> str:
    location, qmark, query = rest.partition("?")
    if qmark:
        query = "&".join(_redact_param(p) for p in query.split("&"))
        if "@" in query:  # the "?" was in a password: hide everything up to the last "@"
            return "***@" + _redact_rest(rest.rpartition("@")[2])
    creds, at, host = location.rpartition("@")
    if at:
        user, colon, _ = creds.partition(":")
        location = f"{user}:***@{host}" if colon and user else f"***@{host}"
    return f"{location}{qmark}{query}"


def _redact_param(param: str) -> str:
    name, eq, _ = param.partition("=")
    return f"{name}=***" if eq and _SECRET_PARAM.search(name) else param


def _host_ports(text: str) -> tuple[tuple[str, int], ...]:
    """``host:port,host:port`` (a Sentinel list) as pairs."""
    out = []
    for item in text.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{item.strip()!r} is not host:port")
        out.append((host.strip("[]"), int(port)))
    return tuple(out)


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def get(self, name: str, parse: Callable[[str], T], default: T) -> T:
        raw = self._env.get(name)
        if raw is None or raw.strip() == "":
            return default
        try:
            return parse(raw.strip())
        except ValueError as e:
            shown = redact_url(raw) if "://" in raw else raw  # REDIS_URL may hold a password
            raise ConfigError(f"{name}={shown!r} is invalid: {e}") from None


def _tokens(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """The tokens of variable `name` (comma-separated) or of the file `name`_FILE
    (separated by commas, spaces or newlines: a Docker secret). Error messages
    never quote a token, only its position.

    A variable that is set must give at least one token, even when it is empty: an
    empty secret file or ``X=$(cat missing)`` must not start the API open to all.
    Unset both to run open."""
    text, source = _value_or_file(env, name, "a file of tokens")
    if text is None:
        return ()
    if source != name:  # a file: tokens separated by commas, spaces or newlines
        return _check_tokens(source, text.replace(",", " ").split())
    return _check_tokens(name, [t.strip() for t in text.split(",")])


def _value_or_file(env: Mapping[str, str], name: str, what: str) -> tuple[str | None, str]:
    """The text of variable `name`, or of the file that `name`_FILE names (a Docker
    secret), and which of the two gave it (None: neither is set). Both set, an empty
    file name or an unreadable file are a `ConfigError` naming the variable."""
    file_name = f"{name}_FILE"
    inline = env.get(name)
    path = env.get(file_name)
    if inline is not None and path is not None:
        raise ConfigError(f"set {name} or {file_name}, not both")
    if path is None:
        return inline, name
    if not path.strip():
        raise ConfigError(f"{file_name} is set but empty: name {what}, or unset it")
    try:
        return Path(path.strip()).read_text(encoding="utf-8"), file_name
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{file_name}={path!r} cannot be read: {e}") from None


def _check_tokens(name: str, tokens: list[str]) -> tuple[str, ...]:
    if not any(tokens):
        raise ConfigError(
            f"{name} is set but holds no token: give at least one token of "
            f"{MIN_TOKEN_CHARS} or more characters (`openssl rand -hex 16`), or unset {name} "
            "to run the API open to anyone who can reach it"
        )
    for n, token in enumerate(tokens, 1):
        if not token:
            raise ConfigError(f"{name}: token {n} is empty (two commas in a row or a stray comma)")
        if not MIN_TOKEN_CHARS <= len(token) <= MAX_TOKEN_CHARS:
            raise ConfigError(
                f"{name}: token {n} has {len(token)} characters; a token must have "
                f"{MIN_TOKEN_CHARS} to {MAX_TOKEN_CHARS} (try `openssl rand -hex 16`)"
            )
        if not TOKEN_PATTERN.fullmatch(token):
            raise ConfigError(
                f"{name}: token {n} has a character a bearer token may not have; use only "
                "A-Z a-z 0-9 - . _ ~ + / (and = at the end)"
            )
    return tuple(dict.fromkeys(tokens))  # without repeats, in order


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """The secret in variable `name` or in the file `name`_FILE (a Docker secret: one
    trailing newline is dropped). Set but empty is an error, never "no password";
    messages never quote the secret."""
    inline, source = _value_or_file(env, name, "a file")
    if inline is None:
        return None
    if source != name:  # a file: one trailing line break is not part of the secret
        inline, name = inline.removesuffix("\n").removesuffix("\r"), source
    if not inline:
        raise ConfigError(f"{name} is set but empty: give the password, or unset it")
    if any(c in inline for c in "\r\n\0"):
        raise ConfigError(f"{name}: the password holds a line break or NUL")
    return inline


def _client_token(env: Mapping[str, str]) -> str | None:
    token = env.get("JOBSYS_TOKEN", "").strip()
    if token and not TOKEN_PATTERN.fullmatch(token):
        raise ConfigError(
            "JOBSYS_TOKEN has a character a bearer token may not have; use only "
            "A-Z a-z 0-9 - . _ ~ + / (and = at the end)"
        )
    return token or None


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1, bracketed or not):
    an address only this machine reaches. Any other name may resolve anywhere: False."""
    name = host.strip().removeprefix("[").removesuffix("]").lower()
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name == "localhost"
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback  # ::ffff:127.0.0.1
    return address.is_loopback


def _redis_url(reader: _Reader) -> tuple[str, bool]:
    url = reader.get("REDIS_URL", _redis_url_value, "")
    if url:
        return url, True
    host = reader.get("REDIS_HOST", _hostname, "")
    port = reader.get("REDIS_PORT", _port, 0)
    configured = bool(host) or bool(port)
    host = host or DEFAULT_REDIS_HOST
    port = port or DEFAULT_REDIS_PORT
    return f"redis://{quote(host, safe='.-:[]')}:{port}/0", configured


def _redis_url_value(raw: str) -> str:
    if not raw.startswith(("redis://", "rediss://", "unix://", *SENTINEL_SCHEMES)):
        raise ValueError(
            "must start with redis://, rediss://, unix:// or redis+sentinel:// "
            "(rediss+sentinel:// with TLS)"
        )
    return raw


#: REDIS_URL's Sentinel form: ``redis+sentinel://[user:password@]host:port,.../master[/db]``.
SENTINEL_SCHEMES = ("redis+sentinel://", "rediss+sentinel://")


def sentinel_url(raw: str) -> tuple[str, tuple[tuple[str, int], ...], str]:
    """Split REDIS_URL's Sentinel form into (the data nodes' URL, the Sentinels, the
    primary's name). The user and password are the data nodes' (as in a redis://
    URL; the Sentinels' own is REDIS_SENTINEL_PASSWORD); the query is kept."""
    scheme, _, rest = raw.partition("://")
    location, qmark, query = rest.partition("?")
    creds, at, where = location.rpartition("@")
    hosts, _, path = where.partition("/")
    master, _, db = path.partition("/")
    if not hosts or not master:
        raise ValueError("must be redis+sentinel://host:port,host:port/<master name>[/<db>]")
    db = db.rstrip("/") or "0"
    if not db.isdigit():
        raise ValueError(f"the database {db!r} is not a number")
    node_scheme = "rediss" if scheme.startswith("rediss") else "redis"
    # The host is never used: the Sentinels name the primary's address.
    node = f"{node_scheme}://{creds}{at}sentinel-primary/{db}{qmark}{query}"
    return node, _host_ports(hosts), master


def _hostname(raw: str) -> str:
    if any(c.isspace() or c in "/@?#" for c in raw):
        raise ValueError("must be a bare host name or address")
    return raw


def host_names(raw: str) -> tuple[str, ...]:
    """Comma-separated host names or addresses, lower-cased; IPv6 ones in brackets."""
    names = [n.strip().lower() for n in raw.split(",")]
    if not all(names):
        raise ValueError("a host name is empty (two commas in a row or a stray comma)")
    out = []
    for given in names:
        # A bare IPv6 address is bracketed, as a Host header brackets it.
        name = f"[{given}]" if given.count(":") >= 2 and not given.startswith("[") else given
        if any(c.isspace() or c in "/@?#\"'" for c in name) or (
            ":" in name and not name.startswith("[")
        ):
            raise ValueError(f"{name!r} is not a host name (give no scheme and no port)")
        out.append(name)
    return tuple(dict.fromkeys(out))


def _port(raw: str) -> int:
    port = int(raw)
    if not 1 <= port <= 65535:
        raise ValueError("must be a port number from 1 to 65535")
    return port


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0 or value == float("inf"):
        raise ValueError("must be a finite number >= 0")
    return value


def _positive_float(raw: str) -> float:
    value = _non_negative_float(raw)
    if value == 0:
        raise ValueError("must be a number > 0")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("must be a whole number >= 0")
    return value


def _positive_int(raw: str) -> int:
    value = int(raw)
    if value < 1:
        raise ValueError("must be a whole number >= 1")
    return value


def http_url(raw: str) -> str:
    """`raw` without a trailing slash; ValueError unless it is an http(s):// URL."""
    if not raw.startswith(("http://", "https://")) or not raw.partition("://")[2]:
        raise ValueError("must be an http:// or https:// URL")
    return raw.rstrip("/")


def _flag(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be 1 or 0 (or true/false, yes/no, on/off)")


def _worker_class(raw: str) -> str:
    if raw not in {"gevent", "gthread"}:
        raise ValueError("must be gevent or gthread")
    return raw


def worker_processes(raw: str) -> int:
    """``auto`` (one per CPU core) or a whole number of at least 1."""
    if raw.strip().lower() == "auto":
        return os.cpu_count() or 1
    try:
        return _positive_int(raw)
    except ValueError:
        raise ValueError("must be auto or a whole number >= 1") from None


def _unknown_tasks(raw: str) -> str:
    mode = raw.strip().lower()
    if mode not in {"simulate", "reject"}:
        raise ValueError("must be simulate or reject")
    return mode


def _log_format(raw: str) -> str:
    fmt = raw.lower()
    if fmt not in {"text", "json"}:
        raise ValueError("must be text or json")
    return fmt


def _log_level(raw: str) -> str:
    level = raw.upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _name_list(raw: str) -> tuple[str, ...]:
    """Comma-separated host names, addresses or CIDR networks (WEBHOOK_ALLOWED_HOSTS),
    lower-cased; a network must parse."""
    names = tuple(n.strip().lower().strip("[]") for n in raw.split(",") if n.strip())
    for name in names:
        if "/" in name:
            ipaddress.ip_network(name, strict=False)  # ValueError names the bad one
    return names
