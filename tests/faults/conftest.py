"""Fixtures of the fault suite, and the switch between its fast subset and the full suite.

Tests marked ``faults_full`` run only with ``JOBSYS_FAULTS_FULL=1`` (set by
``python tests/faults/run.py``); the others are the fast subset that CI runs on
every commit, with smaller loads (see `cluster.scaled`). The invariant tables are
printed at the end of the session.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import report
from cluster import FULL, Cluster, MakeCluster, MakeRedis
from invariants import table

from jobsys.local.redis_server import RedisServer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if FULL:
        return
    skip = pytest.mark.skip(reason="full fault suite only: python tests/faults/run.py")
    for item in items:
        if "faults_full" in item.keywords:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if report.ROWS:
        terminalreporter.section("fault suite: invariants")
        terminalreporter.write_line(table(report.ROWS))
    for fig in report.FIGURES:
        terminalreporter.write_line(f"figure {fig}")


@pytest.fixture
def make_redis(tmp_path: Path) -> Iterator[MakeRedis]:
    """Start private Redis servers (AOF on unless told otherwise); stop them at the end."""
    servers: list[RedisServer] = []

    def make(name: str = "redis", **kwargs: object) -> RedisServer:
        kwargs.setdefault("appendonly", True)
        server = RedisServer(tmp_path / name, supervised=True, **kwargs)  # type: ignore[arg-type]
        servers.append(server)
        return server.start()

    yield make
    for s in servers:
        s.kill()


@pytest.fixture
def make_cluster(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[MakeCluster]:
    """Build `Cluster`s; kill their processes at the end and show their logs on failure."""
    clusters: list[Cluster] = []

    def make(worker_url: str, api_url: str | None = None, **kwargs: object) -> Cluster:
        c = Cluster(
            tmp_path / f"cluster{len(clusters)}", worker_url, api_url or worker_url, **kwargs
        )  # type: ignore[arg-type]
        clusters.append(c)
        return c

    yield make
    failed = getattr(request.node, "rep_call", None)
    for c in clusters:
        c.close()
        if failed is not None and failed.failed:
            print(c.log_tails())


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    rep = yield
    setattr(item, f"rep_{rep.when}", rep)
    return rep
