"""Operators' view with real processes: worker processes under signals, API
processes (gunicorn with 2 workers, and a second API), JSON logs, the CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from jobsys.local.redis_server import RedisServer, free_port

from processes import Proc, Procs, process_env, wait_for, wait_for_http

TRACE = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
WORKER_ENV = {
    "SIMULATED_WORK_SECONDS": "0.01",
    "RETRY_BACKOFF_SECONDS": "0",
    "RETRY_BACKOFF_MAX_SECONDS": "0",
    "WORKER_POLL_SECONDS": "0.2",
    "SHUTDOWN_GRACE_SECONDS": "5",
    "JOB_LEASE_SECONDS": "5",
}

Spawn = Callable[..., Proc]


@pytest.fixture
def spawn(redis_server: RedisServer, redis_client: redis.Redis, tmp_path: Path) -> Iterator[Spawn]:
    """Start `jobsys` processes on the session's Redis, flushed first (`redis_client`:
    an earlier test's paused queue or rate hold must not hold these jobs back); kill
    leftovers at the end."""
    procs = Procs(tmp_path)

    def start(*args: str, **env: str) -> Proc:
        return procs.start(
            list(args), {"REDIS_URL": redis_server.url, **WORKER_ENV, **env}, args[0]
        )

    yield start
    procs.stop_all()


def start_api(spawn: Spawn, workers: int, **env: str) -> str:
    port = free_port()
    proc = spawn("api", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
                 **{"MAX_RETRIES": "1", **env})  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/health", timeout=20)
    except AssertionError:
        pytest.fail(f"`jobsys api` did not come up:\n{proc.output()[-3000:]}")
    return url


def start_worker(spawn: Spawn, *args: str, **env: str) -> Proc:
    return spawn("worker", "--tasks", "sample_tasks", *args, **env)


def live_workers(url: str) -> list[dict[str, Any]]:
    answer = requests.get(f"{url}/workers", timeout=5)
    assert answer.status_code == 200
    return list(answer.json()["workers"])


def worker_ids(url: str) -> set[str]:
    return {w["id"] for w in live_workers(url)}


def totals(text: str) -> dict[str, float]:
    """Samples summed over labels but `le`: name (+ le) -> value."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = s.name + (f"{{le={s.labels['le']}}}" if "le" in s.labels else "")
            out[key] = out.get(key, 0.0) + s.value
    return out


def wait_settled(url: str, ids: list[str], timeout: float = 60) -> None:
    done = {"completed", "failed"}

    def finished() -> bool:
        return all(requests.get(f"{url}/jobs/{i}", timeout=5).json()["status"] in done for i in ids)

    wait_for(finished, timeout, 0.2, what="every job to end")


# -- the registry --------------------------------------------------------------


def test_registry_shows_a_running_job_drops_a_killed_worker_and_a_stopped_one(
    spawn: Spawn,
) -> None:
    url = start_api(spawn, 1)
    window = 2.0
    env = {"WORKER_LIVENESS_SECONDS": str(window)}
    victim = start_worker(spawn, "--concurrency", "2", **env)
    wait_for(lambda: len(worker_ids(url)) == 1, 15, what="the worker to register")
    (victim_id,) = worker_ids(url)
    job_id = requests.post(f"{url}/submit", json={"task": "sleep", "payload": 30}, timeout=5)
    job_id = job_id.json()["id"]

    def running() -> bool:
        return any(job_id in w["current_jobs"] for w in live_workers(url))

    wait_for(running, 10, what="the job to show as the worker's current job")
    (shown,) = live_workers(url)
    assert shown["concurrency"] == 2
    assert shown["pid"] == victim.pid
    assert shown["queues"] == ["default"]

    other = start_worker(spawn, **env)
    wait_for(lambda: len(worker_ids(url)) == 2, 15, what="the second worker")
    victim.signal(signal.SIGKILL)
    killed_at = time.monotonic()
    victim.wait(5)
    wait_for(lambda: victim_id not in worker_ids(url), window + 3, 0.1, what="the dead one to go")
    gone_after = time.monotonic() - killed_at
    # Out once its last heartbeat (at most ~1 s before the kill) is `window` old.
    assert gone_after <= window + 1.5, gone_after

    (other_id,) = worker_ids(url)
    other.signal(signal.SIGTERM)
    assert other.wait(15) == 0
    assert other_id not in worker_ids(url)  # at once, not after the window


# -- metrics across processes ----------------------------------------------------


def test_metrics_count_jobs_of_two_workers_alike_from_every_api_process(
    spawn: Spawn, redis_client: redis.Redis
) -> None:
    # (redis_client: flushes the database first.)
    first = start_api(spawn, 2)  # gunicorn with 2 worker processes
    second = start_api(spawn, 1)  # and another API
    workers = [start_worker(spawn), start_worker(spawn)]
    ok = requests.post(
        f"{first}/submit/batch",
        json={"jobs": [{"task": "echo", "payload": i} for i in range(300)]},
        timeout=10,
    ).json()["ids"]
    ok += [
        requests.post(f"{second}/submit", json={"task": "echo"}, timeout=5).json()["id"]
        for _ in range(20)
    ]
    bad = [
        requests.post(f"{first}/submit", json={"task": "boom", "payload": i}, timeout=5).json()[
            "id"
        ]
        for i in range(5)
    ]
    wait_settled(first, ok + bad)

    def scrape(url: str) -> dict[str, float]:
        answer = requests.get(f"{url}/metrics", timeout=5)
        assert answer.status_code == 200
        assert answer.headers["Content-Type"].startswith("text/plain")
        return totals(answer.text)

    expected = {
        "jobsys_jobs_submitted_total": 325,
        "jobsys_jobs_started_total": 330,  # 5 failing jobs ran twice (MAX_RETRIES=1)
        "jobsys_jobs_completed_total": 320,
        "jobsys_jobs_retried_total": 5,
        "jobsys_jobs_dead_lettered_total": 5,
        "jobsys_job_run_seconds_count": 330,
        "jobsys_job_wait_seconds_count": 325,
        "jobsys_dead_letter_jobs": 5,
        "jobsys_workers_alive": 2,
    }

    def settled() -> bool:
        got = scrape(first)
        return all(got.get(k) == v for k, v in expected.items())

    # Workers flush once a second.
    wait_for(settled, 5, 0.2, what=f"the counts: {expected}")
    answers = [scrape(first) for _ in range(6)] + [scrape(second) for _ in range(2)]
    counts = [{k: v for k, v in a.items() if "seconds" not in k or "_count" in k} for a in answers]
    assert all(c == counts[0] for c in counts)  # every process answers alike
    got = answers[0]
    assert got["jobsys_job_run_seconds_bucket{le=+Inf}"] == 330
    assert 0 < got["jobsys_job_run_seconds_sum"] < 330 * 1.0
    assert got["jobsys_job_wait_seconds_bucket{le=+Inf}"] == 325
    buckets = sorted(
        (float(k.split("le=")[1][:-1]), v) for k, v in got.items() if "run_seconds_bucket" in k
    )
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    for w in workers:
        w.signal(signal.SIGTERM)
        assert w.wait(15) == 0
    assert scrape(second)["jobsys_workers_alive"] == 0


# -- logs and traces ---------------------------------------------------------------


def test_json_log_lines_carry_every_field_and_the_trace(spawn: Spawn) -> None:
    url = start_api(spawn, 1)
    worker = start_worker(spawn, LOG_FORMAT="json")
    traced = requests.post(
        f"{url}/submit", json={"task": "echo", "payload": 1}, headers={"traceparent": TRACE},
        timeout=5,
    ).json()["id"]  # fmt: skip
    failing = requests.post(f"{url}/submit", json={"task": "boom"}, timeout=5).json()["id"]
    wait_settled(url, [traced, failing])
    assert requests.get(f"{url}/jobs/{traced}", timeout=5).json()["traceparent"] == TRACE
    started_trace = requests.get(f"{url}/jobs/{failing}", timeout=5).json()["traceparent"]
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
    lines = [json.loads(x) for x in worker.output().splitlines() if x.startswith("{")]
    events = [x for x in lines if "event" in x and "job_id" in x]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        by_job.setdefault(e["job_id"], []).append(e)
    assert [e["event"] for e in by_job[traced]] == ["started", "completed"]
    assert [e["event"] for e in by_job[failing]] == [
        "started",
        "retried",
        "started",
        "dead_lettered",
    ]
    for e in by_job[traced] + by_job[failing]:
        assert {
            "ts",
            "level",
            "message",
            "job_id",
            "task",
            "queue",
            "attempt",
            "worker",
        } <= e.keys()
        assert e["queue"] == "default"
        if e["event"] != "started":
            assert isinstance(e["duration_ms"], int | float)
    assert {e["trace_id"] for e in by_job[traced]} == {TRACE.split("-")[1]}
    assert {e["traceparent"] for e in by_job[traced]} == {TRACE}
    assert {e["traceparent"] for e in by_job[failing]} == {started_trace}
    assert [e["attempt"] for e in by_job[failing]] == [1, 1, 2, 2]
    assert by_job[failing][-1]["level"] == "ERROR"
    assert "boom" in by_job[failing][-1]["error"]


def test_request_id_is_on_fast_path_answers_and_errors(spawn: Spawn) -> None:
    url = start_api(spawn, 1)
    fast = requests.post(f"{url}/submit", json={"task": "x"}, headers={"X-Request-ID": "abc-1"})
    assert (fast.status_code, fast.headers["X-Request-ID"]) == (202, "abc-1")
    bad = requests.post(f"{url}/submit", json={"task": ""}, headers={"X-Request-ID": "abc-2"})
    assert (bad.status_code, bad.headers["X-Request-ID"]) == (400, "abc-2")
    missing = requests.get(f"{url}/nowhere")
    assert missing.status_code == 404 and len(missing.headers["X-Request-ID"]) == 32
    metrics = requests.get(f"{url}/metrics", headers={"X-Request-ID": "abc-3"})
    assert metrics.headers["X-Request-ID"] == "abc-3"


# -- the CLI ---------------------------------------------------------------------


def jobsys(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jobsys", *args],
        check=False,
        env=process_env({"COLUMNS": "160"}),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_cli_workers_and_stats_print_tables(spawn: Spawn) -> None:
    url = start_api(spawn, 1)
    worker = start_worker(spawn, "--queues", "default,mail")
    wait_for(lambda: len(worker_ids(url)) == 1, 15, what="the worker to register")
    ids = [requests.post(f"{url}/submit", json={"task": "echo"}, timeout=5).json()["id"]]
    ids.append(
        requests.post(f"{url}/submit", json={"task": "echo", "queue": "mail"}, timeout=5).json()[
            "id"
        ]
    )
    wait_settled(url, ids)
    (wid,) = worker_ids(url)

    listed = jobsys("workers", "--url", url)
    assert listed.returncode == 0, listed.stderr
    assert "1 live worker(s)" in listed.stdout
    assert wid in listed.stdout
    assert "default,mail" in listed.stdout

    def stats_show_throughput() -> bool:
        out = jobsys("stats", "--url", url).stdout
        return "mail" in out and "1/0" in out

    wait_for(stats_show_throughput, 10, 0.5, what="stats to show a completed job per queue")
    shown = jobsys("stats", "--url", url)
    assert shown.returncode == 0, shown.stderr
    for word in ("queue", "depth", "in flight", "scheduled", "default", "mail", "1 live"):
        assert word in shown.stdout
    assert wid in shown.stdout

    down = jobsys("stats", "--url", f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 2 and "error:" in down.stderr
    worker.signal(signal.SIGTERM)
    assert worker.wait(15) == 0
