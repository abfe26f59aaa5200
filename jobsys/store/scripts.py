"""The Lua scripts of ``lua/`` bound to a redis-py client: one typed method each.

Every state transition of a job is one script, so it is one atomic step in
Redis; the scripts are the functions of one library (see `jobsys.store.library`),
called with FCALL. A call that finds Redis without this version's library (a new
version, a Redis restart without persistence, FUNCTION FLUSH) ran nothing: the
library is loaded and the call made again, once.

Every call goes through a redis-py connection of the client's pool (`_fcall`) or a
pipeline, so connecting, reconnecting, TLS, Sentinel and the error classes are
redis-py's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import hiredis
import redis
from redis.exceptions import ResponseError

from jobsys import stamps
from jobsys.errors import IdempotencyConflict, StoreUnavailable, TooManyQueues, UnknownParent
from jobsys.store import keys
from jobsys.store.cluster import QueueRegistry, mirror_dead, unmirror
from jobsys.store.library import NAMES, library, library_missing
from jobsys.store.relay import relay_all

logger = logging.getLogger(__name__)


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

#: EVENTS_MAX_LEN's default: about how many events each queue's stream keeps.
DEFAULT_EVENTS_MAX_LEN = 10_000

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
        self,
        client: redis.Redis,
        retention: Retention | None = None,
        max_queues: int = 0,
        wait: tuple[int, float] = (0, 0.0),
        events_max_len: int = DEFAULT_EVENTS_MAX_LEN,
    ) -> None:
        self._client = client
        self._retention = retention or Retention()
        #: MAX_QUEUES (0: no cap), checked by enqueue.lua.
        self._max_queues = max_queues
        #: REDIS_WAIT_REPLICAS and REDIS_WAIT_TIMEOUT_SECONDS: an enqueue is followed
        #: by WAIT (see `_run_replicated`).
        self._wait_replicas, self._wait_timeout_s = wait
        # Events: EVENTS_MAX_LEN, the last ARGV of every script that emits (see emit
        # in _lib.lua), whose events stream is its last key.
        self._events_max_len = str(events_max_len).encode()
        self._lib = library()
        # bytes: redis-py sends them as they are (a str it encodes on every call)
        self._fn = {n: self._lib.function(n).encode() for n in NAMES}
        self._local = threading.local()
        #: A Redis Cluster client (REDIS_CLUSTER_NODES): it routes each call by its
        #: keys' slot, so calls go through it rather than one kept connection.
        self._cluster = isinstance(client, redis.RedisCluster)
        self._registry = (
            QueueRegistry(cast(redis.RedisCluster, client), max_queues) if self._cluster else None
        )

    def load(self) -> None:
        """Load this version's function library into Redis, unless it is there.

        On a cluster, into every primary, with REPLACE: a primary that already has
        it would otherwise stop the load before the ones that lack it (a new or
        flushed primary); the library's name is the digest of its code, so REPLACE
        changes nothing where it is."""
        if self._cluster:
            self._client.function_load(self._lib.code, replace=True)
            return
        try:
            self._client.function_load(self._lib.code)
        except ResponseError as e:
            if "already exists" not in str(e):  # another process loaded it first
                raise

    def _thread_client(self) -> redis.Redis:
        """This thread's client on one connection of the pool (`redis.Redis.client`),
        so that a script call skips the pool's checkout and return.

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
        n = len(keys_)
        numkeys = cast(int, _NUMKEYS[n] if n < len(_NUMKEYS) else n)
        # A cluster client routes the call to the node of its keys' slot.
        client = None if self._cluster else self._thread_client()
        for attempt in (1, 2):
            try:
                if client is None:
                    return self._client.fcall(fn, numkeys, *keys_, *args)
                return _fcall(client, fn, numkeys, keys_, args)
            except ResponseError as e:
                if attempt == 2 or not library_missing(e):
                    raise
            # Nothing ran: Redis does not have this version's library (yet).
            self.load()
        raise AssertionError("unreachable")

    def _run_replicated(self, name: str, keys_: Sequence[str | bytes], args: Sequence[Any]) -> Any:
        """`_run`, then, when REDIS_WAIT_REPLICAS is set, WAIT for that many replicas on
        the same connection (one pipeline, so one round trip plus the replicas'
        acknowledgement).

        Raises `StoreUnavailable` when fewer acknowledge within the timeout: the
        script did run on the primary, but a failover now could lose it, so the
        caller must not be told it is safe (a 503 says "unknown"; an
        Idempotency-Key makes the retry safe)."""
        if not self._wait_replicas:
            return self._run(name, keys_, args)
        n, timeout_ms = self._wait_replicas, max(1, round(self._wait_timeout_s * 1000))
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            pipe.fcall(self._fn[name], len(keys_), *keys_, *args)
            if self._cluster:
                # redis-py sends a keyless WAIT to every primary and keeps the least
                # answer: one shard short of replicas would refuse every queue's
                # submits. Only the node that ran the script, on the same connection.
                cluster = cast(redis.RedisCluster, self._client)
                node = cluster.get_node_from_key(keys_[0])  # type: ignore[no-untyped-call]
                pipe.execute_command("WAIT", n, timeout_ms, target_nodes=node)  # type: ignore[no-untyped-call]
            else:
                pipe.wait(n, timeout_ms)
            try:
                answer, acked = pipe.execute()
            except ResponseError as e:
                if attempt == 2 or not library_missing(e):
                    raise
                self.load()  # nothing ran: Redis lacks this version's library
                continue
            if int(acked) < n:
                raise StoreUnavailable(
                    f"the write reached {acked} of {n} replicas within "
                    f"{self._wait_timeout_s} s (REDIS_WAIT_REPLICAS): it is on the primary "
                    "but may be lost by a failover"
                )
            return answer
        raise AssertionError("unreachable")

    def _ending_args(self, args: Sequence[Any]) -> list[Any]:
        """`args` of a script that may end jobs, with the retention arguments and
        EVENTS_MAX_LEN after them (`retention` and `emit` in _lib.lua read them there)."""
        r = self._retention
        return [*args, r.completed_s, r.failed_s, r.dead_letter_max, keys.JOB_PREFIX,
                self._events_max_len]  # fmt: skip

    def _run_ending(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """Run a script that may end jobs: the retention arguments go last."""
        return self._run(name, keys_, self._ending_args(args))

    def _run_ending_replicated(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        """`_run_ending`, followed by WAIT when REDIS_WAIT_REPLICAS is set (see
        `_run_replicated`): the workflows' writes that a submit answers for or that
        the relay acknowledges."""
        return self._run_replicated(name, keys_, self._ending_args(args))

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
        queues exist, or `StoreUnavailable` when REDIS_WAIT_REPLICAS replicas did not
        acknowledge the write in time.
        """
        head, metrics_key, queue_arg, header = _enqueue_call(
            queue, self._max_queues, keys.cluster_layout()
        )
        # bytes: redis-py's encoder costs more per argument than str.encode here
        ks: list[str | bytes] = [*head, *[(keys.JOB_PREFIX + i).encode() for i in ids]]
        ks += [metrics_key, _events_key(queue)]
        if idempotency is not None:
            ks.append(keys.idempotency(idempotency.key_digest, queue))
            header = (
                f"{self._max_queues:d},{idempotency.ttl_s:d},{idempotency.fingerprint}".encode()
            )
        args: list[Any] = [queue_arg, header, *[a.encode() for a in argv], self._events_max_len]
        if self._registry is not None:
            self._registry.ensure(queue)
        try:
            answer = self._run_replicated("enqueue", ks, args)
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

    def _claim_call(
        self, queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int
    ) -> tuple[list[str], list[Any]]:
        ttl_s, max_len = self._retention.completed_s, self._events_max_len
        return _claim_call(queue, worker, lease_ms, max_jobs, promote, ttl_s, max_len)

    def claim(
        self, queue: str, worker: str, lease_ms: int, max_jobs: int, promote: int = 100
    ) -> list[Claimed]:
        """Lease up to `max_jobs` of the oldest ready jobs (see claim.lua)."""
        ks, args = self._claim_call(queue, worker, lease_ms, max_jobs, promote)
        return self._claimed(queue, self._run("claim", ks, args))

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
        ks, args = self._claim_call(queue, worker, lease_ms, max_jobs, promote)
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
        return self._claimed(queue, flat)

    def _claimed(self, queue: str, flat: list[Any]) -> list[Claimed]:
        """The jobs claim.lua answered; relays the queue's outbox first when it says
        "relay" (Redis Cluster: a job it expired has children in other slots)."""
        if len(flat) % 9 == 2:  # 9 entries per job, then ["relay"], then the time
            del flat[-2]
            self._relay(queue)
        return _claimed(flat)

    def complete(self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str]]) -> list[str]:
        """Record results [(id, attempt, result JSON)]: "completed", "cancelled" or
        "stale" each (see complete.lua)."""
        ks = [keys.leases(queue), *_index_keys(queue)]
        args: list[Any] = [worker]
        for job_id, attempt, result_json in jobs:
            ks.append(keys.job(job_id))
            args += [job_id, attempt, result_json]
        ks += [*_hook_keys(queue), keys.events(queue)]
        out = [_text(x) for x in self._run_ending("complete", ks, args)]
        return self._relayed(queue, out, len(jobs))

    def fail(self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str, int]]) -> list[str]:
        """Record failed attempts [(id, attempt, error, backoff_ms)]: "retry", "dead" or
        "stale" each (see fail.lua)."""
        ks = [
            keys.leases(queue),
            keys.scheduled(queue),
            keys.dead_list(queue),
            keys.ready(queue),
            keys.wakeup(queue),
            *_index_keys(queue),
        ]
        args: list[Any] = [worker]
        for job_id, attempt, error, backoff_ms in jobs:
            ks.append(keys.job(job_id))
            args += [job_id, attempt, error, backoff_ms]
        ks += [*_hook_keys(queue), keys.events(queue)]
        out = [_text(x) for x in self._run_ending("fail", ks, args)]
        if self._cluster and "dead" in out:
            self._mirror_dead(queue)
        return self._relayed(queue, out, len(jobs))

    def release(self, queue: str, job_id: str, worker: str, attempt: int) -> bool:
        """Hand an unfinished job back without counting the attempt (see release.lua)."""
        ks = [keys.job(job_id), keys.leases(queue), keys.ready(queue), keys.wakeup(queue)]
        ks += [*_index_keys(queue), *_hook_keys(queue), keys.events(queue)]
        released = bool(self._run_ending("release", ks, [job_id, worker, attempt]))
        if self._cluster and released:
            self._relay(queue)  # a cancel requested ends it: its children (workflows)
        return released

    def recover(self, queue: str, max_jobs: int = 100) -> list[tuple[str, str, str]]:
        """Take back jobs whose lease ran out: [(id, "retry" | "dead" | "cancelled", task)]
        (see recover.lua)."""
        ks = [keys.leases(queue), keys.ready(queue), keys.dead_list(queue), keys.wakeup(queue)]
        ks += [*_index_keys(queue), *_hook_keys(queue), keys.events(queue)]
        flat = self._run_ending("recover", ks, [keys.JOB_PREFIX, max_jobs])
        if self._cluster:  # also the sweep of dead ids a killed process left behind
            self._mirror_dead(queue)
            self._relay(queue)  # and of outbox entries (workflows)
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
        self, queue: str, job_id: str, worker: str, attempt: int, fraction: float, message: str
    ) -> bool:
        """Record a running job's progress, fenced (see progress.lua)."""
        args = [worker, attempt, repr(float(fraction)), message, job_id, self._events_max_len]
        return bool(self._run("progress", [keys.job(job_id), keys.events(queue)], args))

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
            keys.queue_registry(queue),
            keys.job(job_id),
            *_index_keys(queue),
            keys.metrics(queue),
            keys.events(queue),
        ]
        if self._registry is not None:
            self._registry.ensure(queue)
        args = [tick_ms, queue, schedule, job, self._events_max_len]
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
        ks += [*_hook_keys(queue), keys.events(queue)]
        answer = _text(self._run_ending("cancel", ks, [job_id]))
        if self._cluster and answer == "now":
            self._relay(queue)  # its children in other slots (workflows)
        return answer

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

    def hook_claim(self, queue: str, most: int, lease_ms: int) -> list[tuple[str, str]]:
        """Lease up to `most` due webhook deliveries of `queue`: [(id, record JSON)]
        (see hook_claim.lua)."""
        flat = self._run(
            "hook_claim", [keys.outbox(queue), keys.outbox_due(queue)], [most, lease_ms]
        )
        return [(_text(flat[i]), _text(flat[i + 1])) for i in range(0, len(flat), 2)]

    def hook_settle(
        self,
        queue: str,
        delivery_id: str,
        attempts_before: int,
        outcome: str,
        attempt_json: str,
        next_ms: int,
        body: str,
    ) -> str:
        """Record one attempt of a delivery: "ok", "retry", "dead" or "stale" (see
        hook_settle.lua)."""
        ks = [keys.outbox(queue), keys.outbox_due(queue), keys.outbox_dead(queue)]
        args = [delivery_id, attempts_before, outcome, attempt_json, next_ms, body, keys.JOB_PREFIX]
        return _text(self._run("hook_settle", ks, args))

    def drop_queue(self, queue: str) -> str:
        """Forget `queue` if it is empty: "dropped", "unknown" or "not_empty" (see
        drop_queue.lua)."""
        ks = [
            keys.queue_registry(queue), keys.ready(queue), keys.scheduled(queue),
            keys.leases(queue), keys.wakeup(queue), keys.sequence(queue), keys.metrics(queue),
            *_index_keys(queue), keys.events(queue), keys.outbox_due(queue),
        ]  # fmt: skip
        if self._cluster:
            self._relay(queue)  # what its outbox holds, before its keys are forgotten
        verdict = _text(self._run("drop_queue", ks, [queue, keys.JOB_PREFIX]))
        if self._registry is not None and verdict == "dropped":
            self._registry.forget(queue)
        return verdict

    def replay(self, queue: str, ids: Sequence[str]) -> list[str]:
        """Put the `failed` jobs among `ids` (all of `queue`) back to work; the ids
        replayed (see replay.lua)."""
        ks = [keys.dead_list(queue), keys.ready(queue), keys.wakeup(queue), keys.sequence(queue)]
        ks += [*_index_keys(queue), *(keys.job(i) for i in ids), keys.events(queue)]
        done = [_text(x) for x in self._run("replay", ks, [queue, *ids, self._events_max_len])]
        if self._cluster:
            unmirror(cast(redis.RedisCluster, self._client), done)
        return done

    def purge(self, queue: str, ids: Sequence[str]) -> list[str]:
        """Delete the `failed` jobs among `ids` (all of `queue`); the ids deleted
        (see purge.lua)."""
        ks = [keys.dead_list(queue), keys.index(queue, "failed"), *(keys.job(i) for i in ids)]
        done = [_text(x) for x in self._run("purge", ks, [queue, *ids])]
        if self._cluster:
            unmirror(cast(redis.RedisCluster, self._client), done)
        return done

    def _mirror_dead(self, queue: str) -> None:
        """Copy `queue`'s new dead ids into ``dead_letter`` (cluster layout). A
        failure is logged, not raised: the script did run, and the next recovery
        pass of a worker serving the queue copies them."""
        try:
            mirror_dead(
                cast(redis.RedisCluster, self._client), queue, self._retention.dead_letter_max
            )
        except (redis.RedisError, redis.exceptions.RedisClusterException) as e:
            logger.warning("dead_letter copy of queue %s deferred: %s", queue, e)

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
        idem = fair if idempotency is None else keys.idempotency(idempotency.key_digest, queue)
        ks: list[str | bytes] = [*head, metrics_key, fair, unique, idem, *map(keys.job, ids)]
        ks.append(keys.events(queue))  # last: see emit in _lib.lua
        args: list[Any] = [queue_arg, max_queues, keys.JOB_PREFIX, self._retention.completed_s]
        args += [unique_key or "", window_ms]
        if idempotency is None:
            args += ["", ""]
        else:
            args += [idempotency.ttl_s, idempotency.fingerprint]
        args += [*argv, self._events_max_len]
        if self._registry is not None:
            self._registry.ensure(queue)
        try:
            answer = self._run_replicated("enqueue_flow", ks, args)
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
        ks += [*_hook_keys(queue), keys.events(queue)]
        out = [_text(x) for x in self._run_ending("rate_limited", ks, args)]
        if self._cluster and "cancelled" in out:
            self._relay(queue)  # its children in other slots (workflows)
        return out

    def promote(self, queue: str, job_id: str) -> str:
        """Run a job of `queue` that waits for a due time now (see promote.lua for
        the answers)."""
        ks = [keys.job(job_id), keys.ready(queue), keys.scheduled(queue), keys.wakeup(queue)]
        ks += [*_index_keys(queue), keys.events(queue)]
        return _text(self._run("promote", ks, [job_id, self._events_max_len]))

    def reprioritize(self, queue: str, job_id: str, priority: int) -> str:
        """Give a waiting job of `queue` a new priority (see reprioritize.lua)."""
        ks = [keys.job(job_id), keys.ready(queue)]
        return _text(self._run("reprioritize", ks, [job_id, priority]))

    # -- workflows (issue 17; docs/workflows.md) ----------------------------------

    def enqueue_graph(
        self,
        queue: str,
        ids: Sequence[str],
        argv: Sequence[str],
        parents: Sequence[str],
        group: str = "",
        group_keys: tuple[str, str] | None = None,
        idempotency: Idempotency | None = None,
    ) -> tuple[list[str], list[str] | None]:
        """Add jobs with dependencies / a batch / a workflow to `queue` atomically
        (see enqueue_graph.lua): `argv` as for `enqueue`, `parents` one spec per job
        ('' or "<cancel|run>|<id>,..."), `group` the group's JSON ('' = none) and
        `group_keys` its HASH and (a batch) jobs SET. Returns each job's status, and
        for a repeat of an earlier request (`idempotency`) that request's ids (else
        None). Raises `UnknownParent` (nothing written), `TooManyQueues` or
        `IdempotencyConflict`."""
        ks = [
            keys.ready(queue), keys.scheduled(queue), keys.wakeup(queue), keys.sequence(queue),
            keys.queue_registry(queue), keys.index(queue, "queued"),
            keys.index(queue, "scheduled"), keys.index(queue, keys.WAITING_STATUS),
            keys.index(queue, "cancelled"), keys.metrics(queue),
            *(group_keys or (keys.ready(queue), keys.ready(queue))),
            *(keys.job(i) for i in ids),
        ]  # fmt: skip
        if self._registry is not None:
            self._registry.ensure(queue)
        if idempotency is not None:
            ks.append(keys.idempotency(idempotency.key_digest, queue))
            spec = json.loads(group) if group else {}
            spec["idem"] = {"ttl": idempotency.ttl_s, "fingerprint": idempotency.fingerprint}
            group = json.dumps(spec)
        args: list[Any] = [queue, self._max_queues, group]
        for arg, spec in zip(argv, parents, strict=True):
            args += [arg, spec]
        try:
            answer = self._run_ending_replicated("enqueue_graph", ks, args)
        except ResponseError as e:
            text = str(e)
            if text.startswith("UNKNOWN_PARENT"):
                raise UnknownParent(text.partition(" ")[2]) from None
            if "TOO_MANY_QUEUES" in text:
                raise TooManyQueues(queue, self._max_queues) from None
            if "IDEMPOTENCY_CONFLICT" in text:
                raise IdempotencyConflict(queue) from None
            raise
        flat = [_text(x) for x in answer[1:]]
        if _text(answer[0]) == "replay":
            half = len(flat) // 2
            return flat[:half], flat[half:]
        return flat, None

    # -- workflows under Redis Cluster (docs/workflows.md "Redis Cluster") ---------

    def register(self, queue: str) -> None:
        """Redis Cluster: add `queue` to the queue registry (a batch's callback queue);
        raises `TooManyQueues`. Nothing to do on one Redis (the scripts do it)."""
        if self._registry is not None:
            self._registry.ensure(queue)

    def graph_link(self, parent: str, children: Sequence[str]) -> str:
        """Make `children` (jobs of other slots, not created yet) wait for `parent`
        (see graph_link.lua): "linked", "missing", or the status it ended in."""
        ks = [keys.job(parent), keys.graph_children(parent)]
        # replicated: a link a failover lost would leave the child waiting for good
        return _text(self._run_replicated("graph_link", ks, list(children)))

    def graph_apply(
        self, child: str, parent: str, status: str, counts: str = "", reason: str = ""
    ) -> tuple[str, str]:
        """Apply the end of `parent` (another slot's job, or the batch of the callback
        `child`) to `child`, once (see graph_apply.lua): ("applied" | "repeat" |
        "early", the child's queue when that wrote to its outbox, else '')."""
        ks = [keys.job(child), keys.applied(child)]
        # REDIS_WAIT_REPLICAS: the relay acknowledges the outbox entry only once the
        # child's shard replicated this (else StoreUnavailable: the entry stays).
        answer = self._run_ending_replicated(
            "graph_apply", ks, [child, parent, status, counts, reason]
        )
        return _text(answer[0]), _text(answer[1])

    def graph_apply_many(
        self, parent: str, status: str, children: Sequence[str], counts: str = "", reason: str = ""
    ) -> list[tuple[str, str]]:
        """`graph_apply` for each of `children`, in one pipeline (one round trip per
        primary): what the relay does for an outbox entry."""
        if len(children) == 1 or self._wait_replicas:
            return [self.graph_apply(c, parent, status, counts, reason) for c in children]
        fn = self._fn["graph_apply"]
        for attempt in (1, 2):
            pipe = self._client.pipeline(transaction=False)
            for c in children:
                args = self._ending_args([c, parent, status, counts, reason])
                pipe.fcall(fn, 2, keys.job(c), keys.applied(c), *args)
            try:
                answers = pipe.execute()
            except ResponseError as e:
                if attempt == 2 or not library_missing(e):
                    raise
                self.load()  # a primary lacks this version's library; the rest repeats
                continue
            return [(_text(a[0]), _text(a[1])) for a in answers]
        raise AssertionError("unreachable")

    def graph_callback(self, queue: str, batch_id: str, callback_id: str, arg: str) -> str:
        """Create the callback `callback_id` of a batch in another slot, once (see
        graph_callback.lua): "created" or "exists"."""
        ks = [
            keys.job(callback_id), keys.applied(callback_id), keys.sequence(queue),
            keys.queue_registry(queue), keys.metrics(queue),
        ]  # fmt: skip
        return _text(self._run_ending_replicated("graph_callback", ks, [queue, batch_id, arg]))

    def _relayed(self, queue: str, out: list[str], jobs: int) -> list[str]:
        """The verdicts of complete.lua or fail.lua (one per job), without the "relay"
        they end with when (Redis Cluster) they wrote an end to `queue`'s outbox, which
        is relayed then."""
        if len(out) > jobs:
            out.pop()
            self._relay(queue)
        return out

    def _relay(self, queue: str) -> None:
        """Relay `queue`'s outbox (jobsys/store/relay.py). A failure is logged, not
        raised: the script did run, and the next recovery pass of a worker serving
        the queue relays what is left."""
        try:
            relay_all(self._client, self, queue)
        except (redis.RedisError, redis.exceptions.RedisClusterException, StoreUnavailable) as e:
            logger.warning("relay of queue %s deferred: %s", queue, e)

    def cancel_batch(self, batch_id: str) -> list[Any]:
        """Cancel a batch (see cancel_batch.lua for the answers)."""
        ks = [keys.batch(batch_id), keys.batch_jobs(batch_id)]
        answer = self._run_ending("cancel_batch", ks, [])
        if self._cluster and _text(answer[0]) == "cancelled":
            # the children in other slots of the jobs it cancelled (workflows)
            queue = self._client.hget(keys.batch(batch_id), "queue")
            if queue is not None:
                self._relay(_text(queue))
        return [_text(answer[0]), *answer[1:]]


#: Most queues whose key names each cache below keeps (queue names come from
#: requests: unbounded caches would grow with every name ever sent).
KEY_CACHE_SIZE = 1024


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _enqueue_call(
    queue: str, max_queues: int = 0, cluster: bool = False
) -> tuple[tuple[bytes, ...], bytes, bytes, bytes]:
    """KEYS[1..7] of enqueue.lua, the metrics key, ARGV[1] (the queue) and ARGV[2]
    (the header without an Idempotency-Key): made once per queue (and key layout,
    `cluster`), and as bytes,
    which redis-py sends as they are (it encodes every str argument in Python, per
    call)."""
    head = (
        keys.ready(queue),
        keys.scheduled(queue),
        keys.wakeup(queue),
        keys.sequence(queue),
        keys.queue_registry(queue),
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
def _hook_keys(queue: str) -> tuple[str, ...]:
    """The webhook keys the scripts that end jobs take before the events stream."""
    return (keys.subscriptions(queue), keys.outbox(queue), keys.outbox_due(queue))


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _events_key(queue: str) -> bytes:
    """The events stream of `queue` (enqueue.lua's key after the metrics HASH), as bytes."""
    return keys.events(queue).encode()


@lru_cache(maxsize=KEY_CACHE_SIZE)
def _index_keys(queue: str) -> tuple[str, ...]:
    """The status indexes of `queue`, in the order the scripts take them."""
    return tuple(keys.index(queue, s) for s in keys.INDEXED_STATUSES)


def _claim_call(
    queue: str,
    worker: str,
    lease_ms: int,
    max_jobs: int,
    promote: int,
    expired_ttl_s: int,
    events_max_len: bytes,
) -> tuple[list[str], list[Any]]:
    ks = [keys.ready(queue), keys.scheduled(queue), keys.leases(queue), keys.wakeup(queue)]
    ks += _index_keys(queue)
    # flow control (docs/flow-control.md)
    ks += [keys.flow(queue), keys.expired_index(queue), keys.metrics(queue)]
    ks.append(keys.events(queue))  # last: see emit in _lib.lua
    args = [keys.JOB_PREFIX, worker, lease_ms, max_jobs, promote, expired_ttl_s]
    return ks, [*args, keys.flow_prefix(queue), events_max_len]


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


def _fcall(
    client: redis.Redis, fn: bytes, numkeys: Any, keys_: Sequence[Any], args: Sequence[Any]
) -> Any:
    """FCALL on `client`'s one connection: the command packed by hiredis (the encoder
    redis-py itself uses), then sent and read through the connection's public methods.

    This is `client.fcall` without its per-call machinery (argument re-encoding in
    Python, retry wrapper, lock, response callbacks: none applies to FCALL, and
    retries are off; docs/architecture.md says what that saves). Connecting, TLS,
    auth and error handling stay redis-py's: a socket error or timeout disconnects
    the connection, and a Sentinel-managed connection drops itself on READONLY.
    Arguments are str, bytes or int.
    """
    conn = client.connection
    assert conn is not None  # a single-connection client always has one
    packed = hiredis.pack_command((b"FCALL", fn, numkeys, *keys_, *args))
    conn.send_packed_command([packed])  # type: ignore[no-untyped-call]
    return conn.read_response()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else cast(str, value)
