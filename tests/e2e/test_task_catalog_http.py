"""The task catalog over real HTTP: a `jobsys worker` process publishes its tasks, a
`jobsys api` process (gunicorn, the submit lane) serves GET /tasks and checks
submits against them, with UNKNOWN_TASKS=reject on both."""

from __future__ import annotations

from pathlib import Path

import requests

from jobsys.local.redis_server import RedisServer
from jobsys.store import Store

from processes import Proc, start_api, stop_gracefully, wait_for


def test_reject_mode_over_http_with_real_processes(
    redis_server: RedisServer, store: Store, tmp_path: Path
) -> None:
    env = {"UNKNOWN_TASKS": "reject"}
    api, url = start_api(redis_server.url, tmp_path / "api.log", env)
    worker = Proc(
        ["worker", "--tasks", "sample_tasks"],
        {"REDIS_URL": redis_server.url, "UNKNOWN_TASKS": "reject", "SIMULATED_WORK_SECONDS": "0"},
        tmp_path / "worker.log",
    )
    try:

        def served() -> bool:
            tasks = requests.get(f"{url}/tasks", timeout=5).json()["tasks"]
            return any(t["name"] == "typed-resize" for t in tasks)

        wait_for(served, 30, what="GET /tasks to list the worker's tasks")
        shown = {t["name"]: t for t in requests.get(f"{url}/tasks", timeout=5).json()["tasks"]}
        assert shown["typed-resize"]["payload_schema"]["required"] == ["width"]
        assert shown["async-sleep"]["kind"] == "async"

        typo = requests.post(f"{url}/submit", json={"task": "resize-imgae"}, timeout=5)
        assert typo.status_code == 400
        assert typo.json()["field"] == "task"
        assert "'resize-imgae'" in typo.json()["detail"]

        bad = requests.post(
            f"{url}/submit", json={"task": "typed-resize", "payload": {"width": "x"}}, timeout=5
        )
        assert (bad.status_code, bad.json()["field"]) == (400, "payload.width")

        ok = requests.post(
            f"{url}/submit", json={"task": "typed-resize", "payload": {"width": 2}}, timeout=5
        )
        assert ok.status_code == 202
        job_id = ok.json()["id"]
        wait_for(lambda: store.get(job_id).status == "completed", 20, what="the typed job")
        assert store.get(job_id).result == {"model": "Resize", "area": 200}
        assert store.get(job_id).max_retries == 5  # the @task default

        # A job queued for a task no worker serves (not through the API): failed at
        # once, no retries, the task named.
        queued = store.submit("nobody-serves-this", max_retries=3)
        wait_for(lambda: store.get(queued).status == "failed", 20, what="the unknown task")
        job = store.get(queued)
        assert job.attempts == 1
        assert "unknown task 'nobody-serves-this'" in (job.error or "")
    finally:
        stop_gracefully(worker)
        stop_gracefully(api)
