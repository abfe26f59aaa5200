"""Scenario 6: the API restarted under load (SIGTERM, and SIGKILL of its whole process group).

Clients must get a 202 (the job exists, whole), or an error: a 503 or no answer
at all (refused, reset), after which the job may or may not exist, but never
half. `invariants.check` verifies that every job hash in Redis is whole, sits in
the one structure its status calls for, and belongs to an accepted or an
ambiguous submit.
"""

from __future__ import annotations

import signal
import time

import pytest
import report
from cluster import Load, MakeCluster, MakeRedis, client_for, drain, read_executions, scaled
from invariants import check

pytestmark = pytest.mark.timeout(scaled(150, 900))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_api_restart_under_load(
    sig: signal.Signals, make_redis: MakeRedis, make_cluster: MakeCluster
) -> None:
    server = make_redis("redis", appendonly=False)
    client = client_for(server.url)
    c = make_cluster(server.url)
    for _ in range(2):
        c.start_worker(concurrency=2)
    c.start_api()
    load = Load(lambda: c.api_url, scaled(500, 2500), scaled(80, 100), threads=8).start()
    downtimes = []
    restarts = scaled(2, 10)
    for _ in range(restarts):
        time.sleep(1.2)
        assert c.api is not None
        down_at = time.monotonic()
        if sig == signal.SIGTERM:
            c.api.send(signal.SIGTERM)  # graceful: in-flight requests finish
            c.api.popen.wait(15)
        else:
            c.api.kill_group(signal.SIGKILL)  # the master and its workers, mid-request
            c.api.popen.wait(5)
        c.start_api(wait=False)
        c.wait_api()
        downtimes.append(time.monotonic() - down_at)
    load.wait(120)
    drain(client, load.accepted().values(), timeout_s=60)
    row = check(
        client,
        f"6. API {sig.name} + restart under load",
        load.accepted(),
        read_executions(c.exec_dir),
        ambiguous=load.ambiguous(),
        refused=load.refused(),
        faults=f"{restarts} x API {sig.name} + restart",
    )
    row.recovery_s = max(downtimes)
    row.extra |= {"statuses": load.statuses()}
    report.record_row(row)
    unexpected = {k for k in load.statuses() if k != "202" and k != "503" and k[0].isdigit()}
    assert not unexpected, load.statuses()  # no 4xx/500: only successes or outage errors
    assert row.ok, row.problems
