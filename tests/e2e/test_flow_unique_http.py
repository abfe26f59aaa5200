"""20 concurrent submits with one unique_key through the real API server: exactly
one job (docs/flow-control.md)."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests
from test_queues_http import start_api

from jobsys import Client
from jobsys.store import keys

from processes import Proc, wait_for


def test_20_concurrent_submits_with_one_unique_key_make_exactly_one_job(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    api, base = start_api(tmp_path, env | {"API_WORKERS": "2"})
    worker: Proc | None = None
    body = {"task": "record", "payload": {"tag": "export"}, "unique_key": "export:7"}
    try:
        with ThreadPoolExecutor(20) as pool:
            answers = list(
                pool.map(
                    lambda _: requests.post(f"{base}/submit", json=body, timeout=10), range(20)
                )
            )
        assert sorted(a.status_code for a in answers) == [200] * 19 + [202]
        ids = {a.json()["id"] for a in answers}
        assert len(ids) == 1
        assert sum(1 for a in answers if a.json().get("duplicate")) == 19
        assert redis_client.zcard(keys.ready("default")) == 1
        assert redis_client.zcard(keys.index("default", "queued")) == 1
        # After it finishes, the key queues a new job.
        worker = Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / "w.log")
        (job_id,) = ids
        with Client(base) as client:
            assert client.wait(job_id, timeout_s=30)["status"] == "completed"
        again = requests.post(f"{base}/submit", json=body, timeout=10)
        assert again.status_code == 202 and again.json()["id"] != job_id
        wait_for(lambda: redis_client.llen("test:executions") == 2, 30, what="second run")
    finally:
        for p in (worker, api):
            if p is not None:
                p.signal(signal.SIGTERM)
                p.wait(15)
                p.stop()
