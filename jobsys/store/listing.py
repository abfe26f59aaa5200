"""Listing jobs through the status indexes, newest first, with opaque cursors.

Every queue keeps one index per status (`keys.index`): a ZSET, score = the ms at
which the job entered that status, except `completed`, a LIST of 22-byte binary
(ms, id) elements newest first (compact: completed jobs are most of the jobs kept;
page.lua decodes them, see `keys.completed_entry`). A listing merges the indexes
it needs (one status or all six, of one queue or of every queue in
`keys.queues()`) newest first; ties of ms are ordered by id (descending,
bytewise) in both kinds of index, so a cursor (ms, id) is an exact position that
stays valid while jobs move.

The merge is read by page.lua (read-only), at most `KEYS_PER_CALL` indexes per
call: one call for one queue, several for every queue (each call's work, hence
the time Redis serves nobody, is bounded by its keys, `limit` and its budget,
whatever the number of queues). Each call answers the first `limit` jobs after
the cursor of its indexes and how far it looked; `merge` keeps the first `limit`
of their union up to where every call has looked, so the pages are those one
call over every index would give. The calls are not one atomic read: a job that
changes status between two of them may be missed by this page or seen twice
(it is shown once, at its newer position).

The status and queue filters are exact. The task filter is not indexed: page.lua
walks the merged indexes newest first and examines at most `TASK_SCAN_BUDGET`
entries per request (shared out among the calls), so a page may hold fewer jobs
than asked for (even none) and still carry a `next_cursor` to continue from.
"""

from __future__ import annotations

import base64
import math
import re
import uuid
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from typing import cast

import redis

from jobsys.errors import InvalidJob
from jobsys.models import Job
from jobsys.store import keys
from jobsys.store.scripts import Scripts

#: Most index entries one page request examines (bounds the work of a task filter).
TASK_SCAN_BUDGET = 2000
#: Most status indexes one page.lua call reads (its KEYS): bounds the work of one
#: call (each index costs a few reads to open). One queue's six fit in one call.
KEYS_PER_CALL = 64
#: Fewest index entries one call may examine for a task filter, however many
#: calls share `TASK_SCAN_BUDGET` (so that each call moves on).
MIN_CALL_BUDGET = 32
#: Most queue names one SSCAN answers.
QUEUE_SCAN_COUNT = 500
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
        """`[queue]`, or every known queue (by name)."""
        if queue is not None:
            return [queue]
        return queue_names(self._redis)

    def page(
        self,
        *,
        statuses: Sequence[str],
        queue: str | None = None,
        task: str | None = None,
        limit: int = DEFAULT_LIMIT,
        cursor: str | None = None,
        leave_out: Collection[str] = (),
    ) -> Page:
        """One page of the jobs in `statuses` (of `queue`, else of every queue),
        newest first, starting after `cursor`; without the fields `leave_out`."""
        after = decode_cursor(cursor) if cursor is not None else None
        indexes = [(q, s) for q in self.queues(queue) for s in statuses]
        if not indexes:
            return Page([], None)
        # On a cluster one call reads one queue (one slot), and the answers merge.
        size = len(statuses) if keys.cluster_layout() else KEYS_PER_CALL
        groups = list(_chunks(indexes, size))
        budget = max(math.ceil(TASK_SCAN_BUDGET / len(groups)), MIN_CALL_BUDGET)
        answers = [
            self._scripts.page(g, limit, after, task, budget, True, leave_out) for g in groups
        ]
        nxt, rows = merge(answers, limit)
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


Row = tuple[str, int, dict[str, str]]
Answer = tuple[tuple[int, str] | None, list[Row]]


def merge(answers: Sequence[Answer], limit: int) -> tuple[tuple[int, str] | None, list[Row]]:
    """One page of the union of page.lua answers read from the same cursor over
    disjoint indexes: the position to continue from (None: the end) and the jobs.

    Each answer is (where it stopped, or None when its indexes are exhausted;
    its jobs after the cursor, newest first). Where an answer stopped, everything
    of its indexes down to that position was examined. Down to the highest of
    those stops (the frontier) the union is therefore complete: the page is its
    first `limit` jobs there. It continues after the last job when the page is
    full, else from the frontier.
    """
    stops = [nxt for nxt, _ in answers if nxt is not None]
    frontier = max(stops) if stops else None
    newest: dict[str, Row] = {}
    for _, rows in answers:
        for row in rows:
            seen = newest.get(row[0])
            # A job that moved between two calls is kept at its newer position.
            if (frontier is None or (row[1], row[0]) >= frontier) and (
                seen is None or row[1] > seen[1]
            ):
                newest[row[0]] = row
    ordered = sorted(newest.values(), key=lambda r: (r[1], r[0]), reverse=True)
    page = ordered[:limit]
    if len(page) == limit and page:
        last = (page[-1][1], page[-1][0])
        more = frontier is not None or len(ordered) > limit
        return (last if more else None), page
    return frontier, page


def _chunks(items: Sequence[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


def queue_names(client: redis.Redis) -> list[str]:
    """Every registered queue, by name (SSCAN: no one command reads them all)."""
    return sorted(cast(str, q) for q in client.sscan_iter(keys.queues(), count=QUEUE_SCAN_COUNT))
