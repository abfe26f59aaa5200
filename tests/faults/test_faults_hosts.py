"""Scenario 14: workers on many hosts (issue 13, point 4).

Redis, the API and two workers each on a host of their own: a network namespace
with its own address and host name, on a bridge the test creates
(`hosts.MultiHost`). Jobs are submitted over HTTP; while the worker on ``host-w1``
holds jobs, that host is cut off (every packet dropped, both ways). Its jobs must
come back through ``host-w2`` within ``JOB_LEASE_SECONDS`` (plus one poll), and
``GET /workers`` must drop it within ``WORKER_LIVENESS_SECONDS`` (plus one
heartbeat); then every accepted job ends and the invariants hold.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import report
import requests
from cluster import Child, Load, MakeCluster, client_for, drain, leased_by, read_executions, scaled
from hosts import MultiHost
from invariants import check
from netns import unavailable_reason

from jobsys.local.redis_server import RedisServer, find_binary, free_port

REASON = unavailable_reason()
LEASE_S = 3.0
LIVENESS_S = 3.0

pytestmark = [
    pytest.mark.timeout(scaled(150, 420)),
    pytest.mark.skipif(REASON is not None, reason=REASON or ""),
]


def test_a_worker_host_cut_off_hands_its_jobs_to_the_other(
    tmp_path: Path, make_cluster: MakeCluster
) -> None:
    net = MultiHost().create()
    try:
        redis_ip = net.add_host("redis")
        api_ip = net.add_host("api")
        net.add_host("w1")
        net.add_host("w2")
        for address in (redis_ip, api_ip):
            net.route_check(address)  # before any packet goes there
        server = RedisServer(
            tmp_path / "redis",
            host=redis_ip,
            port=free_port(),
            appendonly=False,
            # Reached from other hosts, without a password: a test network.
            extra_args=["--protected-mode", "no"],
            binary=net.launcher("redis", find_binary(), tmp_path),
        ).start()
        client = client_for(server.url)
        extra = {
            "WORKER_LIVENESS_SECONDS": str(LIVENESS_S),
            # The API binds its host's address, without tokens (a test network).
            "JOBSYS_ALLOW_OPEN": "1",
            "JOBSYS_ALLOWED_HOSTS": "*",
        }
        c = make_cluster(server.url, lease_s=LEASE_S, extra_env=extra)
        workers = {}
        for name in ("w1", "w2"):
            child = Child(
                f"worker-{name}",
                ["worker", "--tasks", "fault_tasks", "--concurrency", "2"],
                c.env(server.url),
                c.log_dir,
                prefix=net.prefix_for(name, f"host-{name}"),
            )
            c.workers.append(child)
            workers[name] = child
        c.api = Child(
            "api",
            ["api", "--host", api_ip, "--port", "5001", "--workers", "2"],
            c.env(server.url, worker=False),
            c.log_dir,
            prefix=net.prefix_for("api"),
        )
        api = f"http://{api_ip}:5001"
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{api}/health", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, c.log_tails()
                time.sleep(0.1)

        def live_hosts() -> set[str]:
            body = requests.get(f"{api}/workers", timeout=2).json()
            return {w["host"] for w in body["workers"]}

        deadline = time.monotonic() + 20
        while live_hosts() != {"host-w1", "host-w2"}:
            assert time.monotonic() < deadline, live_hosts()
            time.sleep(0.1)

        load = Load(lambda: api, scaled(400, 2000), scaled(100, 150)).start()
        deadline = time.monotonic() + 20
        held: list[str] = []
        while not held:
            assert time.monotonic() < deadline, "host-w1 never held a job at the cut"
            if not leased_by(client, workers["w1"].pid):
                time.sleep(0.02)
                continue
            net.cut("w1")
            cut_at = time.monotonic()
            # Leased by host-w1 after the cut: stranded there (it cannot settle them).
            held = leased_by(client, workers["w1"].pid)
            if not held:
                net.heal("w1")

        # Its jobs come back through host-w2: another worker holds or ended them.
        def taken_over() -> bool:
            for job_id in held:
                worker, status = client.hmget(f"job:{job_id}", "worker", "status")
                if status in ("queued", "scheduled") or (worker or "").startswith("host-w1:"):
                    return False
            return True

        while not taken_over():
            assert time.monotonic() - cut_at < 30, "host-w1's jobs did not come back"
            time.sleep(0.05)
        back_s = time.monotonic() - cut_at
        while "host-w1" in live_hosts():
            assert time.monotonic() - cut_at < 30, "GET /workers kept host-w1"
            time.sleep(0.05)
        dropped_s = time.monotonic() - cut_at

        load.wait(120)
        # One worker host left: in the full suite its 2 runners need more than a minute
        # for what the load queued (else the check reads jobs still moving as stuck).
        drain(client, load.accepted().values(), timeout_s=scaled(60, 180))
        row = check(
            client,
            "14. a worker host cut off",
            load.accepted(),
            read_executions(c.exec_dir),
            ambiguous=load.ambiguous(),
            refused=load.refused(),
            faults=f"host-w1 cut off (held {len(held)} jobs); lease {LEASE_S} s",
        )
        row.recovery_s = round(back_s, 2)
        report.record_row(row)
        report.record_figure(
            "hosts",
            held=len(held),
            back_s=round(back_s, 2),
            dropped_from_workers_s=round(dropped_s, 2),
            accepted=row.accepted,
            lease_s=LEASE_S,
            liveness_s=LIVENESS_S,
        )
        assert row.ok, row.problems
        # Within the lease, plus one poll and a heartbeat's worth of slack.
        assert back_s <= LEASE_S + 1.5, back_s
        assert dropped_s <= LIVENESS_S + 1.5, dropped_s
        # host-w1's worker did not die: it keeps trying to reach Redis.
        assert workers["w1"].alive()
    finally:
        for child in list(c.workers) if "c" in locals() else []:
            child.kill_group()
        if "c" in locals() and c.api is not None:
            c.api.kill_group()
        if "server" in locals():
            server.kill()
        net.destroy()
