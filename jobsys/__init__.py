"""jobsys: a distributed job system. Submit over HTTP, queue in Redis, run in Python workers."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from jobsys.settings import Settings
from jobsys.tasks import task
from jobsys.worker.context import JobContext, current_job

if TYPE_CHECKING:
    from jobsys.client import Client

__all__ = ["Client", "JobContext", "Settings", "current_job", "task"]
__version__ = "0.3.0"


def __getattr__(name: str) -> Any:
    # The client (requests, and with it ssl) loads on first use: the API server
    # imports this package before gevent patches ssl, which must come first.
    if name == "Client":
        from jobsys.client import Client  # noqa: PLC0415

        return Client
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
