"""Tool values: `ToolDefinition` constructors, `ToolResult` success, failure and content parts."""

from __future__ import annotations

import json

from pydantic import BaseModel, Field

from lash_core import (
    AudioPart,
    ContentPart,
    FailureClass,
    ImagePart,
    ResourceLinkPart,
    ResourcePart,
    TextPart,
    ToolDefinition,
    ToolFailure,
    ToolResult,
)


class SearchInput(BaseModel):
    query: str = Field(description="what to look for")
    limit: int = 10


class SearchOutput(BaseModel):
    hits: list[str]


def test_raw_definition_keeps_schemas_and_copies_the_input_schema() -> None:
    schema = {"type": "object", "properties": {"q": {"type": "string"}}}
    output = {"type": "object", "properties": {"n": {"type": "integer"}}}

    definition = ToolDefinition.raw("search", "Search the docs", schema, output)
    schema["properties"] = {}

    assert definition.name == "search"
    assert definition.description == "Search the docs"
    assert definition.input_schema == {"type": "object", "properties": {"q": {"type": "string"}}}
    assert definition.output_schema == output
    assert definition.title is None and definition.annotations is None


def test_raw_definition_treats_an_empty_output_schema_as_none() -> None:
    assert ToolDefinition.raw("t", "", {"type": "object"}, {}).output_schema is None
    assert ToolDefinition.raw("t", "", {"type": "object"}).output_schema is None


def test_definition_from_model_uses_the_models_json_schemas() -> None:
    definition = ToolDefinition.from_model("search", "Search", SearchInput, SearchOutput)

    assert definition.input_schema == SearchInput.model_json_schema()
    assert definition.input_schema["required"] == ["query"]
    assert definition.input_schema["properties"]["query"]["description"] == "what to look for"
    assert definition.output_schema == SearchOutput.model_json_schema()


def test_definition_from_model_without_output_model_has_no_output_schema() -> None:
    assert ToolDefinition.from_model("search", "Search", SearchInput).output_schema is None


def test_ok_with_a_string_is_one_text_part_without_structured_content() -> None:
    result = ToolResult.ok("done")

    assert result.content == (TextPart("done"),)
    assert result.structured is None
    assert result.value == "done"
    assert not result.is_error
    assert result.failure is None and result.message is None and result.code is None and result.failure_class is None


def test_ok_with_an_object_is_json_text_and_structured_content() -> None:
    result = ToolResult.ok({"sum": 3, "name": "ü"})

    assert json.loads(result.text()) == {"sum": 3, "name": "ü"}
    assert "ü" in result.text()  # ensure_ascii=False: the model reads the character, not an escape
    assert result.structured == {"sum": 3, "name": "ü"}
    assert result.value == {"sum": 3, "name": "ü"}


def test_ok_with_a_list_is_json_text_without_structured_content() -> None:
    result = ToolResult.ok([1, 2])

    assert result.text() == "[1, 2]"
    assert result.structured is None
    assert result.value == [1, 2]


def test_err_carries_class_code_and_message_and_shows_the_message_as_text() -> None:
    result = ToolResult.err("disk full", failure_class=FailureClass.UNAVAILABLE, code="disk_full")

    assert result.is_error
    assert result.failure == ToolFailure(FailureClass.UNAVAILABLE, "disk_full", "disk full")
    assert result.failure_class is FailureClass.UNAVAILABLE
    assert result.code == "disk_full"
    assert result.message == "disk full"
    assert result.content == (TextPart("disk full"),)


def test_err_defaults_to_a_tool_error() -> None:
    result = ToolResult.err("boom")

    assert result.failure_class is FailureClass.TOOL_ERROR
    assert result.code == "tool_error"


def test_err_with_explicit_content_shows_that_content() -> None:
    parts: list[ContentPart] = [TextPart("see the log"), ResourceLinkPart("file:///log", "log")]

    result = ToolResult.err("failed", content=parts)

    assert result.content == tuple(parts)
    assert result.message == "failed"


def test_from_parts_keeps_every_kind_of_content_part() -> None:
    parts: list[ContentPart] = [
        TextPart("a"),
        ImagePart("aW1n", "image/png"),
        AudioPart("YXVk", "audio/wav"),
        ResourcePart("file:///x.txt", "text/plain", text="inside"),
        ResourcePart("file:///x.bin", "application/octet-stream", blob="AAAA"),
        ResourceLinkPart("file:///y", "y", description="a link"),
        TextPart("b"),
    ]

    result = ToolResult.from_parts(parts, meta={"trace": "t1"})

    assert result.content == tuple(parts)
    assert [p.type for p in result.content] == [
        "text",
        "image",
        "audio",
        "resource",
        "resource",
        "resource_link",
        "text",
    ]
    assert result.meta == {"trace": "t1"}
    assert result.text() == "a\nb"  # only text parts: what a text-only model reads
    assert result.value == "a\nb"
    assert not result.is_error


def test_from_parts_value_is_the_structured_content_when_given() -> None:
    result = ToolResult.from_parts([TextPart("3")], structured={"n": 3})

    assert result.value == {"n": 3}
    assert result.structured == {"n": 3}


def test_from_parts_with_a_failure_is_an_error() -> None:
    failure = ToolFailure(FailureClass.TIMEOUT, "upstream_timeout", "no answer within 5s")

    result = ToolResult.from_parts([TextPart("no answer within 5s")], failure=failure)

    assert result.is_error
    assert result.failure_class is FailureClass.TIMEOUT
    assert result.code == "upstream_timeout"
