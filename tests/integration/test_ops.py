"""Operators' view, step by step against a real Redis: the metrics counters, the
worker registry, queue throughput and trace context (no processes; see
tests/e2e/test_ops_processes.py for real workers, signals and API processes)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from redis_modes import Unreachable, all_keys

from jobsys.api.headers import new_traceparent, traceparent
from jobsys.errors import StoreUnavailable
from jobsys.settings import Settings
from jobsys.store import Store, keys, workers
from jobsys.store import metrics as m
from jobsys.worker import Worker

import sample_tasks  # noqa: F401  (registers the test handlers)

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(autouse=True)
def _handlers_see_redis(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    monkeypatch.setenv("REDIS_URL", env["REDIS_URL"])


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text answer: (name, labels) -> value."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def drain(worker: Worker) -> None:
    while worker.run_once():
        pass
    worker.flush_telemetry()


def test_metrics_count_every_event_by_queue_and_task(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    settings = settings.with_overrides(max_retries=1, retry_backoff_s=0.0)
    store = Store(settings)
    for i in range(3):
        store.submit("echo", i)
    store.submit("boom", "x")  # 2 attempts: one retry, then dead-lettered
    store.submit("echo", 9, queue="other")
    worker = Worker(settings, store)
    drain(worker)
    worker.flush_telemetry()
    text = client.get("/metrics").get_data(as_text=True)
    d, b = {"queue": "default", "task": "echo"}, {"queue": "default", "task": "boom"}
    assert value(text, "jobsys_jobs_submitted_total", **d) == 3
    assert value(text, "jobsys_jobs_submitted_total", **b) == 1
    assert value(text, "jobsys_jobs_started_total", **d) == 3
    assert value(text, "jobsys_jobs_started_total", **b) == 2
    assert value(text, "jobsys_jobs_completed_total", **d) == 3
    assert value(text, "jobsys_jobs_retried_total", **b) == 1
    assert value(text, "jobsys_jobs_dead_lettered_total", **b) == 1
    assert value(text, "jobsys_jobs_completed_total", queue="other", task="echo") == 0
    assert value(text, "jobsys_queue_depth", queue="other") == 1
    assert value(text, "jobsys_dead_letter_jobs") == 1
    assert value(text, "jobsys_queue_dead", queue="default") == 1
    assert value(text, "jobsys_queue_dead", queue="other") == 0
    # The queues' counts are GET /queues' counts: "other" still holds its job.
    assert 0 <= value(text, "jobsys_queue_oldest_age_seconds", queue="other") < 10
    assert 'jobsys_queue_oldest_age_seconds{queue="default"}' not in text
    # Wait is observed once per job (first attempts), run time once per attempt.
    assert value(text, "jobsys_job_wait_seconds_count", **b) == 1
    assert value(text, "jobsys_job_run_seconds_count", **b) == 2
    assert value(text, "jobsys_job_run_seconds_bucket", le="+Inf", **d) == 3
    # 0 when a job is claimed within the millisecond it was submitted (Redis clock)
    assert 0 <= value(text, "jobsys_job_wait_seconds_sum", **d) < 10
    store.close()


def test_histogram_buckets_are_cumulative_and_sum_up(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    for delay in (0.0, 0.0, 0.3):
        store.submit("sleep", delay)
    drain(Worker(settings, store))
    text = client.get("/metrics").get_data(as_text=True)
    lab = {"queue": "default", "task": "sleep"}
    buckets = [
        (float(le), value(text, "jobsys_job_run_seconds_bucket", le=le, **lab))
        for le in [*map(str, m.BUCKETS_S), "+Inf"]
    ]
    counts = [c for _, c in buckets]
    assert counts == sorted(counts)  # cumulative
    assert counts[-1] == 3
    assert value(text, "jobsys_job_run_seconds_bucket", le="0.1", **lab) == 2
    assert value(text, "jobsys_job_run_seconds_bucket", le="0.25", **lab) == 2
    assert value(text, "jobsys_job_run_seconds_bucket", le="0.5", **lab) == 3
    assert 0.3 <= value(text, "jobsys_job_run_seconds_sum", **lab) < 0.5


def test_a_task_name_with_the_separator_is_counted_whole(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    store.submit("a|b|c")
    drain(Worker(settings.with_overrides(simulated_work_s=0.0), store))
    text = client.get("/metrics").get_data(as_text=True)
    assert value(text, "jobsys_jobs_completed_total", queue="default", task="a|b|c") == 1
    assert value(text, "jobsys_job_run_seconds_count", queue="default", task="a|b|c") == 1


def test_counts_are_kept_while_redis_is_unreachable(
    settings: Settings, store: Store, tmp_path: Path
) -> None:
    worker = Worker(settings, store)
    store.submit("echo", 1)
    worker.run_once()
    gone = Unreachable(settings, tmp_path)
    broken = Store(gone.settings)
    gone.stop()
    with pytest.raises(StoreUnavailable, match="unreachable"):
        worker.telemetry.flush(broken, worker.id, worker.registration(), 10)
    broken.close()
    worker.flush_telemetry()
    queues, _ = m.snapshot(store)
    assert queues[0].counters["completed"] == {"echo": 1}


def test_queues_show_throughput_per_minute(
    settings: Settings, store: Store, client: FlaskClient
) -> None:
    for i in range(4):
        store.submit("echo", i)
    store.submit("boom", 1, max_retries=0)  # one attempt, failed (the limit is the submit's)
    drain(Worker(settings, store))
    (queue,) = client.get("/queues").get_json()["queues"]
    minutes = queue["throughput"]
    assert len(minutes) == 15
    assert [x["minute"] for x in minutes] == sorted(x["minute"] for x in minutes)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:00Z", minutes[-1]["minute"])
    # Most likely all in the last minute; a minute boundary may split them.
    assert sum(x["completed"] for x in minutes[-2:]) == 4
    assert sum(x["failed"] for x in minutes[-2:]) == 1


def test_throughput_minutes_expire(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    store.submit("echo", 1)
    drain(Worker(settings, store))
    (key,) = all_keys(redis_client, "jobsys:queue:{default}:throughput:*")
    assert 3500 < redis_client.ttl(key) <= m.THROUGHPUT_RETENTION_S


def test_registry_shows_a_worker_and_drops_it_after_the_window(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    worker = Worker(settings.with_overrides(worker_concurrency=3), store)
    worker.flush_telemetry()
    (shown,) = client.get("/workers").get_json()["workers"]
    assert shown["id"] == worker.id
    assert shown["concurrency"] == 3
    assert shown["queues"] == ["default"]
    assert shown["current_jobs"] == []
    assert redis_client.ttl(keys.worker(worker.id)) > 0
    # A heartbeat older than the window: left out, and pruned from the ZSET.
    redis_client.zadd(keys.workers(), {worker.id: 1})
    assert client.get("/workers").get_json() == {"workers": []}
    assert redis_client.zcard(keys.workers()) == 0


def test_traceparent_is_validated_or_started(
    client: FlaskClient, store: Store, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    given = client.post("/submit", json={"task": "echo"}, headers={"traceparent": TRACE})
    assert store.get(given.get_json()["id"]).traceparent == TRACE
    # Every body alike (the submit lane and the Flask route call the same validation).
    full = client.post(
        "/submit", json={"task": "echo", "priority": 1}, headers={"traceparent": TRACE}
    )
    assert client.get(f"/jobs/{full.get_json()['id']}").get_json()["traceparent"] == TRACE
    bad = client.post("/submit", json={"task": "echo"}, headers={"traceparent": "00-xyz"})
    started = store.get(bad.get_json()["id"]).traceparent
    assert started and started != TRACE and traceparent(started) == started
    batch = client.post(
        "/submit/batch",
        json={"jobs": [{"task": "echo"}, {"task": "echo"}]},
        headers={"traceparent": TRACE},
    )
    assert {store.get(i).traceparent for i in batch.get_json()["ids"]} == {TRACE}
    # The worker's log lines of the job carry it.
    caplog.set_level(logging.INFO, logger="jobsys")
    drain(Worker(settings, store))
    lines = [r for r in caplog.records if getattr(r, "job_id", None) == given.get_json()["id"]]
    assert {r.event for r in lines} == {"started", "completed"}  # type: ignore[attr-defined]
    assert {r.trace_id for r in lines} == {TRACE.split("-")[1]}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "header",
    [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",  # no flags
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # zero parent id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",  # v00 with more
    ],
)
def test_a_bad_traceparent_starts_a_new_trace(header: str) -> None:
    started = traceparent(header)
    assert started != header
    assert traceparent(started) == started  # a valid new one


def test_a_later_version_keeps_its_first_four_fields() -> None:
    tp = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra"
    assert traceparent(tp) == tp.removesuffix("-extra")
    assert traceparent(new_traceparent()).startswith("00-")


def test_counts_and_registration_survive_a_flushed_function_library(
    settings: Settings, store: Store, redis_client: redis.Redis
) -> None:
    """Redis restarted without persistence (here: FUNCTION FLUSH) between two
    telemetry flushes: the counts are written once, and the registration comes back
    in the same flush (the worker loads the library and registers again)."""
    worker = Worker(settings, store)
    store.submit("echo", 1)
    worker.run_once()
    redis_client.function_flush()
    worker.flush_telemetry()  # the counts go; the registration call finds no function
    queues, _ = m.snapshot(store)
    assert queues[0].counters["completed"] == {"echo": 1}
    assert worker.id in workers.live_ids(store, 60)
    worker.flush_telemetry()
    assert m.snapshot(store)[0][0].counters["completed"] == {"echo": 1}
