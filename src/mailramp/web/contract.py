"""A JSON body is first checked against the API document itself, for its JSON types (and
no text of a request may hold a NUL character: PostgreSQL cannot store one).

Pydantic, which reads the bodies after, is lenient where JSON Schema is exact: it takes `0`
and `"yes"` for `true`, `"5"` for `5`, `0` for a moment (1970). A client that reads the
document must find the server refusing what the document refuses, so before an operation
reads its body, the body's types are checked against the operation's request schema as
published at `/openapi.json`: every `type`, through properties, items and alternatives
(`types_only`). The other rules (lengths, ranges, patterns, formats) are declared in the
same document and enforced by the models, whose messages say more than a schema's would.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from mailramp.errors import ValidationError

KEPT = frozenset({"type", "properties", "items", "prefixItems", "additionalProperties", "$ref"})
ALTERNATIVES = ("anyOf", "oneOf", "allOf")
JSON_TYPES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "null": "null",
}


def types_only(schema: Any) -> Any:
    """`schema` with only what says which JSON types go where: `type`, `properties`,
    `items`, `additionalProperties`, references and alternatives (`oneOf` read as
    `anyOf`: without their other rules, two alternatives may both fit)."""
    if not isinstance(schema, dict):
        return schema
    kept: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "properties":
            kept[key] = {name: types_only(inner) for name, inner in value.items()}
        elif key in ("items", "additionalProperties"):
            kept[key] = types_only(value)
        elif key == "prefixItems":
            kept[key] = [types_only(inner) for inner in value]
        elif key in ALTERNATIVES:
            kept.setdefault("allOf" if key == "allOf" else "anyOf", []).extend(
                types_only(inner) for inner in value
            )
        elif key in KEPT:
            kept[key] = value
    return kept


def body_validators(document: dict[str, Any]) -> dict[str, Draft202012Validator]:
    """A types-only validator for each operation's JSON request body, by `operationId`."""
    components = {
        name: types_only(schema)
        for name, schema in document.get("components", {}).get("schemas", {}).items()
    }
    validators: dict[str, Draft202012Validator] = {}
    for operations in document["paths"].values():
        for operation in operations.values():
            content = operation.get("requestBody", {}).get("content", {})
            schema = content.get("application/json", {}).get("schema")
            if schema is not None:
                root = {**types_only(schema), "components": {"schemas": components}}
                validators[operation["operationId"]] = Draft202012Validator(root)
    return validators


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return "an array" if isinstance(value, list) else "an object"


def check_types(validator: Draft202012Validator, body: Any) -> None:
    """Raise ValidationError naming the first field whose JSON type the document refuses."""
    error = best_match(validator.iter_errors(body))
    if error is None:
        return
    field = ".".join(str(part) for part in error.absolute_path) or "body"
    wanted: list[str] = []
    if error.validator == "type":
        value = error.validator_value
        wanted = [str(name) for name in (value if isinstance(value, list) else [value])]
    elif error.validator == "anyOf" and all(
        inner.validator == "type" and not inner.relative_path for inner in error.context or ()
    ):  # a field that may be of several types (`null` for one left as it is)
        wanted = [str(inner.validator_value) for inner in error.context or ()]
    if wanted:
        expected = " or ".join(JSON_TYPES.get(name, name) for name in wanted)
        raise ValidationError(field, f"must be {expected}, not {_json_type(error.instance)}")
    raise ValidationError(field, error.message)


def nul_at(value: Any, path: str = "") -> str | None:
    """Where in a JSON value a text holds U+0000 (NUL), as a field path, or None."""
    if isinstance(value, str):
        return (path or "body") if "\x00" in value else None
    items: Any = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list)
        else ()
    )
    for key, inner in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return here
        found = nul_at(inner, here)
        if found is not None:
            return found
    return None


NUL_REFUSED = "contains U+0000 (NUL), which no text may hold (PostgreSQL cannot store it)"


async def body_as_documented(request: Request) -> None:
    """A dependency of the API's routes: refuse a NUL character in a query parameter or a
    JSON body, and a JSON body whose types the operation's published schema refuses (422
    naming the field), before the route reads them."""
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            raise ValidationError(name.replace("\x00", ""), NUL_REFUSED)
    if "json" not in request.headers.get("content-type", "") or not await request.body():
        return
    try:
        parsed = await request.json()
    except ValueError:
        return  # not JSON: an operation that reads a body says so (400/422); others ignore it
    if (field := nul_at(parsed)) is not None:
        raise ValidationError(field, NUL_REFUSED)
    state = request.app.state
    if not hasattr(state, "body_validators"):
        state.body_validators = body_validators(request.app.openapi())
    validator = state.body_validators.get(getattr(request.scope.get("route"), "name", None))
    if validator is not None:
        check_types(validator, parsed)
