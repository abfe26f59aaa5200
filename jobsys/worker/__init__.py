"""The worker: claim → run → settle; heartbeats; recovery of jobs of dead workers.

`Worker` and `run_worker` are imported on first use, not with the package: the
light modules here (`queues`, `context`) are imported by `jobsys.settings` and
`jobsys` itself, which must not pull in the store and redis-py with them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobsys.worker.worker import Worker, run_worker

__all__ = ["Worker", "run_worker"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from jobsys.worker import worker  # noqa: PLC0415

        return getattr(worker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
