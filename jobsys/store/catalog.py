"""The task catalog behind ``GET /tasks``: the tasks that live workers serve.

Each worker publishes the tasks it serves (name, `async`, the defaults of
``@task``, the JSON Schema of a typed payload) as JSON in the ``tasks`` field of
its registration HASH (`keys.worker`, written by worker_beat.lua with the rest of
its registration). A worker killed outright drops out with its registration, so
the catalog is the union over the live workers only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from jobsys.store import keys
from jobsys.store.translate import translate_errors
from jobsys.store.workers import live_ids

if TYPE_CHECKING:
    from jobsys.store.store import Store

#: The registration HASH field that holds a worker's tasks, as a JSON array.
TASKS_FIELD = "tasks"


def live(store: Store, window_s: float) -> dict[str, dict[str, Any]]:
    """Every task a live worker serves, by name: its entry as the worker with the
    smallest id published it, plus ``workers``, how many live workers serve it."""
    ids = live_ids(store, window_s)
    with translate_errors():
        pipe = store.redis.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hget(keys.worker(worker_id), TASKS_FIELD)
        published = cast(list[str | None], pipe.execute())
    found: dict[str, dict[str, Any]] = {}
    for raw in published:
        if not raw:
            continue
        try:
            entries = json.loads(raw)
        except ValueError:  # written by something else than a worker: not a catalog
            continue
        for entry in entries if isinstance(entries, list) else []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            known = found.setdefault(entry["name"], {**entry, "workers": 0})
            known["workers"] += 1
    return dict(sorted(found.items()))
