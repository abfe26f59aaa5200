"""What one request may cost the API (issue 12), through real HTTP against a
`jobsys api` (gunicorn) process: a batch job's payload is capped like a submit's,
a body may hold only so many JSON values, a job is due at most a year ahead, and a
list page carries payloads and results only when asked for them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests

from jobsys import Client
from jobsys.api.validation import MAX_DELAY_S, MAX_JSON_VALUES, MAX_PAYLOAD_BYTES
from jobsys.local.redis_server import RedisServer
from jobsys.store import Store

from processes import run_jobsys, start_api, stop_gracefully

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def api(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jobsys api` with no token, on the session's Redis: its base URL."""
    proc, base = start_api(redis_server.url, tmp_path_factory.mktemp("api") / "api.log")
    yield base
    stop_gracefully(proc)


def test_a_batch_job_payload_over_a_mib_is_refused_naming_the_job(api: str) -> None:
    big = "x" * (MAX_PAYLOAD_BYTES - 1)  # with its quotes: one byte over
    body = {"jobs": [{"task": "t", "payload": 1}, {"task": "t", "payload": big}]}
    r = requests.post(f"{api}/submit/batch", json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "jobs.1.payload"
    assert f"at most {MAX_PAYLOAD_BYTES} bytes" in r.json()["detail"]
    # One byte less is a payload /submit takes too.
    body["jobs"][1]["payload"] = big[1:]
    assert requests.post(f"{api}/submit/batch", json=body, timeout=30).status_code == 202


def test_a_schedule_payload_over_a_mib_is_refused(api: str) -> None:
    # Within the 1 MiB body, but over 1 MiB once stored (1e15 is written 1000000000000000.0).
    numbers = b",".join([b"1e15"] * 100_000)
    data = b'{"name":"big","cron":"* * * * *","task":"t","payload":[' + numbers + b"]}"
    r = requests.post(f"{api}/schedules", data=data, headers=JSON, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "payload"


def test_a_body_of_millions_of_values_is_refused_and_the_api_stays_up(api: str) -> None:
    zeros = b",".join([b"0"] * (MAX_JSON_VALUES // 8))
    job = b'{"task":"t","payload":[' + zeros + b"]}"
    data = b'{"jobs":[' + b",".join([job] * 9) + b"]}"  # each payload is under 1 MiB
    r = requests.post(f"{api}/submit/batch", data=data, headers=JSON, timeout=60)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "body"
    assert f"at most {MAX_JSON_VALUES} JSON values" in r.json()["detail"]
    assert requests.get(f"{api}/health", timeout=5).status_code == 200


def test_a_full_batch_of_small_object_payloads_is_accepted(api: str) -> None:
    jobs = [
        {"task": "resize", "payload": {"url": f"https://example.com/{i}.png", "w": 640, "h": 480}}
        for i in range(10_000)
    ]
    r = requests.post(f"{api}/submit/batch", json={"jobs": jobs}, timeout=60)
    assert r.status_code == 202, r.text
    assert r.json()["count"] == 10_000


def later(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def test_run_at_more_than_a_year_ahead_is_refused_like_delay_seconds(api: str) -> None:
    too_late = later(MAX_DELAY_S + 3600)
    r = requests.post(f"{api}/submit", json={"task": "t", "run_at": too_late}, timeout=5)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "run_at"
    assert f"at most {MAX_DELAY_S} seconds" in r.json()["detail"]
    batch = {"jobs": [{"task": "t"}, {"task": "t", "run_at": "9999-12-31T23:59:59Z"}]}
    r = requests.post(f"{api}/submit/batch", json=batch, timeout=5)
    assert (r.status_code, r.json()["field"]) == (400, "jobs.1.run_at")
    ok = {"task": "t", "run_at": later(MAX_DELAY_S - 3600)}
    assert requests.post(f"{api}/submit", json=ok, timeout=5).status_code == 202


def test_list_pages_show_payload_and_result_only_when_asked(api: str, store: Store) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    with Client(api) as client:
        job_id = client.submit("t", {"big": "x" * 1000}, queue=queue, max_retries=0)
        plain = client.list_jobs(queue=queue)["jobs"]
        assert [j["id"] for j in plain] == [job_id]
        assert "payload" not in plain[0] and "result" not in plain[0]
        (full,) = client.list_jobs(queue=queue, include=["payload"])["jobs"]
        assert full["payload"] == {"big": "x" * 1000} and "result" not in full
        # The job itself shows everything.
        assert client.get(job_id)["payload"] == {"big": "x" * 1000}

        # The dead letter likewise.
        (claimed,) = store.claim(queue, "w", 30, 1)
        assert store.fail(queue, claimed.id, "w", claimed.attempt, "boom", 0) == "dead"
        (dead,) = client.dead_letter(queue=queue)["jobs"]
        assert "payload" not in dead and dead["error"] == "boom"
        (dead,) = client.dead_letter(queue=queue, include=["payload", "result"])["jobs"]
        assert dead["payload"] == {"big": "x" * 1000}

    r = requests.get(f"{api}/jobs", params={"include": "error"}, timeout=5)
    assert (r.status_code, r.json()["field"]) == (400, "include")

    env = {"JOBSYS_URL": api}
    out = run_jobsys("jobs", "--queue", queue, "--json", "--include", "payload", env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["jobs"][0]["payload"] == {"big": "x" * 1000}
    out = run_jobsys("dlq", "list", "--queue", queue, "--json", env=env)
    assert out.returncode == 0, out.stderr
    assert "payload" not in json.loads(out.stdout)["jobs"][0]
