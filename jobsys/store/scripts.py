"""The Lua scripts of ``lua/`` bound to a redis-py client: one typed method each.

Every state transition of a job is one script, so it is one atomic step in
Redis; the scripts are the functions of one library (see `jobsys.store.library`),
called with FCALL. A call that finds Redis without this version's library (a new
version, a Redis restart without persistence, FUNCTION FLUSH) ran nothing: the
library is loaded and the call made again, once.

Every call goes through the client's `fcall` (or a pipeline), so connecting,
reconnecting, TLS, Sentinel and the error classes are redis-py's.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis
from redis.exceptions import ResponseError

from jobsys import stamps
from jobsys.errors import IdempotencyConflict, TooManyQueues
from jobsys.store import keys
from jobsys.store.library import NAMES, library, library_missing


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
class Enqueued:
    """What enqueue.lua did."""

    #: Positions (0-based) of the jobs it made `scheduled` (due later, by the Redis
    #: clock); the others are `queued`.
    scheduled: frozenset[int]
    #: For a repeated request (an Idempotency-Key seen before): the ids of the first
    #: request, and `scheduled` is its; nothing was enqueued. Else None.
    replayed_ids: list[str] | None = None


_ALL_QUEUED = Enqueued(frozenset())

#: FCALL's numkeys as bytes for the usual counts (redis-py would encode an int in
#: Python on every call: repr, then encode).
_NUMKEYS = tuple(str(i).encode() for i in range(64))


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

    def __init__(
        self, client: redis.Redis, retention: Retention | None = None, max_queues: int = 0
    ) -> None:
        self._client = client
        self._retention = retention or Retention()
        #: MAX_QUEUES (0: no cap), checked by enqueue.lua.
        self._max_queues = max_queues
        self._lib = library()
        # bytes: redis-py sends them as they are (a str it encodes on every call)
        self._fn = {n: self._lib.function(n).encode() for n in NAMES}
        self._local = threading.local()

    def load(self) -> None:
        """Load this version's function library into Redis, unless it is there."""
        try:
            self._client.function_load(self._lib.code)
        except ResponseError as e:
            if "already exists" not in str(e):  # another process loaded it first
                raise

    def _thread_client(self) -> redis.Redis:
        """This thread's client on one connection of the pool (`redis.Redis.client`),
        so that a script call skips the pool's checkout and return, which cost about
        a third of a small FCALL's producer CPU (docs/benchmarks.md).

        The pool checks a connection as it hands it out; this does the same check
        before every call: a connection with something to read holds an answer
        nobody read (a call interrupted between send and read) or was closed by
        Redis (a restart, CLIENT KILL, an idle timeout), so it is dropped and the
        call connects afresh. A forked child makes its own client: the parent's
        socket is never written on. A thread's client goes back to the pool when the
        thread ends (its thread-local is freed, and the client with it).
        """
        local = self._local
        client: redis.Redis | None = getattr(local, "client", None)
        if client is not None and local.pid == os.getpid():
            conn = client.connection
            if conn is not None and conn.is_connected:
                try:
                    stale = conn.can_read()
                except (redis.ConnectionError, redis.TimeoutError):
                    stale = True  # closed by Redis: can_read saw the end of the stream
                if not stale:
                    return client
            # Stale, or closed after an error: back to the pool, whose checkout
            # reconnects it (once; raises when Redis is unreachable).
            local.client = None
            client.close()
        # What `redis.Redis.client()` makes (that one is untyped).
        client = redis.Redis(
            connection_pool=self._client.connection_pool, single_connection_client=True
        )
        local.client, local.pid = client, os.getpid()
        return client

    def _run(self, name: str, keys_: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        """Run script `name` (FCALL); load the library first when Redis lacks it."""
        fn = self._fn[name]
        client = self._thread_client()
        n = len(keys_)
        numkeys = cast(int, _NUMKEYS[n] if n < len(_NUMKEYS) else n)
        try:
            return client.fcall(fn, numkeys, *keys_, *args)
        except ResponseError as e:
            if not library_missing(e):
                raise
        # Nothing ran: Redis does not have this version's library (yet).
        self.load()
        return client.fcall(fn, numkeys, *keys_, *args)

    def _run_ending(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """Run a script that may end jobs: the retention arguments go last."""
        r = self._retention
        tail = [r.completed_s, r.failed_s, r.dead_letter_max, keys.JOB_PREFIX]
        return self._run(name, keys_, [*args, *tail])

    def enqueue(
        self,
        queue: str,
        ids: Sequence[str],
        argv: Sequence[str],
        idempotency: Idempotency | None = None,
    ) -> Enqueued:
        """Add jobs to `queue` atomically (see enqueue.lua): `ids` are their ids and
        `argv` their ARGV, one per job (`submission.job_arg`) in the order of `ids`.

        Returns which jobs the script made `scheduled`, or, when `idempotency` names a
        repeat of an earlier request, that request's ids and scheduled jobs. Raises
        `IdempotencyConflict`, or `TooManyQueues` when `queue` is new and MAX_QUEUES
        queues exist.
        """
        head, metrics_key, queue_arg, header = _enqueue_call(queue, self._max_queues)
        # bytes: redis-py's encoder costs more per argument than str.encode here
        ks: list[str | bytes] = [*head, *[(keys.JOB_PREFIX + i).encode() for i in ids]]
        ks.append(metrics_key)
        if idempotency is not None:
            ks.append(keys.idempotency(idempotency.key_digest))
            header = (
                f"{self._max_queues:d},{idempotency.ttl_s:d},{idempotency.fingerprint}".encode()
            )
        args: list[Any] = [queue_arg, header, *[a.encode() for a in argv]]
        try:
            answer = self._run("enqueue", ks, args)
        except ResponseError as e:
            if "IDEMPOTENCY_CONFLICT" in str(e):
                raise IdempotencyConflict(queue) from None
            if "TOO_MANY_QUEUES" in str(e):
                raise TooManyQueues(queue, self._max_queues) from None
            raise
        if len(answer) == 1:  # {"new"}: every job queued, the usual answer
            return _ALL_QUEUED
        if _text(answer[0]) == "replay":
            positions = _text(answer[1])
            scheduled = frozenset(int(p) - 1 for p in positions.split(",") if p)
            return Enqueued(scheduled, [_text(x) for x in answer[2:]])
        return Enqueued(frozenset(int(p) - 1 for p in answer[1:]))

    def claim(
        self, queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int = 100
    ) -> list[Claimed]:
        """Lease up to `max_jobs` of the oldest ready jobs (see claim.lua)."""
        ks, args = _claim_call(
            queue, worker, lease_ms, max_jobs, promote, self._retention.completed_s
        )
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
        ks, args = _claim_call(
            queue, worker, lease_ms, max_jobs, promote, self._retention.completed_s
        )
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

    def tick(self, queue: str, schedule: str, tick_ms: int, job_id: str, job: str) -> str:
        """Enqueue the job `job_id` whose ARGV is `job` (`submission.job_arg`) for tick
        `tick_ms` of `schedule` unless that tick is taken (see tick.lua): "enqueued",
        "seen" or "first"."""
        ks = [
            keys.last_tick(queue, schedule),
            keys.ready(queue),
            keys.scheduled(queue),
            keys.wakeup(queue),
            keys.sequence(queue),
            keys.queues(),
            keys.job(job_id),
            *_index_keys(queue),
            keys.metrics(queue),
        ]
        return _text(self._run("tick", ks, [tick_ms, queue, schedule, job]))

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
        leave_out: Collection[str] = (),
    ) -> tuple[tuple[int, str] | None, list[tuple[str, int, dict[str, str]]]]:
        """Read the indexes [(queue, status)] merged, newest first, after position
        `after` (see page.lua): (the position to continue from or None,
        [(id, score, fields)]), each job's fields but those in `leave_out`."""
        kinds = "".join("l" if s == keys.LIST_INDEXED_STATUS else "z" for _, s in indexes)
        args: list[Any] = [
            keys.JOB_PREFIX, limit, after[0] if after else "", after[1] if after else "",
            task or "", budget, "1" if with_fields else "0", kinds, ",".join(sorted(leave_out)),
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

    def drop_queue(self, queue: str) -> str:
        """Forget `queue` if it is empty: "dropped", "unknown" or "not_empty" (see
        drop_queue.lua)."""
        ks = [
            keys.queues(), keys.ready(queue), keys.scheduled(queue), keys.leases(queue),
            keys.wakeup(queue), keys.sequence(queue), keys.metrics(queue), *_index_keys(queue),
        ]  # fmt: skip
        return _text(self._run("drop_queue", ks, [queue, keys.JOB_PREFIX]))

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

    # -- flow control (docs/flow-control.md) ------------------------------------

    def pause(self, queue: str, paused: bool) -> bool:
        """Pause (`paused`) or resume `queue`; whether it is paused now (see pause.lua)."""
        ks = [keys.flow(queue), keys.ready(queue), keys.wakeup(queue)]
        return bool(self._run("pause", ks, ["1" if paused else "0"]))

    def enqueue_flow(
        self,
        queue: str,
        ids: Sequence[str],
        argv: Sequence[str],
        unique_key: str | None = None,
        window_ms: int = 0,
        idempotency: Idempotency | None = None,
    ) -> Enqueued | tuple[str, str, str]:
        """Submit jobs that carry flow-control fields (see enqueue_flow.lua): which
        were made `scheduled`, or, for a duplicate of `unique_key` (one job only), the
        (id, status, task) of the job that holds the key. Raises `TooManyQueues`."""
        head, metrics_key, queue_arg, max_queues = _enqueue_call(queue, self._max_queues)
        fair = keys.fair(queue)
        unique = fair
        if unique_key is not None:
            unique = keys.unique(queue, hashlib.sha256(unique_key.encode()).hexdigest())
        idem = fair if idempotency is None else keys.idempotency(idempotency.key_digest)
        ks: list[str | bytes] = [*head, metrics_key, fair, unique, idem, *map(keys.job, ids)]
        args: list[Any] = [queue_arg, max_queues, keys.JOB_PREFIX, self._retention.completed_s]
        args += [unique_key or "", window_ms]
        if idempotency is None:
            args += ["", ""]
        else:
            args += [idempotency.ttl_s, idempotency.fingerprint]
        args += argv
        try:
            answer = self._run("enqueue_flow", ks, args)
        except ResponseError as e:
            if "TOO_MANY_QUEUES" in str(e):
                raise TooManyQueues(queue, self._max_queues) from None
            if "IDEMPOTENCY_CONFLICT" in str(e):
                raise IdempotencyConflict(queue) from None
            raise
        if _text(answer[0]) == "duplicate":
            return _text(answer[1]), _text(answer[2]), _text(answer[3])
        if _text(answer[0]) == "replay":
            positions = _text(answer[1])
            scheduled = frozenset(int(p) - 1 for p in positions.split(",") if p)
            return Enqueued(scheduled, [_text(x) for x in answer[2:]])
        return Enqueued(frozenset(int(p) - 1 for p in answer[1:]))

    def set_limits(self, queue: str, task: str | None, rate: str, concurrency: str) -> None:
        """Set the limits of `queue` (or of `task` in it): rate "<n>,<period ms>" and
        concurrency per key, '' = none (see limits.lua)."""
        ks = [keys.flow(queue), keys.ready(queue), keys.wakeup(queue)]
        self._run("limits", ks, ["" if task is None else f"|{task}", rate, concurrency])

    def rate_limited(
        self, queue: str, worker: str, jobs: Sequence[tuple[str, int, int, str]]
    ) -> list[str]:
        """Hand back jobs whose handler raised RateLimited [(id, attempt, retry_after_ms,
        "task" | "queue")]: "held", "cancelled" or "stale" each (see rate_limited.lua)."""
        ks = [keys.leases(queue), keys.ready(queue), keys.flow(queue), *_index_keys(queue)]
        args: list[Any] = [worker]
        for job_id, attempt, ms, what in jobs:
            ks.append(keys.job(job_id))
            args += [job_id, attempt, ms, what]
        return [_text(x) for x in self._run_ending("rate_limited", ks, args)]

    def promote(self, queue: str, job_id: str) -> str:
        """Run a job of `queue` that waits for a due time now (see promote.lua for
        the answers)."""
        ks = [keys.job(job_id), keys.ready(queue), keys.scheduled(queue), keys.wakeup(queue)]
        return _text(self._run("promote", [*ks, *_index_keys(queue)], [job_id]))

    def reprioritize(self, queue: str, job_id: str, priority: int) -> str:
        """Give a waiting job of `queue` a new priority (see reprioritize.lua)."""
        ks = [keys.job(job_id), keys.ready(queue)]
        return _text(self._run("reprioritize", ks, [job_id, priority]))


#: Most queues whose key names each cache below keeps (queue names come from
#: requests: unbounded caches would grow with every name ever sent).
KEY_CACHE_SIZE = 1024


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _enqueue_call(queue: str, max_queues: int = 0) -> tuple[tuple[bytes, ...], bytes, bytes, bytes]:
    """KEYS[1..7] of enqueue.lua, the metrics key, ARGV[1] (the queue) and ARGV[2]
    (the header without an Idempotency-Key): made once per queue, and as bytes,
    which redis-py sends as they are (it encodes every str argument in Python, per
    call)."""
    head = (
        keys.ready(queue),
        keys.scheduled(queue),
        keys.wakeup(queue),
        keys.sequence(queue),
        keys.queues(),
        keys.index(queue, "queued"),
        keys.index(queue, "scheduled"),
    )
    return (
        tuple(k.encode() for k in head),
        keys.metrics(queue).encode(),
        queue.encode(),
        str(max_queues).encode(),
    )


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _index_keys(queue: str) -> tuple[str, ...]:
    """The status indexes of `queue`, in the order the scripts take them."""
    return tuple(keys.index(queue, s) for s in keys.INDEXED_STATUSES)


def _claim_call(
    queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int, expired_ttl_s: int
) -> tuple[list[str], list[Any]]:
    ks = [keys.ready(queue), keys.scheduled(queue), keys.leases(queue), keys.wakeup(queue)]
    ks += _index_keys(queue)
    # flow control (docs/flow-control.md)
    ks += [keys.flow(queue), keys.expired_index(queue), keys.metrics(queue)]
    args = [keys.JOB_PREFIX, worker, lease_ms, max_jobs, promote, expired_ttl_s]
    return ks, [*args, keys.flow_prefix(queue)]


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
