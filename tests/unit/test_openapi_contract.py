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


#: Names of pydantic's constraints, not JSON Schema's: one in the document means a
#: bound that clients and fuzzers cannot see (JSON Schema says minimum, maximum,
#: exclusiveMinimum, exclusiveMaximum, minLength, maxLength, minItems, maxItems).
NOT_JSON_SCHEMA = {"ge", "le", "gt", "lt", "min_length", "max_length", "multiple_of"}


def _keywords(node: Any, path: str = "") -> list[str]:
    """The paths of the keywords in `node` named as pydantic, not JSON Schema, names
    them (property names under ``properties`` are names, not keywords)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in NOT_JSON_SCHEMA and not path.endswith("/properties"):
                found.append(f"{path}/{key}")
            found += _keywords(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _keywords(value, f"{path}/{i}")
    return found


def test_every_bound_is_written_as_json_schema_writes_it() -> None:
    """A constraint on an annotated type inside ``X | None`` once came out as pydantic's
    own ``ge``/``le`` (LimitsRequest.concurrency), which schemathesis read as no bound."""
    app = create_app(Settings.from_env({}))
    assert _keywords(document(app, auth_enabled=True)) == []
