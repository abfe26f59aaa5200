"""Runs one job's handler and turns what happened into an outcome to settle."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from jobsys import tasks
from jobsys.logs import logfmt_value
from jobsys.store import Claimed
from jobsys.worker.context import JobContext, running

logger = logging.getLogger(__name__)

#: Longest error text kept in the job hash; the full traceback goes to the log.
MAX_ERROR_CHARS = 2000


@dataclass(frozen=True)
class Outcome:
    """What one attempt produced: a JSON result, or an error text."""

    ok: bool
    result_json: str = "null"
    error: str = ""
    duration_s: float = 0.0
    #: The handler raised RetryAfter: retry after this long instead of the backoff.
    retry_after_s: float | None = None
    #: Flow control: the handler raised RateLimited: hand the job back (no attempt
    #: used) and hold its task (or queue, `rate_limited_per`) off this long.
    rate_limited_s: float | None = None
    rate_limited_per: str = "task"


def execute(job: Claimed, simulated_work_s: float, context: JobContext) -> Outcome:
    """Run the handler of `job` and capture its result or error. Never raises."""
    start = time.perf_counter()
    try:
        payload = json.loads(job.payload_json) if job.payload_json is not None else None
        with running(context):
            result = _call(job.task, payload, simulated_work_s)
    except tasks.RateLimited as e:  # flow control (docs/flow-control.md)
        return Outcome(
            ok=False,
            error=f"RateLimited: {e}"[:MAX_ERROR_CHARS],
            duration_s=time.perf_counter() - start,
            rate_limited_s=e.retry_after,
            rate_limited_per=e.per,
        )
    except tasks.RetryAfter as e:
        return Outcome(
            ok=False,
            error=f"RetryAfter: {e}"[:MAX_ERROR_CHARS],
            duration_s=time.perf_counter() - start,
            retry_after_s=e.seconds,
        )
    # User task code runs here: any exception it raises (even SystemExit) is a
    # failed attempt, never a dead worker.
    except (Exception, SystemExit) as e:
        logger.warning(
            "job %s task=%s attempt=%d raised %s",
            job.id,
            logfmt_value(job.task),
            job.attempt,
            type(e).__name__,
            exc_info=True,
        )
        return _failed(f"{type(e).__name__}: {e}", start)
    try:
        result_json = json.dumps(result, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as e:
        return _failed(f"result is not JSON-serialisable: {e}", start)
    return Outcome(ok=True, result_json=result_json, duration_s=time.perf_counter() - start)


def _failed(error: str, start: float) -> Outcome:
    return Outcome(ok=False, error=error[:MAX_ERROR_CHARS], duration_s=time.perf_counter() - start)


def _call(task: str, payload: Any, simulated_work_s: float) -> Any:
    handler = tasks.handler_for(task)
    if handler is not None:
        return handler(payload)
    if task == "fail":
        raise tasks.SimulatedFailure("task 'fail' always fails")
    logger.info("no handler for task %r: simulating %.2fs of work", task, simulated_work_s)
    time.sleep(simulated_work_s)
    return {"task": task, "simulated_seconds": simulated_work_s}
