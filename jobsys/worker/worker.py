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
from collections.abc import Sequence
from dataclasses import dataclass
from types import FrameType

from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Claimed, Store
from jobsys.store.store import DEFAULT_QUEUE
from jobsys.worker.backoff import retry_delay_s
from jobsys.worker.execute import Outcome, execute

logger = logging.getLogger(__name__)

#: Longest pause between reconnection attempts while Redis is unreachable.
MAX_RECONNECT_DELAY_S = 5.0


def make_worker_id() -> str:
    """``<host>:<pid>:<random>``: unique per process, readable in `GET /jobs/<id>`."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


@dataclass(frozen=True)
class Held:
    """A job this worker holds a lease on."""

    queue: str
    attempt: int
    task: str


class Worker:
    """One worker process's job loop. See the module docstring for its threads."""

    def __init__(
        self,
        settings: Settings,
        store: Store | None = None,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
        worker_id: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store if store is not None else Store(settings)
        self.queues = list(queues)
        self.id = worker_id or make_worker_id()
        self.stopping = threading.Event()
        self._held: dict[str, Held] = {}
        self._held_lock = threading.Lock()
        self._heartbeat_stop = threading.Event()
        self.completed = 0
        self.failed = 0
        # Expired leases are looked for this often, and leases are granted for that
        # much less than JOB_LEASE_SECONDS, so that a dead worker's job is back in
        # its queue within JOB_LEASE_SECONDS of the worker's last heartbeat.
        self.recover_interval_s = min(settings.worker_poll_s, settings.job_lease_s / 10)
        self.lease_grant_s = settings.job_lease_s - self.recover_interval_s

    # -- one step ------------------------------------------------------------

    def run_once(self) -> int:
        """Claim at most one job from the first queue that has one, run it and settle it.

        Returns the number of jobs processed (0 or 1). Raises `StoreUnavailable`.
        """
        for queue in self.queues:
            claimed = self.store.claim(queue, self.id, self.lease_grant_s, 1)
            if claimed:
                for job in claimed:
                    self._hold(queue, job)
                for job in claimed:
                    self._process(queue, job)
                return len(claimed)
        return 0

    def _hold(self, queue: str, job: Claimed) -> None:
        with self._held_lock:
            self._held[job.id] = Held(queue, job.attempt, job.task)

    def _unhold(self, job_id: str) -> None:
        with self._held_lock:
            self._held.pop(job_id, None)

    def held(self) -> dict[str, Held]:
        """A snapshot of the jobs this worker holds leases on."""
        with self._held_lock:
            return dict(self._held)

    def _process(self, queue: str, job: Claimed) -> None:
        logger.info(
            "job %s started task=%s queue=%s attempt=%d worker=%s",
            job.id,
            job.task,
            queue,
            job.attempt,
            self.id,
        )
        outcome = execute(job, self.settings.simulated_work_s)
        try:
            self._settle(queue, job, outcome)
        finally:
            self._unhold(job.id)

    def _settle(self, queue: str, job: Claimed, outcome: Outcome) -> None:
        """Record the outcome, retrying while Redis is unreachable.

        Gives up only when the worker is told to stop at once; the lease then
        brings the job back (at-least-once), and fencing rejects a late result.
        """
        delay = 0.1
        while True:
            try:
                if outcome.ok:
                    self._record_success(queue, job, outcome)
                else:
                    self._record_failure(queue, job, outcome)
                return
            except StoreUnavailable as e:
                if job.id not in self.held():
                    return
                logger.warning("job %s: cannot settle, retrying in %.1fs: %s", job.id, delay, e)
                time.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_S)

    def _record_success(self, queue: str, job: Claimed, outcome: Outcome) -> None:
        ms = round(outcome.duration_s * 1000)
        if self.store.complete(queue, job.id, self.id, job.attempt, outcome.result_json):
            self.completed += 1
            logger.info(
                "job %s completed task=%s attempt=%d worker=%s duration_ms=%d",
                job.id,
                job.task,
                job.attempt,
                self.id,
                ms,
            )
        else:
            logger.warning(
                "job %s result discarded: lease lost (attempt=%d worker=%s duration_ms=%d)",
                job.id,
                job.attempt,
                self.id,
                ms,
            )

    def _record_failure(self, queue: str, job: Claimed, outcome: Outcome) -> None:
        delay_s = retry_delay_s(
            job.attempt, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
        )
        verdict = self.store.fail(queue, job.id, self.id, job.attempt, outcome.error, delay_s)
        ms = round(outcome.duration_s * 1000)
        if verdict == "stale":
            logger.warning(
                "job %s failure discarded: lease lost (attempt=%d worker=%s)",
                job.id,
                job.attempt,
                self.id,
            )
            return
        self.failed += 1
        if verdict == "dead":
            logger.error(
                "job %s dead-lettered task=%s attempt=%d worker=%s duration_ms=%d error=%s",
                job.id,
                job.task,
                job.attempt,
                self.id,
                ms,
                outcome.error,
            )
        else:
            logger.warning(
                "job %s failed, retry in %.2fs task=%s attempt=%d worker=%s duration_ms=%d "
                "error=%s",
                job.id,
                delay_s,
                job.task,
                job.attempt,
                self.id,
                ms,
                outcome.error,
            )

    # -- heartbeats and recovery ---------------------------------------------

    def heartbeat_once(self) -> None:
        """Renew the leases this worker holds; forget the ones it has lost."""
        by_queue: dict[str, list[tuple[str, int]]] = {}
        for job_id, held in self.held().items():
            by_queue.setdefault(held.queue, []).append((job_id, held.attempt))
        for queue, jobs in by_queue.items():
            lost = self.store.heartbeat(queue, self.id, self.lease_grant_s, jobs)
            for job_id in lost:
                logger.warning("job %s: lease lost (taken over by another worker)", job_id)

    def recover_once(self) -> list[tuple[str, str]]:
        """Take back jobs whose lease ran out, in every queue this worker serves."""
        recovered: list[tuple[str, str]] = []
        for queue in self.queues:
            for job_id, verdict in self.store.recover(queue):
                logger.warning(
                    "job %s recovered from an expired lease: %s",
                    job_id,
                    "dead-lettered" if verdict == "dead" else "requeued",
                )
                recovered.append((job_id, verdict))
        return recovered

    def _heartbeat_loop(self) -> None:
        interval = max(0.05, self.settings.job_lease_s / 3)
        next_beat = next_recover = time.monotonic()
        while not self._heartbeat_stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_beat:
                    self.heartbeat_once()
                    next_beat = now + interval
                if now >= next_recover and not self.stopping.is_set():
                    self.recover_once()
                    next_recover = now + self.recover_interval_s
            except StoreUnavailable as e:
                logger.warning("heartbeat: Redis unreachable: %s", e)
                next_beat = next_recover = now + 1.0
            # The top of a long-lived loop: log anything unexpected and go on.
            except Exception:
                logger.exception("heartbeat: unexpected error")
                next_beat = next_recover = now + 1.0
            self._heartbeat_stop.wait(max(0.0, min(next_beat, next_recover) - time.monotonic()))

    # -- the runner loop -----------------------------------------------------

    def _runner_loop(self) -> None:
        failures = 0
        while not self.stopping.is_set():
            try:
                if self.run_once() == 0 and not self.stopping.is_set():
                    self.store.wait_for_work(self.queues, self.settings.worker_poll_s)
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
        self.store.close()
        logger.info(
            "worker %s stopped (completed=%d failed=%d)", self.id, self.completed, self.failed
        )
        return 0

    def release_held(self) -> None:
        """Hand back every job still held (their attempt is not counted)."""
        for job_id, held in self.held().items():
            try:
                if self.store.release(held.queue, job_id, self.id, held.attempt):
                    logger.warning("job %s handed back unfinished (task=%s)", job_id, held.task)
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
