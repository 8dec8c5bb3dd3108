"""Sanitising of upstream tool definitions, checked against the SDK's own strict validation."""

from __future__ import annotations

import pytest
from mcp_types.methods import validate_server_result
from pydantic import ValidationError

from lash_gateway._schema import (
    CleanSchema,
    RejectedTool,
    SanitizedTool,
    clean_input_schema,
    clean_output_schema,
    sanitize_tool,
)

# The SDK validates every pre-2026 version against the 2025-11-25 schema; 2026-07-28 has its own.
_VERSIONS = ("2025-11-25", "2026-07-28")
_MODERN_RESULT_FIELDS = {"cacheScope": "private", "resultType": "complete", "ttlMs": 0}


def sdk_accepts(tool: dict[str, object], version: str = "2025-11-25") -> bool:
    """Whether the SDK's strict tools/list validation accepts a list holding `tool`."""
    result: dict[str, object] = {"tools": [tool]}
    if version == "2026-07-28":
        result.update(_MODERN_RESULT_FIELDS)
    try:
        validate_server_result("tools/list", version, result)
    except ValidationError:
        return False
    return True


def wire(tool: SanitizedTool) -> dict[str, object]:
    """A sanitised tool back in wire shape, as the gateway re-exports it."""
    data: dict[str, object] = {"name": tool.name, "inputSchema": tool.input_schema}
    if tool.output_schema is not None:
        data["outputSchema"] = tool.output_schema
    if tool.title is not None:
        data["title"] = tool.title
    if tool.description is not None:
        data["description"] = tool.description
    if tool.annotations is not None:
        data["annotations"] = tool.annotations
    return data


def sanitized(raw: object) -> SanitizedTool:
    result = sanitize_tool(raw)
    assert isinstance(result, SanitizedTool), result
    return result


def rejected(raw: object) -> RejectedTool:
    result = sanitize_tool(raw)
    assert isinstance(result, RejectedTool), result
    return result


# Input schemas the SDK rejects as they are and accepts once repaired.
REPAIRABLE_INPUT_SCHEMAS: list[object] = [
    {},
    {"properties": {"q": {"type": "string"}}, "required": ["q"]},
    {"type": ["object", "null"], "properties": {}},
    {"type": None},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "anyOf": [{"required": ["a"]}, {"required": ["b"]}]},
]

# Input schemas the SDK rejects and that cannot be repaired without changing their meaning.
UNUSABLE_INPUT_SCHEMAS: list[object] = [
    {"type": "string"},
    {"type": "array", "items": {"type": "string"}},
    {"type": ["string", "null"]},
    {"type": "object", "properties": ["q"]},
    {"type": "object", "properties": {"q": "string"}},
    {"type": "object", "required": "q"},
    {"type": "object", "required": ["q", 1]},
    {"type": "object", "$schema": 7},
    ["type", "object"],
    "object",
]


@pytest.mark.parametrize("schema", REPAIRABLE_INPUT_SCHEMAS)
def test_repaired_input_schema_passes_sdk_validation_the_raw_one_fails(schema: object) -> None:
    raw = {"name": "t", "inputSchema": schema}
    assert not sdk_accepts(raw)
    tool = sanitized(raw)
    for version in _VERSIONS:
        assert sdk_accepts(wire(tool), version), version


@pytest.mark.parametrize("schema", UNUSABLE_INPUT_SCHEMAS)
def test_unusable_input_schema_rejects_the_tool_as_the_sdk_would(schema: object) -> None:
    raw = {"name": "t", "inputSchema": schema}
    assert not sdk_accepts(raw)
    result = rejected(raw)
    assert result.name == "t"
    assert result.reason.startswith("unusable inputSchema: ")


def test_missing_input_schema_becomes_an_empty_object_schema() -> None:
    assert sanitized({"name": "t"}).input_schema == {"type": "object"}
    assert sanitized({"name": "t", "inputSchema": None}).input_schema == {"type": "object"}


def test_schema_without_type_but_with_properties_gets_type_object() -> None:
    schema = {"properties": {"q": {"type": "string"}}, "required": ["q"]}
    assert clean_input_schema(schema) == CleanSchema({"type": "object", **schema})


def test_type_list_containing_object_is_narrowed_to_object() -> None:
    assert clean_input_schema({"type": ["null", "object"]}).schema == {"type": "object"}


def test_non_object_type_is_named_in_the_problem() -> None:
    result = clean_input_schema({"type": "string"})
    assert result.schema is None
    assert result.problem == "the schema's type must be 'object' (got 'string')"


def test_bad_property_schema_is_named_in_the_problem() -> None:
    result = clean_input_schema({"type": "object", "properties": {"ok": {}, "bad": 3}})
    assert result.problem == "the schema of property 'bad' must be an object or a boolean (got a number)"


def test_boolean_property_schemas_are_kept() -> None:
    schema = {"type": "object", "properties": {"anything": True, "nothing": False}}
    tool = sanitized({"name": "t", "inputSchema": schema})
    assert tool.input_schema == schema
    assert sdk_accepts(wire(tool))


def test_null_optional_keywords_are_dropped() -> None:
    """The SDK accepts these nulls, but LLM APIs given the schema may not."""
    schema = {"type": "object", "properties": None, "required": None, "$schema": None}
    assert clean_input_schema(schema).schema == {"type": "object"}


def test_unknown_keywords_pass_through_unchanged() -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 0}},
        "additionalProperties": False,
        "$defs": {"x": {"type": "string"}},
        "x-vendor": [1, 2],
    }
    assert clean_input_schema(schema).schema == schema


def test_cleaned_schema_is_a_deep_copy() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    cleaned = clean_input_schema(schema).schema
    assert cleaned is not None
    properties = cleaned["properties"]
    assert isinstance(properties, dict)
    properties["q"]["type"] = "integer"
    assert schema["properties"] == {"q": {"type": "string"}}


def test_output_schema_absent_null_or_empty_means_none_without_a_problem() -> None:
    raw: object
    for raw in (None, {}):
        assert clean_output_schema(raw) == CleanSchema(None)
    tool = sanitized({"name": "t", "inputSchema": {"type": "object"}, "outputSchema": {}})
    assert tool.output_schema is None
    assert tool.warnings == ()


def test_valid_output_schema_is_kept_and_repaired_like_input() -> None:
    tool = sanitized({"name": "t", "outputSchema": {"properties": {"n": {"type": "number"}}}})
    assert tool.output_schema == {"type": "object", "properties": {"n": {"type": "number"}}}
    for version in _VERSIONS:
        assert sdk_accepts(wire(tool), version)


@pytest.mark.parametrize("output_schema", [{"type": "array"}, {"type": "object", "properties": []}, "object"])
def test_invalid_output_schema_is_dropped_with_a_warning_and_the_tool_kept(output_schema: object) -> None:
    raw = {"name": "t", "inputSchema": {"type": "object"}, "outputSchema": output_schema}
    assert not sdk_accepts(raw)
    tool = sanitized(raw)
    assert tool.output_schema is None
    assert len(tool.warnings) == 1
    assert tool.warnings[0].startswith("outputSchema dropped: ")
    assert sdk_accepts(wire(tool))


def test_name_must_be_a_non_empty_string() -> None:
    assert rejected({"inputSchema": {"type": "object"}}).reason == "a tool's name must be a non-empty string (got null)"
    assert rejected({"name": ""}).reason == "a tool's name must be a non-empty string (got an empty string)"
    assert rejected({"name": 5}).name is None


def test_non_object_tool_is_rejected() -> None:
    assert rejected(["t"]).reason == "a tool definition must be a JSON object (got an array)"


def test_wrongly_typed_description_and_title_are_dropped_with_warnings() -> None:
    raw = {"name": "t", "inputSchema": {"type": "object"}, "description": 3, "title": ["x"]}
    assert not sdk_accepts(raw)
    tool = sanitized(raw)
    assert (tool.title, tool.description) == (None, None)
    assert tool.warnings == (
        "title dropped: must be a string (got an array)",
        "description dropped: must be a string (got a number)",
    )
    assert sdk_accepts(wire(tool))


def test_text_fields_and_annotations_are_carried_over() -> None:
    raw = {
        "name": "search",
        "title": "Search",
        "description": "Find things.",
        "inputSchema": {"type": "object"},
        "annotations": {"title": "Search docs", "readOnlyHint": True, "openWorldHint": False},
    }
    tool = sanitized(raw)
    assert (tool.title, tool.description) == ("Search", "Find things.")
    assert tool.annotations == {"title": "Search docs", "readOnlyHint": True, "openWorldHint": False}
    assert tool.warnings == ()


def test_annotations_keep_known_keys_of_the_right_type_only() -> None:
    raw = {"name": "t", "annotations": {"readOnlyHint": "yes", "destructiveHint": False, "custom": 1}}
    tool = sanitized(raw)
    assert tool.annotations == {"destructiveHint": False}
    assert tool.warnings == ("annotation readOnlyHint dropped: must be a bool (got a string)",)


def test_non_object_annotations_are_dropped() -> None:
    raw = {"name": "t", "annotations": "read-only"}
    assert not sdk_accepts({"inputSchema": {"type": "object"}, **raw})
    tool = sanitized(raw)
    assert tool.annotations is None
    assert sdk_accepts(wire(tool))


def test_snake_case_schema_keys_are_read_not_ignored() -> None:
    assert isinstance(sanitize_tool({"name": "t", "input_schema": {"type": "string"}}), RejectedTool)
    tool = sanitized({"name": "t", "input_schema": {"properties": {}}, "output_schema": {"type": "object"}})
    assert (tool.input_schema, tool.output_schema) == ({"type": "object", "properties": {}}, {"type": "object"})


def test_upstream_name_is_kept_verbatim() -> None:
    assert sanitized({"name": "Get File.v2"}).name == "Get File.v2"
