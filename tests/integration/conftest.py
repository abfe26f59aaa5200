"""Fixtures of the integration tests: the API app in-process, on the session's Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from apps import close_app
from flask import Flask
from flask.testing import FlaskClient

from jobsys.api.app import create_app
from jobsys.settings import Settings


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
