"""``GET /metrics``: the Prometheus text format, rendered from what Redis holds.

Nothing is counted in the API process: every scrape reads the counters that
enqueue.lua and the workers keep in Redis (jobsys/store/metrics.py), so any
number of API processes, behind any load balancer, answer alike, and jobs run
by workers on other machines are counted too.

Families (labels in brackets):

- ``jobsys_jobs_submitted_total`` / ``_started_`` / ``_completed_`` /
  ``_retried_`` / ``_dead_lettered_`` / ``_cancelled_total`` {queue, task}
- ``jobsys_job_wait_seconds`` {queue, task}: submit (or due time) to the first
  start; ``jobsys_job_run_seconds`` {queue, task}: the handler's run time.
- ``jobsys_queue_depth`` / ``_in_flight`` / ``_scheduled`` / ``_dead`` {queue},
  and ``jobsys_queue_oldest_age_seconds`` {queue} (seconds since the queue's
  oldest `queued` job was queued), as GET /queues shows them.
- ``jobsys_dead_letter_jobs`` (the length of ``dead_letter``),
  ``jobsys_workers_alive``.
- flow control (docs/flow-control.md): ``jobsys_flow_held_back_total`` {queue,
  rule}: jobs a claim would have started but a rule held back (rule: paused, hold,
  rate, concurrency); ``jobsys_queue_paused`` {queue}: 1 while paused.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from jobsys.settings import Settings
from jobsys.store import QueueMetrics, Store

#: The Content-Type of the answer.
CONTENT_TYPE = CONTENT_TYPE_LATEST

_COUNTERS = {
    "submitted": "Jobs submitted (POST /submit, /submit/batch, schedules).",
    "started": "Attempts whose handler started.",
    "completed": "Jobs completed.",
    "retried": "Failed attempts that will be retried.",
    "dead_lettered": "Jobs failed for good (their last attempt failed): in dead_letter.",
    "cancelled": "Running jobs that ended cancelled.",
}
_HISTOGRAMS = {
    "wait_seconds": "Seconds from submit (or a delayed job's due time) to the first start.",
    "run_seconds": "Seconds a handler ran (each settled attempt).",
}
_GAUGES = {
    "depth": "Jobs ready to run now.",
    "in_flight": "Jobs leased to workers (running).",
    "scheduled": "Jobs waiting for a due time (delayed jobs, retries in backoff).",
    "dead": "Dead jobs (failed for good) of the queue.",
}


class RedisCollector(Collector):
    """Reads every family from Redis at each scrape."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def collect(self) -> Iterator[Metric]:
        """One scrape: a few pipelined round trips to Redis."""
        queues, dead = self.store.metrics_snapshot()
        alive = len(self.store.live_worker_ids(self.settings.worker_liveness_s))
        labels = ["queue", "task"]
        for name, doc in _COUNTERS.items():
            family = CounterMetricFamily(f"jobsys_jobs_{name}", doc, labels=labels)
            for q in queues:
                for task, value in sorted(q.counters.get(name, {}).items()):
                    family.add_metric([q.stats.name, task], value)
            yield family
        yield from _flow(queues)
        for name, doc in _HISTOGRAMS.items():
            hist = HistogramMetricFamily(f"jobsys_job_{name}", doc, labels=labels)
            for q in queues:
                for task, series in sorted(q.histograms.get(name, {}).items()):
                    hist.add_metric([q.stats.name, task], series.cumulative(), series.sum)
            yield hist
        for name, doc in _GAUGES.items():
            gauge = GaugeMetricFamily(f"jobsys_queue_{name}", doc, labels=["queue"])
            for q in queues:
                gauge.add_metric([q.stats.name], getattr(q.stats, name))
            yield gauge
        age = GaugeMetricFamily(
            "jobsys_queue_oldest_age_seconds",
            "Seconds since the queue's oldest queued job was queued (a retry waiting "
            "out its backoff included); absent when none is queued.",
            labels=["queue"],
        )
        for q in queues:
            if q.stats.oldest_age_seconds is not None:
                age.add_metric([q.stats.name], q.stats.oldest_age_seconds)
        yield age
        yield GaugeMetricFamily(
            "jobsys_dead_letter_jobs", "Jobs in dead_letter (failed for good).", value=dead
        )
        yield GaugeMetricFamily(
            "jobsys_workers_alive",
            "Workers whose last heartbeat is within WORKER_LIVENESS_SECONDS.",
            value=alive,
        )


def _flow(queues: list[QueueMetrics]) -> Iterator[Metric]:
    """The flow-control families (docs/flow-control.md)."""
    held = CounterMetricFamily(
        "jobsys_flow_held_back",
        "Jobs a claim would have started but a flow rule held back (rule: paused, hold, "
        "rate, concurrency); one job is counted again at each claim that passes it over.",
        labels=["queue", "rule"],
    )
    paused = GaugeMetricFamily(
        "jobsys_queue_paused", "1 while the queue is paused.", labels=["queue"]
    )
    for q in queues:
        for rule, value in sorted(q.counters.get("held", {}).items()):
            held.add_metric([q.stats.name, rule], value)
        paused.add_metric([q.stats.name], 1 if q.stats.paused else 0)
    yield held
    yield paused


def make_registry(store: Store, settings: Settings) -> CollectorRegistry:
    """A registry of the Redis collector alone (no per-process metrics: a scrape
    may reach any of several API processes)."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(RedisCollector(store, settings))
    return reg


def render(reg: CollectorRegistry) -> bytes:
    """The text exposition of `reg`. Raises `StoreUnavailable`."""
    return generate_latest(reg)
