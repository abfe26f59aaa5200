"""The dead letter as a tool: retry (replay) and purge failed jobs, in chunks.

The dead jobs of a queue are its `failed` index. Each chunk of at most `CHUNK`
jobs is ONE script (replay.lua, purge.lua), atomic, and the scripts re-check
that each job is still `failed` in that queue, so a job that changed meanwhile
is skipped, never replayed twice. A filter (`task`, `queue`, or everything) is
walked newest first from a cursor fixed when it starts: jobs that fail while it
runs are not part of it, so retry-all of a dead letter that keeps growing ends.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import redis

from jobsys.store import keys
from jobsys.store.listing import Listing
from jobsys.store.scripts import Scripts

#: Most jobs one replay.lua / purge.lua call handles, so Redis is never busy long.
CHUNK = 500
#: Most ids an answer lists.
MAX_REPORTED_IDS = 1000


@dataclass
class Outcome:
    """What a retry or purge did."""

    #: Jobs replayed or purged.
    count: int = 0
    #: The first `MAX_REPORTED_IDS` of their ids.
    ids: list[str] = field(default_factory=list)
    #: Ids asked for by name that were not dead jobs (unknown, or not `failed`).
    skipped: int = 0

    def add(self, done: Sequence[str]) -> None:
        self.count += len(done)
        room = MAX_REPORTED_IDS - len(self.ids)
        if room > 0:
            self.ids.extend(done[:room])


class DeadLetter:
    """Retry and purge of dead (`failed`) jobs."""

    def __init__(self, client: redis.Redis, scripts: Scripts, listing: Listing) -> None:
        self._redis = client
        self._scripts = scripts
        self._listing = listing

    def retry(
        self, ids: Sequence[str] | None = None, *, task: str | None = None, queue: str | None = None
    ) -> Outcome:
        """Replay the dead jobs `ids`, or those matching `task`/`queue` (None: any)."""
        return self._apply(self._scripts.replay, ids, task, queue)

    def purge(
        self, ids: Sequence[str] | None = None, *, task: str | None = None, queue: str | None = None
    ) -> Outcome:
        """Delete the dead jobs `ids`, or those matching `task`/`queue` (None: any)."""
        return self._apply(self._scripts.purge, ids, task, queue)

    def _apply(
        self,
        action: Callable[[str, Sequence[str]], list[str]],
        ids: Sequence[str] | None,
        task: str | None,
        queue: str | None,
    ) -> Outcome:
        out = Outcome()
        if ids is not None:
            unique = list(dict.fromkeys(ids))
            for q, group in self._by_queue(unique).items():
                for i in range(0, len(group), CHUNK):
                    out.add(action(q, group[i : i + CHUNK]))
            out.skipped = len(unique) - out.count
            return out
        for q in self._listing.queues(queue):
            after: tuple[int, str] | None = None
            while True:
                chunk, after = self._listing.ids(q, "failed", task, CHUNK, after)
                if chunk:
                    out.add(action(q, chunk))
                if after is None:
                    break
        return out

    def _by_queue(self, ids: list[str]) -> dict[str, list[str]]:
        """The ids grouped by their job's queue (unknown ids are left out)."""
        groups: dict[str, list[str]] = {}
        for i in range(0, len(ids), CHUNK):
            part = ids[i : i + CHUNK]
            pipe = self._redis.pipeline(transaction=False)
            for job_id in part:
                pipe.hget(keys.job(job_id), "queue")
            for job_id, q in zip(part, pipe.execute(), strict=True):
                if q is not None:
                    groups.setdefault(str(q), []).append(job_id)
        return groups
