"""The worker's state machine, step by step, against a real Redis (no processes)."""

from __future__ import annotations

import signal
import threading
import time

import pytest
import redis

from jobsys import task
from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker
from jobsys.worker import worker as worker_module

import sample_tasks  # noqa: F401  (registers the test handlers)


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """The `record` handler finds Redis through REDIS_URL, as in a worker process."""
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def make_worker(settings: Settings, store: Store, **overrides: object) -> Worker:
    return Worker(settings.with_overrides(**overrides) if overrides else settings, store)


def test_a_job_runs_and_completes_with_its_result(settings: Settings, store: Store) -> None:
    job_id = store.submit("echo", {"x": 1})
    worker = make_worker(settings, store)
    assert worker.run_once() == 1
    job = store.get(job_id).to_api()
    assert job["status"] == "completed"
    assert job["result"] == {"echo": {"x": 1}}
    assert job["attempts"] == 1
    assert job["worker"] == worker.id
    assert {"created_at", "started_at", "completed_at"} <= job.keys()
    assert "error" not in job
    assert worker.run_once() == 0


@task("returns-none")
def returns_none(payload: object) -> None:
    return None


def test_a_handler_that_returns_none_completes_with_a_null_result(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("returns-none")
    assert make_worker(settings, store).run_once() == 1
    job = store.get(job_id).to_api()
    assert job["status"] == "completed"
    assert "result" in job and job["result"] is None
    assert redis_client.hget(keys.job(job_id), "result") == "null"


def test_jobs_run_in_submission_order(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    ids = [store.submit("record", {"tag": str(i)}) for i in range(20)]
    worker = make_worker(settings, store)
    while worker.run_once():
        pass
    tags = [e.split(":")[0] for e in redis_client.lrange("test:executions", 0, -1)]
    assert tags == [str(i) for i in range(20)]
    assert all(store.get(i).status == "completed" for i in ids)


def test_a_task_without_handler_is_simulated(settings: Settings, store: Store) -> None:
    job_id = store.submit("no-such-handler")
    t0 = time.monotonic()
    make_worker(settings, store, simulated_work_s=0.3).run_once()
    assert time.monotonic() - t0 >= 0.3
    job = store.get(job_id).to_api()
    assert job["status"] == "completed"
    assert job["result"]["simulated_seconds"] == 0.3


def test_fail_is_retried_three_times_then_dead_lettered(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("fail")
    worker = make_worker(settings, store, retry_backoff_s=0.0)
    for attempt in range(1, 4):
        assert worker.run_once() == 1
        job = store.get(job_id).to_api()
        assert job["status"] == "queued"
        assert job["attempts"] == attempt
        assert "always fails" in job["error"]
        assert redis_client.llen(keys.dead_letter()) == 0
    assert worker.run_once() == 1
    job = store.get(job_id).to_api()
    assert job["status"] == "failed"
    assert job["attempts"] == 4
    assert "failed_at" in job and "SimulatedFailure" in job["error"]
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [job_id]
    assert worker.run_once() == 0


def test_a_retry_waits_out_its_backoff_showing_next_attempt_at(
    settings: Settings, store: Store
) -> None:
    job_id = store.submit("boom", "x")
    worker = make_worker(settings, store, retry_backoff_s=0.4)
    worker.run_once()
    job = store.get(job_id).to_api()
    assert job["status"] == "queued"
    assert job["error"] == "ValueError: boom: x"
    if "next_attempt_at" in job:  # full jitter may draw a zero delay
        deadline = time.monotonic() + 2
        while worker.run_once() == 0:
            assert time.monotonic() < deadline, "retry never became due"
            time.sleep(0.02)
    else:
        assert worker.run_once() == 1
    job = store.get(job_id).to_api()
    assert job["attempts"] == 2
    assert job["status"] == "queued"  # boom fails again: waiting for attempt 3


def test_handler_errors_and_bad_results_fail_the_attempt_not_the_worker(
    settings: Settings, store: Store
) -> None:
    bad = store.submit("not-json", max_retries=0)
    good = store.submit("echo", 2)
    worker = make_worker(settings, store)
    worker.run_once()
    worker.run_once()
    assert store.get(bad).status == "failed"
    assert "not JSON-serialisable" in (store.get(bad).error or "")
    assert store.get(good).status == "completed"


def test_max_retries_is_fixed_at_submit(settings: Settings, store: Store) -> None:
    job_id = Store(settings.with_overrides(max_retries=1)).submit("fail")
    worker = make_worker(settings, store, retry_backoff_s=0.0)
    worker.run_once()
    worker.run_once()
    assert store.get(job_id).status == "failed"
    assert store.get(job_id).attempts == 2


def test_an_expired_lease_is_recovered_and_counts_as_an_attempt(
    settings: Settings, store: Store
) -> None:
    job_id = store.submit("echo", 1)
    dead = make_worker(settings, store, job_lease_s=0.2)
    claimed = store.claim("default", dead.id, 0.2, 1)  # claims, then "dies"
    assert [c.id for c in claimed] == [job_id]
    other = make_worker(settings, store)
    assert other.recover_once() == []  # lease still valid
    time.sleep(0.3)
    assert other.recover_once() == [(job_id, "retry")]
    job = store.get(job_id).to_api()
    assert job["status"] == "queued"
    assert "lease expired" in job["error"]
    assert other.run_once() == 1
    job = store.get(job_id).to_api()
    assert job["status"] == "completed"
    assert job["attempts"] == 2
    assert job["worker"] == other.id


def test_the_late_result_of_a_worker_that_lost_its_lease_is_rejected(
    settings: Settings, store: Store
) -> None:
    job_id = store.submit("echo", 1)
    stale = store.claim("default", "stale-worker", 0.1, 1)[0]
    time.sleep(0.2)
    other = make_worker(settings, store)
    other.recover_once()
    fresh = store.claim("default", other.id, 30, 1)[0]
    assert fresh.attempt == stale.attempt + 1
    # The stale worker wakes up and tries to settle: fenced off.
    assert store.complete("default", job_id, "stale-worker", stale.attempt, '"late"') is False
    assert store.fail("default", job_id, "stale-worker", stale.attempt, "late", 0) == "stale"
    assert store.release("default", job_id, "stale-worker", stale.attempt) is False
    assert store.heartbeat("default", "stale-worker", 30, [(job_id, stale.attempt)]) == (
        [job_id],
        [],
    )
    assert store.complete("default", job_id, other.id, fresh.attempt, '"fresh"') is True
    job = store.get(job_id)
    assert job.result == "fresh"
    assert job.attempts == 2


def test_heartbeats_keep_a_long_job_leased(settings: Settings, store: Store) -> None:
    job_id = store.submit("sleep", 0.8)
    worker = make_worker(settings, store, job_lease_s=0.3, worker_poll_s=0.1)
    beat = threading.Thread(target=worker._heartbeat_loop, daemon=True)
    beat.start()
    try:
        worker.run_once()
    finally:
        worker._heartbeat_stop.set()
        beat.join()
    job = store.get(job_id)
    assert job.status == "completed"
    assert job.attempts == 1


def test_the_last_attempt_lost_to_an_expired_lease_is_dead_lettered(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    job_id = Store(settings.with_overrides(max_retries=0)).submit("echo")
    store.claim("default", "gone", 0.05, 1)
    time.sleep(0.1)
    assert make_worker(settings, store).recover_once() == [(job_id, "dead")]
    assert store.get(job_id).status == "failed"
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [job_id]


def test_a_handed_back_job_keeps_its_place_and_its_attempt_count(
    settings: Settings, store: Store
) -> None:
    first = store.submit("echo", 1)
    second = store.submit("echo", 2)
    worker = make_worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 1)[0]
    worker._hold("default", claimed)
    worker.release_held()
    job = store.get(first).to_api()
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert "worker" not in job
    assert worker.run_once() == 1
    assert store.get(first).status == "completed"
    assert store.get(second).status == "queued"


def test_an_idle_wait_times_out_empty_handed(store: Store) -> None:
    t0 = time.monotonic()
    assert store.wait_then_claim(["default"], 0.2, "default", "w", 30, 1) == []
    assert time.monotonic() - t0 >= 0.15


@pytest.mark.parametrize("workers", [3])
def test_concurrent_workers_never_run_a_job_twice(
    settings: Settings, store: Store, redis_client: redis.Redis, workers: int
) -> None:
    ids = {store.submit("record", {"tag": str(i)}) for i in range(300)}

    def drain() -> None:
        w = Worker(settings, Store(settings))
        while w.run_once():
            pass

    threads = [threading.Thread(target=drain) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runs = redis_client.lrange("test:executions", 0, -1)
    assert len(runs) == 300
    assert len({r.split(":")[0] for r in runs}) == 300
    assert all(store.get(i).status == "completed" for i in ids)


def test_fast_jobs_are_claimed_in_batches_of_at_most_half_the_queue(
    settings: Settings, store: Store, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A budget of a second: "fast" holds even on a loaded machine, where one job may
    # take milliseconds.
    monkeypatch.setattr(worker_module, "BATCH_BUDGET_S", 1.0)
    ids = [store.submit("record", {"tag": str(i)}) for i in range(41)]
    worker = make_worker(settings, store)
    assert worker.run_once() == 1  # nothing known about job durations yet: one job
    assert worker.batch_size() > 20  # echo-fast jobs: now it claims many
    assert worker.run_once() == 20  # but never more than half of the 40 waiting
    while worker.run_once():
        pass
    runs = [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)]
    assert runs == [str(i) for i in range(41)]  # batches keep FIFO order
    assert all(store.get(i).status == "completed" for i in ids)


def test_slow_jobs_are_claimed_one_at_a_time(settings: Settings, store: Store) -> None:
    # 0.3 s jobs: far above BATCH_BUDGET_S and above two round trips of a loaded machine.
    for _ in range(3):
        store.submit("sleep", 0.3)
    worker = make_worker(settings, store)
    assert worker.run_once() == 1
    assert worker.batch_size() == 1
    assert worker.run_once() == 1


def test_a_slow_round_trip_to_redis_makes_batches_cover_it(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch, redis_client: redis.Redis
) -> None:
    # 60 ms jobs are claimed one at a time (more than BATCH_BUDGET_S each) ... until
    # every settle takes 100 ms (a far-away Redis): then a claim takes enough jobs to
    # cover two round trips, still at most half of those waiting, in FIFO order.
    ids = [store.submit("record", {"tag": str(i), "sleep": 0.06}) for i in range(20)]
    worker = make_worker(settings, store)
    assert worker.run_once() == 1
    assert worker.batch_size() == 1
    real = store.complete_many

    def far_away(*args: object, **kwargs: object) -> list[str]:
        time.sleep(0.1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "complete_many", far_away)
    for _ in range(8):  # the moving average of the round trip catches up
        assert worker.run_once() >= 1
        if worker.batch_size() > 1:
            break
    assert 2 <= worker.batch_size() <= 4  # up to ~2 x 100 ms of 60 ms jobs
    left = 20 - len(redis_client.lrange("test:executions", 0, -1))
    size = worker.batch_size()
    assert worker.run_once() == min(size, (left + 1) // 2)
    while worker.run_once():
        pass
    runs = [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)]
    assert runs == [str(i) for i in range(20)]
    assert all(store.get(i).status == "completed" for i in ids)


def test_a_stopping_worker_hands_back_the_unstarted_rest_of_its_batch(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    ids = [store.submit("echo", i) for i in range(6)]
    worker = make_worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 100)
    assert [c.id for c in claimed] == ids[:3]
    for job in claimed:
        worker._hold("default", job)
    worker.request_stop()
    assert worker._run_batch("default", claimed) == 0
    assert worker.held() == {}
    assert redis_client.zcard(keys.leases("default")) == 0
    assert [store.get(i).attempts for i in ids] == [0] * 6
    # Back at their places: a fresh worker runs them first, in order.
    fresh = make_worker(settings, store)
    assert [c.id for c in store.claim("default", fresh.id, 30, 100)] == ids[:3]


def test_a_batch_held_by_a_dead_worker_comes_back_in_order(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    ids = [store.submit("record", {"tag": str(i)}) for i in range(8)]
    assert len(store.claim("default", "dead-worker", 0.05, 100)) == 4
    time.sleep(0.1)
    worker = make_worker(settings, store)
    assert sorted(worker.recover_once()) == sorted((i, "retry") for i in ids[:4])
    while worker.run_once():
        pass
    runs = [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)]
    assert runs == [str(i) for i in range(8)]
    assert [store.get(i).attempts for i in ids] == [2] * 4 + [1] * 4


def test_settling_a_batch_fences_each_job_on_its_own(settings: Settings, store: Store) -> None:
    a, b = store.submit("echo", 1), store.submit("echo", 2)
    claimed = {c.id: c for c in store.claim("default", "w", 30, 100)}
    assert set(claimed) == {a}
    claimed |= {c.id: c for c in store.claim("default", "w", 30, 100)}
    stale_attempt = claimed[b].attempt + 1  # as if b had been taken over
    assert store.complete_many("default", "w", [(a, 1, '"A"'), (b, stale_attempt, '"B"')]) == [
        "completed",
        "stale",
    ]
    assert store.get(a).result == "A"
    assert store.get(b).status == "processing"
    assert store.fail_many("default", "w", [(b, 1, "boom", 0), (a, 1, "late", 0)]) == [
        "retry",
        "stale",
    ]
    assert store.get(a).status == "completed"
    assert store.get(b).status == "queued"


def test_an_idle_worker_is_woken_and_claims_in_one_step(settings: Settings, store: Store) -> None:
    worker = make_worker(settings, store, worker_poll_s=2.0)
    ran: list[int] = []
    waiter = threading.Thread(target=lambda: ran.append(worker.wait_then_run()))
    waiter.start()
    time.sleep(0.2)
    job_id = store.submit("echo", "hi")
    waiter.join(5)
    assert ran == [1]
    assert store.get(job_id).status == "completed"


def test_waiting_then_claiming_survives_a_flushed_function_library(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    job_id = store.submit("echo", 1)
    redis_client.function_flush()  # as after a Redis restart without persistence
    worker = make_worker(settings, store, worker_poll_s=0.1)
    assert worker.wait_then_run() == 1
    assert store.get(job_id).status == "completed"


# -- heartbeats racing settles --------------------------------------------------------
# A heartbeat lists the held jobs, then makes its round trip; a runner may settle one
# of them in between. Redis then finds the job no longer leased to this worker, but
# nothing was taken from it: no "lease lost" warning.


def _lease_lost_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "lease lost" in r.getMessage()]


def test_a_job_settled_during_a_heartbeats_round_trip_is_not_reported_lost(
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    job_id = store.submit("record", {"tag": "a"})
    worker = make_worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 1)
    worker._hold("default", claimed[0])
    real_heartbeat = store.heartbeat

    def heartbeat_after_a_settle(*args: object, **kwargs: object) -> object:
        # The heartbeat has taken its list; the runner settles before Redis sees it.
        assert worker._run_batch("default", claimed) == 1
        return real_heartbeat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "heartbeat", heartbeat_after_a_settle)
    worker.heartbeat_once()
    assert real_heartbeat("default", worker.id, 30, [(job_id, 1)])[0] == [job_id]  # gone
    assert _lease_lost_logs(caplog) == []
    assert store.get(job_id).status == "completed"
    assert worker.held() == {}


def test_a_job_whose_settle_is_in_flight_during_a_heartbeat_is_not_reported_lost(
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Redis has run the settle, but its answer has not reached the runner: the job is
    # still held when the heartbeat takes its list and when its answer comes back.
    job_id = store.submit("record", {"tag": "a"})
    worker = make_worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 1)
    worker._hold("default", claimed[0])
    real_settle = worker.settler.settle

    def settle_then_heartbeat(*args: object, **kwargs: object) -> tuple[int, int]:
        counts = real_settle(*args, **kwargs)  # type: ignore[arg-type]
        assert worker.holds(job_id)
        worker.heartbeat_once()
        return counts

    monkeypatch.setattr(worker.settler, "settle", settle_then_heartbeat)
    assert worker._run_batch("default", claimed) == 1
    assert _lease_lost_logs(caplog) == []
    assert store.get(job_id).status == "completed"


def test_a_job_retried_and_claimed_again_during_a_heartbeat_is_not_reported_lost(
    settings: Settings,
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The heartbeat sent attempt 1; meanwhile attempt 1 failed, and this worker
    # claimed the retry (attempt 2): Redis answers "lost" for attempt 1, but the
    # lease the worker holds now is its own.
    job_id = store.submit("boom", 1)
    worker = make_worker(settings, store)
    claimed = store.claim("default", worker.id, 30, 1)
    worker._hold("default", claimed[0])
    real_heartbeat = store.heartbeat

    def heartbeat_after_a_retry(*args: object, **kwargs: object) -> object:
        assert worker._run_batch("default", claimed) == 1  # fails: a retry, backoff 50 ms
        time.sleep(0.3)
        again = store.claim("default", worker.id, 30, 1)
        assert [(c.id, c.attempt) for c in again] == [(job_id, 2)]
        worker._hold("default", again[0])
        return real_heartbeat(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "heartbeat", heartbeat_after_a_retry)
    worker.heartbeat_once()
    assert _lease_lost_logs(caplog) == []
    assert worker.held()[job_id].attempt == 2


def test_a_lease_taken_over_by_another_worker_is_still_reported_lost(
    settings: Settings, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    job_id = store.submit("record", {"tag": "a"})
    slow = make_worker(settings, store)
    claimed = store.claim("default", slow.id, 0.05, 1)  # then it freezes past its lease
    slow._hold("default", claimed[0])
    time.sleep(0.1)
    other = make_worker(settings, store)
    assert other.recover_once() == [(job_id, "retry")]
    assert [c.id for c in store.claim("default", other.id, 30, 1)] == [job_id]
    slow.heartbeat_once()
    assert _lease_lost_logs(caplog) == [f"job {job_id}: lease lost (taken over by another worker)"]
    # Its late result is refused (fencing) and reported as a lost lease too.
    assert slow._run_batch("default", claimed) == 1
    assert len(_lease_lost_logs(caplog)) == 2
    assert store.get(job_id).worker == other.id


def test_a_worker_stopping_by_itself_takes_the_first_signal_as_the_first(
    settings: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stops on its own (recycling, its supervisor gone) and then gets a
    SIGTERM, as a supervisor sends on its way down, finishes gracefully: only a
    second signal stops it at once (`os._exit(1)`, recorded here instead)."""
    exits: list[int] = []
    monkeypatch.setattr(worker_module.os, "_exit", exits.append)
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    worker = Worker(settings, store)
    try:
        worker._install_signal_handlers()
        worker.request_stop()  # what recycling does
        signal.raise_signal(signal.SIGTERM)
        assert exits == []
        signal.raise_signal(signal.SIGTERM)
        assert exits == [1]
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
