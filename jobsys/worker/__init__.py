"""The worker: claim → run → settle; heartbeats; recovery of jobs of dead workers."""

from jobsys.worker.worker import Worker, run_worker

__all__ = ["Worker", "run_worker"]
