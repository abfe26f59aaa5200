"""The whole system as a user runs it: `jobsys api` and `jobsys worker` processes, over HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from jobsys import Client
from jobsys.errors import ClientError
from jobsys.local.redis_server import free_port

from processes import Proc, wait_for, wait_for_http


@pytest.fixture
def system(tmp_path: Path, env: dict[str, str], redis_client: redis.Redis) -> Iterator[str]:
    """An API and two workers on the private Redis; yields the API's base URL."""
    port = free_port()
    env = {**env, "RETRY_BACKOFF_SECONDS": "0.05", "SIMULATED_WORK_SECONDS": "0.2"}
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    workers = [
        Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / f"worker-{i}.log")
        for i in range(2)
    ]
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health")
        yield base
        for p in [*workers, api]:
            p.signal(signal.SIGTERM)
        assert [p.wait(15) for p in [*workers, api]] == [0, 0, 0]
    finally:
        for p in [*workers, api]:
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-2000:]}")


def job(base: str, job_id: str) -> dict[str, object]:
    r = requests.get(f"{base}/jobs/{job_id}", timeout=5)
    assert r.status_code == 200
    return dict(r.json())


def submit(base: str, body: dict[str, object]) -> str:
    r = requests.post(f"{base}/submit", json=body, timeout=5)
    assert r.status_code == 202, r.text
    data = r.json()
    assert data == {"status": "queued", "task": body["task"], "id": data["id"]}
    return str(data["id"])


def test_the_full_life_of_a_job(system: str) -> None:
    job_id = submit(system, {"task": "hello"})
    first = job(system, job_id)
    assert first["status"] in {"queued", "processing"}
    assert {"id", "status", "task", "created_at"} <= first.keys()
    wait_for(lambda: job(system, job_id)["status"] == "completed", 10, what="completed")
    done = job(system, job_id)
    assert done["result"] == {"task": "hello", "simulated_seconds": 0.2}
    assert done["attempts"] == 1
    for field in ("created_at", "started_at", "completed_at", "worker"):
        assert done[field], field


def test_a_handler_result_comes_back_over_http(system: str) -> None:
    job_id = submit(system, {"task": "echo", "payload": {"n": [1, 2, 3]}})
    wait_for(lambda: job(system, job_id)["status"] == "completed", 10, what="completed")
    assert job(system, job_id)["result"] == {"echo": {"n": [1, 2, 3]}}


def test_fail_ends_in_dead_letter_after_four_attempts(
    system: str, redis_client: redis.Redis
) -> None:
    job_id = submit(system, {"task": "fail"})
    wait_for(lambda: job(system, job_id)["status"] == "failed", 20, what="failed")
    dead = job(system, job_id)
    assert dead["attempts"] == 4
    assert "always fails" in str(dead["error"])
    assert dead["failed_at"]
    assert redis_client.lrange("dead_letter", 0, -1) == [job_id]
    assert redis_client.hget(f"job:{job_id}", "status") == "failed"


def test_jobs_start_in_submission_order_and_run_once(
    system: str, redis_client: redis.Redis
) -> None:
    ids = [submit(system, {"task": "record", "payload": {"tag": str(i)}}) for i in range(40)]
    wait_for(lambda: all(job(system, i)["status"] == "completed" for i in ids), 20, what="all done")
    runs = [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)]
    assert sorted(runs, key=int) == [str(i) for i in range(40)]
    # Claims are atomic and in rank order, so start times (Redis clock) never go back.
    started = [str(job(system, i)["started_at"]) for i in ids]
    assert started == sorted(started)


def test_a_batch_from_the_python_client_runs_every_job(
    system: str, redis_client: redis.Redis
) -> None:
    with Client(system) as client:
        ids = client.submit_many([("record", {"tag": str(i)}) for i in range(50)] + ["hello"])
        assert len(ids) == 51
        final = [client.wait(i, timeout_s=20) for i in ids]
    assert {j["status"] for j in final} == {"completed"}
    runs = [r.split(":")[0] for r in redis_client.lrange("test:executions", 0, -1)]
    assert sorted(runs, key=int) == [str(i) for i in range(50)]


def test_a_running_job_is_cancelled_over_http(system: str) -> None:
    with Client(system) as client:
        job_id = client.submit("cooperative", 60)
        wait_for(lambda: client.get(job_id)["status"] == "processing", 10, what="running")
        asked = client.cancel(job_id)
        assert asked["status"] in {"processing", "cancelled"}
        job = client.wait(job_id, timeout_s=10)
        assert job["status"] == "cancelled"
        assert job["result"] == "stopped early"
        with pytest.raises(ClientError) as e:
            client.cancel(job_id)
        assert e.value.status == 409


def test_a_retried_submit_with_an_idempotency_key_runs_once(
    system: str, redis_client: redis.Redis
) -> None:
    with Client(system) as client:
        first = client.submit("record", {"tag": "once"}, idempotency_key="retry-me")
        again = client.submit("record", {"tag": "once"}, idempotency_key="retry-me")
        assert again == first
        assert client.wait(first, timeout_s=10)["status"] == "completed"
    assert redis_client.lrange("test:executions", 0, -1)[0].startswith("once:")
    assert redis_client.llen("test:executions") == 1


def test_submit_wait_draws_the_progress_of_a_job(system: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobsys", "submit", "steps", "--payload",
         '{"n": 4, "pause": 0.4}', "--wait", "--url", system],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "[##########----------]  50% step 2 of 4" in out.stderr
    assert json.loads(out.stdout)["status"] == "completed"


def test_a_job_that_overruns_its_timeout_ends_in_dead_letter(
    system: str, redis_client: redis.Redis
) -> None:
    with Client(system) as client:
        job_id = client.submit("sleep", 60, timeout_seconds=0.5, max_retries=1)
        job = client.wait(job_id, timeout_s=20)
    assert job["status"] == "failed"
    assert job["attempts"] == 2
    assert "timed out after 0.5s" in job["error"]
    assert redis_client.lrange("dead_letter", 0, -1) == [job_id]
