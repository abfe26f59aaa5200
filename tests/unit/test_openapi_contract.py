"""The OpenAPI document keeps the contract it had when its schemas were written by
hand (tests/data/openapi_baseline.json, made by tests/openapi_outline.py from the
document of commit 219e00b): every path, method, status, parameter, request and
response schema, security requirement, and the fields of every schema named then.
Schemas may gain components (a nested object given a name of its own); none of the
old ones may lose or gain a field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_outline import outline

from jobsys.api.app import create_app
from jobsys.api.openapi import document
from jobsys.settings import Settings

BASELINE = Path(__file__).parent.parent / "data" / "openapi_baseline.json"


@pytest.mark.parametrize("mode", ["open", "auth"])
def test_the_document_keeps_every_operation_and_schema_field(mode: str) -> None:
    before: dict[str, Any] = json.loads(BASELINE.read_text())[mode]
    old_schemas = sorted({name.split(".")[0].split("|")[0] for name in before["schemas"]})
    app = create_app(Settings.from_env({}))
    now = outline(document(app, auth_enabled=mode == "auth"), old_schemas)
    assert now["operations"] == before["operations"]
    assert now["schemas"] == before["schemas"]
