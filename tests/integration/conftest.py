"""Fixtures of the integration tests: the API app in-process, on the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from apps import close_app
from flask import Flask
from flask.testing import FlaskClient
from redis_modes import CLUSTER_MODE

from jobsys.api.app import create_app
from jobsys.settings import Settings

HERE = Path(__file__).parent
#: The test files of what Cluster mode refuses today (a 400): skipped when the tests run
#: on a cluster (JOBSYS_TEST_REDIS=cluster). Remove a name once its feature runs there.
CLUSTER_REFUSED_FILES = {"test_dependencies.py", "test_batches.py", "test_workflows.py"}
CLUSTER_REFUSED_REASON = (
    "Cluster mode refuses dependencies, batches and workflows (docs/workflows.md#redis-cluster)"
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """On a cluster, skip the files of `CLUSTER_REFUSED_FILES`."""
    if not CLUSTER_MODE:
        return
    skip = pytest.mark.skip(reason=CLUSTER_REFUSED_REASON)
    for item in items:
        if item.path.parent == HERE and item.path.name in CLUSTER_REFUSED_FILES:
            item.add_marker(skip)


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
