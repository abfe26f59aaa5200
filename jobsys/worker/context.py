"""What a running handler can know about its job: `jobsys.current_job()`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

_local = threading.local()


@dataclass
class JobContext:
    """The job a handler is running. Get it with `jobsys.current_job()`."""

    id: str
    task: str
    queue: str
    attempt: int
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def cancel_requested(self) -> bool:
        """True once someone asked to cancel this job (`POST /jobs/<id>/cancel`).

        A handler that runs long should check it now and then and return early;
        the job then ends `cancelled`. The worker learns of the request at its
        next heartbeat (within about a second).
        """
        return self._cancel.is_set()

    def request_cancel(self) -> None:
        """Mark the job as asked to cancel (the worker calls this)."""
        self._cancel.set()


def current_job() -> JobContext | None:
    """The job the calling handler runs, or None outside a handler."""
    return getattr(_local, "job", None)


@contextmanager
def running(job: JobContext) -> Iterator[JobContext]:
    """Make `job` the current job of this thread while the handler runs."""
    _local.job = job
    try:
        yield job
    finally:
        _local.job = None
