"""The OpenAPI 3.1 document served at ``GET /openapi.json``.

Every schema is generated from the model that validates the request
(`jobsys.api.validation`) or shapes the answer (`jobsys.api.schemas`,
`jobsys.models.Job`); the query parameters from the query models; the paths and
methods from the app's url map. What no model knows is written next to each view
(`jobsys.api.operations.operation`: statuses, headers; its docstring is the summary
and description); the security requirements come from the access table of
api/auth.py. Tests check that it names every route and status the API answers with,
since the API is fuzzed against this document.
"""

from __future__ import annotations

import inspect
import re
from typing import TYPE_CHECKING, Any

from pydantic import TypeAdapter

import jobsys
from jobsys.api import schemas, workflow_models
from jobsys.api.auth import Access, access_for
from jobsys.api.errors import ERROR_HEADERS, ERRORS
from jobsys.api.headers import REQUEST_ID_HEADER
from jobsys.api.operations import ATTR, REF, Operation
from jobsys.api.validation import (
    BatchRequest,
    JobPatch,
    LimitsRequest,
    ScheduleRequest,
    Selection,
    SubmitRequest,
)
from jobsys.api.webhook_models import WebhookRequest
from jobsys.models import Job

if TYPE_CHECKING:
    from flask import Flask

_REQUEST_ID = {"X-Request-ID": {"$ref": "#/components/headers/X-Request-ID"}}

#: The models of components.schemas, each under its name (and its nested models under theirs).
_MODELS: dict[str, Any] = {
    m.__name__: m
    for m in (
        SubmitRequest,
        BatchRequest,
        ScheduleRequest,
        JobPatch,
        WebhookRequest,
        LimitsRequest,
        Job,
        *schemas.ANSWERS,
    )
} | {"DeadLetterSelection": Selection}
# workflows (docs/workflows.md)
_MODELS |= {m.__name__: m for m in workflow_models.MODELS}

#: Every operation may answer these.
_COMMON = {"405": "MethodNotAllowed", "500": "InternalError"}


def _json(schema_name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=schema_name)}}}


def _operation(route: Operation, doc: str | None) -> dict[str, Any]:
    responses: dict[str, Any] = {}
    for status, (description, schema) in route.ok.items():
        ok: dict[str, Any] = {"description": description, "headers": dict(_REQUEST_ID)}
        if schema is not None:
            ok["content"] = _json(schema)
        if not responses:  # the first success response
            ok["headers"] |= route.extra.get("headers", {})
            ok |= {k: v for k, v in route.extra.items() if k != "headers"}
        responses[status] = ok
    for status, name in (route.errors | _COMMON).items():
        responses[status] = {"$ref": f"#/components/responses/{name}"}
    summary, _, description = inspect.cleandoc(doc or "").partition("\n")
    op: dict[str, Any] = {"operationId": route.operation_id, "summary": summary}
    description = " ".join([*description.split(), *(route.shared or "").split()])
    if description:
        op["description"] = description
    if route.params:
        op["parameters"] = list(route.params)
    if route.body is not None:
        op["requestBody"] = {"required": True, "content": _json(route.body)}
    return op | {"responses": responses}


def _secure(paths: dict[str, Any], auth_enabled: bool) -> dict[str, Any]:
    """Give each operation its security requirement, its 401/403 answers (from the
    access table of api/auth.py, the one the API enforces) and the answers of
    api/guards.py: 400 for a Host not allowed (every route but /health, in either mode:
    JOBSYS_ALLOWED_HOSTS turns the check on with tokens too) and, with tokens, 429
    for an address locked out after failed tokens (every route)."""
    # Open mode: the token is optional (the empty requirement), which is what the API does.
    required: list[dict[str, list[str]]] = [{"bearerAuth": []}]
    if not auth_enabled:
        required.append({})
    for path, ops in paths.items():
        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        for method, op in ops.items():
            access = access_for(method.upper(), rule)
            if rule != "/health":
                op["responses"].setdefault("400", {"$ref": "#/components/responses/HostNotAllowed"})
            if auth_enabled:
                op["responses"]["429"] = {"$ref": "#/components/responses/TooManyAttempts"}
            if access is Access.PUBLIC:
                op["security"] = []
                continue
            op["security"] = required
            op["responses"]["401"] = {"$ref": "#/components/responses/Unauthorized"}
            if access is Access.ADMIN:
                op["responses"]["403"] = {"$ref": "#/components/responses/Forbidden"}
    return paths


def _schemas() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, model in _MODELS.items():
        schema = TypeAdapter(model).json_schema(ref_template=REF)
        out |= schema.pop("$defs", {})
        out[name] = schema
    return out


def _error_response(name: str) -> dict[str, Any]:
    return {
        "description": ERRORS[name],
        "headers": _REQUEST_ID | ERROR_HEADERS.get(name, {}),
        "content": _json("Error"),
    }


def document(app: Flask, auth_enabled: bool = False) -> dict[str, Any]:
    """The whole OpenAPI document of `app`'s documented routes (built once per app
    and mode; treat it as read-only).

    Args:
        app: the app whose url map and views are described.
        auth_enabled: whether the API has tokens configured (a bearer token is then
            required rather than optional).
    """
    built: dict[bool, dict[str, Any]] = app.extensions.setdefault(ATTR, {})
    if auth_enabled not in built:
        built[auth_enabled] = _document(app, auth_enabled)
    return built[auth_enabled]


def _document(app: Flask, auth_enabled: bool) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        route: Operation | None = getattr(view, ATTR, None)
        if route is None:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(route, view.__doc__)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "jobsys",
            "version": jobsys.__version__,
            "description": (
                "Submit jobs and read their state. Every error is JSON "
                '`{"error": ..., "detail": ...}`; every response carries X-Request-ID.'
            ),
        },
        "paths": _secure(paths, auth_enabled),
        "components": {
            "schemas": _schemas(),
            "responses": {name: _error_response(name) for name in ERRORS},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A producer token (JOBSYS_PRODUCER_TOKENS) may submit and make every "
                        "GET; an admin token (JOBSYS_ADMIN_TOKENS) may do anything. With no "
                        "token configured the API is open and the header is ignored."
                    ),
                }
            },
            "headers": {"X-Request-ID": REQUEST_ID_HEADER},
        },
    }
