"""Sanitising of upstream tool definitions before they are cached, re-exported or handed to the SDK.

The SDK validates every tools/list result strictly against the 2025-11-25 schema, for all protocol
versions before 2026-07-28: one tool whose `inputSchema` is `{}` or `{"type": "string"}` makes the
whole list fail, on our client side and again on our server side when it is re-exported. So each
tool is checked on its own, repaired where the repair keeps its meaning, and rejected (input schema)
or stripped of the bad part (everything else) where it does not. The checks mirror the SDK's models
(`mcp_types._v2025_11_25.InputSchema` / `OutputSchema`, which the 2026-07-28 ones only relax):

- `type` must be the string "object" at the root. Tool arguments are always a JSON object, so a
  missing or null `type` (including `{}` and no schema at all) becomes "object", and a type list that
  contains "object" (`["object", "null"]`) becomes "object". Any other type is unusable.
- `properties`, when present, must map names to schemas (objects) or booleans; `required` must be
  a list of strings; `$schema` must be a string. A null value of these is dropped. Nothing else is
  checked: any other keyword passes through.
- `outputSchema` follows the same rules, but is optional: absent, null and `{}` mean none, and an
  invalid one is dropped with a warning while the tool is kept. Output schemas that only 2026-07-28
  allows (`{"type": "array"}`) are dropped too, since legacy clients get the same definitions.
- the tool `name` must be a non-empty string; `title` and `description` must be strings or are
  dropped; `annotations` keep their known keys of the right type (a string `title`, boolean hints).
  `icons`, `execution` and `_meta` are not carried over.

Everything here is pure; callers log the reasons and warnings.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

__all__ = [
    "CleanSchema",
    "RejectedTool",
    "SanitizedTool",
    "clean_input_schema",
    "clean_output_schema",
    "json_kind",
    "sanitize_tool",
]

_ANNOTATION_TYPES: Final[Mapping[str, type]] = {
    "title": str,
    "readOnlyHint": bool,
    "destructiveHint": bool,
    "idempotentHint": bool,
    "openWorldHint": bool,
}
"""The `ToolAnnotations` fields of MCP 2025-11-25 and the JSON type each must have."""

_OPTIONAL_KEYS: Final = ("properties", "required", "$schema")
"""Schema keys the SDK validates, all of which may be null (and are then dropped)."""


@dataclass(frozen=True, slots=True)
class CleanSchema:
    """The result of cleaning one schema: a fresh schema the caller owns, or why there is none."""

    schema: dict[str, object] | None
    """The cleaned schema; None when it is unusable, or (output schemas) absent."""
    problem: str | None = None
    """Why the schema was unusable; None when `schema` is set or there was no schema at all."""


@dataclass(frozen=True, slots=True)
class SanitizedTool:
    """An upstream tool the SDK's strict validation accepts."""

    name: str
    """The name as the upstream lists it; calls upstream use it unchanged."""
    input_schema: dict[str, object]
    output_schema: dict[str, object] | None = None
    title: str | None = None
    description: str | None = None
    annotations: dict[str, object] | None = None
    """MCP tool annotations with their wire (camelCase) keys."""
    warnings: tuple[str, ...] = ()
    """What was dropped from the upstream definition, one sentence each, for the caller to log."""


@dataclass(frozen=True, slots=True)
class RejectedTool:
    """An upstream tool that cannot be offered."""

    name: str | None
    """The tool's name if it has a usable one."""
    reason: str


def clean_input_schema(raw: object) -> CleanSchema:
    """Clean a tool's `inputSchema`; `schema` is None (and `problem` set) when it is unusable.

    A missing schema (None) and `{}` become `{"type": "object"}`.
    """
    if raw is None:
        return CleanSchema({"type": "object"})
    return _clean(raw)


def clean_output_schema(raw: object) -> CleanSchema:
    """Clean a tool's `outputSchema`; `schema` is None when there is none or it is unusable.

    None and `{}` mean "no output schema" (no `problem`); an unusable schema has a `problem`.
    """
    if raw is None or (isinstance(raw, Mapping) and not raw):
        return CleanSchema(None)
    return _clean(raw)


def sanitize_tool(raw: object) -> SanitizedTool | RejectedTool:
    """Check one tool definition as it arrives on the wire (a JSON object with camelCase keys).

    `input_schema` / `output_schema` spelled in snake case are accepted too, for definitions dumped
    from SDK models without aliases. See the module docstring for the rules.
    """
    if not isinstance(raw, Mapping):
        return RejectedTool(None, f"a tool definition must be a JSON object (got {json_kind(raw)})")
    name = raw.get("name")
    if not isinstance(name, str) or not name:
        shown = "an empty string" if name == "" else json_kind(name)
        return RejectedTool(None, f"a tool's name must be a non-empty string (got {shown})")
    input_schema = clean_input_schema(_field(raw, "inputSchema", "input_schema"))
    if input_schema.schema is None:
        return RejectedTool(name, f"unusable inputSchema: {input_schema.problem}")
    warnings: list[str] = []
    output_schema = clean_output_schema(_field(raw, "outputSchema", "output_schema"))
    if output_schema.problem is not None:
        warnings.append(f"outputSchema dropped: {output_schema.problem}")
    title = _optional_string(raw, "title", warnings)
    description = _optional_string(raw, "description", warnings)
    annotations = _annotations(raw.get("annotations"), warnings)
    return SanitizedTool(
        name=name,
        input_schema=input_schema.schema,
        output_schema=output_schema.schema,
        title=title,
        description=description,
        annotations=annotations,
        warnings=tuple(warnings),
    )


def _clean(raw: object) -> CleanSchema:
    if not isinstance(raw, Mapping):
        return CleanSchema(None, f"the schema must be a JSON object (got {json_kind(raw)})")
    schema_type = raw.get("type")
    if schema_type is None:
        schema_type = "object"
    if isinstance(schema_type, list) and "object" in schema_type:
        schema_type = "object"
    if schema_type != "object":
        return CleanSchema(None, f"the schema's type must be 'object' (got {_shown(schema_type)})")
    # A deep copy: the caller owns the result, and the raw definition may be shared or reused.
    schema: dict[str, object] = {"type": "object"}
    schema.update((str(key), copy.deepcopy(value)) for key, value in raw.items() if key != "type")
    for key in _OPTIONAL_KEYS:
        if key in schema and schema[key] is None:
            del schema[key]
    problem = _problem(schema)
    return CleanSchema(None, problem) if problem else CleanSchema(schema)


def _problem(schema: Mapping[str, object]) -> str | None:
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, Mapping):
            return f"'properties' must be a JSON object (got {json_kind(properties)})"
        for prop, prop_schema in properties.items():
            if not isinstance(prop_schema, Mapping | bool):
                return f"the schema of property {prop!r} must be an object or a boolean (got {json_kind(prop_schema)})"
    required = schema.get("required")
    if required is not None and (not isinstance(required, list) or not all(isinstance(item, str) for item in required)):
        return "'required' must be an array of strings"
    dialect = schema.get("$schema")
    if dialect is not None and not isinstance(dialect, str):
        return f"'$schema' must be a string (got {json_kind(dialect)})"
    return None


def _field(raw: Mapping[object, object], wire_key: str, python_key: str) -> object:
    return raw[wire_key] if wire_key in raw else raw.get(python_key)


def _optional_string(raw: Mapping[object, object], key: str, warnings: list[str]) -> str | None:
    value = raw.get(key)
    if value is None or isinstance(value, str):
        return value
    warnings.append(f"{key} dropped: must be a string (got {json_kind(value)})")
    return None


def _annotations(raw: object, warnings: list[str]) -> dict[str, object] | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        warnings.append(f"annotations dropped: must be a JSON object (got {json_kind(raw)})")
        return None
    kept: dict[str, object] = {}
    for key, expected in _ANNOTATION_TYPES.items():
        value = raw.get(key)
        if value is None:
            continue
        if isinstance(value, expected):
            kept[key] = value
        else:
            warnings.append(f"annotation {key} dropped: must be a {expected.__name__} (got {json_kind(value)})")
    return kept or None


def json_kind(value: object) -> str:
    """The JSON type of `value` ("an object", "a string"...), for messages that must not show it."""
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "null" if value is None else type(value).__name__


def _shown(value: object) -> str:
    """A short string or list of strings quoted as is; anything else by its kind."""
    if isinstance(value, str) and len(value) <= 40:
        return repr(value)
    if isinstance(value, list) and all(isinstance(item, str) for item in value) and len(value) <= 5:
        return repr(value)
    return json_kind(value)
