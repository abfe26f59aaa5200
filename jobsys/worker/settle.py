"""Records what a batch of attempts produced: one script call for the successes,
one for the failures, retried while Redis is unreachable."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from jobsys.errors import StoreUnavailable
from jobsys.logs import logfmt_value
from jobsys.settings import Settings
from jobsys.store import Claimed, Store
from jobsys.worker.backoff import retry_delay_s
from jobsys.worker.events import job_event
from jobsys.worker.execute import Outcome
from jobsys.worker.telemetry import Telemetry

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Longest pause between attempts to reach Redis again.
MAX_RECONNECT_DELAY_S = 5.0


@dataclass(frozen=True)
class Finished:
    """One attempt that has run and awaits settling."""

    job: Claimed
    outcome: Outcome


class Settler:
    """Settles finished attempts for one worker (complete.lua / fail.lua)."""

    def __init__(
        self,
        store: Store,
        worker_id: str,
        settings: Settings,
        holds: Callable[[str], bool],
        telemetry: Telemetry | None = None,
    ) -> None:
        self.store = store
        self.worker_id = worker_id
        self.settings = settings
        #: Whether the worker still holds a job; after a hard stop it holds none,
        #: and settling gives up (the lease brings the job back).
        self.holds = holds
        self.telemetry = telemetry if telemetry is not None else Telemetry()

    def settle(self, queue: str, finished: Sequence[Finished]) -> tuple[int, int]:
        """Record every outcome in `finished`; return (completed, failed) counts.

        While Redis is unreachable it keeps the outcomes and tries again, with
        backoff, for as long as the worker holds the jobs.
        """
        ok = [f for f in finished if f.outcome.ok]
        bad = [f for f in finished if not f.outcome.ok]
        limited = [f for f in bad if f.outcome.rate_limited_s is not None]
        if limited:  # flow control (docs/flow-control.md)
            self._hand_back_rate_limited(queue, limited)
            bad = [f for f in bad if f.outcome.rate_limited_s is None]
        completed = failed = 0
        if ok:
            items = [(f.job.id, f.job.attempt, f.outcome.result_json) for f in ok]
            recorded = self._retrying(
                ok, lambda: self.store.complete_many(queue, self.worker_id, items)
            )
            for f, verdict in zip(ok, recorded or [], strict=False):
                completed += self._log_success(queue, f, verdict)
            self.telemetry.settled(
                queue,
                (
                    (f.job.task, v, f.outcome.duration_s)
                    for f, v in zip(ok, recorded or [], strict=False)
                ),
            )
        if bad:
            delays = [self._failure_delay(f) for f in bad]
            fails = [
                (f.job.id, f.job.attempt, f.outcome.error, d)
                for f, d in zip(bad, delays, strict=True)
            ]
            verdicts = self._retrying(
                bad, lambda: self.store.fail_many(queue, self.worker_id, fails)
            )
            for f, verdict, delay in zip(bad, verdicts or [], delays, strict=False):
                failed += self._log_failure(queue, f, verdict, delay)
            self.telemetry.settled(
                queue,
                (
                    (f.job.task, v, f.outcome.duration_s)
                    for f, v in zip(bad, verdicts or [], strict=False)
                ),
            )
        return completed, failed

    def _failure_delay(self, f: Finished) -> float:
        if f.outcome.final:
            return -1.0  # fail.lua: no retry
        if f.outcome.retry_after_s is not None:
            return f.outcome.retry_after_s
        return self._delay(f.job.attempt)

    def _hand_back_rate_limited(self, queue: str, limited: Sequence[Finished]) -> None:
        """Jobs whose handler raised RateLimited go back unattempted; their task (or
        queue) is held off (rate_limited.lua; docs/flow-control.md)."""
        items = [
            (f.job.id, f.job.attempt, f.outcome.rate_limited_s or 0.0, f.outcome.rate_limited_per)
            for f in limited
        ]
        verdicts = self._retrying(
            limited, lambda: self.store.flow.rate_limited(queue, self.worker_id, items)
        )
        for f, verdict in zip(limited, verdicts or [], strict=False):
            if verdict == "held":
                job_event("rate_limited", f.job, queue, self.worker_id,
                          duration_s=f.outcome.duration_s, level=logging.WARNING,
                          message=f"held {f.outcome.rate_limited_per} off for "
                          f"{f.outcome.rate_limited_s:g}s")  # fmt: skip
            elif verdict == "cancelled":
                job_event("cancelled", f.job, queue, self.worker_id,
                          duration_s=f.outcome.duration_s)  # fmt: skip

    def _delay(self, attempt: int) -> float:
        return retry_delay_s(
            attempt, self.settings.retry_backoff_s, self.settings.retry_backoff_max_s
        )

    def _retrying(self, batch: Sequence[Finished], call: Callable[[], T]) -> T | None:
        delay = 0.1
        while True:
            try:
                return call()
            except StoreUnavailable as e:
                if not any(self.holds(f.job.id) for f in batch):
                    return None
                logger.warning(
                    "cannot settle %d job(s), retrying in %.1fs: %s", len(batch), delay, e
                )
                time.sleep(delay)
                delay = min(delay * 2, MAX_RECONNECT_DELAY_S)

    def _log_success(self, queue: str, f: Finished, verdict: str) -> int:
        job, run_s = f.job, f.outcome.duration_s
        if verdict == "cancelled":
            job_event("cancelled", job, queue, self.worker_id, duration_s=run_s,
                      message="(it finished after all)")  # fmt: skip
            return 0
        if verdict == "stale":
            job_event("lease_lost", job, queue, self.worker_id, duration_s=run_s,
                      level=logging.WARNING, message="result discarded: lease lost")  # fmt: skip
            return 0
        job_event("completed", job, queue, self.worker_id, duration_s=run_s)
        return 1

    def _log_failure(self, queue: str, f: Finished, verdict: str, delay_s: float) -> int:
        job, run_s, error = f.job, f.outcome.duration_s, f.outcome.error
        shown = logfmt_value(error)  # quoted: an error text must not add fields of its own
        if verdict == "stale":
            job_event("lease_lost", job, queue, self.worker_id, duration_s=run_s,
                      level=logging.WARNING, message="failure discarded: lease lost")  # fmt: skip
            return 0
        if verdict == "cancelled":
            job_event("cancelled", job, queue, self.worker_id, duration_s=run_s)
            return 0
        if verdict == "dead":
            job_event("dead_lettered", job, queue, self.worker_id, duration_s=run_s,
                      level=logging.ERROR, message=f"error={shown}", error=error)  # fmt: skip
        else:
            job_event("retried", job, queue, self.worker_id, duration_s=run_s,
                      level=logging.WARNING, message=f"in {delay_s:.2f}s error={shown}",
                      error=error, retry_in_s=round(delay_s, 3))  # fmt: skip
        return 1
