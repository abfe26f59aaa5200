"""Periodic schedules: exactly one job per tick, missed ticks coalesced, the API."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import redis
from flask.testing import FlaskClient

from jobsys.api import create_app
from jobsys.schedules import Schedule, declared, periodic
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.store.schedules import ScheduleStore
from jobsys.worker.scheduler import Scheduler

T0 = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)


def jobs_of(r: redis.Redis, schedule: str) -> list[str]:
    found = []
    for key in r.scan_iter(match=keys.job("*")):
        if r.hget(key, "schedule") == schedule:
            found.append(key)
    return found


def test_a_tick_is_queued_once_however_many_schedulers_try(
    store: Store, redis_client: redis.Redis
) -> None:
    schedules = ScheduleStore(store)
    every_minute = Schedule("report", "* * * * *", "echo", {"n": 1})
    assert schedules.tick(every_minute, T0) == "first"  # a new schedule starts at its next tick
    results: list[str] = []
    tick = T0 + timedelta(minutes=1)

    def race() -> None:
        own = Store(store.settings)  # each scheduler its own connections
        try:
            results.append(ScheduleStore(own).tick(every_minute, tick))
        finally:
            own.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["enqueued"] + ["seen"] * 7
    (job_key,) = jobs_of(redis_client, "report")
    assert redis_client.hget(job_key, "task") == "echo"
    assert redis_client.hget(job_key, "payload") == '{"n":1}'
    assert redis_client.hget(job_key, "status") == "queued"


def test_missed_ticks_are_coalesced_into_one_job(store: Store, redis_client: redis.Redis) -> None:
    schedules = ScheduleStore(store)
    hourly = Schedule("hourly", "0 * * * *", "echo")
    schedules.tick(hourly, T0)
    # Everything was down for five hours: on return, the latest tick gets one job.
    now = T0 + timedelta(hours=5, minutes=30)
    assert hourly.latest_tick(now) == T0 + timedelta(hours=5)
    assert schedules.tick(hourly, hourly.latest_tick(now)) == "enqueued"
    assert schedules.tick(hourly, T0 + timedelta(hours=3)) == "seen"  # an older tick: ignored
    assert len(jobs_of(redis_client, "hourly")) == 1


def test_the_scheduler_registers_declared_schedules_and_queues_due_ticks(
    store: Store, redis_client: redis.Redis
) -> None:
    periodic("* * * * *", "echo", {"from": "code"}, name="every-minute-test")
    try:
        scheduler = Scheduler(store)
        first = dict(scheduler.run_once())
        assert first["every-minute-test"] == "first"
        assert scheduler.run_once() == []  # same tick: Redis is not asked again
        # Pretend the last tick was a minute earlier, as if a minute had passed.
        last = keys.last_tick("default", "every-minute-test")
        redis_client.set(last, int(redis_client.get(last) or 0) - 60_000)
        scheduler._handled.clear()
        assert dict(scheduler.run_once())["every-minute-test"] == "enqueued"
        assert len(jobs_of(redis_client, "every-minute-test")) == 1
        listed = {s.name: s for s in ScheduleStore(store).all()}
        assert listed["every-minute-test"].source == "code"
    finally:
        from jobsys import schedules  # noqa: PLC0415

        schedules._code.pop("every-minute-test", None)
    assert all(s.name != "every-minute-test" for s in declared())


@pytest.mark.parametrize(
    "cron", ["every minute", "* * * * * * *", "*/0 * * * *", "60 * * * *", "0 0 0 * *",
             "* *  * * *", "@hourly", "0 0 * * MON", ""],
)  # fmt: skip
def test_bad_cron_expressions_are_refused(cron: str) -> None:
    with pytest.raises(ValueError, match="five numeric fields"):
        Schedule("x", cron, "t")


def test_cron_expressions_that_match_no_date_never_tick(store: Store) -> None:
    assert Schedule("x", "* * * * * */10", "t").cron  # six fields: seconds last
    never = Schedule("feb-31", "0 0 31 2 *", "t")
    assert never.next_tick(T0) is None
    assert never.latest_tick(T0) is None
    assert never.to_api(T0)["next_run_at"] is None


def test_schedules_over_the_api(settings: Settings, redis_client: redis.Redis) -> None:
    client: FlaskClient = create_app(settings).test_client()
    body = {"name": "nightly", "cron": "0 3 * * *", "task": "backup", "payload": {"full": True}}
    r = client.post("/schedules", json=body)
    assert r.status_code == 201
    assert r.json["next_run_at"].endswith("03:00:00+00:00")
    assert client.post("/schedules", json=body | {"cron": "0 4 * * *"}).status_code == 200
    listed = client.get("/schedules").json["schedules"]
    assert [(s["name"], s["cron"], s["source"]) for s in listed] == [
        ("nightly", "0 4 * * *", "api")
    ]
    bad = client.post("/schedules", json=body | {"cron": "61 * * * *"})
    assert bad.status_code == 400
    assert bad.json["field"] == "cron"
    assert client.delete("/schedules/nightly").status_code == 415  # no JSON type
    assert client.delete("/schedules/nightly", content_type="application/json").status_code == 204
    assert client.delete("/schedules/nightly", content_type="application/json").status_code == 404
    assert client.get("/schedules").json["schedules"] == []
