"""Bounded memory: ended jobs expire, dead_letter is capped and sheds expired ids."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import redis

from jobsys.settings import Settings
from jobsys.store import Store, keys
from jobsys.worker import Worker

Make = Callable[..., tuple[Store, Worker]]


@pytest.fixture
def make(settings: Settings) -> Iterator[Make]:
    """A store and a worker with some settings changed (closed at the end)."""
    stores: list[Store] = []

    def build(**overrides: object) -> tuple[Store, Worker]:
        tuned = settings.with_overrides(**overrides)
        stores.append(Store(tuned))
        return stores[-1], Worker(tuned, stores[-1])

    yield build
    for s in stores:
        s.close()


def test_ended_jobs_get_the_ttl_of_their_end(make: Make, redis_client: redis.Redis) -> None:
    store, worker = make(completed_retention_s=600, failed_retention_s=3600, retry_backoff_s=0.0)
    done = store.submit("echo", 1)
    dead = store.submit("fail", max_retries=0)
    cancelled = store.submit("echo", 2, delay_s=60)
    running = store.submit("echo", 3, delay_s=60)
    while worker.run_once():
        pass
    store.cancel(cancelled)
    assert 590 < redis_client.ttl(keys.job(done)) <= 600
    assert 3590 < redis_client.ttl(keys.job(dead)) <= 3600
    assert 590 < redis_client.ttl(keys.job(cancelled)) <= 600
    assert redis_client.ttl(keys.job(running)) == -1  # not ended: kept


def test_a_retention_of_zero_keeps_jobs_forever(make: Make, redis_client: redis.Redis) -> None:
    store, worker = make(completed_retention_s=0, failed_retention_s=0)
    done, dead = store.submit("echo", 1), store.submit("fail", max_retries=0)
    while worker.run_once():
        pass
    assert redis_client.ttl(keys.job(done)) == -1
    assert redis_client.ttl(keys.job(dead)) == -1


def test_dead_letter_keeps_only_the_newest_ids(make: Make, redis_client: redis.Redis) -> None:
    store, worker = make(dead_letter_max_length=3)
    ids = [store.submit("fail", max_retries=0) for _ in range(5)]
    while worker.run_once():
        pass
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == ids[:1:-1]  # newest first


def test_dead_letter_sheds_ids_whose_job_has_expired(make: Make, redis_client: redis.Redis) -> None:
    store, worker = make(failed_retention_s=1)
    old = [store.submit("fail", max_retries=0) for _ in range(3)]
    while worker.run_once():
        pass
    assert redis_client.llen(keys.dead_letter()) == 3
    time.sleep(2.1)
    assert not any(redis_client.exists(keys.job(i)) for i in old)
    new = store.submit("fail", max_retries=0)
    worker.run_once()
    assert redis_client.lrange(keys.dead_letter(), 0, -1) == [new]
