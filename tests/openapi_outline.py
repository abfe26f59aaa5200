"""What of the OpenAPI document is contract: every operation's statuses, parameters,
request and response schemas and security, and the fields of every schema."""

from __future__ import annotations

from typing import Any


def resolve(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        target: Any = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _schema_name(node: Any) -> str | None:
    if isinstance(node, dict) and "$ref" in node:
        return str(node["$ref"]).rsplit("/", 1)[-1]
    return None


def _content(doc: dict[str, Any], holder: dict[str, Any]) -> dict[str, str | None]:
    return {
        media: _schema_name(value.get("schema"))
        for media, value in resolve(doc, holder).get("content", {}).items()
    }


def _fields(doc: dict[str, Any], node: Any, at: str, out: dict[str, Any], seen: int = 0) -> None:
    node = resolve(doc, node)
    if not isinstance(node, dict) or seen > 8:
        return
    if "properties" in node:
        out[at] = {
            "properties": sorted(node["properties"]),
            "required": sorted(node.get("required", [])),
        }
        for name, sub in node["properties"].items():
            _fields(doc, sub, f"{at}.{name}", out, seen + 1)
    if "items" in node:
        _fields(doc, node["items"], f"{at}[]", out, seen + 1)
    for branch in node.get("anyOf", []) + node.get("oneOf", []):
        resolved = resolve(doc, branch)
        if "properties" in resolved:
            _fields(doc, resolved, f"{at}|{','.join(sorted(resolved['properties']))}", out, seen)
        else:
            _fields(doc, resolved, at, out, seen + 1)


def outline(doc: dict[str, Any], schemas: list[str] | None = None) -> dict[str, Any]:
    """The contract of `doc`; `schemas` limits the components outlined (default: all)."""
    operations: dict[str, Any] = {}
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            params = [resolve(doc, p) for p in op.get("parameters", [])]
            body = op.get("requestBody")
            operations[f"{method.upper()} {path}"] = {
                "operationId": op["operationId"],
                "parameters": sorted(f"{p['in']}:{p['name']}:{p['required']}" for p in params),
                "request": _content(doc, body) if body is not None else None,
                "responses": {s: _content(doc, r) for s, r in sorted(op["responses"].items())},
                "security": op["security"],
            }
    names = sorted(doc["components"]["schemas"]) if schemas is None else schemas
    fields: dict[str, Any] = {}
    for name in names:
        _fields(doc, doc["components"]["schemas"][name], name, fields)
    return {"operations": operations, "schemas": fields}
