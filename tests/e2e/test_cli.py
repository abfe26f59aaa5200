"""The `jobsys` command as a user runs it: real processes, a real API and worker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsys.local.redis_server import RedisServer, free_port

from processes import Proc, process_env, run_jobsys, start_api, stop_gracefully

#: The API of this module keeps jobs to 2 attempts, so a failing job fails fast.
API_ENV = {"MAX_RETRIES": "1"}


def jobsys(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``python -m jobsys ARGS`` to completion."""
    return run_jobsys(*args, env=env)


@pytest.fixture(scope="module")
def api_url(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`jobsys api` on a free port, on the session's Redis; its base URL."""
    proc, url = start_api(redis_server.url, tmp_path_factory.mktemp("cli") / "api.log", API_ENV)
    yield url
    stop_gracefully(proc)


# -- without a server ----------------------------------------------------------


def test_help_lists_the_commands() -> None:
    result = jobsys("--help")
    assert result.returncode == 0
    for command in ("api", "worker", "dev", "submit", "status"):
        assert f"  {command} " in result.stdout


def test_version() -> None:
    result = jobsys("--version")
    assert (result.returncode, result.stdout) == (0, "jobsys, version 0.3.0\n")


def test_the_jobsys_script_is_installed() -> None:
    script = Path(sys.executable).parent / "jobsys"
    if not script.exists():
        pytest.skip("jobsys is not installed as a script next to this Python")
    result = subprocess.run(
        [str(script), "--version"],
        check=False,
        env=process_env({}),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "0.3.0" in result.stdout


@pytest.mark.parametrize(
    "args", [["status", "x"], ["submit", "t"], ["worker"], ["api"], ["dev"]], ids=" ".join
)
def test_a_bad_variable_exits_2_naming_it(args: list[str]) -> None:
    result = jobsys(*args, env={"MAX_RETRIES": "lots"})
    assert result.returncode == 2
    assert result.stderr.startswith("error: MAX_RETRIES='lots' is invalid")
    assert "Traceback" not in result.stderr


def test_submit_rejects_a_payload_that_is_not_json() -> None:
    result = jobsys("submit", "t", "--payload", "{oops", "--url", "http://127.0.0.1:9")
    assert result.returncode == 2
    assert "--payload" in result.stderr
    assert "not valid JSON" in result.stderr


def test_submit_rejects_a_url_that_is_not_http() -> None:
    result = jobsys("submit", "t", "--url", "localhost:5001")
    assert result.returncode == 2
    assert "--url" in result.stderr


@pytest.mark.parametrize(
    "args", [["submit", "t"], ["status", "00000000-0000-4000-8000-000000000001"]], ids=" ".join
)
def test_an_unreachable_api_exits_2(args: list[str]) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = jobsys(*args, "--url", url)
    assert result.returncode == 2
    assert result.stderr == f"error: cannot reach the jobsys API at {url}: connection refused\n"


def test_worker_with_a_missing_tasks_module_exits_2() -> None:
    result = jobsys("worker", "--tasks", "no_such_tasks_module")
    assert result.returncode == 2
    assert result.stderr.startswith("error: cannot import tasks module 'no_such_tasks_module'")


# -- against `jobsys api` ------------------------------------------------------


def test_submit_prints_the_id_and_status_shows_the_job(api_url: str) -> None:
    submitted = jobsys("submit", "resize", "--payload", '{"w": 100}', "--url", api_url)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert str(uuid.UUID(job_id)) == job_id

    shown = jobsys("status", job_id, "--url", api_url)
    assert shown.returncode == 0, shown.stderr
    job = json.loads(shown.stdout)
    assert job["id"] == job_id
    assert job["task"] == "resize"
    assert job["payload"] == {"w": 100}
    assert job["status"] in {"queued", "processing", "completed"}


def test_jobsys_url_is_the_default_url(api_url: str) -> None:
    submitted = jobsys("submit", "t", env={"JOBSYS_URL": api_url})
    assert submitted.returncode == 0, submitted.stderr
    shown = jobsys("status", submitted.stdout.strip(), env={"JOBSYS_URL": api_url})
    assert json.loads(shown.stdout)["task"] == "t"


def test_submit_without_payload_sends_none(api_url: str) -> None:
    job_id = jobsys("submit", "t", "--url", api_url).stdout.strip()
    assert "payload" not in json.loads(jobsys("status", job_id, "--url", api_url).stdout)


def test_status_of_an_unknown_job_exits_1(api_url: str) -> None:
    job_id = str(uuid.uuid4())
    result = jobsys("status", job_id, "--url", api_url)
    assert result.returncode == 1
    assert result.stderr == f"error: no job with id {job_id!r}\n"


def test_a_job_the_api_rejects_exits_2_with_its_reason(api_url: str) -> None:
    result = jobsys("submit", "", "--url", api_url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: HTTP 400: invalid request (task: ")


def test_submit_wait_prints_the_completed_job(api_url: str, worker: Proc) -> None:
    result = jobsys("submit", "echo", "--payload", "[1, 2]", "--wait", "--url", api_url)
    assert result.returncode == 0, result.stderr
    job = json.loads(result.stdout)
    assert job["status"] == "completed"
    assert job["result"] == {"echo": [1, 2]}
    assert f"submitted job {job['id']}" in result.stderr
    assert "completed · attempt 1/2" in result.stderr


def test_submit_wait_exits_1_and_shows_the_errors_when_the_job_fails(
    api_url: str, worker: Proc
) -> None:
    result = jobsys("submit", "boom", "--payload", '"x"', "--wait", "--url", api_url)
    assert result.returncode == 1, result.stderr
    job = json.loads(result.stdout)
    assert (job["status"], job["attempts"]) == ("failed", 2)
    assert "ValueError: boom: x" in job["error"]
    assert "failed · attempt 2/2 · error: ValueError: boom: x" in result.stderr


def test_submit_wait_gives_up_after_the_timeout(api_url: str, worker: Proc) -> None:
    result = jobsys(
        "submit", "sleep", "--payload", "1.5", "--wait", "--timeout", "0.5", "--url", api_url
    )
    assert result.returncode == 3
    assert "had not finished after 0.5s" in result.stderr
    assert result.stdout == ""
