"""The Docker Compose stacks, end to end: scripts/compose-test.sh (docker-compose.yml) and
scripts/compose-ha-test.sh (docker-compose.ha.yml: the Redis primary stopped under load) in
pytest tests.

The script starts a private Docker engine (shared/docker/engine.sh), brings the stack up with
3 workers, runs jobs through it over HTTP and tears it down. It needs root and a few minutes
on a cold machine, so it runs only when JOBSYS_TEST_COMPOSE=1 (CI sets it). Its exit code 77
means the engine cannot start on this machine: the test skips with the script's reason.
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "compose-test.sh"
#: The HA stack (docker-compose.ha.yml): stopping the Redis primary keeps jobs flowing.
HA_SCRIPT = SCRIPT.with_name("compose-ha-test.sh")
#: The script's "skip" exit code (the automake convention).
EXIT_SKIP = 77
#: Below the pytest timeout, so a hung run is stopped by SIGTERM and its trap still tears down.
SCRIPT_TIMEOUT_S = 840

pytestmark = pytest.mark.compose


def run_script(script: Path) -> None:
    """Run `script`; skip on its exit code 77, fail on any other but 0."""
    with subprocess.Popen(
        ["bash", str(script)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, to signal it and its children
    ) as proc:
        try:
            output, _ = proc.communicate(timeout=SCRIPT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGTERM)  # the script's trap runs `down -v`
            try:
                output, _ = proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                output, _ = proc.communicate()
            pytest.fail(f"{script.name} took over {SCRIPT_TIMEOUT_S} s:\n{output}")

    if proc.returncode == EXIT_SKIP:
        reasons = [line for line in output.splitlines() if line.startswith("SKIP:")]
        pytest.skip(reasons[-1] if reasons else f"{script.name} exited {EXIT_SKIP}:\n{output}")
    assert proc.returncode == 0, f"{script.name} exited {proc.returncode}:\n{output}"


NEEDS_ENGINE = pytest.mark.skipif(
    os.environ.get("JOBSYS_TEST_COMPOSE") != "1",
    reason="set JOBSYS_TEST_COMPOSE=1 to run (needs a Docker engine)",
)


@pytest.mark.timeout(900)
@NEEDS_ENGINE
def test_compose_stack_runs_jobs_on_three_workers() -> None:
    run_script(SCRIPT)


@pytest.mark.timeout(900)
@NEEDS_ENGINE
def test_compose_ha_stack_keeps_jobs_flowing_when_the_primary_stops() -> None:
    run_script(HA_SCRIPT)
