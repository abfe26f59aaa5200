"""Periodic jobs with three worker processes: exactly one job per tick."""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import redis

from jobsys.schedules import Schedule
from jobsys.store import Store, keys
from jobsys.store.schedules import ScheduleStore

from processes import Proc


def test_three_workers_make_one_job_per_tick(
    tmp_path: Path, env: dict[str, str], store: Store, redis_client: redis.Redis
) -> None:
    ScheduleStore(store).put(Schedule("pulse", "* * * * * */2", "echo", "tick"))  # every 2 s
    workers = [
        Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / f"w{i}.log") for i in range(3)
    ]
    try:
        time.sleep(7.5)
        for w in workers:
            w.signal(signal.SIGTERM)
        assert [w.wait(15) for w in workers] == [0, 0, 0]
    finally:
        for w in workers:
            w.stop()
    ticks = Counter(
        redis_client.hget(k, "tick")
        for k in redis_client.scan_iter(match=keys.job("*"))
        if redis_client.hget(k, "schedule") == "pulse"
    )
    assert len(ticks) >= 2, ticks  # about three ticks in 7.5 s (the first one only starts it)
    assert set(ticks.values()) == {1}, f"a tick made more than one job: {ticks}"
