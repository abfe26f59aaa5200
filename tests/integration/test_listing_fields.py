"""A list page leaves a job's payload and result out unless asked: not only out of
the answer, but out of what Redis sends the API (page.lua drops them), so a page of
large jobs costs the API no more than a page of small ones."""

from __future__ import annotations

import redis
from flask.testing import FlaskClient

from jobsys.store import Store

BIG = "x" * 200_000


def test_a_page_reads_no_payload_or_result_unless_asked(store: Store) -> None:
    job_id = store.submit("big", {"blob": BIG})
    page = store.list_jobs(leave_out=("payload", "result"))
    assert [j.id for j in page.jobs] == [job_id]
    assert page.jobs[0].payload is None and page.jobs[0].task == "big"
    assert store.list_jobs(leave_out=("result",)).jobs[0].payload == {"blob": BIG}
    assert store.list_jobs().jobs[0].payload == {"blob": BIG}
    dead, _ = store.dead_letter(leave_out=("payload", "result"))
    assert dead.jobs == []


def test_page_lua_sends_no_payload_bytes_unless_asked(
    client: FlaskClient, redis_client: redis.Redis
) -> None:
    assert client.post("/submit", json={"task": "big", "payload": BIG}).status_code == 202
    before = int(redis_client.info("stats")["total_net_output_bytes"])
    lean = client.get("/jobs")
    after = int(redis_client.info("stats")["total_net_output_bytes"])
    assert lean.status_code == 200 and "payload" not in lean.json["jobs"][0]
    # Redis sent the API far less than the payload (the INFO reply itself is counted too).
    assert after - before < len(BIG) // 4, after - before
    full = client.get("/jobs?include=payload")
    assert full.json["jobs"][0]["payload"] == BIG
