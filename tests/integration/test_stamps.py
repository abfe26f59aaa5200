"""Timestamps of a job hash: ms since the epoch in Redis, ISO-8601 in the API (jobsys.stamps)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from jobsys import stamps
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.store.submission import new_job_id
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)

ISO = "%Y-%m-%dT%H:%M:%S.%fZ"


def _drain(worker: Worker) -> None:
    while worker.run_once():
        pass


def test_the_hash_holds_ms_and_the_api_shows_iso(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    before = int(time.time() * 1000)
    done = store.submit("echo", 1)
    later = store.submit("echo", 2, delay_s=3600)
    _drain(Worker(settings.with_overrides(simulated_work_s=0.0), store))
    after = int(time.time() * 1000)
    raw = redis_client.hgetall(keys.job(done))
    for name in ("created_at", "started_at", "completed_at"):
        assert raw[name].isdigit() and before - 5 <= int(raw[name]) <= after + 5, name
    assert redis_client.hget(keys.job(later), "run_at").isdigit()
    shown = store.get(done).to_api()
    for name in ("created_at", "started_at", "completed_at"):
        text = shown[name]
        assert text.endswith("Z") and len(text) == 24, text
        ms = round(datetime.strptime(text, ISO).replace(tzinfo=UTC).timestamp() * 1000)
        assert ms == int(raw[name]), name
    run_at = datetime.fromisoformat(store.get(later).to_api()["run_at"])
    assert abs(run_at - datetime.now(UTC) - timedelta(hours=1)) < timedelta(seconds=5)


def test_lua_and_python_write_the_same_text(settings: Settings, store: Store) -> None:
    """A failed attempt's history is written by Lua (iso in _lib.lua) from the hash's
    started_at; the job's started_at is written by Python (stamps.stamp) from the
    same ms: the two texts must be equal, over many different instants."""
    worker = Worker(settings.with_overrides(max_retries=0, simulated_work_s=0.0), store)
    for _ in range(40):
        job_id = store.submit("fail", max_retries=0)
        _drain(worker)
        job = store.get(job_id)
        assert job.status == "failed"
        assert job.history is not None
        assert job.history[-1]["started_at"] == job.started_at
        time.sleep(0.003)


def test_jobs_written_with_iso_text_still_read_and_run(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    """A job hash from an earlier version holds ISO text: shown as it is, and its
    attempts run and fail as any other (its history keeps the text)."""
    job_id = new_job_id("default")  # in the queue's slot on a cluster
    created = "2026-11-20T10:00:00.123Z"
    redis_client.hset(
        keys.job(job_id),
        mapping={"task": "fail", "queue": "default", "created_at": created, "attempts": 0,
                 "max_retries": 0, "rank": 1, "status": "queued"},
    )  # fmt: skip
    redis_client.zadd(keys.ready("default"), {job_id: 1})
    assert store.get(job_id).to_api()["created_at"] == created
    [claimed] = store.claim("default", "w1", 30, 1)
    assert claimed.created_ms == 1795168800123  # read from the text
    started = "2026-11-20T10:00:01.000Z"  # as an earlier version's claim wrote it
    redis_client.hset(keys.job(job_id), "started_at", started)
    assert store.fail("default", job_id, "w1", claimed.attempt, "boom", 0) == "dead"
    job = store.get(job_id)
    assert job.status == "failed" and job.created_at == created and job.started_at == started
    assert job.history is not None and job.history[0]["started_at"] == started
    assert job.failed_at is not None and job.failed_at.endswith("Z")


def test_ms_reads_both_forms() -> None:
    assert stamps.ms("1764300000123") == 1764300000123
    assert stamps.ms(b"1764300000123") == 1764300000123
    assert stamps.ms("2025-11-28T03:20:00.123Z") == 1764300000123
    assert stamps.ms(None) == 0 and stamps.ms("") == 0
    assert stamps.stamp("1764300000123") == "2025-11-28T03:20:00.123Z"
    assert stamps.stamp("2025-11-28T03:20:00.123Z") == "2025-11-28T03:20:00.123Z"
    assert stamps.stamp(None) is None
