"""Bounded cardinality: per-task metrics series per queue, and the per-queue caches."""

from __future__ import annotations

import pytest
import redis
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from jobsys.settings import Settings
from jobsys.store import Store, keys, scripts, submission
from jobsys.store import metrics as m
from jobsys.worker import Worker


def tasks_of(text: str, family: str, queue: str) -> dict[str, float]:
    """task label -> value of the samples of `family` of `queue`."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            if s.name == family and s.labels.get("queue") == queue:
                out[s.labels["task"]] = s.value
    return out


def test_a_queue_has_series_for_at_most_100_task_names_then_other(
    settings: Settings, store: Store, client: FlaskClient, redis_client: redis.Redis
) -> None:
    other = "(other)"  # m.OTHER_TASK; literals here, so the test reads on old code too
    store.submit_many([(f"t{i:03d}", None) for i in range(100)])
    store.submit_many([(f"extra{i}", None) for i in range(5)] * 2)  # 5 names past the cap
    store.submit("t000")  # a known name still counts as itself
    store.submit("extra0", queue="other")  # another queue has room of its own
    worker = Worker(settings.with_overrides(simulated_work_s=0.0), store)
    while worker.run_once():
        pass
    worker.flush_telemetry()
    text = client.get("/metrics").get_data(as_text=True)
    submitted = tasks_of(text, "jobsys_jobs_submitted_total", "default")
    assert len(submitted) == 101 and submitted[other] == 10 and submitted["t000"] == 2
    completed = tasks_of(text, "jobsys_jobs_completed_total", "default")
    assert set(completed) == set(submitted) and completed[other] == 10
    runs = tasks_of(text, "jobsys_job_run_seconds_count", "default")
    assert set(runs) == set(submitted) and runs[other] == 10
    assert tasks_of(text, "jobsys_jobs_submitted_total", "other") == {"extra0": 1}
    fields = redis_client.hkeys(keys.metrics("default"))
    assert not [f for f in fields if "extra" in f]
    assert redis_client.hget(keys.metrics("default"), "tasks") == str(m.MAX_TASKS_PER_QUEUE)


def test_tick_counts_past_the_cap_under_other(store: Store, redis_client: redis.Redis) -> None:
    store.submit_many([(f"t{i:03d}", None) for i in range(100)], queue="cron")
    first, second = submission.new_job_id("cron"), submission.new_job_id("cron")  # cluster: steered
    arg = submission.job_arg(first, ("late", None), 0)
    assert store.scripts.tick("cron", "s", 1000, first, arg) == "first"
    arg = submission.job_arg(second, ("late", None), 0)
    assert store.scripts.tick("cron", "s", 2000, second, arg) == "enqueued"
    assert redis_client.hget(keys.metrics("cron"), f"submitted|{m.OTHER_TASK}") == "1"


def test_the_workers_task_label_memory_is_bounded(store: Store) -> None:
    labels = m.TaskLabels(most=3)
    store.submit_many([(f"t{i}", None) for i in range(6)])
    deltas = m.Deltas()
    for i in range(6):
        deltas.counts[("default", m.counter_field("started", f"t{i}"))] += 1
    deltas.counts[("default", m.bucket_field("run_seconds", 2, "nobody"))] += 1
    deltas.sums[("default", m.counter_field("run_seconds_sum", "nobody"))] += 0.5
    out = labels.relabel(store.redis, deltas)
    assert out.counts[("default", f"run_seconds_bucket|2|{m.OTHER_TASK}")] == 1
    assert out.sums[("default", f"run_seconds_sum|{m.OTHER_TASK}")] == 0.5
    assert out.counts[("default", "started|t5")] == 1
    assert len(labels._known) == 3


@pytest.mark.parametrize(
    ("name", "split"),
    [
        ("started|a|b", ("started|", "a|b")),
        ("run_seconds_bucket|3|a|b", ("run_seconds_bucket|3|", "a|b")),
        ("wait_seconds_sum|x", ("wait_seconds_sum|", "x")),
    ],
)
def test_split_task(name: str, split: tuple[str, str]) -> None:
    assert m.split_task(name) == split


def test_the_key_name_caches_of_queues_are_bounded() -> None:
    for i in range(1024 + 500):
        scripts._enqueue_call(f"queue-{i}")
        scripts._index_keys(f"queue-{i}")
    for cached in (scripts._enqueue_call, scripts._index_keys):
        assert cached.cache_info().currsize <= 1024
