"""Runs one job's handler and turns what happened into an outcome to settle."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, NamedTuple

from jobsys import tasks
from jobsys.logs import logfmt_value
from jobsys.store import Claimed
from jobsys.worker.context import JobContext, reset_current, set_current

logger = logging.getLogger(__name__)

#: Longest error text kept in the job hash; the full traceback goes to the log.
MAX_ERROR_CHARS = 2000

#: A result as compact JSON (made once: `json.dumps` with options builds an encoder
#: per call).
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: The result of a handler that returned None (most do), encoded once.
_NULL = _encode(None)


class Outcome(NamedTuple):
    """What one attempt produced: a JSON result, or an error text.

    Immutable, as a frozen dataclass would be; one is made per job, and a frozen
    dataclass's `__init__` (a `object.__setattr__` per field) costs three times as much.
    """

    ok: bool
    result_json: str = "null"
    error: str = ""
    duration_s: float = 0.0
    #: The handler raised RetryAfter: retry after this long instead of the backoff.
    retry_after_s: float | None = None
    #: No retry can help (a payload its task's model refuses, an unknown task under
    #: UNKNOWN_TASKS=reject): the job fails at once, whatever retries it has left.
    final: bool = False
    #: Flow control: the handler raised RateLimited: hand the job back (no attempt
    #: used) and hold its task (or queue, `rate_limited_per`) off this long.
    rate_limited_s: float | None = None
    rate_limited_per: str = "task"


class InvalidPayload(Exception):
    """A typed task's payload does not validate against its model."""


def execute(job: Claimed, simulated_work_s: float, context: JobContext) -> Outcome:
    """Run the handler of `job` and capture its result or error. Never raises."""
    start = time.perf_counter()
    # `running` as a bare set/reset, not a `with` (a context manager costs a
    # generator per job on the hot path).
    token = set_current(context)
    try:
        payload = decode_payload(job)
        result = _call(job.task, payload, simulated_work_s)
    # User task code runs here: any exception it raises (even SystemExit) is a
    # failed attempt, never a dead worker.
    except (Exception, SystemExit) as e:
        return raised(job, e, start)
    finally:
        reset_current(token)
    return succeeded(result, start)


def decode_payload(job: Claimed) -> Any:
    """The payload a handler receives: the JSON value (None when none was given),
    or, for a typed task, an instance of its model. Raises `InvalidPayload`."""
    spec = tasks.spec_for(job.task)
    if spec is not None and spec.model is not None:
        try:
            return spec.model.model_validate_json(job.payload_json or "null")
        # pydantic's ValidationError (a ValueError), caught without importing pydantic.
        except ValueError as e:
            raise InvalidPayload(f"payload does not match {spec.model.__name__}: {e}") from e
    return json.loads(job.payload_json) if job.payload_json is not None else None


def final_failure(error: str, start: float) -> Outcome:
    """A failed attempt that ends the job at once (no retry)."""
    return Outcome(
        ok=False,
        error=error[:MAX_ERROR_CHARS],
        duration_s=time.perf_counter() - start,
        final=True,
    )


def succeeded(result: Any, start: float) -> Outcome:
    """The outcome of a handler that returned `result` (a failure if it is not JSON)."""
    try:
        result_json = _NULL if result is None else _encode(result)
    except (TypeError, ValueError, RecursionError) as e:
        return failed(f"result is not JSON-serialisable: {e}", start)
    return Outcome(ok=True, result_json=result_json, duration_s=time.perf_counter() - start)


def raised(job: Claimed, e: BaseException, start: float) -> Outcome:
    """The outcome of a handler that raised `e`: a failed attempt (RetryAfter
    asks for its own delay); the traceback goes to the log."""
    if isinstance(e, InvalidPayload):
        return final_failure(str(e), start)
    if isinstance(e, tasks.RateLimited):  # flow control (docs/flow-control.md)
        return Outcome(
            ok=False,
            error=f"RateLimited: {e}"[:MAX_ERROR_CHARS],
            duration_s=time.perf_counter() - start,
            rate_limited_s=e.retry_after,
            rate_limited_per=e.per,
        )
    if isinstance(e, tasks.RetryAfter):
        return Outcome(
            ok=False,
            error=f"RetryAfter: {e}"[:MAX_ERROR_CHARS],
            duration_s=time.perf_counter() - start,
            retry_after_s=e.seconds,
        )
    logger.warning(
        "job %s task=%s attempt=%d raised %s",
        job.id,
        logfmt_value(job.task),
        job.attempt,
        type(e).__name__,
        exc_info=e,
    )
    return failed(f"{type(e).__name__}: {e}", start)


def failed(error: str, start: float) -> Outcome:
    """A failed attempt with `error` (cut to MAX_ERROR_CHARS), begun at `start`."""
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
