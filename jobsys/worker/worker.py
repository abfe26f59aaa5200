"""The worker: claim → run → settle, with heartbeats and recovery of dead workers' jobs.

Threads of one worker process:

- ``concurrency`` runner threads. Each claims one job at a time (claim.lua),
  runs its handler and settles it (complete.lua / fail.lua). An idle runner
  blocks on the queue's wakeup marker (BZPOPMIN) for at most ``worker_poll_s``.
- one heartbeat thread, with its own connection, that renews the leases of the
  jobs this process holds every ``job_lease_s / 3`` and takes back jobs whose
  lease ran out (recover.lua) every ``min(worker_poll_s, job_lease_s / 10)``.
  Handlers never run on it, so a busy handler cannot starve it.
- the main thread, which only waits for SIGTERM/SIGINT.
- while `run()` runs, the log writer thread (`logs.lines_written_in_background`):
  the other threads hand it their records, it formats and writes them.
- once a job of an ``async def`` task comes, an event loop thread that runs those
  jobs, up to ``async_concurrency`` at once, and its I/O thread (`aio.AsyncRunner`).
  A runner thread hands such a job over and goes on claiming; while async jobs
  run, leases are renewed and cancellations looked for every `ASYNC_BEAT_S`.

`run_once()` does one claim → run → settle step on the caller's thread, so the
state machine can be tested step by step.
"""

from __future__ import annotations

import json
import logging
import os
import random
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Any

from jobsys import tasks
from jobsys.errors import StoreUnavailable
from jobsys.logs import flush_output, lines_written_in_background
from jobsys.settings import Settings
from jobsys.store import TASKS_FIELD, Claimed, Store, worker_registration
from jobsys.worker.aio import AsyncRunner
from jobsys.worker.child import execute_in_child
from jobsys.worker.context import JobContext
from jobsys.worker.events import job_event
from jobsys.worker.execute import Outcome, execute, final_failure
from jobsys.worker.pool import Supervisor, resident_mb
from jobsys.worker.queues import QueueOrder
from jobsys.worker.scheduler import Scheduler
from jobsys.worker.settle import MAX_RECONNECT_DELAY_S, Finished, Settler
from jobsys.worker.telemetry import Telemetry

logger = logging.getLogger(__name__)

#: A claimed batch holds about this much work (by the recent average job duration) ...
BATCH_BUDGET_S = 0.05
#: ... or, when the round trip to Redis is longer, enough work to cover this many
#: round trips, so that claiming and settling cost at most about half the time.
BATCH_ROUND_TRIPS = 2
#: Round trips longer than this count as this long (a settle that waited out an
#: outage is no round-trip time; it must not make batches huge).
MAX_ROUND_TRIP_S = 0.5
#: How often the periodic schedules are looked at (a tick is queued within this).
SCHEDULER_INTERVAL_S = 1.0
#: Within a batch, finished jobs are settled at least this often (or, when the round
#: trip is longer, every `BATCH_ROUND_TRIPS` round trips).
SETTLE_INTERVAL_S = 0.005
#: While async jobs run, the heartbeat comes at least this often, so that a cancel
#: request stops one well within a second.
ASYNC_BEAT_S = 0.25
#: The registration carries the worker's task catalog (GET /tasks) on its first
#: heartbeat and every this many after (its HASH keeps the field in between).
CATALOG_EVERY_BEATS = 30


def make_worker_id() -> str:
    """``<host>:<pid>:<random>``: unique per process, readable in `GET /jobs/<id>`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Held:
    """A job this worker holds a lease on."""

    queue: str
    attempt: int
    task: str
    context: JobContext
    job: Claimed


class Worker:
    """One worker process's job loop. See the module docstring for its threads."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        worker_id: str | None = None,
        supervisor: str | None = None,
    ) -> None:
        self.settings = settings
        #: The supervisor (``<host>:<pid>``) of `jobsys worker --processes` this
        #: process runs under; only then does it recycle itself (pool.py).
        self.supervisor = supervisor
        #: Jobs started (handed to a handler), for WORKER_MAX_JOBS_PER_CHILD.
        self.started = 0
        self.store = store if store is not None else Store(settings)
        self.order = QueueOrder(settings.worker_queues)
        self.queues = self.order.names
        self.id = worker_id or make_worker_id()
        self.stopping = threading.Event()
        #: SIGTERM/SIGINT received: the second stops at once. Counted apart from
        #: `stopping`, which a worker also sets itself (recycling, its supervisor
        #: gone): a first signal then must not count as a second.
        self._signals = 0
        self._held: dict[str, Held] = {}
        # Held jobs whose settle (or release) call has been sent: Redis may already
        # have ended their lease, so a heartbeat that finds them gone says nothing.
        self._settling: set[str] = set()
        self._held_lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self.completed = 0
        self.failed = 0
        # Expired leases are looked for this often, and leases are granted for that
        # much less than JOB_LEASE_SECONDS, so that a dead worker's job is back in
        # its queue within JOB_LEASE_SECONDS of the worker's last heartbeat.
        self.recover_interval_s = min(settings.worker_poll_s, settings.job_lease_s / 10)
        self.lease_grant_s = settings.job_lease_s - self.recover_interval_s
        self.telemetry = Telemetry()
        self.started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.settler = Settler(self.store, self.id, settings, self.holds, self.telemetry)
        self.scheduler = Scheduler(self.store)
        # Moving average of how long a job takes; None until one has run, so the
        # first claim takes one job.
        self._avg_duration_s: float | None = None
        # Moving average of how long a settle takes (about one round trip to Redis);
        # None until one is timed.
        self._round_trip_s: float | None = None
        # The event loop of async handlers: made when the first async job comes.
        self._aio: AsyncRunner | None = None
        self._flushes = 0

    # -- one step ------------------------------------------------------------

    def run_once(self) -> int:
        """Claim a batch from the first queue that has jobs, run it and settle it.

        Returns the number of jobs run. Raises `StoreUnavailable`.
        """
        for queue in self.order.next():
            claimed = self.store.claim(queue, self.id, self.lease_grant_s, self.batch_size())
            if claimed:
                for job in claimed:
                    self._hold(queue, job)
                return self._run_batch(queue, claimed)
        return 0

    def wait_then_run(self) -> int:
        """Block until a queue is woken (or WORKER_POLL_SECONDS pass), claim from the
        queue that comes first in the same round trip, run and settle what came;
        else look in every queue. Returns the number of jobs run. Raises
        `StoreUnavailable`."""
        queue = self.order.next()[0]
        claimed = self.store.wait_then_claim(
            self.queues,
            self.settings.worker_poll_s,
            queue,
            self.id,
            self.lease_grant_s,
            self.batch_size(),
        )
        if not claimed:
            return self.run_once() if len(self.queues) > 1 else 0
        for job in claimed:
            self._hold(queue, job)
        return self._run_batch(queue, claimed)

    def batch_size(self) -> int:
        """How many jobs to claim at once: about `BATCH_BUDGET_S` of work by the recent
        average duration, or `BATCH_ROUND_TRIPS` round trips' worth when Redis is far
        away; at least 1 and at most WORKER_PREFETCH (claim.lua also takes at most
        half of the waiting jobs).

        Slow jobs are claimed one at a time, so that other workers get their share;
        fast ones in batches, so that one claim and one settle serve many jobs. On a
        slow link each claim and settle costs a round trip, so batches grow until
        their work outweighs them.
        """
        if self._avg_duration_s is None:
            return 1
        fits = int(self._batch_work_s() / max(self._avg_duration_s, 1e-6))
        return max(1, min(self.settings.worker_prefetch, fits))

    def _batch_work_s(self) -> float:
        return max(BATCH_BUDGET_S, BATCH_ROUND_TRIPS * (self._round_trip_s or 0.0))

    def _settle_interval_s(self) -> float:
        return max(SETTLE_INTERVAL_S, BATCH_ROUND_TRIPS * (self._round_trip_s or 0.0))

    def _run_batch(self, queue: str, claimed: list[Claimed]) -> int:
        finished: list[Finished] = []
        last_settle = time.monotonic()
        ran = 0
        try:
            for job in claimed:
                if self._recycle_due():
                    self.request_stop()
                if self.stopping.is_set():
                    break
                self.started += 1
                job_event("started", job, queue, self.id)
                self.telemetry.started(queue, job)
                with self._held_lock:  # not `held()`: a copy of every held job per job
                    held = self._held.get(job.id)
                context = held.context if held else JobContext(job.id, job.task, queue, job.attempt)
                spec = tasks.spec_for(job.task)
                if spec is not None and spec.is_async:
                    aio = self.async_runner()
                    if finished and not aio.has_free_slot():  # settle before waiting
                        self._settle(queue, finished)
                        finished, last_settle = [], time.monotonic()
                    if not aio.submit(queue, job, context, self.stopping):
                        break
                    ran += 1
                    # Handing over costs next to nothing: batches of async jobs are big.
                    self._observe(0.0)
                    continue
                outcome = self._execute(queue, job, context)
                ran += 1
                self._observe(outcome.duration_s)
                finished.append(Finished(job, outcome))
                if time.monotonic() - last_settle >= self._settle_interval_s():
                    self._settle(queue, finished)
                    finished = []
                    last_settle = time.monotonic()
        finally:
            self._settle(queue, finished)
            # Jobs of the batch that never started because the worker is stopping.
            self._release(queue, claimed[ran:])
        return ran

    def async_runner(self) -> AsyncRunner:
        """The event loop of async handlers, started on first use."""
        with self._held_lock:
            if self._aio is None:
                self._aio = AsyncRunner(
                    self.settings.async_concurrency, self._settle, self._report_progress
                )
            return self._aio

    def wait_async(self, timeout_s: float) -> bool:
        """Wait until every async job handed over has run and been settled."""
        return self._aio is None or self._aio.wait_idle(timeout_s)

    def _report_progress(self, queue: str, job: Claimed, fraction: float, message: str) -> None:
        try:
            self.store.progress(queue, job.id, self.id, job.attempt, fraction, message)
        except StoreUnavailable as e:  # progress is best effort
            logger.debug("job %s: progress not recorded: %s", job.id, e)

    def _recycle_due(self) -> bool:
        limit = self.settings.worker_max_jobs_per_child
        if self.supervisor is None or not limit or self.started < limit:
            return False
        if not self.stopping.is_set():
            logger.info("worker %s: %d jobs started: recycling", self.id, self.started)
        return True

    def _check_memory(self) -> None:
        ceiling = self.settings.worker_max_memory_mb
        if self.supervisor is None or not ceiling or self.stopping.is_set():
            return
        rss = resident_mb()
        if rss is not None and rss > ceiling:
            logger.warning(
                "worker %s: resident memory %.0f MB over WORKER_MAX_MEMORY_MB=%d: recycling",
                self.id,
                rss,
                ceiling,
            )
            self.request_stop()

    def _execute(self, queue: str, job: Claimed, context: JobContext) -> Outcome:
        if context.cancel_requested:  # cancelled while it waited in the batch
            return Outcome(ok=False, error="cancelled before it started")
        if (
            self.settings.unknown_tasks == "reject"
            and job.task != tasks.BUILTIN_FAIL
            and tasks.spec_for(job.task) is None
        ):
            return final_failure(
                f"unknown task {job.task!r}: no handler in this worker (UNKNOWN_TASKS=reject)",
                time.perf_counter(),
            )

        def report(fraction: float, message: str) -> None:
            self._report_progress(queue, job, fraction, message)

        context.reporter = report
        context.results_reader = lambda: self.store.parent_results(job.id)  # workflows
        if job.timeout_s is None:
            return execute(job, self.settings.simulated_work_s, context)
        try:  # workflows: the child reads its parents' results from this copy
            parents: dict[str, Any] | None = self.store.parent_results(job.id)
        except StoreUnavailable:
            parents = None
        return execute_in_child(
            job,
            self.settings.simulated_work_s,
            context,
            self.settings.tasks_module,
            job.timeout_s,
            report,
            parents,
        )

    def _observe(self, duration_s: float) -> None:
        avg = self._avg_duration_s
        self._avg_duration_s = duration_s if avg is None else avg + 0.2 * (duration_s - avg)

    def _settle(self, queue: str, finished: list[Finished]) -> None:
        if not finished:
            return
        self._mark_settling([f.job.id for f in finished])
        try:
            started = time.monotonic()
            completed, failed = self.settler.settle(queue, finished)
            self._observe_round_trip(time.monotonic() - started)
            self.completed += completed
            self.failed += failed
        finally:
            for f in finished:
                self._unhold(f.job.id)

    def _observe_round_trip(self, took_s: float) -> None:
        sample, avg = min(took_s, MAX_ROUND_TRIP_S), self._round_trip_s
        self._round_trip_s = sample if avg is None else avg + 0.2 * (sample - avg)

    def _hold(self, queue: str, job: Claimed) -> None:
        with self._held_lock:
            context = JobContext(job.id, job.task, queue, job.attempt)
            self._held[job.id] = Held(queue, job.attempt, job.task, context, job)

    def _unhold(self, job_id: str) -> None:
        with self._held_lock:
            self._held.pop(job_id, None)
            self._settling.discard(job_id)

    def _mark_settling(self, job_ids: list[str]) -> None:
        with self._held_lock:
            self._settling.update(i for i in job_ids if i in self._held)

    def _taken_over(self, job_ids: list[str], attempts: dict[str, int]) -> list[str]:
        """Of the ids a heartbeat found no longer leased to this worker (for the
        `attempts` it sent), those it still holds, in that attempt, and is not
        settling: only these were taken from it. The others ended their lease
        themselves, by a settle that Redis ran before the heartbeat (the heartbeat's
        list of held jobs is taken before its round trip; a failed job may even be
        claimed again meanwhile); a settle that comes too late reports its own lost
        lease ("stale")."""
        with self._held_lock:
            return [
                i
                for i in job_ids
                if i in self._held
                and self._held[i].attempt == attempts.get(i)
                and i not in self._settling
            ]

    def holds(self, job_id: str) -> bool:
        """True while this worker holds the lease of `job_id`."""
        with self._held_lock:
            return job_id in self._held

    def held(self) -> dict[str, Held]:
        """A snapshot of the jobs this worker holds leases on."""
        with self._held_lock:
            return dict(self._held)

    # -- heartbeats and recovery ---------------------------------------------

    def heartbeat_once(self) -> None:
        """Renew the leases this worker holds; tell running handlers of cancellations."""
        holding = self.held()
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for job_id, held in holding.items():
            by_queue.setdefault(held.queue, []).append((job_id, held.attempt))
        for queue, jobs in by_queue.items():
            lost, cancel = self.store.heartbeat(queue, self.id, self.lease_grant_s, jobs)
            for job_id in self._taken_over(lost, dict(jobs)):
                logger.warning("job %s: lease lost (taken over by another worker)", job_id)
            for job_id in cancel:
                context = holding[job_id].context
                if not context.cancel_requested:
                    logger.info("job %s: cancellation requested", job_id)
                    context.request_cancel()

    def recover_once(self) -> list[tuple[str, str]]:
        """Take back jobs whose lease ran out, in every queue this worker serves."""
        recovered: list[tuple[str, str]] = []
        for queue in self.queues:
            taken = self.store.recover(queue)
            for job_id, verdict, task in taken:
                logger.warning(
                    "job %s recovered from an expired lease: %s",
                    job_id,
                    "dead-lettered" if verdict == "dead" else verdict,
                    extra={"event": "recovered", "job_id": job_id, "task": task,
                           "queue": queue, "verdict": verdict, "worker": self.id},
                )  # fmt: skip
                recovered.append((job_id, verdict))
            if taken:
                self.telemetry.recovered(queue, [(t, v) for _, v, t in taken])
        return recovered

    def registration(self, with_catalog: bool = False) -> dict[str, object]:
        """What this worker tells GET /workers (renewed with every heartbeat); with
        `with_catalog`, also the tasks it serves (GET /tasks)."""
        fields = worker_registration(
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.queues),
            concurrency=self.settings.worker_concurrency,
            started_at=self.started_at,
            current_jobs=sorted(self.held()),
            processed=self.completed + self.failed,
            failed=self.failed,
            supervisor=self.supervisor,
        )
        if with_catalog:
            fields[TASKS_FIELD] = json.dumps(tasks.catalog(), separators=(",", ":"))
        return fields

    def flush_telemetry(self) -> None:
        """Renew the registration and write the counts of the last second. Raises
        `StoreUnavailable` (the counts are kept for the next call)."""
        ttl_s = max(10.0, 3 * self.settings.worker_liveness_s)
        with_catalog = self._flushes % CATALOG_EVERY_BEATS == 0
        registration = self.registration(with_catalog)
        # False: Redis had lost the function library (now loaded again) and the
        # registration was not written: write it now.
        if self.telemetry.flush(self.store, self.id, registration, ttl_s) or self.telemetry.flush(
            self.store, self.id, registration, ttl_s
        ):
            self._flushes += 1

    def _heartbeat_loop(self) -> None:
        # At least every second, so that handlers hear of cancellations promptly.
        interval = max(0.05, min(self.settings.job_lease_s / 3, 1.0))
        next_beat = next_flush = next_recover = next_schedule = time.monotonic()
        while not self._heartbeat_stop.is_set():
            now = time.monotonic()
            async_running = self._aio is not None and self._aio.running > 0
            beat = min(interval, ASYNC_BEAT_S) if async_running else interval
            next_beat = min(next_beat, now + beat)
            try:
                if now >= next_beat:
                    next_beat = now + beat
                    self.heartbeat_once()
                if now >= next_flush:
                    next_flush = now + interval
                    self.flush_telemetry()
                    self._check_memory()
                if now >= next_recover and not self.stopping.is_set():
                    self.recover_once()
                    next_recover = now + self.recover_interval_s
                if now >= next_schedule and not self.stopping.is_set():
                    self.scheduler.run_once()
                    next_schedule = now + SCHEDULER_INTERVAL_S
            except StoreUnavailable as e:
                logger.warning("heartbeat: Redis unreachable: %s", e)
                next_beat = next_flush = next_recover = next_schedule = now + 1.0
            # The top of a long-lived loop: log anything unexpected and go on.
            except Exception:
                logger.exception("heartbeat: unexpected error")
                next_beat = next_flush = next_recover = next_schedule = now + 1.0
            wake = min(next_beat, next_flush, next_recover, next_schedule)
            if not async_running and self._aio is not None:
                wake = min(wake, time.monotonic() + ASYNC_BEAT_S)  # notice async jobs start
            self._heartbeat_stop.wait(max(0.0, wake - time.monotonic()))

    # -- the runner loop -----------------------------------------------------

    def _runner_loop(self) -> None:
        failures = 0
        idle = False
        while not self.stopping.is_set():
            try:
                # Busy: claim straight away. Idle: block and claim in one round trip.
                ran = self.wait_then_run() if idle else self.run_once()
                idle = ran == 0
                if failures:
                    logger.info("Redis reachable again")
                failures = 0
            except StoreUnavailable as e:
                failures += 1
                delay = min(MAX_RECONNECT_DELAY_S, 0.1 * 2**failures) * (0.5 + random.random())
                if failures == 1 or failures % 10 == 0:
                    logger.warning("Redis unreachable (%s); retrying in %.1fs", e, delay)
                self.stopping.wait(delay)
            # The top of the worker loop: log anything unexpected, pause, go on.
            except Exception:
                logger.exception("worker loop: unexpected error")
                self.stopping.wait(1.0)

    # -- the whole process ---------------------------------------------------

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code (0 after a clean stop).

        Its log lines are written by a writer thread meanwhile (logs.py)."""
        with lines_written_in_background():
            return self._run()

    def _run(self) -> int:
        self._install_signal_handlers()
        logger.info(
            "worker %s starting: queues=%s concurrency=%d redis=%s",
            self.id,
            ",".join(self.queues),
            self.settings.worker_concurrency,
            self.settings.redacted_redis_url,
        )
        heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        heartbeat.start()
        runners = [
            threading.Thread(target=self._runner_loop, name=f"runner-{i}", daemon=True)
            for i in range(self.settings.worker_concurrency)
        ]
        for t in runners:
            t.start()
        while not self.stopping.wait(0.5):
            pass
        return self._shut_down(runners, heartbeat)

    def request_stop(self) -> None:
        """Stop claiming; running jobs get `shutdown_grace_s` to finish."""
        self.stopping.set()

    def _shut_down(self, runners: list[threading.Thread], heartbeat: threading.Thread) -> int:
        grace = self.settings.shutdown_grace_s
        logger.info(
            "worker %s stopping: %d job(s) running, grace %.0fs", self.id, len(self.held()), grace
        )
        deadline = time.monotonic() + grace
        for t in runners:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._aio is not None:
            self._aio.stop(max(0.0, deadline - time.monotonic()))
        self.release_held()
        self._heartbeat_stop.set()
        heartbeat.join(2.0)
        self._deregister()
        self.store.close()
        logger.info(
            "worker %s stopped (completed=%d failed=%d)", self.id, self.completed, self.failed
        )
        return 0

    def _deregister(self) -> None:
        try:
            self.telemetry.flush(self.store, self.id, self.registration(), 10.0)
            self.store.deregister(self.id)
        except StoreUnavailable as e:
            logger.warning("worker %s: cannot deregister (%s); it drops out by itself", self.id, e)

    def release_held(self) -> None:
        """Hand back every job still held (their attempt is not counted)."""
        by_queue: dict[str, list[str]] = {}
        for job_id, held in self.held().items():
            by_queue.setdefault(held.queue, []).append(job_id)
        for queue, ids in by_queue.items():
            self._release_ids(queue, ids)

    def _release(self, queue: str, jobs: list[Claimed]) -> None:
        self._release_ids(queue, [j.id for j in jobs])

    def _release_ids(self, queue: str, ids: list[str]) -> None:
        for job_id in ids:
            held = self.held().get(job_id)
            if held is None:
                continue
            self._mark_settling([job_id])
            try:
                if self.store.release(queue, job_id, self.id, held.attempt):
                    job_event(
                        "released", held.job, queue, self.id, level=logging.WARNING,
                        message="(handed back unfinished)",
                    )  # fmt: skip
            except StoreUnavailable as e:
                logger.warning("job %s: cannot hand back (%s); its lease will expire", job_id, e)
            self._unhold(job_id)

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def handle(signum: int, frame: FrameType | None) -> None:
            self._signals += 1
            if self._signals > 1:
                logger.warning(
                    "second %s: stopping now; held jobs return when their leases expire",
                    signal.Signals(signum).name,
                )
                flush_output()  # os._exit skips logging.shutdown
                os._exit(1)
            logger.info("%s: finishing running jobs, then stopping", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)


def run_worker(settings: Settings) -> int:
    """Entry point of `jobsys worker`: load the tasks module, run until stopped; with
    WORKER_PROCESSES > 1 or a recycling limit, supervise that many worker processes
    (pool.py) instead."""
    from jobsys import tasks  # noqa: PLC0415

    if (
        settings.worker_processes > 1
        or settings.worker_max_jobs_per_child
        or settings.worker_max_memory_mb
    ):
        return Supervisor(settings).run()
    tasks.load(settings.tasks_module)
    return Worker(settings).run()
