"""jobsys: a distributed job system. Submit over HTTP, queue in Redis, run in Python workers."""

from jobsys.client import Client
from jobsys.settings import Settings
from jobsys.tasks import task
from jobsys.worker.context import JobContext, current_job

__all__ = ["Client", "JobContext", "Settings", "current_job", "task"]
__version__ = "0.2.0"
