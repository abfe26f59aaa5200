"""Listing jobs through the status indexes, newest first, with opaque cursors.

Every queue keeps one index per status (`keys.index`): a ZSET, score = the ms at
which the job entered that status, except `completed`, a LIST of 22-byte binary
(ms, id) elements newest first (compact: completed jobs are most of the jobs kept;
page.lua decodes them, see `keys.completed_entry`). A listing merges the indexes
it needs (one status or all six, of one queue or of every queue in
`keys.queues()`) in one read-only script (page.lua), newest first; ties
of ms are ordered by id (descending, bytewise) in both kinds of index, so a
cursor (ms, id) is an exact position that stays valid while jobs move.

The status and queue filters are exact. The task filter is not indexed: page.lua
walks the merged indexes newest first and examines at most `TASK_SCAN_BUDGET`
entries per request, so a page may hold fewer jobs than asked for (even none)
and still carry a `next_cursor` to continue from.
"""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from jobsys.errors import InvalidJob
from jobsys.models import Job
from jobsys.store import keys
from jobsys.store.scripts import Scripts

#: Most index entries one page request examines (bounds the work of a task filter).
TASK_SCAN_BUDGET = 2000
#: Largest page.
MAX_LIMIT = 500
DEFAULT_LIMIT = 50
#: A cursor: 32 characters of URL-safe base64 (24 bytes: score, then the job id's 16).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{32}$"
_CURSOR = re.compile(CURSOR_PATTERN)


@dataclass(frozen=True)
class Page:
    """One page of a listing."""

    jobs: list[Job]
    #: Where the next page starts (None: this was the last page).
    next_cursor: str | None


def encode_cursor(score: int, job_id: str) -> str:
    """The opaque cursor of position (score, job id)."""
    raw = score.to_bytes(8, "big") + uuid.UUID(job_id).bytes
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[int, str]:
    """The position of a cursor; `InvalidJob` naming ``cursor`` when it is not one.

    Every string of the cursor's shape decodes to a position (the API documents
    that shape exactly), so a cursor is either malformed or usable.
    """
    if not _CURSOR.fullmatch(cursor):
        raise InvalidJob("cursor", "must be a next_cursor this API gave out (32 URL-safe chars)")
    raw = base64.urlsafe_b64decode(cursor)
    return int.from_bytes(raw[:8], "big"), str(uuid.UUID(bytes=raw[8:]))


class Listing:
    """Reads pages of the status indexes."""

    def __init__(self, client: redis.Redis, scripts: Scripts) -> None:
        self._redis = client
        self._scripts = scripts

    def queues(self, queue: str | None) -> list[str]:
        """`[queue]`, or every known queue."""
        if queue is not None:
            return [queue]
        return sorted(cast(set[str], self._redis.smembers(keys.queues())))

    def page(
        self,
        *,
        statuses: Sequence[str],
        queue: str | None = None,
        task: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
    ) -> Page:
        """One page of the jobs in `statuses` (of `queue`, else of every queue),
        newest first, starting after `cursor`."""
        after = decode_cursor(cursor) if cursor is not None else None
        indexes = [(q, s) for q in self.queues(queue) for s in statuses]
        if not indexes:
            return Page([], None)
        nxt, rows = self._scripts.page(indexes, limit, after, task, TASK_SCAN_BUDGET, True)
        jobs = [Job.from_hash(job_id, fields) for job_id, _, fields in rows]
        return Page(jobs, encode_cursor(*nxt) if nxt else None)

    def ids(
        self, queue: str, status: str, task: str | None, limit: int, after: tuple[int, str] | None
    ) -> tuple[list[str], tuple[int, str] | None]:
        """Up to `limit` ids of `queue`'s `status` index (newest first, after `after`,
        of `task` if given), and the position to continue from (None: the end)."""
        budget = max(limit, TASK_SCAN_BUDGET)
        nxt, rows = self._scripts.page([(queue, status)], limit, after, task, budget, False)
        return [job_id for job_id, _, _ in rows], nxt

    def count(self, queues: Sequence[str], status: str) -> int:
        """How many jobs of `queues` are in `status` (ZCARD, or LLEN for the
        completed LIST, of the indexes: counts entries of expired jobs not yet pruned)."""
        pipe = self._redis.pipeline(transaction=False)
        for q in queues:
            if status == keys.LIST_INDEXED_STATUS:
                pipe.llen(keys.index(q, status))
            else:
                pipe.zcard(keys.index(q, status))
        return sum(int(n) for n in pipe.execute())
