"""Every Redis call of jobsys goes through this package.

The API, the worker and the CLI import only the names below: nothing outside
``jobsys/store/`` imports ``redis`` or a submodule of this package.
"""

from jobsys.store.connection import connect
from jobsys.store.health import HealthProbe
from jobsys.store.listing import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from jobsys.store.schedules import ScheduleStore
from jobsys.store.scripts import Claimed
from jobsys.store.store import Store, Submission
from jobsys.store.workers import WorkerInfo

__all__ = [
    "CURSOR_PATTERN",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Claimed",
    "HealthProbe",
    "ScheduleStore",
    "Store",
    "Submission",
    "WorkerInfo",
    "connect",
]
