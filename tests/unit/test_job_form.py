"""A job's hash as `GET /jobs/<id>` shows it (`Job.from_hash(...).to_api()`)."""

from __future__ import annotations

import json

from jobsys.models import Job, JobStatus

BASE = {"status": "queued", "task": "t", "created_at": "1700000000123"}


def shown(**fields: str) -> dict[str, object]:
    return Job.from_hash("j-1", BASE | fields).to_api()


def test_the_fields_in_order_with_defaults_and_times_as_iso_text() -> None:
    assert shown() == {
        "id": "j-1",
        "status": "queued",
        "task": "t",
        "queue": "default",
        "priority": 0,
        "created_at": "2023-11-14T22:13:20.123Z",
        "attempts": 0,
        "max_retries": 0,
    }
    # A time written by a version before 0.2 is ISO text already: shown as it is.
    assert shown(started_at="2024-01-01T00:00:00Z")["started_at"] == "2024-01-01T00:00:00Z"


def test_payload_and_result_null_is_shown_absent_is_not() -> None:
    assert "payload" not in shown() and "result" not in shown()
    job = shown(payload="null", result="null")
    assert job["payload"] is None and job["result"] is None
    assert list(job).index("payload") < list(job).index("created_at")  # documented order
    assert shown(payload='{"a": [1]}')["payload"] == {"a": [1]}


def test_other_fields_are_decoded_from_their_text() -> None:
    history = [{"attempt": 1, "worker": "w", "ended_at": "2024-01-01T00:00:00.000Z", "error": "x"}]
    job = Job.from_hash(
        "j-1",
        BASE
        | {
            "status": "processing",
            "attempts": "2",
            "progress": "0.5",
            "timeout_seconds": "10",
            "cancel_requested": "1",
            "replayed": "3",
            "history": json.dumps(history),
            "lease": "not an API field",
        },
    )
    assert job.status is JobStatus.PROCESSING
    api = job.to_api()
    assert (api["attempts"], api["progress"], api["timeout_seconds"]) == (2, 0.5, 10.0)
    assert api["cancel_requested"] is True and api["replayed"] == 3
    assert api["history"] == history
    assert "lease" not in api
