"""Every Redis call of jobsys goes through this package.

The API, the worker and the CLI import only the names below: nothing outside
``jobsys/store/`` imports ``redis`` or a submodule of this package, or catches a
redis-py exception (tests/unit/test_store_boundary.py and ruff's TID251 check).
"""

from jobsys.store.connection import connect
from jobsys.store.health import HealthProbe
from jobsys.store.listing import CURSOR_PATTERN, DEFAULT_LIMIT, MAX_LIMIT
from jobsys.store.metrics import (
    BUCKETS_S,
    Deltas,
    QueueMetrics,
    QueueStats,
    bucket_field,
    counter_field,
)
from jobsys.store.schedules import ScheduleStore
from jobsys.store.scripts import Claimed
from jobsys.store.store import Store
from jobsys.store.submission import Submission, Submitted
from jobsys.store.workers import WorkerInfo
from jobsys.store.workers import registration as worker_registration
from jobsys.store.workflows import MAX_PARENTS, BatchInfo, BatchNotFound, Step, WorkflowNotFound

__all__ = [
    "BUCKETS_S",
    "CURSOR_PATTERN",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "MAX_PARENTS",
    "BatchInfo",
    "BatchNotFound",
    "Claimed",
    "Deltas",
    "HealthProbe",
    "QueueMetrics",
    "QueueStats",
    "ScheduleStore",
    "Step",
    "Store",
    "Submission",
    "Submitted",
    "WorkerInfo",
    "WorkflowNotFound",
    "bucket_field",
    "connect",
    "counter_field",
    "worker_registration",
]
