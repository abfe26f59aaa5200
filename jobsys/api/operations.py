"""What the OpenAPI document says of each operation beyond its schemas, written
next to the view it describes (`operation`), and the pieces several share.

`jobsys.api.openapi` builds the document from the app's routes and these.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from jobsys.api.headers import param

#: Where component schemas are referenced.
REF = "#/components/schemas/{model}"
#: The attribute of a view that holds its `Operation`.
ATTR = "openapi_operation"

#: Error statuses of operations that take a JSON body, submit, or read Redis.
WRITE = {"400": "BadRequest", "413": "PayloadTooLarge", "415": "UnsupportedMediaType"}
SUBMIT = {**WRITE, "409": "IdempotencyConflict", "503": "StoreUnavailable", "507": "StoreFull"}
READ = {"503": "StoreUnavailable"}

REPEAT = "A repeat of an earlier request with the same Idempotency-Key: nothing new was queued."
LISTING = (
    "Newest first: by the time each job entered its current status, ties by id. Paging "
    "with `cursor` is stable while jobs move. The status and queue filters are exact; "
    "the task filter examines at most 2000 entries per request, so a page may hold fewer "
    "jobs than `limit` (even none) and still have a `next_cursor`: keep following it "
    "until it is null."
)


def query_params(model: type[BaseModel]) -> tuple[dict[str, Any], ...]:
    """One optional query parameter per field of `model`."""
    props = model.model_json_schema(ref_template=REF)["properties"]
    return tuple(
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": schema.pop("description"),
            "schema": {k: v for k, v in schema.items() if k != "title"},
        }
        for name, schema in props.items()
    )


@dataclass(frozen=True)
class Operation:
    """What the document says of one operation beyond its schemas and its view's
    docstring (whose first line is the summary, the rest the description)."""

    operation_id: str
    #: Success statuses: (description, component schema; None: no JSON body).
    ok: dict[str, tuple[str, str | None]]
    #: Error statuses: the name of the response in `ERRORS`.
    errors: dict[str, str] = field(default_factory=dict)
    #: The component schema of the JSON body, if any.
    body: str | None = None
    params: tuple[dict[str, Any], ...] = ()
    #: More of the first success response: headers, links, other content.
    extra: dict[str, Any] = field(default_factory=dict)
    #: Text shared by several operations, after the docstring's description.
    shared: str | None = None


V = TypeVar("V", bound=Callable[..., Any])


def operation(
    operation_id: str,
    ok: dict[str, tuple[str, str | None]],
    errors: dict[str, str] | None = None,
    body: str | None = None,
    params: tuple[dict[str, Any], ...] = (),
    extra: dict[str, Any] | None = None,
    shared: str | None = None,
) -> Callable[[V], V]:
    """Document the view it decorates (under its route decorator): the document
    lists every route of the app whose view carries an `Operation`."""

    def mark(view: V) -> V:
        op = Operation(operation_id, ok, errors or {}, body, params, extra or {}, shared)
        setattr(view, ATTR, op)
        return view

    return mark


JOB_ID = param("path", "job_id", None, type="string", format="uuid")
GET_JOB = {"operationId": "getJob", "parameters": {"job_id": "$response.body#/id"}}
