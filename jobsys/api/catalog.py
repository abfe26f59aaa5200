"""The task catalog at the API: ``GET /tasks``, and what a submit learns from it.

The catalog is what live workers publish of the tasks they serve
(`jobsys.store.catalog`), read from Redis at most once per `CACHE_S` by each API
process. A submit of a task in it gets the task's defaults for the fields it
leaves out, and its payload is checked against the task's JSON Schema (a 400 that
names the field, and nothing written). With ``UNKNOWN_TASKS=reject`` a task that
is not in it is a 400.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jobsys.api.validation import MAX_RETRIES_LIMIT, MAX_TIMEOUT_S, BatchJob
from jobsys.errors import InvalidJob
from jobsys.models import MAX_PRIORITY, MIN_PRIORITY
from jobsys.settings import Settings
from jobsys.store import Store, Submission

if TYPE_CHECKING:
    from flask import Flask
    from jsonschema import Draft202012Validator

#: How long an API process uses the catalog it read before it reads it again: a task
#: a worker starts serving is known to every API process within this.
CACHE_S = 1.0
PRIORITIES = range(MIN_PRIORITY, MAX_PRIORITY + 1)
RETRIES = range(MAX_RETRIES_LIMIT + 1)
#: Key of the `Catalog` in ``app.extensions``.
EXTENSION_KEY = "jobsys.catalog"


@dataclass(frozen=True)
class Known:
    """One task of the catalog, ready for submits."""

    entry: dict[str, Any]
    validator: Draft202012Validator | None


class Catalog:
    """The catalog of one API process, refreshed from Redis when older than CACHE_S."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._tasks: dict[str, Known] = {}
        self._read_at = -float("inf")

    def tasks(self) -> dict[str, Known]:
        """Every task a live worker serves, by name. Raises `StoreUnavailable`.

        One request reads it at a time; the others meanwhile use the last one read
        (they wait only for the first read), so a slow or unreachable Redis costs a
        submit one timeout, never a queue of them. A failed read counts as a read
        for CACHE_S: the submits that follow go straight to their own write, which
        answers the outage (503) or succeeds once Redis is back."""
        if time.monotonic() - self._read_at < CACHE_S:
            return self._tasks
        if not self._lock.acquire(blocking=self._read_at == -float("inf")):
            return self._tasks  # another request is reading it
        try:
            if time.monotonic() - self._read_at >= CACHE_S:
                try:
                    live = self.store.task_catalog(self.settings.worker_liveness_s)
                finally:
                    self._read_at = time.monotonic()
                old = self._tasks
                self._tasks = {name: _known(entry, old.get(name)) for name, entry in live.items()}
            return self._tasks
        finally:
            self._lock.release()

    def prepare(
        self,
        jobs: Sequence[BatchJob],
        submissions: list[Submission],
        queue: str,
        queue_given: bool,
    ) -> tuple[list[Submission], str]:
        """Check `jobs` against the catalog and fill in their tasks' defaults: the
        submissions to queue, and the queue (a single job that names none goes to its
        task's default queue). Raises `InvalidJob` (nothing is written then)."""
        catalog = self.tasks()
        if not catalog and self.settings.unknown_tasks != "reject":
            return submissions, queue
        single = len(jobs) == 1
        out: list[Submission] = []
        for i, (job, sub) in enumerate(zip(jobs, submissions, strict=True)):
            where = "" if single else f"jobs[{i}]."
            known = catalog.get(job.task)
            if known is None:
                if self.settings.unknown_tasks == "reject":
                    raise InvalidJob(
                        f"{where}task",
                        f"no live worker serves task {job.task!r} (UNKNOWN_TASKS=reject)",
                    )
                out.append(sub)
                continue
            if known.validator is not None:
                _check_payload(known.validator, job.payload, f"{where}payload")
            out.append(_with_defaults(sub, job, known.entry))
            if single and not queue_given and isinstance(known.entry.get("queue"), str):
                queue = known.entry["queue"]
        return out, queue


def for_app(app: Flask) -> Catalog:
    """The catalog of `app` (made on first use)."""
    found = app.extensions.get(EXTENSION_KEY)
    if found is None:
        from jobsys.api.routes import STATE_KEY  # noqa: PLC0415  (routes imports us)

        state = app.extensions[STATE_KEY]
        found = app.extensions.setdefault(EXTENSION_KEY, Catalog(state.store, state.settings))
    assert isinstance(found, Catalog)
    return found


def _known(entry: dict[str, Any], old: Known | None) -> Known:
    if old is not None and old.entry == entry:
        return old  # keep its compiled validator
    schema = entry.get("payload_schema")
    validator = None
    if isinstance(schema, dict):
        # Imported on first use: an API whose workers serve no typed task never pays
        # for it (~0.1 s of every API process's start-up).
        from jsonschema import Draft202012Validator  # noqa: PLC0415
        from jsonschema.exceptions import SchemaError  # noqa: PLC0415

        try:
            Draft202012Validator.check_schema(schema)
            validator = Draft202012Validator(schema)
        except SchemaError:  # a schema jsonschema cannot use: the worker still checks
            validator = None
    return Known(entry, validator)


def _check_payload(validator: Draft202012Validator, payload: Any, field: str) -> None:
    from jsonschema.exceptions import best_match  # noqa: PLC0415

    error = best_match(validator.iter_errors(payload))
    if error is None:
        return
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
    raise InvalidJob(f"{field}{path}", _rule(error.message))


def _rule(message: str) -> str:
    return message if len(message) <= 300 else f"{message[:300]}…"


def _with_defaults(sub: Submission, job: BatchJob, entry: dict[str, Any]) -> Submission:
    given = job.model_fields_set
    changes: dict[str, Any] = {}
    # A default outside the bounds a submit must keep is not applied.
    if "max_retries" not in given and entry.get("max_retries") in RETRIES:
        changes["max_retries"] = entry["max_retries"]
    timeout = entry.get("timeout_seconds")
    if "timeout_seconds" not in given and isinstance(timeout, int | float):
        changes["timeout_s"] = float(timeout) if 0 < timeout <= MAX_TIMEOUT_S else None
    if "priority" not in given and entry.get("priority") in PRIORITIES:
        changes["priority"] = entry["priority"]
    if changes.get("timeout_s", 0) is None:
        del changes["timeout_s"]
    return dataclasses.replace(sub, **changes) if changes else sub


def views(catalog: dict[str, Known]) -> list[dict[str, Any]]:
    """The tasks as GET /tasks shows them."""
    shown = []
    for name, known in catalog.items():
        e = known.entry
        shown.append(
            {
                "name": name,
                "kind": "async" if e.get("async") else "sync",
                "queue": e.get("queue"),
                "max_retries": e.get("max_retries"),
                "timeout_seconds": e.get("timeout_seconds"),
                "priority": e.get("priority"),
                "payload_schema": e.get("payload_schema"),
                "workers": e.get("workers", 1),
            }
        )
    return shown
