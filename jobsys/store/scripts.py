"""Loads the Lua scripts in ``lua/`` into Redis and gives each a typed method.

Every state transition of a job is one script, so it is one atomic step in
Redis. Each script file starts with an ``Input/Output`` header. Together with
``_lib.lua`` (their shared helpers) they make one Redis *function library*
(Redis 7+): each script is a function of it, called with FCALL. Unlike EVALSHA,
which would run the helpers' definitions again on every call, a library defines
them once when it is loaded; on a submit that is a fifth of Redis's time.

The library's name carries a digest of its code (`library`), so processes of two
jobsys versions (a rolling upgrade) each call their own functions. A library is
loaded the first time Redis says it does not have it (a new version, a Redis
restart without persistence, FUNCTION FLUSH): nothing ran, so the call is made
again. Old versions' libraries stay in Redis until deleted (FUNCTION DELETE).

A call is packed with hiredis and written straight to a connection this object
keeps, which costs a fraction of redis-py's `execute_command` (its per-command
hooks and argument encoding are a good part of a submit's CPU time).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import DataError, ResponseError

from jobsys import stamps
from jobsys.errors import IdempotencyConflict
from jobsys.store import keys
from jobsys.store.wire import Wire

_NAMES = (
    "enqueue",
    "claim",
    "complete",
    "fail",
    "release",
    "recover",
    "heartbeat",
    "cancel",
    "progress",
    "tick",
    "page",
    "replay",
    "purge",
    "worker_beat",
    "workers_live",
)


#: Script flags (``#!lua flags=...`` at the top of a file) and their function flags.
_FLAGS = ("allow-oom", "no-writes")


@dataclass(frozen=True)
class Library:
    """The function library of this jobsys version: its name and its code."""

    name: str
    code: str

    def function(self, script: str) -> str:
        """The name of the function that runs `script`."""
        return _function_name(self.name, script)


def _function_name(library_name: str, script: str) -> str:
    return f"{library_name}_{script}"


@cache
def library() -> Library:
    """The function library made of ``_lib.lua`` and every script of `_NAMES`.

    Each script's first line is ``#!lua`` with its flags, as for EVAL. Without
    ``allow-oom`` Redis refuses the whole call up front when it is over
    ``maxmemory``, so enqueue.lua never half-runs; the worker's scripts carry
    ``allow-oom`` so that accepted jobs can still be settled while submits are
    being refused. A script's body becomes the function ``callback(KEYS, ARGV)``,
    so it reads its keys and arguments as an EVAL script does.
    """
    lua = resources.files("jobsys.store") / "lua"
    functions = []
    for name in _NAMES:
        shebang, _, body = (lua / f"{name}.lua").read_text().partition("\n")
        if not shebang.startswith("#!lua"):
            raise RuntimeError(f"{name}.lua must start with a #!lua line")
        given = shebang.partition("flags=")[2].split(",") if "flags=" in shebang else []
        if any(f not in _FLAGS for f in given):
            raise RuntimeError(f"{name}.lua: unknown flags {given}")
        functions.append((name, ", ".join(f"'{f}'" for f in given), body))
    helpers = (lua / "_lib.lua").read_text()
    lib = "jobsys_" + hashlib.sha256(repr((helpers, functions)).encode()).hexdigest()[:12]
    code = [f"#!lua name={lib}\n{helpers}\n"]
    for script, flags, body in functions:
        code.append(
            f"redis.register_function{{function_name='{_function_name(lib, script)}', "
            f"flags={{{flags}}},\n"
            f"callback=function(KEYS, ARGV)\n{body}\nend}}\n"
        )
    return Library(lib, "".join(code))


@dataclass(frozen=True)
class NewJob:
    """One job to enqueue: what the submitter gave plus its limits."""

    id: str
    task: str
    payload_json: str | None
    max_retries: int
    priority: int = 0
    #: Due time in ms since the epoch (0: none).
    run_at_ms: int = 0
    #: Delay in ms, counted from the Redis clock (0: none).
    delay_ms: int = 0
    #: Longest an attempt may run, in seconds (None: no limit).
    timeout_s: float | None = None
    #: W3C trace context of the submit (None: none).
    traceparent: str | None = None


@dataclass(frozen=True)
class Retention:
    """How long ended jobs are kept (0: forever), and the cap of dead_letter (0: none)."""

    completed_s: int = 0
    failed_s: int = 0
    dead_letter_max: int = 0


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key in force for one request."""

    #: sha256 hex of the client's key (the key itself is never stored).
    key_digest: str
    #: What identifies "the same request" (a hash of its canonical form).
    fingerprint: str
    ttl_s: int


@dataclass(frozen=True)
class Claimed:
    """One job a worker has just leased."""

    id: str
    attempt: int
    task: str
    payload_json: str | None
    max_retries: int
    #: Longest the attempt may run, in seconds (None: no limit).
    timeout_s: float | None = None
    #: When the job was submitted: ms since the epoch, Redis clock (0: unknown).
    created_ms: int = 0
    #: When a delayed job became due: ms since the epoch (0: not delayed).
    run_at_ms: int = 0
    #: W3C trace context given at submit, else None.
    traceparent: str | None = None
    #: When it was claimed: ms since the epoch, Redis clock.
    claimed_ms: int = 0


class Scripts:
    """The Lua scripts bound to one Redis client, one method per transition."""

    def __init__(self, client: redis.Redis, retention: Retention | None = None) -> None:
        self._client = client
        self._retention = retention or Retention()
        self._lib = library()
        self._fn = {n: self._lib.function(n) for n in _NAMES}
        self._idle: list[Any] = []
        self._pid = os.getpid()
        self._decode = bool(client.get_encoder().decode_responses)

    def load(self) -> None:
        """Load this version's function library into Redis, unless it is there."""
        try:
            self._client.function_load(self._lib.code)
        except ResponseError as e:
            if "already exists" not in str(e):  # another process loaded it first
                raise

    def _run(self, name: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
        """Run script `name` (FCALL); load the library first when Redis lacks it."""
        try:
            command = hiredis.pack_command(("FCALL", self._fn[name], len(keys_), *keys_, *args))
        except TypeError as e:
            raise DataError(str(e)) from e  # as redis-py reports an argument it cannot send
        try:
            return self._send(command)
        except ResponseError as e:
            if not library_missing(e):
                raise
        # Nothing ran: Redis does not have this version's library (yet).
        self.load()
        return self._send(command)

    def _send(self, command: bytes) -> Any:
        """Send one packed command and read its answer.

        What redis-py's `execute_command` does with retries off, without its
        hooks (see `Wire`); and on a connection this object keeps (see `_take`), since the
        pool's get/release with its lock, bookkeeping and events cost more than
        a script's own round trip on a loaded machine. A connection whose state
        is unknown after a failure (a timeout, a dropped socket, an interrupt) is
        closed; it connects again on its next use. An error answer (a
        `ResponseError`) is read whole, so its connection stays open."""
        conn = self._take()
        try:
            wire = Wire.of(conn, self._decode)
            if wire is not None:
                answer = wire.call(command)
            else:  # a redis-py whose connections keep their socket elsewhere
                conn.send_packed_command([command])
                answer = conn.read_response()
        except redis.ResponseError:
            self._idle.append(conn)
            raise
        except BaseException:
            conn.disconnect()
            self._idle.append(conn)
            raise
        self._idle.append(conn)
        return answer

    def _take(self) -> Any:
        """A connection for one command: an idle one of this object's, checked as
        the pool checks it (no unread bytes, not closed by the server), or a new
        one from the pool, which this object then keeps until the client closes
        them all (`redis.Redis.close` closes checked-out connections too).

        A list's pop/append are atomic, so threads never share a connection; the
        number kept is the most commands ever in flight at once. After a fork the
        child starts with none: the parent's sockets are not its to use."""
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        try:
            conn: Any = self._idle.pop()  # redis-py's Connection is untyped
        except IndexError:
            return self._client.connection_pool.get_connection()
        try:
            conn.connect()  # nothing to do when it is connected
            try:
                if conn.can_read(timeout=0):
                    raise redis.ConnectionError("unread data on an idle connection")
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                conn.disconnect()
                conn.connect()
        except BaseException:
            self._idle.append(conn)
            raise
        return conn

    def _run_ending(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """Run a script that may end jobs: the retention arguments go last."""
        r = self._retention
        tail = [r.completed_s, r.failed_s, r.dead_letter_max, keys.JOB_PREFIX]
        return self._run(name, keys_, [*args, *tail])

    def enqueue(
        self,
        queue: str,
        ids: Sequence[str],
        argv: Sequence[Any],
        idempotency: Idempotency | None = None,
    ) -> list[str] | None:
        """Add jobs to `queue` atomically (see enqueue.lua): `ids` are their ids and
        `argv` their ARGV, `JOB_ARGS` per job in the order of `ids` (see `job_argv`).

        Returns None when the jobs were added, or the ids of the first request when
        `idempotency` names a repeat of it. Raises `IdempotencyConflict`.
        """
        if idempotency is None:
            ks = [*_enqueue_keys(queue), *[keys.JOB_PREFIX + i for i in ids]]
            args: list[Any] = [queue, *_NO_IDEMPOTENCY, *argv]
        else:
            ks = [
                *_queue_keys(queue),
                keys.idempotency(queue, idempotency.key_digest),
                *_index_keys(queue),
                *[keys.job(i) for i in ids],
            ]
            args = [queue, "1", idempotency.fingerprint, idempotency.ttl_s, *argv]
        ks.append(keys.metrics(queue))
        try:
            answer = self._run("enqueue", ks, args)
        except ResponseError as e:
            if "IDEMPOTENCY_CONFLICT" in str(e):
                raise IdempotencyConflict(queue) from None
            raise
        if _text(answer[0]) == "replay":
            return [_text(x) for x in answer[1:]]
        return None

    def claim(
        self, queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int = 100
    ) -> list[Claimed]:
        """Lease up to `max_jobs` of the oldest ready jobs (see claim.lua)."""
        ks, args = _claim_call(queue, worker, lease_ms, max_jobs, promote)
        return _claimed(self._run("claim", ks, args))

    def wait_then_claim(
        self,
        wake_queues: Sequence[str],
        timeout_s: float,
        queue: str,
        worker: str,
        lease_ms: int,
        max_jobs: int,
        promote: int = 100,
    ) -> list[Claimed]:
        """Block until a queue of `wake_queues` is woken (or `timeout_s`), then claim
        from `queue` (see claim.lua), in ONE round trip.

        The two commands go out in one pipeline: Redis holds the claim in the
        connection's buffer while BZPOPMIN blocks and runs it the moment it
        returns, so a submit reaches an idle worker without a second round trip.
        """
        ks, args = _claim_call(queue, worker, lease_ms, max_jobs, promote)
        pipe = self._client.pipeline(transaction=False)
        pipe.bzpopmin([keys.wakeup(q) for q in wake_queues], timeout=timeout_s)
        pipe.fcall(self._fn["claim"], len(ks), *ks, *args)
        try:
            _, flat = pipe.execute()
        except ResponseError as e:
            if not library_missing(e):
                raise
            # Redis lost the library (a restart): claim the usual way, which loads
            # it again.
            return self.claim(queue, worker, lease_ms, max_jobs, promote)
        return _claimed(flat)

    def complete(self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str]]) -> list[str]:
        """Record results [(id, attempt, result JSON)]: "completed", "cancelled" or
        "stale" each (see complete.lua)."""
        ks = [keys.leases(queue), *_index_keys(queue)]
        args: list[Any] = [worker]
        for job_id, attempt, result_json in jobs:
            ks.append(keys.job(job_id))
            args += [job_id, attempt, result_json]
        return [_text(x) for x in self._run_ending("complete", ks, args)]

    def fail(self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str, int]]) -> list[str]:
        """Record failed attempts [(id, attempt, error, backoff_ms)]: "retry", "dead" or
        "stale" each (see fail.lua)."""
        ks = [
            keys.leases(queue),
            keys.scheduled(queue),
            keys.dead_letter(),
            keys.ready(queue),
            keys.wakeup(queue),
            *_index_keys(queue),
        ]
        args: list[Any] = [worker]
        for job_id, attempt, error, backoff_ms in jobs:
            ks.append(keys.job(job_id))
            args += [job_id, attempt, error, backoff_ms]
        return [_text(x) for x in self._run_ending("fail", ks, args)]

    def release(self, queue: str, job_id: str, worker: str, attempt: int) -> bool:
        """Hand an unfinished job back without counting the attempt (see release.lua)."""
        ks = [keys.job(job_id), keys.leases(queue), keys.ready(queue), keys.wakeup(queue)]
        ks += _index_keys(queue)
        return bool(self._run_ending("release", ks, [job_id, worker, attempt]))

    def recover(self, queue: str, max_jobs: int = 100) -> list[tuple[str, str, str]]:
        """Take back jobs whose lease ran out: [(id, "retry" | "dead" | "cancelled", task)]
        (see recover.lua)."""
        ks = [keys.leases(queue), keys.ready(queue), keys.dead_letter(), keys.wakeup(queue)]
        ks += _index_keys(queue)
        flat = self._run_ending("recover", ks, [keys.JOB_PREFIX, max_jobs])
        return [
            (_text(flat[i]), _text(flat[i + 1]), _text(flat[i + 2])) for i in range(0, len(flat), 3)
        ]

    def heartbeat(
        self, queue: str, worker: str, lease_ms: int, held: list[tuple[str, int]]
    ) -> tuple[list[str], list[str]]:
        """Renew the leases in `held` [(id, attempt)]; return the ids whose lease is
        lost, and those whose cancellation was requested (see heartbeat.lua)."""
        args: list[Any] = [keys.JOB_PREFIX, worker, lease_ms]
        for job_id, attempt in held:
            args += [job_id, attempt]
        lost, cancel = self._run("heartbeat", [keys.leases(queue)], args)
        return [_text(x) for x in lost], [_text(x) for x in cancel]

    def progress(
        self, job_id: str, worker: str, attempt: int, fraction: float, message: str
    ) -> bool:
        """Record a running job's progress, fenced (see progress.lua)."""
        args = [worker, attempt, repr(float(fraction)), message]
        return bool(self._run("progress", [keys.job(job_id)], args))

    def tick(
        self,
        queue: str,
        schedule: str,
        tick_ms: int,
        job: NewJob,
    ) -> str:
        """Enqueue `job` for tick `tick_ms` of `schedule` unless that tick is taken
        (see tick.lua): "enqueued", "seen" or "first"."""
        ks = [
            keys.last_tick(queue, schedule),
            keys.ready(queue),
            keys.scheduled(queue),
            keys.wakeup(queue),
            keys.sequence(queue),
            keys.queues(),
            keys.job(job.id),
            *_index_keys(queue),
            keys.metrics(queue),
        ]
        args = [tick_ms, queue, job.id, job.task, job.payload_json or "", job.max_retries, schedule]
        return _text(self._run("tick", ks, args))

    def worker_beat(
        self, pipe: redis.client.Pipeline, worker: str, ttl_ms: int, fields: dict[str, Any]
    ) -> None:
        """Queue a registration renewal of `worker` on `pipe` (see worker_beat.lua);
        its answer there is the Redis clock in ms."""
        args: list[Any] = [worker, ttl_ms]
        for name, value in fields.items():
            args += [name, value]
        pipe.fcall(self._fn["worker_beat"], 2, keys.workers(), keys.worker(worker), *args)

    def workers_live(self, window_ms: int) -> list[str]:
        """The ids of workers whose last heartbeat is at most `window_ms` old; forgets
        the others (see workers_live.lua)."""
        return [_text(x) for x in self._run("workers_live", [keys.workers()], [window_ms])]

    def cancel(self, queue: str, job_id: str) -> str:
        """Cancel a job of `queue` (see cancel.lua for the answers)."""
        ks = [keys.job(job_id), keys.ready(queue), keys.scheduled(queue), *_index_keys(queue)]
        return _text(self._run_ending("cancel", ks, [job_id]))

    def page(
        self,
        indexes: Sequence[tuple[str, str]],
        limit: int,
        after: tuple[int, str] | None,
        task: str | None,
        budget: int,
        with_fields: bool,
    ) -> tuple[tuple[int, str] | None, list[tuple[str, int, dict[str, str]]]]:
        """Read the indexes [(queue, status)] merged, newest first, after position
        `after` (see page.lua): (the position to continue from or None,
        [(id, score, fields)])."""
        kinds = "".join("l" if s == keys.LIST_INDEXED_STATUS else "z" for _, s in indexes)
        args: list[Any] = [
            keys.JOB_PREFIX, limit, after[0] if after else "", after[1] if after else "",
            task or "", budget, "1" if with_fields else "0", kinds,
        ]  # fmt: skip
        index_keys = [keys.index(q, s) for q, s in indexes]
        score, member, flat = self._run("page", index_keys, args)
        nxt = (int(score), _text(member)) if _text(score) != "" else None
        out = []
        for i in range(0, len(flat), 3):
            fields = flat[i + 2]
            pairs = {_text(fields[j]): _text(fields[j + 1]) for j in range(0, len(fields), 2)}
            out.append((_text(flat[i]), int(flat[i + 1]), pairs))
        return nxt, out

    def replay(self, queue: str, ids: Sequence[str]) -> list[str]:
        """Put the `failed` jobs among `ids` (all of `queue`) back to work; the ids
        replayed (see replay.lua)."""
        ks = [keys.dead_letter(), keys.ready(queue), keys.wakeup(queue), keys.sequence(queue)]
        ks += [*_index_keys(queue), *(keys.job(i) for i in ids)]
        return [_text(x) for x in self._run("replay", ks, [queue, *ids])]

    def purge(self, queue: str, ids: Sequence[str]) -> list[str]:
        """Delete the `failed` jobs among `ids` (all of `queue`); the ids deleted
        (see purge.lua)."""
        ks = [keys.dead_letter(), keys.index(queue, "failed"), *(keys.job(i) for i in ids)]
        return [_text(x) for x in self._run("purge", ks, [queue, *ids])]


#: How many ARGV one job takes in enqueue.lua.
JOB_ARGS = 9
#: ARGV[2..4] of enqueue.lua without an Idempotency-Key.
_NO_IDEMPOTENCY = ("0", "", 0)


def library_missing(e: ResponseError) -> bool:
    """True for Redis's answer to an FCALL of a function it does not have."""
    return "Function not found" in str(e)


def job_argv(
    job_id: str,
    task: str,
    payload_json: str | None,
    max_retries: int,
    priority: int = 0,
    run_at_ms: int = 0,
    delay_ms: int = 0,
    timeout_s: float | None = None,
    traceparent: str | None = None,
) -> tuple[Any, ...]:
    """The `JOB_ARGS` ARGV of one job in enqueue.lua (the fields of `NewJob`)."""
    return (
        job_id, task, payload_json or "", max_retries, priority, run_at_ms, delay_ms,
        "" if timeout_s is None else repr(float(timeout_s)), traceparent or "",
    )  # fmt: skip


@cache
def _enqueue_keys(queue: str) -> tuple[str, ...]:
    """KEYS[1..12] of enqueue.lua without an Idempotency-Key (cached: submits are hot)."""
    return (*_queue_keys(queue), keys.queues(), *_index_keys(queue))


@cache
def _queue_keys(queue: str) -> tuple[str, str, str, str, str]:
    """The keys enqueue.lua touches for every job of `queue` (cached: submits are hot)."""
    return (
        keys.ready(queue),
        keys.scheduled(queue),
        keys.wakeup(queue),
        keys.sequence(queue),
        keys.queues(),
    )


@cache
def _index_keys(queue: str) -> tuple[str, ...]:
    """The status indexes of `queue`, in the order the scripts take them."""
    return tuple(keys.index(queue, s) for s in keys.INDEXED_STATUSES)


def _claim_call(
    queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int
) -> tuple[list[str], list[Any]]:
    ks = [keys.ready(queue), keys.scheduled(queue), keys.leases(queue), keys.wakeup(queue)]
    ks += _index_keys(queue)
    return ks, [keys.JOB_PREFIX, worker, lease_ms, max_jobs, promote]


def _claimed(flat: list[Any]) -> list[Claimed]:
    claimed_ms = int(flat[-1])
    return [
        Claimed(
            id=_text(flat[i]),
            attempt=int(flat[i + 1]),
            task=_text(flat[i + 2]),
            payload_json=_text(flat[i + 3]) if flat[i + 3] is not None else None,
            max_retries=int(flat[i + 4]),
            timeout_s=float(flat[i + 5]) if flat[i + 5] is not None else None,
            created_ms=stamps.ms(flat[i + 6]),
            run_at_ms=stamps.ms(flat[i + 7]),
            traceparent=_text(flat[i + 8]) if flat[i + 8] is not None else None,
            claimed_ms=claimed_ms,
        )
        for i in range(0, len(flat) - 1, 9)
    ]


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else cast(str, value)
