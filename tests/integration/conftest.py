"""Fixtures of the integration tests: the API app in-process, on the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import close_app
from flask import Flask
from flask.testing import FlaskClient
from redis_modes import REDIS_MODE

from jobsys.api.app import create_app
from jobsys.settings import Settings

HERE = Path(__file__).parent

#: The test files that start their own servers (a Sentinel group, a cluster) whatever
#: the mode: they run in the single-Redis pass only, as running them again through
#: Sentinel or on a cluster would test the same thing twice more.
OWN_SERVERS_FILES = {
    "test_cluster_wait.py",
    "test_cluster_relay.py",
    "test_wait_replicas_cluster.py",
    "test_sentinel_failover.py",
    "test_sentinel_follow.py",
    "test_wait_replicas.py",
}
OWN_SERVERS_REASON = "starts its own servers: the single-Redis pass runs it"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Outside single mode, skip the files of `OWN_SERVERS_FILES`."""
    own = pytest.mark.skip(reason=OWN_SERVERS_REASON)
    for item in items:
        if item.path.parent != HERE:
            continue
        if REDIS_MODE != "single" and item.path.name in OWN_SERVERS_FILES:
            item.add_marker(own)


@pytest.fixture
def app_settings(settings: Settings) -> Settings:
    """The settings `app` is made with; a module overrides this fixture to change them."""
    return settings


@pytest.fixture
def app(app_settings: Settings) -> Iterator[Flask]:
    app = create_app(app_settings)
    yield app
    close_app(app)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
