"""Queues, priorities and delayed jobs through the real processes: HTTP, CLI, workers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
import requests

from jobsys import Client
from jobsys.local.redis_server import free_port

from processes import Proc, process_env, wait_for, wait_for_http


def start_api(tmp_path: Path, env: dict[str, str], name: str = "api") -> tuple[Proc, str]:
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / f"{name}.log")
    base = f"http://127.0.0.1:{port}"
    wait_for_http(f"{base}/health")
    return api, base


def test_a_delayed_job_survives_restarts_of_worker_and_api(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    api, base = start_api(tmp_path, env)
    worker = Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / "w1.log")
    try:
        r = requests.post(
            f"{base}/submit", json={"task": "echo", "payload": 1, "delay_seconds": 6}, timeout=5
        )
        assert r.status_code == 202
        assert r.json()["status"] == "scheduled"
        job_id = r.json()["id"]
        due = datetime.fromisoformat(
            requests.get(f"{base}/jobs/{job_id}", timeout=5).json()["run_at"]
        )
        # Everything restarts while the job waits: nothing holds its due time in memory.
        wait_for(lambda: "starting" in worker.output(), 15, what="worker up")
        for p in (worker, api):
            p.signal(signal.SIGTERM)
            assert p.wait(15) == 0
            p.stop()
        assert redis_client.hget(f"job:{job_id}", "status") == "scheduled"
        api, base = start_api(tmp_path, env, "api2")
        worker = Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / "w2.log")
        wait_for(lambda: "starting" in worker.output(), 15, what="new worker up")
        ready = datetime.now(UTC)
        with Client(base) as client:
            job = client.wait(job_id, timeout_s=15)
        assert job["status"] == "completed"
        started = datetime.fromisoformat(job["started_at"])
        # Due within a second or so of its time (or of the new worker's start, had
        # the restarts taken longer than the delay).
        assert due <= started < max(due, ready) + timedelta(seconds=1.5)
    finally:
        for p in (worker, api):
            p.signal(signal.SIGTERM)
            p.wait(15)
            p.stop()


def test_queues_priorities_and_the_queue_listing_over_http(
    tmp_path: Path, env: dict[str, str], redis_client: redis.Redis
) -> None:
    api, base = start_api(tmp_path, env)
    try:
        with Client(base) as client:
            client.submit("record", {"tag": "low"}, queue="mail", priority=-1)
            client.submit("record", {"tag": "high"}, queue="mail", priority=50)
            client.submit("record", {"tag": "later"}, queue="mail", delay_seconds=600)
            client.submit("record", {"tag": "other"}, queue="reports")
        listing = requests.get(f"{base}/queues", timeout=5).json()["queues"]
        by_name = {q["name"]: q for q in listing}
        assert by_name["mail"]["oldest_age_seconds"] >= 0
        del by_name["mail"]["oldest_age_seconds"]
        assert by_name["mail"] == {
            "name": "mail",
            "depth": 2,
            "in_flight": 0,
            "scheduled": 1,
            "dead": 0,
            "throughput": by_name["mail"]["throughput"],
            "paused": False,  # flow control (docs/flow-control.md)
            "limits": {"rate": None, "concurrency": None, "tasks": {}},
        }
        assert len(by_name["mail"]["throughput"]) == 15
        assert by_name["reports"]["depth"] == 1
        # A worker serving only "mail" (through the CLI flag) runs by priority.
        worker = Proc(
            ["worker", "--tasks", "sample_tasks", "--queues", "mail", "--concurrency", "1"],
            {**env, "WORKER_PREFETCH": "1"},
            tmp_path / "worker.log",
        )
        try:
            wait_for(lambda: redis_client.llen("test:executions") == 2, 15, what="two runs")
            runs = [e.split(":")[0] for e in redis_client.lrange("test:executions", 0, -1)]
            assert runs == ["high", "low"]
            time.sleep(0.3)
            assert redis_client.llen("test:executions") == 2  # "reports" is not served
        finally:
            worker.signal(signal.SIGTERM)
            assert worker.wait(15) == 0
            worker.stop()
    finally:
        api.signal(signal.SIGTERM)
        api.wait(15)
        api.stop()


def test_bad_queue_specs_are_refused_by_the_worker_command(env: dict[str, str]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "jobsys", "worker", "--queues", "a:2,b"],
        env=process_env(env),
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "--queues" in out.stderr and "every queue or to none" in out.stderr


def test_the_cli_submits_with_options(tmp_path: Path, env: dict[str, str]) -> None:
    api, base = start_api(tmp_path, env)
    try:
        run_at = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        out = subprocess.run(
            [sys.executable, "-m", "jobsys", "submit", "echo", "--queue", "q1", "--priority",
             "7", "--run-at", run_at, "--max-retries", "0", "--url", base],
            env=process_env(env), capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        job = requests.get(f"{base}/jobs/{out.stdout.strip()}", timeout=5).json()
        assert (job["queue"], job["priority"], job["max_retries"], job["status"]) == (
            "q1",
            7,
            0,
            "scheduled",
        )
    finally:
        api.signal(signal.SIGTERM)
        api.wait(15)
        api.stop()
