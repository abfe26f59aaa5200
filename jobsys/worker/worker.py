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

`run_once()` does one claim → run → settle step on the caller's thread, so the
state machine can be tested step by step.
"""

from __future__ import annotations

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

from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Claimed, Store, worker_registration
from jobsys.worker.child import execute_in_child
from jobsys.worker.context import JobContext
from jobsys.worker.events import job_event
from jobsys.worker.execute import Outcome, execute
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
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else Store(settings)
        self.order = QueueOrder(settings.worker_queues)
        self.queues = self.order.names
        self.id = worker_id or make_worker_id()
        self.stopping = threading.Event()
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
                if self.stopping.is_set():
                    break
                job_event("started", job, queue, self.id)
                self.telemetry.started(queue, job)
                with self._held_lock:  # not `held()`: a copy of every held job per job
                    held = self._held.get(job.id)
                context = held.context if held else JobContext(job.id, job.task, queue, job.attempt)
                outcome = self._execute(job, context)
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

    def _execute(self, job: Claimed, context: JobContext) -> Outcome:
        if context.cancel_requested:  # cancelled while it waited in the batch
            return Outcome(ok=False, error="cancelled before it started")

        def report(fraction: float, message: str) -> None:
            try:
                self.store.progress(job.id, self.id, job.attempt, fraction, message)
            except StoreUnavailable as e:  # progress is best effort
                logger.debug("job %s: progress not recorded: %s", job.id, e)

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

    def registration(self) -> dict[str, object]:
        """What this worker tells GET /workers (renewed with every heartbeat)."""
        return worker_registration(
            host=socket.gethostname(),
            pid=os.getpid(),
            queues=list(self.queues),
            concurrency=self.settings.worker_concurrency,
            started_at=self.started_at,
            current_jobs=sorted(self.held()),
            processed=self.completed + self.failed,
            failed=self.failed,
        )

    def flush_telemetry(self) -> None:
        """Renew the registration and write the counts of the last second. Raises
        `StoreUnavailable` (the counts are kept for the next call)."""
        ttl_s = max(10.0, 3 * self.settings.worker_liveness_s)
        self.telemetry.flush(self.store, self.id, self.registration(), ttl_s)

    def _heartbeat_loop(self) -> None:
        # At least every second, so that handlers hear of cancellations promptly.
        interval = max(0.05, min(self.settings.job_lease_s / 3, 1.0))
        next_beat = next_recover = next_schedule = time.monotonic()
        while not self._heartbeat_stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_beat:
                    next_beat = now + interval
                    self.heartbeat_once()
                    self.flush_telemetry()
                if now >= next_recover and not self.stopping.is_set():
                    self.recover_once()
                    next_recover = now + self.recover_interval_s
                if now >= next_schedule and not self.stopping.is_set():
                    self.scheduler.run_once()
                    next_schedule = now + SCHEDULER_INTERVAL_S
            except StoreUnavailable as e:
                logger.warning("heartbeat: Redis unreachable: %s", e)
                next_beat = next_recover = next_schedule = now + 1.0
            # The top of a long-lived loop: log anything unexpected and go on.
            except Exception:
                logger.exception("heartbeat: unexpected error")
                next_beat = next_recover = next_schedule = now + 1.0
            wake = min(next_beat, next_recover, next_schedule)
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
        """Run until SIGTERM/SIGINT; return the process exit code (0 after a clean stop)."""
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
            if self.stopping.is_set():
                logger.warning(
                    "second %s: stopping now; held jobs return when their leases expire",
                    signal.Signals(signum).name,
                )
                os._exit(1)
            logger.info("%s: finishing running jobs, then stopping", signal.Signals(signum).name)
            self.request_stop()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)


def run_worker(settings: Settings) -> int:
    """Entry point of `jobsys worker`: load the tasks module, run until stopped."""
    from jobsys import tasks  # noqa: PLC0415

    tasks.load(settings.tasks_module)
    return Worker(settings).run()
