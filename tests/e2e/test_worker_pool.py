"""`jobsys worker --processes P`: a supervisor and its worker processes, under real
signals. Executions are counted by the side effect of the `record` handler
(tests/sample_tasks.py), not by jobsys's own bookkeeping."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from jobsys.store import Store, keys
from jobsys.store.submission import Submission
from jobsys.store.workers import WorkerInfo

from processes import Proc, Procs, wait_for, wait_started

#: Time bounds a parallel run would blur: `make test` runs these alone (pyproject).
pytestmark = pytest.mark.serial


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    p = Procs(tmp_path)
    yield p
    p.stop_all()


def children(store: Store) -> list[WorkerInfo]:
    return store.live_workers(5)


def start_pool(procs: Procs, env: dict[str, str], store: Store, *args: str, n: int = 2) -> Proc:
    pool = procs.start(["worker", "--tasks", "sample_tasks", *args], env, "pool")
    wait_for(lambda: len(children(store)) == n, 30, what=f"{n} worker processes to register")
    return pool


def statuses(store: Store, ids: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for job_id in ids:
        status = str(store.get(job_id).status)
        counts[status] = counts.get(status, 0) + 1
    return counts


def test_get_workers_shows_each_child_with_its_pid_and_supervisor(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    pool = start_pool(procs, env, store, "--processes", "2")
    shown = children(store)
    assert {w.supervisor for w in shown} == {f"{os.uname().nodename}:{pool.pid}"}
    pids = {w.pid for w in shown}
    assert len(pids) == 2 and pool.pid not in pids
    pool.signal(signal.SIGTERM)
    assert pool.wait(20) == 0
    assert children(store) == []  # each child deregistered


def test_a_killed_child_s_jobs_come_back_and_a_new_child_starts(
    env: dict[str, str], store: Store, procs: Procs, redis_client: redis.Redis
) -> None:
    env = {**env, "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.2"}
    pool = start_pool(procs, env, store, "--processes", "2")
    first = {w.pid for w in children(store)}
    ids = store.submit_jobs(
        [Submission("record", {"tag": f"j{i}", "sleep": 0.1}) for i in range(40)]
    ).ids
    wait_for(lambda: any(w.current_jobs for w in children(store)), 10, what="a job to run")
    victim = next(w for w in children(store) if w.current_jobs)
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: statuses(store, ids) == {"completed": 40}, 60, what="every job to complete")
    tags = {e.split(":")[0] for e in redis_client.lrange("test:executions", 0, -1)}
    assert tags == {f"j{i}" for i in range(40)}  # every job ran to the end somewhere
    wait_for(lambda: len(children(store)) == 2, 20, what="a new child")
    now = {w.pid for w in children(store)}
    assert victim.pid not in now and len(now - first) == 1  # the supervisor replaced it
    assert "died (signal 9)" in pool.output()
    pool.signal(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_sigterm_to_the_supervisor_exits_0_and_loses_nothing(
    env: dict[str, str], store: Store, procs: Procs, redis_client: redis.Redis
) -> None:
    pool = start_pool(procs, env, store, "--processes", "2")
    ids = store.submit_jobs(
        [Submission("record", {"tag": f"t{i}", "sleep": 0.2}) for i in range(30)]
    ).ids
    wait_for(lambda: statuses(store, ids).get("completed", 0) >= 2, 20, what="jobs to run")
    pool.signal(signal.SIGTERM)
    assert pool.wait(30) == 0
    seen = statuses(store, ids)
    assert set(seen) <= {"completed", "queued"}, seen  # finished, or handed back
    assert seen.get("completed", 0) >= 2
    assert redis_client.zcard(keys.leases("default")) == 0
    for job_id in ids:
        job = store.get(job_id)
        if job.status == "queued":
            assert job.attempts == 0  # handed back: no attempt used up
    done = [e.split(":")[0] for e in redis_client.lrange("test:executions", 0, -1)]
    assert len(done) == len(set(done)) == seen.get("completed", 0)


def test_recycling_every_100_jobs_over_1000_jobs_loses_none(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    pool = start_pool(procs, env, store, "--processes", "2", "--max-jobs-per-child", "100")
    ids = store.submit_jobs([Submission("echo", i) for i in range(1000)]).ids
    pending = set(ids)

    def all_completed() -> bool:
        pending.difference_update([i for i in list(pending) if store.get(i).status == "completed"])
        return not pending

    wait_for(all_completed, 120, what="1,000 jobs to complete")
    jobs = [store.get(i) for i in ids]
    assert all(j.attempts == 1 for j in jobs)  # none lost, none run twice
    ran_in = {j.worker for j in jobs}
    assert len(ran_in) >= 10  # at most 100 jobs per process: 10 processes or more
    assert "recycled" in pool.output()
    pool.signal(signal.SIGTERM)
    assert pool.wait(20) == 0


def test_a_second_sigterm_stops_the_children_at_once_and_exits_1(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    env = {**env, "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.2"}
    pool = start_pool(procs, env, store, "--processes", "2")
    job_id = store.submit("record", {"tag": "long", "sleep": 30})
    wait_started(pool.output, job_id)
    pool.signal(signal.SIGTERM)
    time.sleep(0.5)
    pool.signal(signal.SIGTERM)
    assert pool.wait(10) == 1  # at once, not after the job's 30 s
    assert store.get(job_id).status == "processing"  # still leased to the dead child
    # Its lease brings the job back: another worker runs it again.
    procs.start(["worker", "--tasks", "sample_tasks"], env, "worker")
    wait_for(lambda: store.get(job_id).attempts == 2, 20, what="the job to run again")


def test_children_of_a_killed_supervisor_stop_by_themselves(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    pool = start_pool(procs, env, store, "--processes", "2")
    pids = [w.pid for w in children(store)]
    pool.signal(signal.SIGKILL)
    pool.wait(5)

    def gone(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return False

    wait_for(lambda: all(gone(p) for p in pids), 15, what="the orphaned children to stop")
    assert children(store) == []  # they stopped cleanly: deregistered


def test_a_child_over_the_memory_ceiling_is_replaced(
    env: dict[str, str], store: Store, procs: Procs
) -> None:
    # 1 MB: every child is over it at its first heartbeat, so each one recycles.
    pool = start_pool(procs, env, store, "--processes", "1", "--max-memory-per-child", "1", n=1)
    wait_for(lambda: "over WORKER_MAX_MEMORY_MB=1: recycling" in pool.output(), 15,
             what="a recycle")  # fmt: skip
    ids = [store.submit("echo", i) for i in range(5)]
    wait_for(lambda: statuses(store, ids) == {"completed": 5}, 60, what="the jobs")
    assert "recycled" in pool.output()
    pool.signal(signal.SIGTERM)
    assert pool.wait(20) == 0
