"""Bad input against the production server (`jobsys api`: gunicorn, gthread).

- schemathesis fuzzes the served API against its own ``/openapi.json``: stateless
  phases (examples, coverage, fuzzing) and the stateful phase (submit, then read the
  job through the OpenAPI link), with every check on. No 5xx, every response as the
  document says, and Redis holds exactly the jobs that were answered 202.
- hostile payloads, each of which must get a clear JSON 4xx while another client
  keeps being answered promptly;
- slow clients (slow-loris): bodies and headers sent a byte at a time.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
import report
import requests
from cluster import Cluster, MakeCluster, MakeRedis, client_for, scaled
from invariants import is_schema_key

from jobsys.local.redis_server import RedisServer
from jobsys.store import keys

pytestmark = pytest.mark.timeout(scaled(150, 900))


@dataclass
class Api:
    cluster: Cluster
    client: redis.Redis

    @property
    def url(self) -> str:
        return self.cluster.api_url

    def job_ids(self) -> set[str]:
        return {k[len(keys.JOB_PREFIX) :] for k in self.client.scan_iter(match=keys.job("*"))}

    def foreign_keys(self) -> set[str]:
        """Keys in Redis that are neither job hashes nor keys of the key schema."""
        jobs = {keys.job(i) for i in self.job_ids()}
        return {
            k
            for k in self.client.scan_iter()
            if k not in jobs and not is_schema_key(self.client, k)
        }


@pytest.fixture
def api(make_redis: MakeRedis, make_cluster: MakeCluster) -> Iterator[Api]:
    """The API alone (no workers: accepted jobs stay queued) on an empty Redis."""
    server: RedisServer = make_redis("redis", appendonly=False)
    c = make_cluster(server.url)
    c.start_api(workers=2, threads=8)
    yield Api(c, client_for(server.url))


# -- schemathesis ------------------------------------------------------------------


def schemathesis_cli() -> str:
    exe = Path(sys.executable).parent / "schemathesis"
    if not exe.exists():
        if os.environ.get("CI"):
            pytest.fail("schemathesis is not installed: pip install -e '.[dev]'")
        pytest.skip("schemathesis is not installed: pip install -e '.[dev]'")
    return str(exe)


#: Every state-changing request must send ``Content-Type: application/json``, with a
#: body or without one (docs/security.md: a cross-site form or a "simple" fetch cannot);
#: OpenAPI has no way to say so of an operation that takes no body, so the fuzzer is
#: told here (in the working directory, where schemathesis looks for its config).
SCHEMATHESIS_CONFIG = """
[[operations]]
include-name = [
  "POST /jobs/{job_id}/cancel", "DELETE /schedules/{name}", "DELETE /webhooks/{sub_id}",
  "POST /batches/{batch_id}/cancel",
  # flow control (docs/flow-control.md)
  "POST /queues/{name}/pause", "POST /queues/{name}/resume",
  "POST /jobs/{job_id}/promote", "POST /jobs/{job_id}/retry",
]
headers = { "Content-Type" = "application/json" }

# An endless text/event-stream: every request would run into the request timeout.
[[operations]]
include-name = ["GET /events"]
enabled = false

# A long-poll holds a request up to `wait` seconds (0 to 60): only its bounds are fuzzed
# elsewhere (tests/e2e/test_wait_http.py); here it answers at once.
[[operations]]
include-name = ["GET /jobs/{job_id}"]
parameters = { "query.wait" = 0 }

# A schema-valid depends_on may name no job, and a schema-valid workflow may name no
# step or form a cycle (docs/workflows.md); a schema-valid callback or webhook URL may
# name a host that is not public (docs/events.md): a 400 the schema cannot express.
[[operations]]
include-name = [
  "POST /submit", "POST /submit/batch", "POST /batches", "POST /workflows", "POST /webhooks",
]
checks.positive_data_acceptance.expected-statuses = [
  "2XX", "3XX", 400, 401, 403, 404, 409, 429, "5XX",
]
"""


# The batch and workflow routes (docs/workflows.md) made the fast run longer than 150 s
# on the loaded 2-core machine.
@pytest.mark.timeout(scaled(480, 900))
def test_schemathesis_stateless_and_stateful(api: Api, tmp_path: Path) -> None:
    har = tmp_path / "schemathesis.har.json"
    (tmp_path / "schemathesis.toml").write_text(SCHEMATHESIS_CONFIG)
    cmd = [
        schemathesis_cli(),
        "run",
        f"{api.url}/openapi.json",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(scaled(20, 300)),
        "--seed",
        str(scaled(1, int(time.time()))),
        "--request-timeout",
        "10",
        "--report",
        "har",
        "--report-har-path",
        str(har),
        "--suppress-health-check",
        "too_slow",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    proc = subprocess.run(
        cmd,
        capture_output=True,
        text=True,
        timeout=scaled(420, 880),
        env=env,
        cwd=tmp_path,
        check=False,
    )
    out = proc.stdout + proc.stderr
    print(out[-4000:])
    entries = json.loads(har.read_text())["log"]["entries"]
    statuses = Counter(e["response"]["status"] for e in entries)
    answered = accepted_ids(entries)
    jobs = api.job_ids()
    report.record_figure(
        "schemathesis",
        requests=len(entries),
        statuses={str(k): v for k, v in sorted(statuses.items())},
        jobs_accepted=len(answered),
        jobs_in_redis=len(jobs),
        exit_code=proc.returncode,
        findings=sorted(set(re.findall(r"^- (ST\d+ .+)$", out, re.MULTILINE))),
        reproduce=re.findall(r"^\s+(curl .+)$", out, re.MULTILINE)[:5],
    )
    assert proc.returncode == 0, out[-4000:]
    assert not [s for s in statuses if s >= 500], statuses
    assert "Stateful" in out
    # Redis holds exactly the jobs whose ids a 202 answered: nothing from rejected requests.
    assert jobs == answered, (len(jobs), len(answered), statuses)
    assert not api.foreign_keys()


def accepted_ids(entries: list[dict[str, Any]]) -> set[str]:
    """The job ids that the 202 answers in a HAR log gave (``id``, or ``ids`` of a batch;
    a batch's callbacks, ``on_complete``/``on_success``; a workflow's ``steps``)."""
    ids: set[str] = set()
    for e in entries:
        if e["response"]["status"] != 202:
            continue
        body = json.loads(e["response"]["content"]["text"])
        if "steps" in body:  # POST /workflows: `id` is the workflow's
            ids.update(step["id"] for step in body["steps"])
            continue
        ids.update(body["ids"] if "ids" in body else [body["id"]])
        ids.update(body[k] for k in ("on_complete", "on_success") if k in body)
    return ids


def test_run_at_takes_exactly_what_its_openapi_schema_allows(api: Api) -> None:
    """Once a defect (the document said "any string"; the API wanted RFC 3339 within
    a year): now the document says date-time and, as a pattern, at most this year
    (issue 12 brought the year's bound back); every date-time it allows is taken."""
    doc = requests.get(f"{api.url}/openapi.json", timeout=5).json()
    run_at = doc["components"]["schemas"]["SubmitRequest"]["properties"]["run_at"]
    strings = [s for s in run_at.get("anyOf", [run_at]) if s.get("type") == "string"]
    assert [s.get("format") for s in strings] == ["date-time"]
    year = datetime.now(UTC).year
    cases = [(f"{year}-12-31T23:59:59-23:59", 202), ("0001-01-01T00:00:00+23:59", 202),
             ("2999-01-01T00:00:00Z", 400), ("", 400), ("2026-12-01T08:00:00", 400)]  # fmt: skip
    for value, status in cases:
        r = requests.post(f"{api.url}/submit", json={"task": "t", "run_at": value}, timeout=5)
        assert r.status_code == status, (value, r.status_code, r.text[:200])


# -- hostile payloads ----------------------------------------------------------------


def nested(depth: int) -> bytes:
    """A body whose `payload` makes the whole body `depth` levels deep."""
    inner = "[" * (depth - 1) + "]" * (depth - 1)
    return b'{"task": "t", "payload": ' + inner.encode() + b"}"


JSON = {"Content-Type": "application/json"}
BIG = 1024 * 1024 + 1
#: (name, headers, body, expected status), sent to POST /submit
HOSTILE: list[tuple[str, dict[str, str], bytes, int]] = [
    (
        "nesting 100 000 deep",
        JSON,
        b'{"task":"t","payload":' + b"[" * 100_000 + b"]" * 100_000 + b"}",
        400,
    ),
    ("nesting 129 deep (limit 128)", JSON, nested(129), 400),
    ("unclosed nesting 500 000 deep", JSON, b"[" * 500_000, 400),
    ("number 1e999999", JSON, b'{"task":"t","payload":1e999999}', 400),
    ("integer of 100 000 digits", JSON, b'{"task":"t","payload":' + b"9" * 100_000 + b"}", 400),
    ("NaN", JSON, b'{"task":"t","payload":NaN}', 400),
    ("Infinity", JSON, b'{"task":"t","payload":-Infinity}', 400),
    ("invalid UTF-8", JSON, b'{"task":"t\xff\xfe","payload":1}', 400),
    ("overlong UTF-8 encoding", JSON, b'{"task":"\xc0\xaf"}', 400),
    ("UTF-16 body", JSON, '{"task":"t"}'.encode("utf-16"), 400),
    ("raw NUL byte in the body", JSON, b'{"task":"t\x00"}', 400),
    ("escaped NUL in the task name", JSON, b'{"task":"a\\u0000b"}', 400),
    ("lone surrogate in the task name", JSON, b'{"task":"a\\ud800"}', 400),
    ("task name of 201 characters", JSON, json.dumps({"task": "t" * 201}).encode(), 400),
    ("task name of 1 MB", JSON, json.dumps({"task": "t" * 1_000_000}).encode(), 400),
    (
        "task name of 2 MB (over the body limit)",
        JSON,
        json.dumps({"task": "t" * BIG}).encode(),
        413,
    ),
    ("task is a number", JSON, b'{"task":12}', 400),
    ("unknown field", JSON, b'{"task":"t","no_such_field":1}', 400),
    ("body is an array", JSON, b'[{"task":"t"}]', 400),
    ("body is null", JSON, b"null", 400),
    ("empty body", JSON, b"", 400),
    ("Content-Type text/plain", {"Content-Type": "text/plain"}, b'{"task":"t"}', 415),
    ("no Content-Type", {}, b'{"task":"t"}', 415),
    ("form-encoded", {"Content-Type": "application/x-www-form-urlencoded"}, b"task=t", 415),
    ("multipart", {"Content-Type": "multipart/form-data; boundary=x"}, b"--x--", 415),
    (
        "charset latin-1",
        {"Content-Type": "application/json; charset=latin-1"},
        b'{"task":"t"}',
        415,
    ),
    ("Content-Type with NUL-free garbage", {"Content-Type": "application/jsonx"}, b"{}", 415),
]


def batch(jobs: list[Any]) -> bytes:
    return json.dumps({"jobs": jobs}).encode()


#: (name, headers, body, expected status), sent to POST /submit/batch
HOSTILE_BATCH: list[tuple[str, dict[str, str], bytes, int]] = [
    ("batch of 10 001 jobs (limit 10 000)", JSON, batch([{"task": "t"}] * 10_001), 400),
    (
        "batch with one bad job among 999 good",
        JSON,
        batch([{"task": "t"}] * 999 + [{"task": "t" * 201}]),
        400,
    ),
    (
        "batch with one job nested 129 deep",
        JSON,
        b'{"jobs":[{"task":"t","payload":' + b"[" * 127 + b"]" * 127 + b"}]}",
        400,
    ),
    ("batch body of 17 MiB", JSON, batch([{"task": "t", "payload": "x" * (17 * 2**20)}]), 413),
    ("batch that is empty", JSON, b'{"jobs":[]}', 400),
    ("batch as text/plain", {"Content-Type": "text/plain"}, batch([{"task": "t"}]), 415),
]
#: Hostile-looking but valid: these must be accepted and stored exactly.
VALID: list[tuple[str, Any]] = [
    ("nesting 128 deep (the limit)", json.loads(nested(128))["payload"]),
    ("NUL characters in the payload", "a\u0000b\u0000"),
    ("integer of 4 000 digits", int("9" * 4000)),
    ("1e308", 1e308),
    ("task of 200 characters", None),
    ("non-BMP characters", "𝄞🙂"),
]


class Prober(threading.Thread):
    """Another client, asking GET /health every 100 ms; records each answer's latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                r = requests.get(f"{self.url}/health", timeout=5)
                if r.status_code != 200:
                    self.failures.append(str(r.status_code))
            except requests.RequestException as e:
                self.failures.append(type(e).__name__)
            self.latencies.append(time.monotonic() - t)
            self.stop.wait(0.1)

    def finish(self) -> tuple[float, list[str]]:
        self.stop.set()
        self.join(10)
        return max(self.latencies, default=0.0), self.failures


def test_hostile_payloads_get_a_clear_4xx_and_others_are_still_served(api: Api) -> None:
    prober = Prober(api.url)
    prober.start()
    seen = []
    cases = [("/submit", *c) for c in HOSTILE] + [("/submit/batch", *c) for c in HOSTILE_BATCH]
    for path, name, headers, body, expected in cases:
        t = time.monotonic()
        r = requests.post(f"{api.url}{path}", data=body, headers=headers, timeout=30)
        took = time.monotonic() - t
        seen.append((name, r.status_code, round(took, 3)))
        assert r.status_code == expected, (name, r.status_code, r.text[:300])
        err = r.json()
        assert set(err) >= {"error", "detail"} and err["detail"], (name, err)
        assert took < 3.0, (name, took)
    # A body over the limit sent chunked (no Content-Length) is refused too.
    r = requests.post(
        f"{api.url}/submit", data=iter([b'{"task":"' + b"t" * BIG, b'"}']), headers=JSON, timeout=30
    )
    assert r.status_code == 413, r.text[:200]
    assert api.job_ids() == set()  # nothing from any of them reached Redis
    # Hostile-looking but valid bodies are accepted and read back exactly.
    for name, payload in VALID:
        task = "t" * 200 if name.startswith("task of") else "hostile"
        r = requests.post(f"{api.url}/submit", json={"task": task, "payload": payload}, timeout=10)
        assert r.status_code == 202, (name, r.text[:300])
        job = requests.get(f"{api.url}/jobs/{r.json()['id']}", timeout=10).json()
        assert job["task"] == task and job.get("payload") == payload, name
    slowest, failures = prober.finish()
    report.record_figure(
        "hostile", cases=len(cases) + 1 + len(VALID), slowest_other_client_s=round(slowest, 3)
    )
    assert not failures, failures
    assert slowest < 1.0, f"another client waited {slowest:.2f}s during the hostile requests"
    assert len(api.job_ids()) == len(VALID)
    assert not api.foreign_keys()


# -- slow clients ----------------------------------------------------------------------


class SlowClients:
    """`n` connections that each send a request one piece per second, never finishing."""

    def __init__(self, port: int, n: int, seconds: float) -> None:
        self.port, self.n, self.seconds = port, n, seconds
        self.socks: list[socket.socket] = []
        self.thread = threading.Thread(target=self._drip, daemon=True)

    def __enter__(self) -> SlowClients:
        for i in range(self.n):
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            if i % 2:  # a slow body: the headers promise 10 000 bytes
                s.sendall(
                    b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 10000\r\n\r\n{"
                )
            else:  # slow headers
                s.sendall(b"POST /submit HTTP/1.1\r\nHost: x\r\n")
            self.socks.append(s)
        self.thread.start()
        return self

    def _drip(self) -> None:
        end = time.monotonic() + self.seconds
        while time.monotonic() < end:
            for i, s in enumerate(self.socks):
                with contextlib.suppress(OSError):
                    s.sendall(b" " if i % 2 else b"X-Slow: 1\r\n")
            time.sleep(1.0)

    def __exit__(self, *exc: object) -> None:
        self.thread.join(self.seconds + 5)
        for s in self.socks:
            s.close()


def probe_during_slow_clients(api: Api, n: int, seconds: float = 10.0) -> tuple[float, int, int]:
    """Return (slowest /health answer in s, probes, probes slower than 1 s) while `n`
    slow clients hold connections open.

    Probes go out in rounds of 8 at once, each on a new connection, so that every
    gunicorn process gets some of them.
    """
    latencies: list[float] = []

    def probe() -> float:
        t = time.monotonic()
        with contextlib.suppress(requests.RequestException):
            requests.get(f"{api.url}/health", timeout=3)
        return time.monotonic() - t

    with SlowClients(api.cluster.api_port, n, seconds), ThreadPoolExecutor(8) as pool:
        time.sleep(1.0)
        end = time.monotonic() + seconds - 4
        while time.monotonic() < end:
            latencies += pool.map(lambda _: probe(), range(8))
            time.sleep(0.2)
    return max(latencies), len(latencies), sum(1 for x in latencies if x > 1.0)


def test_a_few_slow_clients_do_not_hold_up_others(api: Api) -> None:
    slowest, probes, slow = probe_during_slow_clients(api, 6)
    report.record_figure("slow_clients_6", slowest_s=round(slowest, 2), probes=probes, slow=slow)
    assert slowest < 1.0, (slowest, slow, probes)
    # And once the slow clients are gone, the API answers at once.
    t = time.monotonic()
    assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
    assert time.monotonic() - t < 1.0


def test_slow_loris_does_not_hold_up_other_clients(api: Api) -> None:
    """Once a defect: gthread workers gave each connection a thread while its
    headers and body trickled in, so 16 slow clients held up everyone. The API
    now runs gevent workers, where a slow connection costs a greenlet."""
    slowest, probes, slow = probe_during_slow_clients(api, 48)
    report.record_figure(
        "slow_loris_48", slowest_s=round(slowest, 2), probes=probes, slower_than_1s=slow
    )
    assert slowest < 1.0, f"{slow}/{probes} requests of another client took > 1 s"


@pytest.mark.faults_full
def test_slow_clients_sweep(api: Api) -> None:
    """How many slow clients it takes to hold up others (figures for docs/reliability.md)."""
    for n in (8, 16, 24, 32, 64):
        slowest, probes, slow = probe_during_slow_clients(api, n)
        report.record_figure(
            "slow_loris_sweep",
            clients=n,
            slowest_s=round(slowest, 2),
            probes=probes,
            slower_than_1s=slow,
        )
        time.sleep(2.0)
    # Once they are gone the API answers at once.
    t = time.monotonic()
    assert requests.get(f"{api.url}/health", timeout=5).status_code == 200
    assert time.monotonic() - t < 1.0
