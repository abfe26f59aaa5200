"""The invariant checker knows workflows (issue 17): `waiting` jobs, their index and
their parents' children sets are a valid state, and a broken link is reported."""

from __future__ import annotations

import redis
from invariants import check

from jobsys.store import Store, Submission, keys


def test_waiting_jobs_and_batch_callbacks_are_a_valid_state(
    store: Store, redis_client: redis.Redis
) -> None:
    (a,) = store.submit_jobs([Submission("t", {"tag": "a"})]).ids
    (b,) = store.submit_jobs([Submission("t", {"tag": "b"}, depends_on=(a,))]).ids
    _, done, cbs = store.create_batch(
        [Submission("t", {"tag": "c"}, depends_on=(a, b))],
        on_complete=Submission("t", {"tag": "cb"}),
    )
    accepted = {"a": a, "b": b, "c": done.ids[0], "cb": cbs["on_complete"]}
    row = check(redis_client, "workflows", accepted, [])
    assert row.structure_errors == 0, row.problems
    assert row.stuck == 4  # nothing ran: every job is still queued or waiting

    redis_client.srem(keys.children(a), b)  # b no longer linked to its parent
    row = check(redis_client, "workflows broken", accepted, [])
    assert row.structure_errors == 1, row.problems
    assert f"job {b}: waiting on 1" in row.problems[0]
