"""`adapters.openai`: a session's tools for Chat Completions and the Responses API, and function calls run back.

What the adapter produces is validated against the official SDK's typed request params (TypedDicts, checked with
pydantic and compared back so an unknown key cannot slip through); recorded responses are fed in as the SDK's
typed `ChatCompletion` / `Response` objects and as plain dicts.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import anyio
import openai.types.chat as chat
import openai.types.responses as responses
import pytest
from openai.types.responses.response_input_item_param import FunctionCallOutput

from adapters import openai as lash_openai
from lash_core import AudioPart, ImagePart, ResourceLinkPart, ResourcePart, TextPart, ToolCall, ToolResult
from lash_core.testing import returns
from tests.sdk_types import assert_valid, chat_call, function_call, recorded_completion, recorded_response
from tests.unit._adapters import ECHO_SCHEMA, LONG_NAME, PDF, PNG, echo, import_fresh, session_with, tool


async def chat_one(result: ToolResult) -> str:
    session = session_with(tool("t", returns(result)))
    (message,) = await lash_openai.run_tool_calls(session, [chat_call("call_1", "t", '{"text": "x"}')])
    assert_valid(chat.ChatCompletionToolMessageParam, message)
    content = message["content"]
    assert isinstance(content, str)
    return content


async def respond_one(result: ToolResult) -> object:
    session = session_with(tool("t", returns(result)))
    (item,) = await lash_openai.run_function_calls(session, [function_call("call_1", "t", '{"text": "x"}')])
    assert_valid(FunctionCallOutput, item)
    assert item["call_id"] == "call_1"
    return item["output"]


# -- definitions -------------------------------------------------------------------------------------------------


def test_chat_tools_are_valid_function_tool_params() -> None:
    session = session_with(
        tool("echo", echo, description="Echo the text back."), tool("no_args", echo, schema={}), tool(LONG_NAME, echo)
    )
    tools = lash_openai.chat_tools(session)
    assert_valid(list[chat.ChatCompletionFunctionToolParam], tools)
    assert tools[0] == {
        "type": "function",
        "function": {"name": "echo", "description": "Echo the text back.", "parameters": ECHO_SCHEMA},
    }
    assert tools[1] == {
        "type": "function",
        "function": {"name": "no_args", "parameters": {"type": "object", "properties": {}}},
    }
    assert len(tools[2]["function"]["name"]) <= 64


def test_response_tools_are_valid_function_tool_params_without_strict_mode() -> None:
    session = session_with(tool("echo", echo, description="Echo the text back."), tool("no_args", echo, schema={}))
    tools = lash_openai.response_tools(session)
    assert_valid(list[responses.FunctionToolParam], tools)
    assert tools == [
        {
            "type": "function",
            "name": "echo",
            "description": "Echo the text back.",
            "parameters": ECHO_SCHEMA,
            "strict": False,
        },
        {"type": "function", "name": "no_args", "parameters": {"type": "object", "properties": {}}, "strict": False},
    ]


def test_parameters_are_adjusted_only_at_the_top_level() -> None:
    nested = {
        "properties": {"when": {"$ref": "#/$defs/When"}},
        "$defs": {"When": {"type": "object"}},
        "additionalProperties": False,
    }
    session = session_with(tool("typeless", echo, schema=nested), tool("bare", echo, schema={"type": "object"}))
    typeless, bare = (t["function"]["parameters"] for t in lash_openai.chat_tools(session))
    assert typeless == {**nested, "type": "object"}
    assert bare == {"type": "object", "properties": {}}
    assert [t["parameters"] for t in lash_openai.response_tools(session)] == [typeless, bare]


# -- Chat Completions --------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_chat_accepts_a_typed_message_its_tool_calls_and_their_dicts() -> None:
    session = session_with(tool("echo", echo))
    recorded = recorded_completion(
        chat_call("call_a", "echo", '{"text": "one"}'), chat_call("call_b", "echo", '{"text": "two"}')
    )
    message = chat.ChatCompletion.model_validate(recorded).choices[0].message
    expected = [
        {"role": "tool", "tool_call_id": "call_a", "content": "one"},
        {"role": "tool", "tool_call_id": "call_b", "content": "two"},
    ]
    raw_message = recorded["choices"][0]["message"]
    for source in (message, message.tool_calls, raw_message, raw_message["tool_calls"]):
        assert await lash_openai.run_tool_calls(session, source) == expected
    assert_valid(list[chat.ChatCompletionMessageParam], expected)


@pytest.mark.anyio
async def test_chat_tool_messages_carry_text_and_note_everything_else() -> None:
    wav = base64.b64encode(b"RIFF" + bytes(96)).decode()
    content = await chat_one(
        ToolResult.from_parts(
            [
                TextPart("a chart:"),
                ImagePart(PNG, "image/png"),
                AudioPart(wav, "audio/wav"),
                ResourcePart("file:///notes.txt", "text/plain", text="remember"),
                ResourcePart("file:///report.pdf", "application/pdf", blob=PDF),
                ResourceLinkPart("file:///big.csv", "big.csv"),
            ]
        )
    )
    assert content.splitlines() == [
        "a chart:",
        "[image omitted (image/png, 48 bytes): Chat Completions tool messages carry text only]",
        "[audio omitted (audio/wav, 100 bytes): Chat Completions tool messages carry text only]",
        "[resource file:///notes.txt]",
        "remember",
        "[resource file:///report.pdf omitted (application/pdf, 15 bytes): "
        "Chat Completions tool messages carry text only]",
        "[resource link big.csv: file:///big.csv]",
    ]


@pytest.mark.anyio
async def test_chat_structured_content_and_failures() -> None:
    assert await chat_one(ToolResult.from_parts([], structured={"sum": 3})) == '{"sum": 3}'
    assert await chat_one(ToolResult.ok({"sum": 3})) == '{"sum": 3}'
    assert await chat_one(ToolResult.err("disk full")) == "Error: disk full"


@pytest.mark.anyio
async def test_chat_bad_arguments_and_unknown_tools_are_answered_without_calling() -> None:
    calls: list[Mapping[str, Any]] = []

    async def record(call: ToolCall) -> ToolResult:
        calls.append(call.args)
        return ToolResult.ok("ran")

    session = session_with(tool("record", record, schema={}))
    results = await lash_openai.run_tool_calls(
        session,
        [
            chat_call("c1", "record", "{not json"),
            chat_call("c2", "record", "[1, 2]"),
            chat_call("c3", "nope", "{}"),
            chat_call("c4", "record", ""),
        ],
    )
    contents = [m["content"] for m in results]
    assert isinstance(contents[0], str) and contents[0].startswith("Error: invalid arguments for 'record': ")
    assert "not valid JSON" in contents[0]
    assert contents[1] == "Error: invalid arguments for 'record': arguments must be a JSON object, got list"
    assert contents[2] == "Error: unknown tool 'nope': it is not among the tools this session offered"
    assert contents[3] == "ran"
    assert calls == [{}]


@pytest.mark.anyio
async def test_chat_tool_calls_run_concurrently_and_keep_their_order() -> None:
    """`first` cannot finish until `second` has: run one after the other, the pair would never complete."""
    second_done = anyio.Event()

    async def first(call: ToolCall) -> ToolResult:
        await second_done.wait()
        return ToolResult.ok("first")

    async def second(call: ToolCall) -> ToolResult:
        second_done.set()
        return ToolResult.ok("second")

    session = session_with(tool("first", first, schema={}), tool("second", second, schema={}))
    recorded = recorded_completion(chat_call("c1", "first", "{}"), chat_call("c2", "second", "{}"))
    message = chat.ChatCompletion.model_validate(recorded).choices[0].message
    with anyio.fail_after(5):
        results = await lash_openai.run_tool_calls(session, message)
    assert [(m["tool_call_id"], m["content"]) for m in results] == [("c1", "first"), ("c2", "second")]


@pytest.mark.anyio
async def test_chat_a_tool_name_over_64_characters_round_trips() -> None:
    seen: list[tuple[str, str]] = []

    async def long_tool(call: ToolCall) -> ToolResult:
        seen.append((call.name, call.context.call_id))
        return ToolResult.ok("long done")

    session = session_with(tool("echo", echo), tool(LONG_NAME, long_tool, schema={}))
    model_name = lash_openai.chat_tools(session)[1]["function"]["name"]
    assert len(model_name) <= 64
    completion = chat.ChatCompletion.model_validate(recorded_completion(chat_call("call_long", model_name, "{}")))
    results = await lash_openai.run_tool_calls(session, completion.choices[0].message)
    assert results == [{"role": "tool", "tool_call_id": "call_long", "content": "long done"}]
    assert seen == [(LONG_NAME, "call_long")]


@pytest.mark.anyio
async def test_chat_skips_custom_tool_calls_and_messages_without_calls() -> None:
    session = session_with(tool("echo", echo))
    custom = {"id": "call_x", "type": "custom", "custom": {"name": "grep", "input": "x"}}
    assert await lash_openai.run_tool_calls(session, [custom]) == []
    assert await lash_openai.run_tool_calls(session, {"role": "assistant", "content": "hi", "tool_calls": None}) == []
    with pytest.raises(ValueError, match="'id'"):
        await lash_openai.run_tool_calls(session, [{"type": "function", "function": {"name": "echo"}}])


# -- Responses ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_responses_accepts_a_typed_response_its_output_and_their_dicts() -> None:
    session = session_with(tool("echo", echo))
    recorded = recorded_response(
        function_call("call_a", "echo", '{"text": "one"}'),
        {"type": "message", "id": "msg_1", "role": "assistant", "status": "completed", "content": []},
        function_call("call_b", "echo", '{"text": "two"}'),
    )
    response = responses.Response.model_validate(recorded)
    expected = [
        {"type": "function_call_output", "call_id": "call_a", "output": "one"},
        {"type": "function_call_output", "call_id": "call_b", "output": "two"},
    ]
    for source in (response, response.output, recorded, recorded["output"]):
        assert await lash_openai.run_function_calls(session, source) == expected
    assert_valid(list[responses.ResponseInputItemParam], expected)


@pytest.mark.anyio
async def test_responses_outputs_carry_images_and_pdfs_as_items() -> None:
    output = await respond_one(
        ToolResult.from_parts(
            [
                TextPart("a chart:"),
                ImagePart(PNG, "image/png"),
                ImagePart(PNG, "image/bmp"),
                ResourcePart("file:///docs/report%202025.pdf", "application/pdf", blob=PDF),
                ResourcePart("file:///notes.txt", "text/plain", text="remember"),
                ResourceLinkPart("file:///big.csv", "big.csv", description="all rows"),
            ]
        )
    )
    assert output == [
        {"type": "input_text", "text": "a chart:"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        {
            "type": "input_text",
            "text": "[image omitted (image/bmp, 48 bytes): OpenAI accepts JPEG, PNG, GIF and WebP images only]",
        },
        {"type": "input_file", "filename": "report 2025.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
        {"type": "input_text", "text": "[resource file:///notes.txt]\nremember"},
        {"type": "input_text", "text": "[resource link big.csv: file:///big.csv - all rows]"},
    ]


@pytest.mark.anyio
async def test_responses_text_only_outputs_are_strings() -> None:
    wav = base64.b64encode(b"RIFF" + bytes(96)).decode()
    output = await respond_one(ToolResult.from_parts([TextPart("heard:"), AudioPart(wav, "audio/wav")]))
    assert output == "heard:\n[audio omitted (audio/wav, 100 bytes): function outputs cannot carry audio]"
    assert await respond_one(ToolResult.from_parts([], structured={"sum": 3})) == '{"sum": 3}'


@pytest.mark.anyio
async def test_responses_failures_start_with_error() -> None:
    assert await respond_one(ToolResult.err("disk full")) == "Error: disk full"
    with_image = await respond_one(
        ToolResult.err("render failed", content=[ImagePart(PNG, "image/png"), TextPart("see above")])
    )
    assert with_image == [
        {"type": "input_text", "text": "Error: render failed"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        {"type": "input_text", "text": "see above"},
    ]


@pytest.mark.anyio
async def test_responses_function_calls_run_concurrently_and_keep_their_order() -> None:
    second_done = anyio.Event()

    async def first(call: ToolCall) -> ToolResult:
        await second_done.wait()
        return ToolResult.ok("first")

    async def second(call: ToolCall) -> ToolResult:
        second_done.set()
        return ToolResult.ok("second")

    session = session_with(tool("first", first, schema={}), tool("second", second, schema={}))
    response = responses.Response.model_validate(
        recorded_response(function_call("c1", "first", "{}"), function_call("c2", "second", "{}"))
    )
    with anyio.fail_after(5):
        results = await lash_openai.run_function_calls(session, response)
    assert [(item["call_id"], item["output"]) for item in results] == [("c1", "first"), ("c2", "second")]


@pytest.mark.anyio
async def test_responses_a_tool_name_over_64_characters_round_trips() -> None:
    seen: list[str] = []

    async def long_tool(call: ToolCall) -> ToolResult:
        seen.append(call.name)
        return ToolResult.ok("long done")

    session = session_with(tool(LONG_NAME, long_tool, schema={}))
    (definition,) = lash_openai.response_tools(session)
    assert len(definition["name"]) <= 64
    response = responses.Response.model_validate(recorded_response(function_call("c1", definition["name"], "{}")))
    assert await lash_openai.run_function_calls(session, response) == [
        {"type": "function_call_output", "call_id": "c1", "output": "long done"}
    ]
    assert seen == [LONG_NAME]
    (unmapped,) = await lash_openai.run_function_calls(session, [function_call("c2", LONG_NAME, "{}")])
    assert unmapped["output"] == f"Error: unknown tool {LONG_NAME!r}: it is not among the tools this session offered"


@pytest.mark.anyio
async def test_responses_bad_arguments_are_answered_without_calling() -> None:
    session = session_with(tool("echo", echo))
    (item,) = await lash_openai.run_function_calls(session, [function_call("c1", "echo", '"text"')])
    assert item["output"] == "Error: invalid arguments for 'echo': arguments must be a JSON object, got str"
    assert json.loads(json.dumps(item)) == item


def test_importing_the_adapter_loads_no_sdk() -> None:
    done = import_fresh("adapters.openai")
    assert done.returncode == 0, done.stderr
