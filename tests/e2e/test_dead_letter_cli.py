"""The dead letter as an operator uses it: `jobsys dlq` and `jobsys jobs` against a
real `jobsys api` and a real `jobsys worker`; a replayed job really runs again."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests

from jobsys.local.redis_server import RedisServer

from processes import Proc, run_jobsys, start_api, stop_gracefully, wait_for


def jobsys(*args: str) -> subprocess.CompletedProcess[str]:
    return run_jobsys(*args)


@pytest.fixture
def api_url(redis_server: RedisServer, tmp_path: Path) -> Iterator[str]:
    proc, url = start_api(redis_server.url, tmp_path / "api.log")
    yield url
    stop_gracefully(proc)


def job(url: str, job_id: str) -> dict[str, object]:
    r = requests.get(f"{url}/jobs/{job_id}", timeout=5)
    return dict(r.json()) if r.status_code == 200 else {}


def test_a_dead_job_is_listed_replayed_and_runs_again(
    api_url: str, worker: Proc, redis_client: redis.Redis
) -> None:
    url = ["--url", api_url]
    submitted = jobsys("submit", "fail-until-fixed", "--max-retries", "0", *url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    wait_for(lambda: job(api_url, job_id).get("status") == "failed", 20, what="dead")

    listed = jobsys("dlq", "list", *url)
    assert listed.returncode == 0, listed.stderr
    assert "1 dead job(s)" in listed.stdout
    assert job_id in listed.stdout and "not fixed yet" in listed.stdout
    as_json = json.loads(jobsys("jobs", "--status", "failed", "--json", *url).stdout)
    assert [j["id"] for j in as_json["jobs"]] == [job_id]
    table = jobsys("jobs", "--status", "failed", *url).stdout
    assert job_id in table and "fail-until-fixed" in table

    redis_client.set("test:fixed", 1)
    retried = jobsys("dlq", "retry", job_id, *url)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout.strip() == "retried 1 job(s)"
    wait_for(lambda: job(api_url, job_id).get("status") == "completed", 20, what="rerun")
    done = job(api_url, job_id)
    assert done["replayed"] == 1 and done["attempts"] == 1 and "replayed_at" in done
    assert done["result"] == "fixed"
    [failure] = done["history"]  # the attempt before the replay
    assert "not fixed yet" in failure["error"] and failure["attempt"] == 1
    assert jobsys("dlq", "list", *url).stdout.startswith("0 dead job(s)")


def test_purge_asks_first_and_deletes_for_good(
    api_url: str, worker: Proc, redis_client: redis.Redis
) -> None:
    url = ["--url", api_url]
    ids = [
        jobsys("submit", "fail-until-fixed", "--max-retries", "0", *url).stdout.strip()
        for _ in range(2)
    ]
    wait_for(lambda: all(job(api_url, i).get("status") == "failed" for i in ids), 20, what="dead")
    refused = jobsys("dlq", "purge", "--all", *url)  # stdin is empty: not confirmed
    assert refused.returncode != 0
    assert all(job(api_url, i) for i in ids)
    assert jobsys("dlq", "purge", *url).returncode == 2  # selects nothing
    purged = jobsys("dlq", "purge", "--all", "--yes", *url)
    assert purged.returncode == 0, purged.stderr
    assert purged.stdout.strip() == "purged 2 job(s)"
    assert not any(job(api_url, i) for i in ids)


def test_a_bad_cursor_is_a_400_over_http(api_url: str, redis_client: redis.Redis) -> None:
    r = requests.get(f"{api_url}/jobs", params={"cursor": "not-a-cursor"}, timeout=5)
    assert r.status_code == 400
    assert r.json()["field"] == "cursor"
    assert r.headers["Content-Type"].startswith("application/json")
