"""The fault suite's harness: real `jobsys` processes, a steady HTTP load, the execution log.

- `Child`: one ``python -m jobsys ...`` process in a process group of its own, logging to
  a file, that gets SIGTERM if the test process dies.
- `Cluster`: the API and workers of one scenario, pointed at one Redis, with fast timings
  (2 s leases).
- `Load`: submits jobs over HTTP at a steady rate from several threads and records what
  each request got: accepted (202 + id), rejected (a definite 4xx/507) or ambiguous (an
  error after which the job may or may not exist: a 503 or a broken connection).
- `read_executions`: the side effects that `fault_tasks` recorded outside Redis.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests
import urllib3

from jobsys.local.procs import die_with_parent
from jobsys.local.redis_server import RedisServer, free_port
from jobsys.store import keys

from processes import process_env

FAULTS_DIR = Path(__file__).parent
#: The full suite (`python tests/faults/run.py`) sets this; CI runs the fast subset.
FULL = os.environ.get("JOBSYS_FAULTS_FULL") == "1"
TERMINAL = ("completed", "failed")


def scaled(fast: int, full: int) -> int:
    """`full` in the full suite, `fast` in the CI subset."""
    return full if FULL else fast


class Child:
    """A ``python -m jobsys ARGS`` child in its own process group.

    Spawn children only from the main thread: the kernel sends the child SIGTERM
    when the *thread* that forked it ends (PR_SET_PDEATHSIG).
    """

    def __init__(
        self,
        name: str,
        args: list[str],
        env: Mapping[str, str],
        log_dir: Path,
        prefix: Iterable[str] = (),
    ) -> None:
        self.name = name
        self.log_path = log_dir / f"{name}.log"
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                # `prefix`: e.g. a network namespace's (hosts.MultiHost.prefix_for); it
                # must exec the command, so the PID and process group stay the child's.
                [*prefix, sys.executable, "-m", "jobsys", *args],
                env=process_env(env),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                process_group=0,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 (only prctl; libc resolved before)
            )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def send(self, sig: signal.Signals) -> None:
        if self.alive():
            self.popen.send_signal(sig)

    def kill_group(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """Signal the whole process group (e.g. gunicorn's master and its workers)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL the group. Returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGCONT)
            self.popen.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout_s)
        self.kill_group(signal.SIGKILL)
        try:
            return self.popen.wait(5)
        except subprocess.TimeoutExpired:
            return None

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@dataclass
class Cluster:
    """The API and the workers of one scenario, all real processes."""

    base_dir: Path
    #: The Redis URL that workers use, and the one the API uses (the same unless
    #: Redis sits in a namespace with one link per path).
    worker_redis_url: str
    api_redis_url: str
    lease_s: float = 2.0
    extra_env: dict[str, str] = field(default_factory=dict)
    workers: list[Child] = field(default_factory=list)
    retired: list[Child] = field(default_factory=list)
    api: Child | None = None
    api_port: int = 0
    _n: int = 0

    def __post_init__(self) -> None:
        self.exec_dir = self.base_dir / "exec"
        self.log_dir = self.base_dir / "logs"
        self.exec_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def env(self, redis_url: str, worker: bool = True) -> dict[str, str]:
        # Workers give up on a Redis call after 1 s (so a 2 s lease can survive a
        # blip); the API keeps its defaults (it caps its own timeout at 2 s).
        timeouts = {"REDIS_SOCKET_TIMEOUT_SECONDS": "1"} if worker else {}
        return {
            "REDIS_URL": redis_url,
            "JOB_LEASE_SECONDS": str(self.lease_s),
            "WORKER_POLL_SECONDS": "0.2",
            **timeouts,
            "RETRY_BACKOFF_SECONDS": "0.05",
            "RETRY_BACKOFF_MAX_SECONDS": "0.5",
            "SHUTDOWN_GRACE_SECONDS": "2",
            "SIMULATED_WORK_SECONDS": "0.05",
            "FAULTS_EXEC_DIR": str(self.exec_dir),
            "PYTHONPATH": str(FAULTS_DIR),
            "LOG_LEVEL": "INFO",
            **self.extra_env,
        }

    # -- workers ---------------------------------------------------------------

    def start_worker(self, concurrency: int = 2) -> Child:
        self._n += 1
        child = Child(
            f"worker-{self._n}",
            ["worker", "--tasks", "fault_tasks", "--concurrency", str(concurrency)],
            self.env(self.worker_redis_url),
            self.log_dir,
        )
        self.workers.append(child)
        return child

    def live_workers(self) -> list[Child]:
        return [w for w in self.workers if w.alive()]

    def retire(self, worker: Child) -> None:
        self.workers.remove(worker)
        self.retired.append(worker)

    # -- the API -----------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def start_api(self, workers: int = 2, threads: int = 8, wait: bool = True) -> Child:
        self.api_port = self.api_port or free_port()
        self._n += 1
        self.api = Child(
            f"api-{self._n}",
            [
                "api",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
            ],
            self.env(self.api_redis_url, worker=False),
            self.log_dir,
        )
        if wait:
            self.wait_api()
        return self.api

    def wait_api(self, timeout_s: float = 30.0) -> float:
        """Wait until the API answers at all; return how long that took."""
        start = time.monotonic()
        while time.monotonic() - start < timeout_s:
            if self.api is not None and not self.api.alive():
                raise AssertionError(f"the API exited:\n{self.api.output()[-3000:]}")
            try:
                requests.get(f"{self.api_url}/openapi.json", timeout=1)
                return time.monotonic() - start
            except requests.RequestException:
                time.sleep(0.05)
        raise AssertionError(f"the API did not answer within {timeout_s}s")

    # -- the end ---------------------------------------------------------------

    def close(self) -> None:
        for child in [*self.workers, *self.retired, *([self.api] if self.api else [])]:
            child.send(signal.SIGCONT)
            child.kill_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.popen.wait(5)

    def log_tails(self, chars: int = 1500) -> str:
        out = []
        for child in [*self.retired, *self.workers, *([self.api] if self.api else [])]:
            out.append(f"--- {child.name} (pid {child.pid}) ---\n{child.output()[-chars:]}")
        return "\n".join(out)

    def grep_logs(self, text: str) -> int:
        """How many lines of all the processes' logs contain `text`."""
        n = 0
        for path in self.log_dir.glob("*.log"):
            n += sum(1 for line in path.read_text(errors="replace").splitlines() if text in line)
        return n


# -- load ------------------------------------------------------------------------


@dataclass
class Submit:
    """What one POST /submit got."""

    tag: str
    started: float  # time.monotonic()
    latency_s: float
    status: int | None  # None: no HTTP answer (connection refused/reset, timeout)
    job_id: str | None = None
    error: str = ""
    body: Any = None
    sent_at: float = 0.0  # time.time() when the request was sent


def work_payload(tag: str, rng: random.Random) -> dict[str, Any]:
    """A `fault.work` payload: short sleeps, 5 % fail once, 1 % always fail."""
    roll = rng.random()
    return {
        "tag": tag,
        "sleep": rng.choice((0.01, 0.02, 0.05, 0.1, 0.2)),
        "fail_first": 0.01 <= roll < 0.06,
        "always_fail": roll < 0.01,
    }


class Load:
    """Submits `n` jobs over HTTP at about `rate_per_s`, from `threads` threads."""

    def __init__(
        self,
        url: Callable[[], str],
        n: int,
        rate_per_s: float,
        *,
        prefix: str = "j",
        threads: int = 4,
        timeout_s: float = 5.0,
        payload: Callable[[str, random.Random], Any] = work_payload,
        seed: int = 0,
    ) -> None:
        self.url, self.n, self.rate, self.prefix = url, n, rate_per_s, prefix
        self.threads, self.timeout_s, self.payload = threads, timeout_s, payload
        self.rng = random.Random(seed)
        self.results: list[Submit] = []
        self._lock = threading.Lock()
        self._next = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = 0.0

    def start(self) -> Load:
        self.t0 = time.monotonic()
        for i in range(self.threads):
            t = threading.Thread(target=self._run, name=f"load-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def _take(self) -> int | None:
        with self._lock:
            if self._next >= self.n or self._stop.is_set():
                return None
            i = self._next
            self._next += 1
            return i

    def _run(self) -> None:
        session = requests.Session()
        while (i := self._take()) is not None:
            due = self.t0 + i / self.rate
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            tag = f"{self.prefix}{i:06d}"
            with self._lock:
                body = self.payload(tag, self.rng)
            self.results_append(self.submit(session, tag, body))

    def results_append(self, s: Submit) -> None:
        with self._lock:
            self.results.append(s)

    def submit(self, session: requests.Session, tag: str, payload: Any) -> Submit:
        sent_at, start = time.time(), time.monotonic()
        try:
            r = session.post(
                f"{self.url()}/submit",
                json={"task": "fault.work", "payload": payload},
                timeout=self.timeout_s,
            )
        except requests.RequestException as e:
            session.close()  # a fresh connection next time
            error = "unsent" if never_sent(e) else type(e).__name__
            return Submit(tag, start, time.monotonic() - start, None, error=error, sent_at=sent_at)
        latency = time.monotonic() - start
        try:
            body = r.json()
        except ValueError:
            body = None
        job_id = body.get("id") if r.status_code == 202 and isinstance(body, dict) else None
        return Submit(tag, start, latency, r.status_code, job_id=job_id, body=body, sent_at=sent_at)

    def done(self) -> bool:
        return all(not t.is_alive() for t in self._threads)

    def wait(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        self.wait(self.timeout_s + 5)

    # -- what happened ---------------------------------------------------------

    def accepted(self) -> dict[str, str]:
        """tag -> job id of every submit answered 202."""
        return {s.tag: s.job_id for s in self.results if s.status == 202 and s.job_id}

    def rejected(self) -> dict[str, int]:
        """tag -> status of every submit refused for sure (4xx, 507): nothing may exist."""
        return {
            s.tag: s.status
            for s in self.results
            if s.status is not None and s.status != 202 and s.status not in (500, 502, 503)
        }

    def unsent(self) -> set[str]:
        """Tags whose request never reached the API (connection refused or not made)."""
        return {s.tag for s in self.results if s.status is None and s.error == "unsent"}

    def refused(self) -> set[str]:
        """Tags of submits that cannot have created a job: refused for sure, or never sent."""
        return set(self.rejected()) | self.unsent()

    def ambiguous(self) -> set[str]:
        """Tags whose submit got no definite answer (a 503, or a connection broken after the
        request went out): the job may or may not exist."""
        return {
            s.tag
            for s in self.results
            if s.status == 503 or (s.status is None and s.error != "unsent")
        }

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.results:
            key = str(s.status) if s.status is not None else f"no answer ({s.error})"
            out[key] = out.get(key, 0) + 1
        return out


def never_sent(e: requests.RequestException) -> bool:
    """True when the request cannot have reached the server: no connection was made."""
    if isinstance(e, requests.ConnectTimeout):
        return True
    reason = getattr(e.args[0], "reason", None) if e.args else None
    return isinstance(reason, urllib3.exceptions.NewConnectionError | ConnectionRefusedError)


# -- executions ------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    """One run of `fault.work`, as its side effect recorded it."""

    tag: str
    pid: int
    attempt: int
    ok: bool
    at: float  # unix time
    started: float = 0.0  # unix time the handler started


def read_executions(exec_dir: Path) -> list[Execution]:
    out = []
    for path in sorted(exec_dir.glob("exec-*.log")):
        for line in path.read_text().splitlines():
            parts = line.split()
            if len(parts) == 6:
                tag, pid, attempt, kind, at, started = parts
                out.append(
                    Execution(tag, int(pid), int(attempt), kind == "ok", float(at), float(started))
                )
    return out


# -- waiting on Redis ------------------------------------------------------------


def client_for(url: str) -> redis.Redis:
    """A plain client for the suite's own checks (never one of jobsys's)."""
    return redis.Redis.from_url(url, decode_responses=True, socket_timeout=5)


def statuses(client: redis.Redis, ids: Iterable[str]) -> dict[str, str | None]:
    """id -> the job hash's status (None when the hash is missing)."""
    ids = list(ids)
    out: dict[str, str | None] = {}
    for i in range(0, len(ids), 1000):
        chunk = ids[i : i + 1000]
        pipe = client.pipeline(transaction=False)
        for job_id in chunk:
            pipe.hget(keys.job(job_id), "status")
        out.update(zip(chunk, pipe.execute(), strict=True))
    return out


def drain(client: redis.Redis, ids: Iterable[str], timeout_s: float) -> float:
    """Wait until every job in `ids` is completed or failed (or gone); return the seconds taken.

    Returns even when jobs are left unfinished at `timeout_s`: the invariant check
    reports them as stuck.
    """
    pending = set(ids)
    start = time.monotonic()
    while pending and time.monotonic() - start < timeout_s:
        try:
            now = statuses(client, pending)
        except redis.RedisError:
            time.sleep(0.2)
            continue
        pending = {i for i, s in now.items() if s is not None and s not in TERMINAL}
        if pending:
            time.sleep(0.2)
    return time.monotonic() - start


def wait_until(
    predicate: Callable[[], object], timeout_s: float, interval_s: float = 0.05
) -> float:
    """Poll `predicate` until truthy; return seconds taken, or -1.0 on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            if predicate():
                return time.monotonic() - start
        except (redis.RedisError, requests.RequestException):
            pass
        time.sleep(interval_s)
    return -1.0


def leased_by(client: redis.Redis, pid: int, queue: str = "default") -> list[str]:
    """Ids of the jobs whose lease a worker process `pid` holds now."""
    ids = client.zrange(keys.leases(queue), 0, -1)
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for job_id in ids:
        pipe.hget(keys.job(job_id), "worker")
    marker = f":{pid}:"
    return [j for j, w in zip(ids, pipe.execute(), strict=True) if w and marker in w]


#: Fixture factories (tests/faults/conftest.py): make_redis(name, **RedisServer fields),
#: make_cluster(worker_redis_url, api_redis_url=None, **Cluster fields).
MakeRedis = Callable[..., RedisServer]
MakeCluster = Callable[..., "Cluster"]
