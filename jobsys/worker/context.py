"""What a running handler can know about its job: `jobsys.current_job()`.

The current job lives in a `contextvars.ContextVar`: each runner thread and each
asyncio task of the event loop has its own, so `current_job()` answers right in
sync and async handlers alike.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

#: Progress reports closer together than this are dropped (but for the last, 1.0).
PROGRESS_INTERVAL_S = 0.1

Reporter = Callable[[float, str], None]

_current: ContextVar[JobContext | None] = ContextVar("jobsys_current_job", default=None)


@dataclass
class JobContext:
    """The job a handler is running. Get it with `jobsys.current_job()`."""

    id: str
    task: str
    queue: str
    attempt: int
    # A plain flag (set by the heartbeat thread, read by the handler): cheaper to
    # make per job than a threading.Event, and nothing ever waits on it.
    _cancel: bool = field(default=False, repr=False)
    #: Where progress goes (set by the worker); None: nowhere.
    reporter: Reporter | None = field(default=None, repr=False)
    _last_report: float = field(default=-math.inf, repr=False)
    #: Called (on the heartbeat thread) when cancellation is requested: an async
    #: job's runner sets it to cancel the job's asyncio task.
    on_cancel: Callable[[], None] | None = field(default=None, repr=False)
    #: Reads the results of the job's parents (set by the worker); None: not available.
    results_reader: Callable[[], dict[str, Any]] | None = field(default=None, repr=False)

    def progress(self, fraction: float, message: str = "") -> None:
        """Report how far the job has got: `fraction` from 0.0 to 1.0, and a short
        `message`. `GET /jobs/<id>` shows them while it runs, and `jobsys submit
        --wait` draws them as a progress bar. Reports closer than 0.1 s apart are
        dropped, except the one that reaches 1.0.
        """
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("progress must be a fraction from 0.0 to 1.0")
        now = time.monotonic()
        if self.reporter is None or (
            now - self._last_report < PROGRESS_INTERVAL_S and fraction < 1.0
        ):
            return
        self._last_report = now
        self.reporter(fraction, message[:200])

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job (`POST /jobs/<id>/cancel`).

        A handler that runs long should check it now and then and return early;
        the job then ends `cancelled`. The worker learns of the request at its
        next heartbeat (within about a second). An async handler needs no check:
        its task is cancelled (`asyncio.CancelledError` at its current `await`).
        """
        return self._cancel

    def parent_results(self) -> dict[str, Any]:
        """The results of the jobs this job waited for (its submit's ``depends_on``):
        {parent id: its result}, in the order given; None for a parent that did not
        complete (a job submitted with ``on_parent_failure: run``). An empty dict for
        a job without parents. Each call reads Redis; in a job with
        ``timeout_seconds`` (run in a child process) the worker read them once before
        the child started (RuntimeError if Redis could not be reached then).
        """
        if self.results_reader is None:
            raise RuntimeError("parent_results() is not available in this job's process")
        return self.results_reader()

    def request_cancel(self) -> None:
        """Mark the job as asked to cancel (the worker calls this)."""
        self._cancel = True
        if self.on_cancel is not None:
            self.on_cancel()


def current_job() -> JobContext | None:
    """The job the calling handler runs, or None outside a handler."""
    return _current.get()


def set_current(job: JobContext | None) -> Token[JobContext | None]:
    """Make `job` the current job; `reset_current` with the token undoes it."""
    return _current.set(job)


def reset_current(token: Token[JobContext | None]) -> None:
    """Undo the `set_current` that returned `token`."""
    _current.reset(token)


@contextmanager
def running(job: JobContext) -> Iterator[JobContext]:
    """Make `job` the current job of this thread (or asyncio task) while the
    handler runs."""
    token = _current.set(job)
    try:
        yield job
    finally:
        _current.reset(token)
