"""The invariant checker knows the flow-control keys (docs/flow-control.md): a run
with expiry, limits and a pause passes it, and a broken concurrency slot fails it."""

from __future__ import annotations

import time

import redis
from invariants import check, is_schema_key

from jobsys.settings import Settings
from jobsys.store import Store, Submission, keys


def test_the_checker_passes_a_flow_controlled_run_and_catches_a_leaked_slot(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    accepted = {}
    subs = [Submission("t", {"tag": f"k{i}"}, concurrency_key="k") for i in range(3)]
    for sub, job_id in zip(subs, store.submit_many(subs), strict=True):
        accepted[sub.payload["tag"]] = job_id
    (expiring,) = store.submit_many([Submission("t", {"tag": "x"}, ttl_s=0.05)])
    accepted["x"] = expiring
    store.flow.set_limits("default", concurrency=1, rate=(10, 60))
    time.sleep(0.1)
    leased = []
    for _ in range(4):
        leased += store.claim("default", "w", 30, 2)
    assert len(leased) == 1
    assert store.get(expiring).status == "expired"
    store.flow.set_paused("default", True)
    row = check(redis_client, "flow", accepted, [])
    assert row.structure_errors == 0, row.problems
    assert row.extra["expired"] == 1 and row.stuck == 3  # 1 running, 2 waiting: no drain
    for name in redis_client.keys("jobsys:*"):
        assert is_schema_key(redis_client, name), name
    # A second live member of a limit of 1: a leaked slot.
    (running,) = leased
    other = next(i for i in accepted.values() if i != running.id)
    redis_client.hset(keys.job(other), mapping={"status": "processing", "attempts": 1})
    redis_client.zadd(keys.flow_prefix("default") + "run:k", {f"{other}:1": 0})
    row = check(redis_client, "flow", accepted, [])
    assert any("over the limit" in p for p in row.problems), row.problems
