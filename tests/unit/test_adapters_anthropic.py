"""`adapters.anthropic`: a session's tools as Messages API tool definitions, and `tool_use` blocks run back.

What the adapter produces is validated against the official SDK's typed request params (TypedDicts, checked with
pydantic and compared back so an unknown key cannot slip through); recorded responses are fed in as the SDK's
typed `Message` and as plain dicts.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import anthropic.types as at
import anyio
import pytest

from adapters import anthropic as lash_anthropic
from lash_core import AudioPart, ImagePart, ResourceLinkPart, ResourcePart, TextPart, ToolCall, ToolResult
from lash_core.testing import returns
from tests.sdk_types import assert_valid, recorded_message, tool_use
from tests.unit._adapters import ECHO_SCHEMA, LONG_NAME, PDF, PNG, echo, import_fresh, session_with, tool


async def run_one(result: ToolResult) -> dict[str, Any]:
    session = session_with(tool("t", returns(result)))
    (block,) = await lash_anthropic.run_tool_uses(session, [tool_use("toolu_1", "t", {"text": "x"})])
    assert_valid(at.ToolResultBlockParam, block)
    return dict(block)


def test_tool_definitions_are_valid_tool_params() -> None:
    session = session_with(
        tool("echo", echo, description="Echo the text back."),
        tool("no_args", echo, schema={}),
        tool(LONG_NAME, echo),
    )
    tools = lash_anthropic.tool_definitions(session)
    assert_valid(list[at.ToolParam], tools)
    assert tools[0] == {"name": "echo", "description": "Echo the text back.", "input_schema": ECHO_SCHEMA}
    assert tools[1] == {"name": "no_args", "input_schema": {"type": "object"}}
    assert len(tools[2]["name"]) <= 64
    assert tools[2]["name"] != LONG_NAME


def test_input_schema_is_adjusted_only_at_the_top_level_type() -> None:
    nested = {
        "properties": {"when": {"$ref": "#/$defs/When"}},
        "$defs": {"When": {"type": "object", "properties": {"tz": {"type": "string"}}}},
        "additionalProperties": False,
    }
    session = session_with(tool("typeless", echo, schema=nested), tool("wrong_type", echo, schema={"type": "string"}))
    typeless, wrong = lash_anthropic.tool_definitions(session)
    assert typeless["input_schema"] == {**nested, "type": "object"}
    assert wrong["input_schema"] == {"type": "object"}
    assert_valid(list[at.ToolParam], [typeless, wrong])


@pytest.mark.anyio
async def test_a_typed_message_a_content_list_and_their_dicts_give_the_same_results() -> None:
    session = session_with(tool("echo", echo))
    recorded = recorded_message(
        tool_use("toolu_a", "echo", {"text": "one"}), tool_use("toolu_b", "echo", {"text": "two"})
    )
    message = at.Message.model_validate(recorded)
    expected = [
        {"type": "tool_result", "tool_use_id": "toolu_a", "content": [{"type": "text", "text": "one"}]},
        {"type": "tool_result", "tool_use_id": "toolu_b", "content": [{"type": "text", "text": "two"}]},
    ]
    for source in (message, message.content, recorded, recorded["content"]):
        results = await lash_anthropic.run_tool_uses(session, source)
        assert results == expected
    assert_valid(at.MessageParam, {"role": "user", "content": expected})


@pytest.mark.anyio
async def test_text_and_images_are_mapped_faithfully() -> None:
    block = await run_one(ToolResult.from_parts([TextPart("a chart:"), ImagePart(PNG, "image/png")]))
    assert block == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [
            {"type": "text", "text": "a chart:"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        ],
    }


@pytest.mark.anyio
async def test_structured_content_is_sent_as_json_only_when_no_text_carries_it() -> None:
    alone = await run_one(ToolResult.from_parts([], structured={"sum": 3}))
    assert alone["content"] == [{"type": "text", "text": '{"sum": 3}'}]
    with_text = await run_one(ToolResult.ok({"sum": 3}))
    assert with_text["content"] == [{"type": "text", "text": '{"sum": 3}'}]
    beside_image = await run_one(ToolResult.from_parts([ImagePart(PNG, "image/png")], structured={"w": 1}))
    assert [block["type"] for block in beside_image["content"]] == ["image", "text"]


@pytest.mark.anyio
async def test_parts_the_api_cannot_carry_become_text_notes_and_pdfs_documents() -> None:
    wav = base64.b64encode(b"RIFF" + bytes(96)).decode()
    zipped = base64.b64encode(b"PK\x03\x04" + bytes(12)).decode()
    block = await run_one(
        ToolResult.from_parts(
            [
                AudioPart(wav, "audio/wav"),
                ImagePart(PNG, "image/bmp"),
                ResourcePart("file:///notes.txt", "text/plain", text="remember"),
                ResourcePart("file:///report.pdf", "application/pdf", blob=PDF),
                ResourcePart("file:///a.zip", "application/zip", blob=zipped),
                ResourceLinkPart("file:///big.csv", "big.csv", "text/csv", "all rows"),
                TextPart(""),
            ]
        )
    )
    assert block["content"] == [
        {"type": "text", "text": "[audio omitted (audio/wav, 100 bytes): Anthropic tool results cannot carry audio]"},
        {
            "type": "text",
            "text": "[image omitted (image/bmp, 48 bytes): Anthropic accepts JPEG, PNG, GIF and WebP images only]",
        },
        {"type": "text", "text": "[resource file:///notes.txt]\nremember"},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
            "title": "file:///report.pdf",
        },
        {
            "type": "text",
            "text": "[resource file:///a.zip omitted (application/zip, 16 bytes): "
            "Anthropic tool results carry PDF documents only, no other binary data]",
        },
        {"type": "text", "text": "[resource link big.csv: file:///big.csv (text/csv) - all rows]"},
    ]


@pytest.mark.anyio
async def test_failures_set_is_error() -> None:
    async def broken(call: ToolCall) -> ToolResult:
        raise RuntimeError("provider bug")

    session = session_with(tool("fails", returns(ToolResult.err("disk full"))), tool("broken", broken))
    failed, crashed = await lash_anthropic.run_tool_uses(
        session, [tool_use("toolu_1", "fails", {"text": "x"}), tool_use("toolu_2", "broken", {"text": "x"})]
    )
    assert failed == {
        "type": "tool_result",
        "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "disk full"}],
        "is_error": True,
    }
    assert crashed["is_error"] is True
    assert "provider bug" in json.dumps(crashed["content"])
    assert_valid(list[at.ToolResultBlockParam], [failed, crashed])


@pytest.mark.anyio
async def test_unknown_tools_and_non_object_input_are_answered_with_is_error() -> None:
    session = session_with(tool("echo", echo))
    unknown, bad_input = await lash_anthropic.run_tool_uses(
        session, [tool_use("toolu_1", "nope", {}), tool_use("toolu_2", "echo", ["not", "an", "object"])]
    )
    assert unknown["is_error"] is True
    assert unknown["content"] == [
        {"type": "text", "text": "unknown tool 'nope': it is not among the tools this session offered"}
    ]
    assert bad_input["is_error"] is True
    assert "input must be a JSON object, got list" in json.dumps(bad_input["content"])
    assert_valid(list[at.ToolResultBlockParam], [unknown, bad_input])


@pytest.mark.anyio
async def test_tool_uses_run_concurrently_and_results_keep_block_order() -> None:
    """`first` cannot finish until `second` has: run one after the other, the pair would never complete."""
    second_started, second_done = anyio.Event(), anyio.Event()

    async def first(call: ToolCall) -> ToolResult:
        await second_done.wait()
        return ToolResult.ok("first")

    async def second(call: ToolCall) -> ToolResult:
        second_started.set()
        second_done.set()
        return ToolResult.ok("second")

    session = session_with(tool("first", first, schema={}), tool("second", second, schema={}))
    with anyio.fail_after(5):
        results = await lash_anthropic.run_tool_uses(
            session, recorded_message(tool_use("toolu_1", "first", {}), tool_use("toolu_2", "second", {}))
        )
    assert [(r["tool_use_id"], r["content"]) for r in results] == [
        ("toolu_1", [{"type": "text", "text": "first"}]),
        ("toolu_2", [{"type": "text", "text": "second"}]),
    ]


@pytest.mark.anyio
async def test_a_tool_name_over_64_characters_round_trips() -> None:
    seen: list[tuple[str, str]] = []

    async def long_tool(call: ToolCall) -> ToolResult:
        seen.append((call.name, call.context.call_id))
        return ToolResult.ok("long done")

    session = session_with(tool("echo", echo), tool(LONG_NAME, long_tool, schema={}))
    model_name = lash_anthropic.tool_definitions(session)[1]["name"]
    assert len(model_name) <= 64
    assert lash_anthropic.tool_names(session).lash_name(model_name) == LONG_NAME
    message = at.Message.model_validate(recorded_message(tool_use("toolu_long", model_name, {})))
    (result,) = await lash_anthropic.run_tool_uses(session, message)
    assert seen == [(LONG_NAME, "toolu_long")]
    assert result == {
        "type": "tool_result",
        "tool_use_id": "toolu_long",
        "content": [{"type": "text", "text": "long done"}],
    }
    unmapped = await lash_anthropic.run_tool_uses(session, [tool_use("toolu_raw", LONG_NAME, {})])
    assert unmapped[0]["is_error"] is True


@pytest.mark.anyio
async def test_a_message_without_tool_use_gives_no_results() -> None:
    session = session_with(tool("echo", echo))
    assert await lash_anthropic.run_tool_uses(session, {"role": "user", "content": "hello"}) == []
    assert await lash_anthropic.run_tool_uses(session, recorded_message()) == []


@pytest.mark.anyio
async def test_a_tool_use_without_an_id_is_refused() -> None:
    session = session_with(tool("echo", echo))
    with pytest.raises(ValueError, match="'id'"):
        await lash_anthropic.run_tool_uses(session, [{"type": "tool_use", "name": "echo", "input": {}}])
    with pytest.raises(TypeError):
        await lash_anthropic.run_tool_uses(session, "tool_use")


def test_importing_the_adapter_loads_no_sdk() -> None:
    done = import_fresh("adapters.anthropic")
    assert done.returncode == 0, done.stderr


@pytest.mark.anyio
async def test_sampling_is_answered_by_the_hosts_model() -> None:
    """An MCP server's `sampling/createMessage`, through a lash `Caller`, becomes a valid Messages API request; the
    recorded reply becomes an MCP `CreateMessageResult`."""
    import mcp_types
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

    sent: list[dict[str, Any]] = []

    async def create(**request: Any) -> at.Message:
        sent.append(request)
        reply = recorded_message()
        reply["content"] = [{"type": "text", "text": "Paris."}]
        reply["stop_reason"] = "end_turn"
        return at.Message.model_validate(reply)

    params = {
        "messages": [
            {"role": "user", "content": {"type": "text", "text": "Capital of France?"}},
            {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
            {"role": "user", "content": {"type": "audio", "data": "AAAA", "mimeType": "audio/wav"}},
        ],
        "systemPrompt": "Be brief.",
        "maxTokens": 50,
        "temperature": 0.2,
        "stopSequences": ["\n\n"],
    }
    answer = lash_anthropic.sampling_handler(create, model="claude-sonnet-4-5")
    result = await answer(params)
    (request,) = sent
    assert_valid(MessageCreateParamsNonStreaming, request)
    assert request["model"] == "claude-sonnet-4-5" and request["system"] == "Be brief." and request["max_tokens"] == 50
    blocks = [block for message in request["messages"] for block in message["content"]]
    assert blocks[0] == {"type": "text", "text": "Capital of France?"}
    assert blocks[1]["type"] == "image"
    assert "audio content left out" in blocks[2]["text"]
    mcp_types.CreateMessageResult.model_validate(result)
    assert result == {
        "role": "assistant",
        "content": {"type": "text", "text": "Paris."},
        "model": "claude-sonnet-4-5",
        "stopReason": "endTurn",
    }


def test_a_server_cannot_spend_more_tokens_than_the_host_allows() -> None:
    ask = {"messages": [{"role": "user", "content": {"type": "text", "text": "essay"}}]}
    assert lash_anthropic.sampling_request({**ask, "maxTokens": 10**6}, model="m")["max_tokens"] == 1024
    assert lash_anthropic.sampling_request({**ask, "maxTokens": "lots"}, model="m")["max_tokens"] == 1024
    assert lash_anthropic.sampling_request({**ask, "maxTokens": 200}, model="m", max_tokens=100)["max_tokens"] == 100
