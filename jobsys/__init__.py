"""jobsys: a distributed job system. Submit over HTTP, queue in Redis, run in Python workers."""

from jobsys.client import Client
from jobsys.settings import Settings
from jobsys.tasks import task

__all__ = ["Client", "Settings", "task"]
__version__ = "0.1.0"
