"""`jobsys dev` as a real process tree: its own Redis, the API, a worker, and signals.

Each dev runs in a session of its own, so a test can signal its whole process
group the way a terminal's Ctrl-C does without reaching pytest. Its children are
found through /proc, hence Linux only.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from jobsys import Client
from jobsys.errors import ClientError
from jobsys.local.redis_server import RedisServer, free_port

from processes import process_env, wait_for, wait_for_http, wait_started

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="finds child processes through /proc"
)

#: No REDIS_* variable (process_env drops them), so dev starts its own Redis.
DEV_ENV = {
    "SIMULATED_WORK_SECONDS": "0.1",
    "SHUTDOWN_GRACE_SECONDS": "5",
    "WORKER_POLL_SECONDS": "0.2",
    "RETRY_BACKOFF_SECONDS": "0.05",
    "API_WORKERS": "1",
}
#: Longest a stop may take: the worker's grace, the API's and Redis's own stops.
STOP_TIMEOUT_S = 15


class Dev:
    """``python -m jobsys dev`` in a new session, its output in a log file."""

    def __init__(self, tmp_path: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"dev-{self.port}.log"
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "jobsys", "dev", "--port", str(self.port), *args],
                env=process_env(env),
                cwd=tmp_path,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self) -> None:
        try:
            wait_for_http(f"{self.url}/health", timeout=15)
            wait_for(lambda: "Ctrl-C to stop" in self.output(), 5, what="the banner")
        except AssertionError:
            pytest.fail(f"jobsys dev did not come up:\n{self.output()[-4000:]}")

    def wait(self, timeout: float = STOP_TIMEOUT_S) -> int:
        try:
            return self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"jobsys dev still running after {timeout}s:\n{self.output()[-4000:]}")

    def kill_tree(self) -> None:
        """Teardown: SIGKILL dev and whatever it left behind."""
        leftovers = descendants(self.pid)
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        for pid in leftovers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[type[Dev]]:
    devs: list[Dev] = []

    class TrackedDev(Dev):
        def __init__(self, tmp: Path, env: dict[str, str], *args: str) -> None:
            super().__init__(tmp, env, *args)
            devs.append(self)

    yield TrackedDev
    for dev in devs:
        dev.kill_tree()


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state) of a live process, None when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name (field 2) may hold spaces: split after its closing ")".
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return int(ppid), state


def descendants(root: int) -> dict[int, str]:
    """Every live process below `root`: pid -> command line."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (st := _stat(int(entry.name))) is not None:
            children.setdefault(st[0], []).append(int(entry.name))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            found[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError):
            continue
        todo.extend(children.get(pid, []))
    return found


def alive(pids: dict[int, str]) -> dict[int, str]:
    """The processes of `pids` still running (zombies count as gone)."""
    return {pid: cmd for pid, cmd in pids.items() if (st := _stat(pid)) and st[1] != "Z"}


def roles(procs: dict[int, str]) -> dict[str, int]:
    """Which pid is the Redis server, the API (gunicorn master) and the worker."""
    found: dict[str, int] = {}
    for pid, cmd in procs.items():
        if "redis-server" in cmd or "valkey-server" in cmd:
            found["redis"] = pid
        elif "jobsys api" in cmd:
            found["api"] = pid
        elif "jobsys worker" in cmd:
            found["worker"] = pid
    return found


def children_of(dev: Dev) -> dict[int, str]:
    """Dev's process tree once the API's gunicorn workers are up too."""
    wait_for(lambda: len(descendants(dev.pid)) >= 3, 10, what="dev's children")
    return descendants(dev.pid)


def test_dev_runs_jobs_on_its_own_redis_and_stops_cleanly_on_sigint(
    start_dev: type[Dev], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    dev = start_dev(tmp_path, DEV_ENV, "--data-dir", str(data_dir), "--redis-port", "0")
    dev.wait_ready()
    procs = children_of(dev)
    assert set(roles(procs)) == {"redis", "api", "worker"}, procs
    banner = dev.output()
    assert f"API:       {dev.url}" in banner
    assert f"Dashboard: {dev.url}/dashboard/" in banner
    assert "(private)" in banner
    assert str(data_dir) in banner
    # No token set: dev runs open, and says so before anything else.
    assert banner.lstrip().startswith("WARNING: auth is OFF: no JOBSYS_PRODUCER_TOKENS or ")
    assert "Auth:      OFF (open to all)" in banner

    with Client(dev.url) as client:
        job = client.wait(client.submit("hello", {"n": 1}), timeout_s=10)
    assert job["status"] == "completed"

    dev.popen.send_signal(signal.SIGINT)
    assert dev.wait() == 0, dev.output()[-4000:]
    wait_for(lambda: not alive(procs), 5, what=f"dev's children to exit: {alive(procs)}")
    assert (data_dir / "appendonlydir").is_dir()


def test_a_second_dev_on_the_same_data_dir_or_port_is_refused(
    start_dev: type[Dev], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    first = start_dev(tmp_path, DEV_ENV, "--data-dir", str(data_dir), "--redis-port", "0")
    first.wait_ready()

    same_dir = start_dev(tmp_path, DEV_ENV, "--data-dir", str(data_dir), "--redis-port", "0")
    assert same_dir.wait() == 1
    assert f"error: another `jobsys dev` is using the data dir {data_dir}" in same_dir.output()

    args = ("--data-dir", str(tmp_path / "other"), "--redis-port", "0", "--port", str(first.port))
    same_port = start_dev(tmp_path, DEV_ENV, *args)
    assert same_port.wait() == 1
    assert f"error: port {first.port} is already in use" in same_port.output()
    assert not alive(descendants(same_port.pid))

    first.popen.send_signal(signal.SIGTERM)
    assert first.wait() == 0


def test_ctrl_c_lets_the_running_job_finish_and_the_data_survives_a_restart(
    start_dev: type[Dev], tmp_path: Path
) -> None:
    """A terminal's Ctrl-C signals the whole process group: each child must still stop once."""
    data_dir = tmp_path / "data"
    env = {**DEV_ENV, "SIMULATED_WORK_SECONDS": "1.5"}
    dev = start_dev(tmp_path, env, "--data-dir", str(data_dir), "--redis-port", "0")
    dev.wait_ready()
    procs = children_of(dev)
    with Client(dev.url) as client:
        job_id = client.submit("slow")
        wait_started(dev.output, job_id)

    os.killpg(dev.pid, signal.SIGINT)
    assert dev.wait() == 0, dev.output()[-4000:]
    log = dev.output()
    assert f"job {job_id} completed" in log
    # Neither the worker nor dev took a second signal as "stop now".
    assert "second SIG" not in log
    assert "again: killing" not in log
    wait_for(lambda: not alive(procs), 5, what=f"dev's children to exit: {alive(procs)}")

    again = start_dev(tmp_path, DEV_ENV, "--data-dir", str(data_dir), "--redis-port", "0")
    again.wait_ready()
    with Client(again.url) as client:
        assert client.get(job_id)["status"] == "completed"
    again.popen.send_signal(signal.SIGTERM)
    assert again.wait() == 0


def test_a_child_that_dies_stops_the_rest(start_dev: type[Dev], tmp_path: Path) -> None:
    dev = start_dev(tmp_path, DEV_ENV, "--data-dir", str(tmp_path / "data"), "--redis-port", "0")
    dev.wait_ready()
    procs = children_of(dev)
    os.kill(roles(procs)["worker"], signal.SIGKILL)
    assert dev.wait() == 1
    assert "the worker exited unexpectedly (killed by SIGKILL); stopping the rest" in dev.output()
    wait_for(lambda: not alive(procs), 5, what=f"dev's children to exit: {alive(procs)}")


def test_killing_dev_takes_its_children_down(start_dev: type[Dev], tmp_path: Path) -> None:
    env = {**DEV_ENV, "SHUTDOWN_GRACE_SECONDS": "1"}
    dev = start_dev(tmp_path, env, "--data-dir", str(tmp_path / "data"), "--redis-port", "0")
    dev.wait_ready()
    procs = children_of(dev)
    dev.popen.kill()
    dev.popen.wait()
    wait_for(lambda: not alive(procs), STOP_TIMEOUT_S, what=f"orphans to exit: {alive(procs)}")


def test_dev_uses_the_configured_redis_and_starts_none(
    start_dev: type[Dev], tmp_path: Path, redis_server: RedisServer
) -> None:
    data_dir = tmp_path / "data"
    # ...and takes API tokens from the environment.
    token = "dev-admin-token-0123456789abcdef0123"
    env = {**DEV_ENV, "REDIS_URL": redis_server.url, "JOBSYS_ADMIN_TOKENS": token}
    dev = start_dev(tmp_path, env, "--data-dir", str(data_dir))
    dev.wait_ready()
    assert set(roles(children_of(dev))) == {"api", "worker"}
    assert f"{redis_server.url} (configured)" in dev.output()
    assert "Auth:      on (0 producer, 1 admin tokens)" in dev.output()
    assert "auth is OFF" not in dev.output()
    assert token not in dev.output()
    with Client(dev.url) as client, pytest.raises(ClientError) as e:
        client.submit("hello")
    assert e.value.status == 401
    with Client(dev.url, token=token) as client:
        assert client.wait(client.submit("hello"), timeout_s=10)["status"] == "completed"
    dev.popen.send_signal(signal.SIGTERM)
    assert dev.wait() == 0
    assert not data_dir.exists()


def test_a_clean_start_and_stop_prints_no_warning(start_dev: type[Dev], tmp_path: Path) -> None:
    # A token, so that dev has no reason to warn (auth off is a deliberate warning).
    env = {**DEV_ENV, "JOBSYS_ADMIN_TOKENS": "dev-admin-token-0123456789abcdefghij"}
    dev = start_dev(tmp_path, env, "--data-dir", str(tmp_path / "data"), "--redis-port", "0")
    dev.wait_ready()
    dev.popen.send_signal(signal.SIGINT)
    assert dev.wait() == 0, dev.output()[-4000:]
    # Not gevent's MonkeyPatchWarning from the API, nor any other.
    assert [line for line in dev.output().splitlines() if "warning" in line.lower()] == []
