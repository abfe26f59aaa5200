"""The one exception hierarchy of jobsys.

The API maps each class to one HTTP status (see `jobsys.api.errors`).
"""

from __future__ import annotations


class JobsysError(Exception):
    """Base of every error jobsys raises on purpose."""


class ConfigError(JobsysError):
    """A setting has a bad value; the message names the variable."""


class StoreUnavailable(JobsysError):
    """Redis did not answer (down, unreachable, timed out, or out of memory)."""


class StoreFull(StoreUnavailable):
    """Redis refused a write because it reached its ``maxmemory`` (OOM)."""


class JobNotFound(JobsysError):
    """No job has this id."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no job with id {job_id!r}")
        self.job_id = job_id


class ScheduleNotFound(JobNotFound):
    """No periodic schedule has this name."""

    def __init__(self, name: str) -> None:
        JobsysError.__init__(self, f"no schedule named {name!r}")
        self.job_id = name


class JobAlreadyFinished(JobsysError):
    """The job has ended (completed, failed or cancelled): it cannot be cancelled."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"job {job_id} has already ended: it is {status}")
        self.job_id = job_id
        self.status = status


class IdempotencyConflict(JobsysError):
    """An Idempotency-Key was used again with a different request."""

    def __init__(self, queue: str) -> None:
        super().__init__(
            "this Idempotency-Key was already used with a different request "
            f"(queue {queue!r}); use a new key for a new request"
        )


class TooManyQueues(JobsysError):
    """A submit to a queue that does not exist yet while MAX_QUEUES queues do (HTTP
    409); nothing was stored. `field` is ``queue``."""

    def __init__(self, queue: str, limit: int) -> None:
        super().__init__(
            f"queue {queue!r} does not exist and {limit} queues already do, the most "
            "allowed (MAX_QUEUES): submit to an existing queue, or have an operator "
            "remove an empty one"
        )
        self.queue = queue
        self.limit = limit
        self.field = "queue"


class InvalidJob(JobsysError):
    """A submitted job breaks a rule; `field` names the offending field."""

    def __init__(self, field: str, rule: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class UnknownParent(InvalidJob):
    """A ``depends_on`` names a job that does not exist (workflows)."""

    def __init__(self, job_id: str) -> None:
        super().__init__("depends_on", f"names no existing job: {job_id}")
        self.job_id = job_id


class TaskNotFound(JobsysError):
    """A tasks module named by --tasks or JOBSYS_TASKS could not be imported."""


class ClientError(JobsysError):
    """The HTTP client got an error answer from the API."""

    def __init__(self, status: int, error: str, detail: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {error}" + (f" ({detail})" if detail else ""))
        self.status = status
        self.error = error
        self.detail = detail


class ApiUnreachable(ClientError):
    """The API could not be reached at all (refused, unknown host, timed out); `status` is 0."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(0, "unreachable", reason)
        self.url = url

    def __str__(self) -> str:
        return f"cannot reach the jobsys API at {self.url}: {self.detail}"


class Unauthorized(JobsysError):
    """A request to the API carried no valid bearer token (HTTP 401); the message
    says what was wrong, never the token itself."""


class Forbidden(JobsysError):
    """A valid token whose role may not call this endpoint (HTTP 403)."""


class HostNotAllowed(JobsysError):
    """A request whose Host header names no allowed host (HTTP 400): what a DNS
    rebinding attack sends to an open API."""


class TooManyAttempts(JobsysError):
    """Too many failed token attempts from one client address (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        #: Seconds until the client may try again (the Retry-After header).
        self.retry_after_s = retry_after_s
