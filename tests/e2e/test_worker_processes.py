"""Worker processes under real signals: SIGKILL, SIGTERM, a second signal, Redis restarts.

Jobs run the `record` handler of tests/sample_tasks.py, which appends to the
Redis list ``test:executions``: executions are counted by that side effect, not
by jobsys's own bookkeeping.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from jobsys.local.redis_server import RedisServer
from jobsys.settings import Settings
from jobsys.store import Store, keys

from processes import Proc, Procs, wait_for, wait_started

Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `jobsys worker` processes; kill leftovers and show their logs at the end."""
    procs = Procs(tmp_path)

    def start(env: dict[str, str], *args: str) -> Proc:
        return procs.start(["worker", "--tasks", "sample_tasks", *args], env, "worker")

    yield start
    procs.stop_all()


def executions(client: redis.Redis) -> list[str]:
    return [e.split(":")[0] for e in client.lrange("test:executions", 0, -1)]


def wait_running(store: Store, job_id: str, proc: Proc, timeout: float = 10) -> str:
    """Wait until `proc` runs the job's handler; return the worker id that holds it."""
    wait_started(proc.output, job_id, timeout=timeout)
    worker = store.get(job_id).worker
    assert worker
    return worker


def test_a_job_of_a_killed_worker_is_completed_by_another(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    env = {**env, "JOB_LEASE_SECONDS": "2", "WORKER_POLL_SECONDS": "0.2"}
    victim = spawn(env)
    job_id = store.submit("record", {"tag": "j", "sleep": 3})
    first = wait_running(store, job_id, victim)
    survivor = spawn(env)
    time.sleep(0.5)  # the survivor is up and idle
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(5)
    wait_for(lambda: store.get(job_id).status == "completed", 15, what="job to complete")
    job = store.get(job_id)
    assert job.worker != first
    assert job.attempts == 2
    assert executions(redis_client) == ["j"]  # the killed attempt never got to record
    # Back within the lease (2 s) plus one poll (0.2 s), plus the 3 s the job runs.
    assert time.monotonic() - killed_at < 2 + 0.2 + 3 + 1.5
    survivor.signal(signal.SIGTERM)
    assert survivor.wait(10) == 0


def test_sigterm_lets_the_running_job_finish_then_exits_0(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    worker = spawn(env)
    job_id = store.submit("record", {"tag": "t", "sleep": 1})
    queued = store.submit("record", {"tag": "later"})
    wait_running(store, job_id, worker)
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    job = store.get(job_id)
    assert job.status == "completed"
    assert job.attempts == 1
    assert executions(redis_client) == ["t"]
    assert store.get(queued).status == "queued"  # it stopped claiming
    # Every line, written by the log writer thread, is out by the exit.
    out = worker.output()
    assert f"job {job_id} started" in out
    assert f"job {job_id} completed" in out
    assert "stopped (completed=1 failed=0)" in out


def test_sigterm_past_the_grace_period_hands_the_job_back(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    worker = spawn({**env, "SHUTDOWN_GRACE_SECONDS": "0.5"})
    job_id = store.submit("record", {"tag": "long", "sleep": 30})
    wait_running(store, job_id, worker)
    t0 = time.monotonic()
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
    assert time.monotonic() - t0 < 4
    job = store.get(job_id)
    assert job.status == "queued"
    assert job.attempts == 0  # handing back does not use up an attempt
    assert redis_client.zscore(keys.ready("default"), job_id) is not None
    assert redis_client.zcard(keys.leases("default")) == 0


def test_a_second_signal_stops_at_once_and_the_lease_brings_the_job_back(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    env = {**env, "JOB_LEASE_SECONDS": "1", "WORKER_POLL_SECONDS": "0.2"}
    worker = spawn(env)
    job_id = store.submit("record", {"tag": "x", "sleep": 30})
    wait_running(store, job_id, worker)
    worker.signal(signal.SIGTERM)
    time.sleep(0.3)
    worker.signal(signal.SIGTERM)
    assert worker.wait(3) != 0
    # os._exit skips logging.shutdown: the queued lines are written before it.
    assert "second SIGTERM: stopping now" in worker.output()
    assert store.get(job_id).status == "processing"  # still leased to the dead process
    time.sleep(1.2)
    assert redis_client.zcard(keys.leases("default")) == 1
    rescuer = spawn(env)
    wait_for(lambda: store.get(job_id).attempts == 2, 10, what="job to be taken over")
    rescuer.stop()


def test_three_workers_share_the_work_and_run_no_job_twice(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    workers = [spawn(env) for _ in range(3)]
    time.sleep(1.0)  # all three idle and waiting
    ids = [store.submit("record", {"tag": str(i), "sleep": 0.05}) for i in range(60)]
    wait_for(lambda: all(store.get(i).status == "completed" for i in ids), 30, what="all jobs done")
    assert sorted(executions(redis_client), key=int) == [str(i) for i in range(60)]
    assert len(set(executions(redis_client))) == 60
    assert len({store.get(i).worker for i in ids}) == 3
    for w in workers:
        w.signal(signal.SIGTERM)
    assert [w.wait(10) for w in workers] == [0, 0, 0]


def test_workers_ride_out_a_redis_restart(
    tmp_path: Path, env: dict[str, str], spawn: Spawn
) -> None:
    server = RedisServer(tmp_path / "redis", appendonly=True).start()
    try:
        env = {**env, "REDIS_URL": server.url}
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store = Store(Settings.from_env(env))
        worker = spawn(env)
        running = store.submit("sleep", 1.5)
        wait_running(store, running, worker)
        server.stop()  # SIGTERM: Redis flushes its append-only file
        time.sleep(2.5)  # the job finishes while Redis is down; the worker keeps retrying
        assert worker.popen.poll() is None, "the worker died while Redis was down"
        server = RedisServer(server.data_dir, port=server.port, appendonly=True).start()
        wait_for(lambda: store.get(running).status == "completed", 20, what="settle after restart")
        job = store.get(running)
        assert (job.attempts, job.result) == (1, "slept")  # the result was held, not lost
        after = store.submit("record", {"tag": "after"})
        wait_for(lambda: store.get(after).status == "completed", 20, what="new job after restart")
        assert executions(client) == ["after"]
        out = worker.output()
        assert "cannot settle" in out and "Redis unreachable" in out
        worker.signal(signal.SIGTERM)
        assert worker.wait(10) == 0
    finally:
        server.stop()


def test_concurrency_runs_jobs_side_by_side_in_one_process(
    env: dict[str, str], store: Store, redis_client: redis.Redis, spawn: Spawn
) -> None:
    worker = spawn(env, "--concurrency", "4")
    time.sleep(1.0)
    ids = [store.submit("record", {"tag": str(i), "sleep": 1.0}) for i in range(4)]
    wait_for(lambda: all(store.get(i).status == "completed" for i in ids), 10, what="all done")
    jobs = [store.get(i) for i in ids]
    # Side by side: every job had started before the first one finished.
    assert max(str(j.started_at) for j in jobs) < min(str(j.completed_at) for j in jobs)
    assert len({store.get(i).worker for i in ids}) == 1
    assert {e.split(":")[1] for e in redis_client.lrange("test:executions", 0, -1)} == {
        str(worker.pid)
    }
    worker.signal(signal.SIGTERM)
    assert worker.wait(10) == 0
