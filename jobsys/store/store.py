"""`Store`: the job operations of jobsys over one Redis client.

The API, the workers and the CLI use it (and the names `jobsys.store` exports).
Redis errors are translated at this boundary (`translate_errors`) into
`StoreUnavailable` / `StoreFull`; nothing outside ``jobsys/store/`` imports
redis-py or catches its exceptions (tests/unit/test_store_boundary.py checks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any, cast

import redis

from jobsys import stamps
from jobsys.errors import InvalidJob, JobAlreadyFinished, JobNotFound
from jobsys.models import DEFAULT_QUEUE, Job
from jobsys.settings import Settings
from jobsys.store import catalog, keys, metrics, workers, workflows
from jobsys.store.cluster import Wakers, one_slot
from jobsys.store.connection import connect
from jobsys.store.deadletter import DeadLetter, Outcome
from jobsys.store.events import EventLog
from jobsys.store.flow import FlowControl, FlowState
from jobsys.store.listing import DEFAULT_LIMIT, Listing, Page, queue_names
from jobsys.store.metrics import THROUGHPUT_MINUTES, Deltas, QueueMetrics, QueueStats
from jobsys.store.schedules import ScheduleStore
from jobsys.store.scripts import Claimed, Idempotency, Retention, Scripts
from jobsys.store.submission import Submission, Submitted, job_arg, new_job_id, new_job_ids
from jobsys.store.translate import translate_errors
from jobsys.store.webhooks import Webhooks
from jobsys.store.workers import WorkerInfo

#: The arguments of `Store.submit` that make a job a plain (task, payload) pair.
_PLAIN = (None, None, 0, 0.0, None, None)


def _is_pair(job: Any) -> bool:
    return type(job) is tuple and len(job) == 2


class Store:
    """Job operations on Redis. Thread-safe (redis-py pools connections)."""

    def __init__(self, settings: Settings, client: redis.Redis | None = None) -> None:
        self.settings = settings
        self.redis = client if client is not None else connect(settings)
        # Redis Cluster (REDIS_CLUSTER_NODES): its key layout, and the idle wait over
        # queues of several slots (jobsys/store/cluster.py).
        self.cluster = isinstance(self.redis, redis.RedisCluster)
        keys.use_cluster_layout(self.cluster)
        self._wakers = (
            Wakers(cast(redis.RedisCluster, self.redis), settings.worker_poll_s)
            if self.cluster
            else None
        )
        self.scripts = Scripts(
            self.redis,
            Retention(
                settings.completed_retention_s,
                settings.failed_retention_s,
                settings.dead_letter_max_length,
            ),
            settings.max_queues,
            (settings.redis_wait_replicas, settings.redis_wait_timeout_s),
            settings.events_max_len,
        )
        self._listing = Listing(self.redis, self.scripts)
        #: Which task names have their own metrics series (the worker's flushes).
        self.task_labels = metrics.TaskLabels()
        self._dead = DeadLetter(self.redis, self.scripts, self._listing)
        #: The periodic schedules.
        self.schedules = ScheduleStore(self)
        #: Flow control: pause/resume, job control by id (docs/flow-control.md).
        self.flow = FlowControl(self.redis, self.scripts)
        #: The per-queue event streams (docs/events.md).
        self.events = EventLog(self.redis)
        #: Webhook subscriptions and the outbox of deliveries (docs/events.md).
        self.webhooks = Webhooks(self.redis, self.scripts)

    def close(self) -> None:
        """Close every connection of the pool, those threads still hold included
        (their next call would connect again)."""
        if self._wakers is not None:
            self._wakers.close()
        self.redis.close()

    # -- producers -----------------------------------------------------------

    def submit(
        self,
        task: str,
        payload: Any = None,
        *,
        has_payload: bool | None = None,
        queue: str = DEFAULT_QUEUE,
        max_retries: int | None = None,
        priority: int = 0,
        delay_s: float = 0.0,
        run_at: datetime | None = None,
        timeout_s: float | None = None,
    ) -> str:
        """Enqueue one job and return its new id (a UUID4).

        `payload` is stored as JSON when given; pass ``has_payload=True`` to store
        an explicit JSON ``null``. A job with `delay_s` or a future `run_at` is
        `scheduled` until then. A higher `priority` (-100..100) runs first.
        """
        if (has_payload, max_retries, priority, delay_s, run_at, timeout_s) == _PLAIN:
            # The usual call: one (task, payload) pair, no Submission, no lists to build.
            job_id = new_job_id(queue)
            arg = job_arg(job_id, (task, payload), self.settings.max_retries)
            with translate_errors():
                self.scripts.enqueue(queue, (job_id,), (arg,))
            return job_id
        sub = Submission(
            task, payload, has_payload, max_retries, priority, delay_s, run_at, timeout_s
        )
        return self.submit_many([sub], queue=queue)[0]

    def submit_many(
        self, jobs: Iterable[Submission | tuple[str, Any]], *, queue: str = DEFAULT_QUEUE
    ) -> list[str]:
        """Enqueue many jobs into `queue` atomically (all or none); return their ids in order.

        Each job is a `Submission` or a ``(task, payload)`` pair, where a ``None``
        payload means "no payload".
        """
        subs = list(jobs)
        flow = [j for j in subs if isinstance(j, Submission)]
        if any(j.unique_key is not None or j.concurrency_key for j in flow):  # flow control
            whole = [j if isinstance(j, Submission) else Submission(j[0], j[1]) for j in subs]
            return self._submit_flow(whole, queue, None).ids
        ids, argv = self._argv(subs, queue)
        if not ids:
            return []
        with translate_errors():
            self.scripts.enqueue(queue, ids, argv)
        return ids

    def submit_jobs(
        self,
        jobs: Sequence[Submission],
        *,
        queue: str = DEFAULT_QUEUE,
        key: str | None = None,
        request: Any = None,
    ) -> Submitted:
        """Enqueue `jobs` into `queue` atomically (all or none): their ids, and the
        status each got ("queued", or "scheduled" when due later by the Redis clock:
        what an answer to the client should say).

        With an Idempotency-Key `key`, only once per key in the whole deployment:
        `request` is the request as the client sent it (any JSON value); a repeat
        with an equal request to the same `queue` within IDEMPOTENCY_TTL_SECONDS
        enqueues nothing and returns the first request's outcome (``replayed``).
        Raises `IdempotencyConflict` when `key` was used with a different request or
        another queue (then nothing is written).
        """
        idem = self._idempotency(key, queue, request)
        if any(j.unique_key is not None or j.concurrency_key for j in jobs):  # flow control
            return self._submit_flow(jobs, queue, idem)
        if any(j.depends_on for j in jobs):  # workflows: jobs that wait for others
            return workflows.submit(self, jobs, queue, idempotency=idem)
        ids, argv = self._argv(jobs, queue)
        with translate_errors():
            done = self.scripts.enqueue(queue, ids, argv, idem)
        if done.replayed_ids is not None:
            ids = done.replayed_ids
        statuses = ["queued"] * len(ids)
        for i in done.scheduled:
            statuses[i] = "scheduled"
        return Submitted(ids, statuses, replayed=done.replayed_ids is not None)

    def _idempotency(self, key: str | None, queue: str, request: Any) -> Idempotency | None:
        """The Idempotency-Key `key` of a request `request` to `queue`, as the scripts
        take it (None without a key)."""
        if key is None:
            return None
        # The queue is part of what "the same request" means, whether or not
        # `request` names it (a key is one per deployment, not per queue).
        canonical = json.dumps(
            {"queue": queue, "request": request}, sort_keys=True, separators=(",", ":")
        )
        return Idempotency(
            key_digest=hashlib.sha256(key.encode()).hexdigest(),
            fingerprint=hashlib.sha256(canonical.encode()).hexdigest(),
            ttl_s=self.settings.idempotency_ttl_s,
        )

    def _submit_flow(
        self, jobs: Sequence[Submission], queue: str, idem: Idempotency | None
    ) -> Submitted:
        """Submit jobs with a unique key (a single job) or concurrency keys, in one
        atomic step with the check of the unique key (see enqueue_flow.lua;
        docs/flow-control.md)."""
        unique = jobs[0].unique_key
        if unique is not None and len(jobs) > 1:
            raise InvalidJob("unique_key", "only a single submit may carry one")
        if any(j.depends_on for j in jobs):  # workflows take their own path (enqueue_graph)
            raise InvalidJob(
                "depends_on", "cannot be combined with unique_key or concurrency_key yet"
            )
        ids, argv = self._argv(jobs, queue)
        window_s = jobs[0].unique_for_s
        window_ms = max(1, stamps.duration_ms(window_s)) if unique is not None and window_s else 0
        with translate_errors():
            done = self.scripts.enqueue_flow(queue, ids, argv, unique, window_ms, idem)
        if isinstance(done, tuple):
            held, status, task = done
            return Submitted([held], [status], duplicate=True, task=task)
        if done.replayed_ids is not None:
            ids = done.replayed_ids
        statuses = ["queued"] * len(ids)
        for i in done.scheduled:
            statuses[i] = "scheduled"
        return Submitted(ids, statuses, replayed=done.replayed_ids is not None)

    def _argv(
        self, jobs: Iterable[Submission | tuple[str, Any]], queue: str
    ) -> tuple[list[str], list[str]]:
        """New ids for `jobs` of `queue`, and their ARGV for enqueue.lua (one per job)."""
        subs = [j if isinstance(j, Submission) or _is_pair(j) else Submission(*j) for j in jobs]
        ids = new_job_ids(len(subs), queue)
        retries = self.settings.max_retries
        return ids, [job_arg(i, sub, retries) for i, sub in zip(ids, subs, strict=True)]

    def get(self, job_id: str) -> Job:
        """The job with this id; raises `JobNotFound`."""
        with translate_errors():
            fields = cast(dict[str, str], self.redis.hgetall(keys.job(job_id)))
        if not fields:
            raise JobNotFound(job_id)
        return Job.from_hash(job_id, fields)

    def queue_stats(self) -> list[QueueStats]:
        """Every registered queue, by name, with its counts: O(1) commands per queue,
        in pipelines of `metrics.QUEUES_PER_PIPELINE` queues."""
        with translate_errors():
            names = queue_names(self.redis)
            now_s, now_us = self.redis.time()
            now_ms = now_s * 1000 + now_us // 1000
            stats = []
            for part in metrics.slices(names):
                pipe = self.redis.pipeline(transaction=False)
                for q in part:
                    pipe.zcard(keys.ready(q))
                    pipe.zcard(keys.leases(q))
                    pipe.zcard(keys.scheduled(q))
                    pipe.zcard(keys.index(q, "failed"))
                    pipe.zrange(keys.index(q, "queued"), 0, 0, withscores=True)
                    pipe.hgetall(keys.flow(q))  # flow control
                counts = pipe.execute()
                for i, q in enumerate(part):
                    depth, in_flight, scheduled, dead, oldest, flow = counts[6 * i : 6 * i + 6]
                    age = round(max(0.0, (now_ms - oldest[0][1]) / 1000), 3) if oldest else None
                    limits = FlowState.from_hash(flow, now_ms).to_api()
                    paused = limits.pop("paused")
                    stats.append(
                        QueueStats(q, depth, in_flight, scheduled, dead, age, paused, limits)
                    )
        return stats

    def drop_queue(self, queue: str) -> str:
        """Forget an empty queue (no job waiting or running, every ended one expired),
        so that MAX_QUEUES has room again: "dropped", "unknown" (no such queue) or
        "not_empty". Its metrics go with it; a later submit creates it again."""
        with translate_errors():
            return self.scripts.drop_queue(queue)

    def list_jobs(
        self,
        *,
        status: str | None = None,
        task: str | None = None,
        queue: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        leave_out: Collection[str] = (),
    ) -> Page:
        """A page of jobs, newest status change first (see `jobsys.store.listing`),
        without the fields `leave_out` (not even read out of Redis). Raises
        `InvalidJob` (field ``cursor``) for a cursor this API did not give out."""
        # flow control and workflows: `expired` and `waiting` have indexes of their own
        every = [*keys.INDEXED_STATUSES, "expired", keys.WAITING_STATUS]
        statuses = [status] if status is not None else every
        with translate_errors():
            return self._listing.page(
                statuses=statuses,
                queue=queue,
                task=task,
                limit=limit,
                cursor=cursor,
                leave_out=leave_out,
            )

    def dead_letter(
        self,
        *,
        task: str | None = None,
        queue: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        leave_out: Collection[str] = (),
    ) -> tuple[Page, int]:
        """A page of dead (`failed`) jobs, newest first (without the fields
        `leave_out`), and how many dead jobs the queue (or every queue) holds,
        whatever the task."""
        with translate_errors():
            page = self._listing.page(
                statuses=["failed"],
                queue=queue,
                task=task,
                limit=limit,
                cursor=cursor,
                leave_out=leave_out,
            )
            return page, self._listing.count(self._listing.queues(queue), "failed")

    def retry_dead(
        self, ids: Sequence[str] | None = None, *, task: str | None = None, queue: str | None = None
    ) -> Outcome:
        """Replay dead jobs: `ids`, or every one matching `task`/`queue` (None: any),
        in chunks of one script each: attempts 0, a fresh place in its queue."""
        with translate_errors():
            return self._dead.retry(ids, task=task, queue=queue)

    def purge_dead(
        self, ids: Sequence[str] | None = None, *, task: str | None = None, queue: str | None = None
    ) -> Outcome:
        """Delete dead jobs for good: `ids`, or every one matching `task`/`queue`."""
        with translate_errors():
            return self._dead.purge(ids, task=task, queue=queue)

    def ping(self) -> None:
        """Raise `StoreUnavailable` unless Redis answers PING."""
        with translate_errors():
            self.redis.ping()

    # -- workers -------------------------------------------------------------

    def wait_then_claim(
        self,
        wake_queues: Sequence[str],
        timeout_s: float,
        queue: str,
        worker: str,
        lease_s: float,
        max_jobs: int,
    ) -> list[Claimed]:
        """Block until a queue may have jobs (at most `timeout_s`, which must stay
        below the socket timeout), then claim from `queue`: one round trip.

        On a cluster, queues of several slots are waited on by one thread per slot
        (`cluster.Wakers`), then `queue` is claimed from: two round trips."""
        if self._wakers is not None and not one_slot([*wake_queues, queue]):
            with translate_errors():
                if not self._wakers.wait(wake_queues, timeout_s):
                    return []
            return self.claim(queue, worker, lease_s, max_jobs)
        with translate_errors():
            return self.scripts.wait_then_claim(
                wake_queues, timeout_s, queue, worker, stamps.duration_ms(lease_s), max_jobs
            )

    def claim(self, queue: str, worker: str, lease_s: float, max_jobs: int) -> list[Claimed]:
        """Lease up to `max_jobs` ready jobs of `queue` to `worker`."""
        with translate_errors():
            return self.scripts.claim(queue, worker, stamps.duration_ms(lease_s), max_jobs)

    def complete(
        self, queue: str, job_id: str, worker: str, attempt: int, result_json: str
    ) -> bool:
        """Record a result (JSON text); False when the worker no longer holds the lease."""
        return self.complete_many(queue, worker, [(job_id, attempt, result_json)])[0] != "stale"

    def complete_many(
        self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str]]
    ) -> list[str]:
        """Record results [(id, attempt, result JSON)] in one step: "completed",
        "cancelled" (its cancellation was requested) or "stale" (lease lost) each."""
        with translate_errors():
            return self.scripts.complete(queue, worker, jobs)

    def fail(
        self, queue: str, job_id: str, worker: str, attempt: int, error: str, backoff_s: float
    ) -> str:
        """Record a failed attempt: "retry", "dead", or "stale" (lease lost)."""
        return self.fail_many(queue, worker, [(job_id, attempt, error, backoff_s)])[0]

    def fail_many(
        self, queue: str, worker: str, jobs: Sequence[tuple[str, int, str, float]]
    ) -> list[str]:
        """Record failed attempts [(id, attempt, error, backoff_s)] in one step; a
        negative backoff_s fails the job for good (no retry)."""
        # A negative backoff: no retry, whatever retries are left (-1 to fail.lua).
        items = [(i, a, e, stamps.duration_ms(b) if b >= 0 else -1) for i, a, e, b in jobs]
        with translate_errors():
            return self.scripts.fail(queue, worker, items)

    def release(self, queue: str, job_id: str, worker: str, attempt: int) -> bool:
        """Hand back an unfinished job without counting its attempt."""
        with translate_errors():
            return self.scripts.release(queue, job_id, worker, attempt)

    def recover(self, queue: str) -> list[tuple[str, str, str]]:
        """Take back the jobs of `queue` whose lease ran out: [(id, verdict, task)]."""
        with translate_errors():
            return self.scripts.recover(queue)

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: at once when it waits, by request when it runs.

        Returns the job as it is afterwards. Raises `JobNotFound`, or
        `JobAlreadyFinished` when it has already ended.
        """
        with translate_errors():
            queue = self.redis.hget(keys.job(job_id), "queue")
            if queue is None:
                raise JobNotFound(job_id)
            verdict = self.scripts.cancel(str(queue), job_id)
        if verdict == "missing":
            raise JobNotFound(job_id)
        if verdict not in {"now", "requested"}:
            raise JobAlreadyFinished(job_id, verdict)
        return self.get(job_id)

    def progress(
        self, queue: str, job_id: str, worker: str, attempt: int, fraction: float, message: str
    ) -> bool:
        """Record a running job of `queue`'s progress; False when the worker lost its lease."""
        with translate_errors():
            return self.scripts.progress(queue, job_id, worker, attempt, fraction, message)

    def heartbeat(
        self, queue: str, worker: str, lease_s: float, held: list[tuple[str, int]]
    ) -> tuple[list[str], list[str]]:
        """Renew the leases `worker` holds; return the ids it has lost, and the ids
        whose cancellation was requested."""
        if not held:
            return [], []
        with translate_errors():
            return self.scripts.heartbeat(queue, worker, stamps.duration_ms(lease_s), held)

    def flush_telemetry(
        self, worker_id: str, registration: dict[str, Any], deltas: Deltas, ttl_s: float
    ) -> int | None:
        """Renew a worker's registration and add its counts, in one pipeline; return
        the Redis clock in ms, or None when Redis had lost the function library (the
        counts were written; the registration is renewed at the next flush). Raises
        `StoreUnavailable`: then nothing or part of it was written."""
        return metrics.flush(self, worker_id, registration, deltas, ttl_s)

    def deregister(self, worker_id: str) -> None:
        """Remove a worker from the registry (at its graceful stop)."""
        workers.deregister(self, worker_id)

    # -- operations ----------------------------------------------------------

    def live_workers(self, window_s: float) -> list[WorkerInfo]:
        """Every worker with a heartbeat in the last `window_s` seconds, by id."""
        return workers.live(self, window_s)

    def task_catalog(self, window_s: float) -> dict[str, dict[str, Any]]:
        """Every task a worker live in the last `window_s` seconds serves, by name."""
        return catalog.live(self, window_s)

    def live_worker_ids(self, window_s: float) -> list[str]:
        """The ids of the live workers (forgetting the others)."""
        return workers.live_ids(self, window_s)

    def metrics_snapshot(self) -> tuple[list[QueueMetrics], int]:
        """Every queue's counts and metrics, and the length of ``dead_letter``."""
        return metrics.snapshot(self)

    def throughput(
        self, names: list[str], minutes: int = THROUGHPUT_MINUTES
    ) -> dict[str, list[dict[str, Any]]]:
        """Completed and failed jobs per minute of each queue of `names`, oldest first."""
        return metrics.throughput(self, names, minutes)

    # -- workflows: dependencies, batches, DAGs (docs/workflows.md) ----------

    def create_batch(
        self,
        jobs: Sequence[Submission],
        *,
        queue: str = DEFAULT_QUEUE,
        on_complete: Submission | None = None,
        on_success: Submission | None = None,
        callback_queue: str | None = None,
    ) -> tuple[str, Submitted, dict[str, str]]:
        """Create a batch atomically: (its id, its jobs' ids and statuses, the ids of
        its callbacks by role); the callbacks go to `callback_queue` (None: `queue`)."""
        return workflows.create_batch(self, jobs, queue, on_complete, on_success, callback_queue)

    def batch(self, batch_id: str) -> workflows.BatchInfo:
        """A batch's counts and callbacks; raises `BatchNotFound` (a `JobNotFound`)."""
        return workflows.batch(self, batch_id)

    def cancel_batch(self, batch_id: str) -> workflows.BatchInfo:
        """Cancel a batch (its unstarted jobs now, its running ones by request)."""
        return workflows.cancel_batch(self, batch_id)

    def create_workflow(
        self, steps: Sequence[tuple[str, Sequence[str], Submission]], *, queue: str = DEFAULT_QUEUE
    ) -> tuple[str, list[workflows.Step], list[str]]:
        """Create a workflow of named steps [(name, after, job)] atomically."""
        return workflows.create_workflow(self, steps, queue)

    def workflow(self, workflow_id: str) -> workflows.WorkflowInfo:
        """A workflow's steps and their statuses; raises `WorkflowNotFound`."""
        return workflows.workflow(self, workflow_id)

    def parent_results(self, job_id: str) -> dict[str, Any]:
        """The results of a job's parents (its ``depends_on``), None for one that did
        not complete."""
        return workflows.parent_results(self, job_id)
