"""`adapters.anthropic` and `adapters.openai` over real MCP tools: `tests.servers.upstream` attached over stdio
through `McpPluginFactory`, its tools offered to a model, and recorded model responses run back through the pool.

Every definition and result is validated against the official SDK's typed request params (TypedDicts, checked with
pydantic and compared back, as in the unit tests), and every recorded response is fed in as the SDK's typed object
(`anthropic.types.Message`, `openai.types.chat.ChatCompletionMessage`, `openai.types.responses.Response`).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import anthropic.types as at
import anyio
import openai.types.chat as chat
import openai.types.responses as responses
import pytest
from openai.types.responses.response_input_item_param import FunctionCallOutput

from adapters import anthropic as lash_anthropic
from adapters import openai as lash_openai
from lash_core import Session
from lash_gateway import McpConnectionPool, McpPluginFactory, McpServerConfig
from tests.integration._helpers import session_of
from tests.sdk_types import (
    assert_valid,
    chat_call,
    function_call,
    recorded_completion,
    recorded_message,
    recorded_response,
    tool_use,
)
from tests.servers.launch import PROJECT_ROOT, stdio_command
from tests.servers.upstream import PNG_BYTES

pytestmark = pytest.mark.anyio

SERVER = "up"
LONG_SERVER = "an_upstream_server_whose_name_is_rather_long"
"""A second connection to the test server, under a name that makes `mcp__<server>__<tool>` long on its own."""
STARTUP = 20.0
"""Bound on attaching both servers at once (two process starts, handshakes, tools/list)."""
WAIT = 5.0
"""Bound on anything the upstream should do promptly."""
PROVIDER_NAME_RULE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
"""The tool name rule that Anthropic and OpenAI document."""
PNG = base64.b64encode(PNG_BYTES).decode()

Call = tuple[str, str, Mapping[str, object]]
"""A tool call as a model writes it: (call id, tool name the model was given, arguments)."""


def tool(name: str) -> str:
    """The lash name of an upstream tool of `SERVER` (names that fit the provider rule reach the model unchanged)."""
    return f"mcp__{SERVER}__{name}"


@pytest.fixture(scope="module")
async def factory() -> AsyncIterator[McpPluginFactory]:
    """One pool for the module, with the test server attached twice over stdio: as `SERVER` and `LONG_SERVER`."""
    command, args = stdio_command()
    config = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT))
    async with McpPluginFactory() as plugin_factory:
        with anyio.fail_after(STARTUP):
            await plugin_factory.attach_servers({SERVER: config, LONG_SERVER: config})
        yield plugin_factory


# --- recorded model responses, as the SDKs' typed objects -------------------------------------------------------------


def anthropic_message(*calls: Call) -> at.Message:
    return at.Message.model_validate(
        recorded_message(*(tool_use(call_id, name, args) for call_id, name, args in calls))
    )


def chat_message(*calls: Call) -> chat.ChatCompletionMessage:
    completion = chat.ChatCompletion.model_validate(
        recorded_completion(*(chat_call(call_id, name, json.dumps(args)) for call_id, name, args in calls))
    )
    return completion.choices[0].message


def response(*calls: Call) -> responses.Response:
    return responses.Response.model_validate(
        recorded_response(*(function_call(call_id, name, json.dumps(args)) for call_id, name, args in calls))
    )


# --- running a recorded response through each adapter, results validated ----------------------------------------------


async def run_anthropic(session: Session, *calls: Call) -> list[dict[str, Any]]:
    message = anthropic_message(*calls)
    with anyio.fail_after(WAIT):
        results = await lash_anthropic.run_tool_uses(session, message)
    assert_valid(list[at.ToolResultBlockParam], results)
    next_turn = [
        {"role": "user", "content": "What do the tools say?"},
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in message.content]},
        {"role": "user", "content": results},
    ]
    assert_valid(list[at.MessageParam], next_turn)
    assert [result["tool_use_id"] for result in results] == [call_id for call_id, _, _ in calls]
    return [dict(result) for result in results]


async def run_chat(session: Session, *calls: Call) -> list[str]:
    message = chat_message(*calls)
    with anyio.fail_after(WAIT):
        results = await lash_openai.run_tool_calls(session, message)
    assert_valid(list[chat.ChatCompletionToolMessageParam], results)
    next_turn = [
        {"role": "user", "content": "What do the tools say?"},
        message.model_dump(exclude_none=True),
        *results,
    ]
    assert_valid(list[chat.ChatCompletionMessageParam], next_turn)
    assert [result["tool_call_id"] for result in results] == [call_id for call_id, _, _ in calls]
    contents = [result["content"] for result in results]
    assert all(isinstance(content, str) for content in contents), contents
    return [str(content) for content in contents]


async def run_responses(session: Session, *calls: Call) -> list[object]:
    recorded = response(*calls)
    with anyio.fail_after(WAIT):
        results = await lash_openai.run_function_calls(session, recorded)
    assert_valid(list[FunctionCallOutput], results)
    next_input = [
        *(item.model_dump(exclude_none=True) for item in recorded.output if item.type == "function_call"),
        *results,
    ]
    assert_valid(responses.ResponseInputParam, next_input)
    assert [result["call_id"] for result in results] == [call_id for call_id, _, _ in calls]
    return [result["output"] for result in results]


def only_text(block: Mapping[str, Any]) -> str:
    """The text of an Anthropic tool_result block holding one text block."""
    content = block["content"]
    assert [part["type"] for part in content] == ["text"], block
    return str(content[0]["text"])


# --- definitions ------------------------------------------------------------------------------------------------------


async def test_definitions_of_real_mcp_tools_are_valid_sdk_tool_params(factory: McpPluginFactory) -> None:
    session = session_of(factory)
    lash_names = [definition.name for definition in session.tools()]
    assert tool("echo") in lash_names and tool("content_kinds") in lash_names

    anthropic_tools = lash_anthropic.tool_definitions(session)
    chat_tools = lash_openai.chat_tools(session)
    response_tools = lash_openai.response_tools(session)
    assert_valid(list[at.ToolParam], anthropic_tools)
    assert_valid(list[chat.ChatCompletionFunctionToolParam], chat_tools)
    assert_valid(list[responses.FunctionToolParam], response_tools)
    assert_valid(list[responses.ToolParam], response_tools)

    names = lash_anthropic.tool_names(session)
    model_names = [names.model_name(name) for name in lash_names]
    assert [t["name"] for t in anthropic_tools] == model_names
    assert [t["function"]["name"] for t in chat_tools] == model_names
    assert [t["name"] for t in response_tools] == model_names
    assert all(PROVIDER_NAME_RULE.fullmatch(name) for name in model_names), model_names
    assert len(set(model_names)) == len(model_names)

    echo_schema = {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}
    (anthropic_echo,) = (t for t in anthropic_tools if t["name"] == tool("echo"))
    assert anthropic_echo["input_schema"] == echo_schema
    (chat_echo,) = (t for t in chat_tools if t["function"]["name"] == tool("echo"))
    assert chat_echo["function"]["parameters"] == echo_schema
    (response_echo,) = (t for t in response_tools if t["name"] == tool("echo"))
    assert response_echo["parameters"] == echo_schema
    assert response_echo["strict"] is False


# --- text, image, structured and error results ------------------------------------------------------------------------

KINDS_CALLS: tuple[Call, ...] = (
    ("call_echo", tool("echo"), {"text": "hello"}),
    ("call_kinds", tool("content_kinds"), {}),
    ("call_add", tool("add"), {"a": 2, "b": 3}),
    ("call_fail", tool("fail"), {"message": "the disk is full"}),
)
"""One model response calling a text tool, the every-content-kind tool, a structured tool and a failing tool."""


async def test_anthropic_tool_results_of_text_image_structured_and_error_tools(factory: McpPluginFactory) -> None:
    echo, kinds, add, fail = await run_anthropic(session_of(factory), *KINDS_CALLS)

    assert echo == {"type": "tool_result", "tool_use_id": "call_echo", "content": [{"type": "text", "text": "hello"}]}
    assert "is_error" not in kinds
    content = kinds["content"]
    assert [part["type"] for part in content] == ["text", "image", "text", "text", "text", "text"]
    assert content[0] == {"type": "text", "text": "plain text"}
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    assert content[2]["text"].startswith("[audio omitted (audio/wav, ")
    assert content[3]["text"] == "[resource test://upstream/text]\nembedded text"
    assert content[4]["text"].startswith("[resource test://upstream/blob omitted (application/octet-stream, 32 bytes)")
    assert content[5]["text"] == "[resource link linked: test://upstream/linked]"
    # `add` answers {"sum": 5} as structured content and "5" as text: the model reads the text, once.
    assert add == {"type": "tool_result", "tool_use_id": "call_add", "content": [{"type": "text", "text": "5"}]}
    assert fail == {
        "type": "tool_result",
        "tool_use_id": "call_fail",
        "content": [{"type": "text", "text": "the disk is full"}],
        "is_error": True,
    }


async def test_chat_tool_messages_of_text_image_structured_and_error_tools(factory: McpPluginFactory) -> None:
    echo, kinds, add, fail = await run_chat(session_of(factory), *KINDS_CALLS)

    assert echo == "hello"
    lines = kinds.split("\n")
    assert lines[0] == "plain text"
    assert lines[1].startswith(f"[image omitted (image/png, {len(PNG_BYTES)} bytes): ")
    assert lines[2].startswith("[audio omitted (audio/wav, ")
    assert lines[3:5] == ["[resource test://upstream/text]", "embedded text"]
    assert lines[5].startswith("[resource test://upstream/blob omitted (application/octet-stream, 32 bytes)")
    assert lines[6:] == ["[resource link linked: test://upstream/linked]"]
    assert add == "5"
    assert fail == "Error: the disk is full"


async def test_responses_outputs_of_text_image_structured_and_error_tools(factory: McpPluginFactory) -> None:
    echo, kinds, add, fail = await run_responses(session_of(factory), *KINDS_CALLS)

    assert echo == "hello"
    assert isinstance(kinds, list)
    assert [item["type"] for item in kinds] == ["input_text", "input_image", *["input_text"] * 4]
    assert kinds[0] == {"type": "input_text", "text": "plain text"}
    assert kinds[1] == {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"}
    assert kinds[2]["text"].startswith("[audio omitted (audio/wav, ")
    assert kinds[3]["text"] == "[resource test://upstream/text]\nembedded text"
    assert kinds[4]["text"].startswith("[resource test://upstream/blob omitted (application/octet-stream, 32 bytes)")
    assert kinds[5]["text"] == "[resource link linked: test://upstream/linked]"
    assert add == "5"
    assert fail == "Error: the disk is full"


# --- concurrent calls -------------------------------------------------------------------------------------------------


def rendezvous(key: str) -> tuple[Call, Call]:
    """`wait_for_release` and `release` on one key: neither returns unless both run at once (see the upstream)."""
    return ("call_wait", tool("wait_for_release"), {"key": key}), ("call_release", tool("release"), {"key": key})


def in_flight(text: object) -> object:
    """The `in_flight` count a rendezvous tool reports (its text is the JSON of its structured content)."""
    assert isinstance(text, str), text
    return json.loads(text)["in_flight"]


async def test_anthropic_tool_uses_of_one_message_run_concurrently(factory: McpPluginFactory) -> None:
    waited, released = await run_anthropic(session_of(factory), *rendezvous("anthropic"))
    assert [in_flight(only_text(waited)), in_flight(only_text(released))] == [2, 2]
    assert "is_error" not in waited and "is_error" not in released


async def test_chat_tool_calls_of_one_message_run_concurrently(factory: McpPluginFactory) -> None:
    waited, released = await run_chat(session_of(factory), *rendezvous("chat"))
    assert [in_flight(waited), in_flight(released)] == [2, 2]


async def test_responses_function_calls_of_one_response_run_concurrently(factory: McpPluginFactory) -> None:
    waited, released = await run_responses(session_of(factory), *rendezvous("responses"))
    assert [in_flight(waited), in_flight(released)] == [2, 2]


# --- tool names over 64 characters ------------------------------------------------------------------------------------


def long_tool_names(label: str) -> tuple[str, str]:
    """Two 70-character tool names that differ only in their last character, so cutting them to 64 alone would
    make them one name."""
    stem = f"{label}_tool_whose_name_runs_past_the_limit_of_the_providers"
    return f"{stem:_<68}_a", f"{stem:_<68}_b"


def lash_name_of(pool: McpConnectionPool, server: str, upstream_tool: str) -> str | None:
    return next((d.name for d in pool.definitions() if pool.route(d.name) == (server, upstream_tool)), None)


async def add_long_tools(factory: McpPluginFactory, label: str) -> dict[str, str]:
    """Add two long-named tools to `LONG_SERVER` at runtime; once the pool has listed them, their upstream names
    mapped to their lash names."""
    pool = factory.pool
    upstream_names = long_tool_names(label)
    add_tool = lash_name_of(pool, LONG_SERVER, "add_tool")
    assert add_tool is not None
    generation = pool.generation
    with anyio.fail_after(WAIT):
        for name in upstream_names:
            added = await pool.call_tool(add_tool, {"name": name})
            assert not added.is_error, added
        while any(lash_name_of(pool, LONG_SERVER, name) is None for name in upstream_names):
            generation = await pool.wait_for_change(generation)
    lash_names = {name: lash_name_of(pool, LONG_SERVER, name) for name in upstream_names}
    found = {name: lash for name, lash in lash_names.items() if lash is not None}
    assert len(found) == len(upstream_names)
    for lash in found.values():
        assert len(lash) > 64 and lash.startswith(f"mcp__{LONG_SERVER}__"), lash
    return found


def check_shortened(lash_names: Mapping[str, str], model_names: Mapping[str, str], offered: Sequence[str]) -> None:
    """Each long tool reached the model under its own valid name of at most 64 characters."""
    assert len(set(model_names.values())) == len(model_names)
    for upstream_name, model_name in model_names.items():
        assert PROVIDER_NAME_RULE.fullmatch(model_name), model_name
        assert model_name != lash_names[upstream_name]
        assert model_name in offered


async def test_anthropic_tool_names_over_64_characters_reach_their_upstream_tool(factory: McpPluginFactory) -> None:
    session = session_of(factory)
    lash_names = await add_long_tools(factory, "anthropic")
    tools = lash_anthropic.tool_definitions(session)
    assert_valid(list[at.ToolParam], tools)
    names = lash_anthropic.tool_names(session)
    model_names = {upstream: names.model_name(lash) for upstream, lash in lash_names.items()}
    check_shortened(lash_names, model_names, [t["name"] for t in tools])

    results = await run_anthropic(session, *((f"toolu_{u[-1]}", m, {}) for u, m in model_names.items()))
    assert [only_text(result) for result in results] == [f"{upstream} called" for upstream in model_names]
    assert not any(result.get("is_error") for result in results)


async def test_chat_tool_names_over_64_characters_reach_their_upstream_tool(factory: McpPluginFactory) -> None:
    session = session_of(factory)
    lash_names = await add_long_tools(factory, "chat")
    tools = lash_openai.chat_tools(session)
    assert_valid(list[chat.ChatCompletionFunctionToolParam], tools)
    names = lash_openai.tool_names(session)
    model_names = {upstream: names.model_name(lash) for upstream, lash in lash_names.items()}
    check_shortened(lash_names, model_names, [t["function"]["name"] for t in tools])

    results = await run_chat(session, *((f"call_{u[-1]}", m, {}) for u, m in model_names.items()))
    assert results == [f"{upstream} called" for upstream in model_names]


async def test_responses_tool_names_over_64_characters_reach_their_upstream_tool(factory: McpPluginFactory) -> None:
    session = session_of(factory)
    lash_names = await add_long_tools(factory, "responses")
    tools = lash_openai.response_tools(session)
    assert_valid(list[responses.FunctionToolParam], tools)
    names = lash_openai.tool_names(session)
    model_names = {upstream: names.model_name(lash) for upstream, lash in lash_names.items()}
    check_shortened(lash_names, model_names, [t["name"] for t in tools])

    results = await run_responses(session, *((f"call_{u[-1]}", m, {}) for u, m in model_names.items()))
    assert results == [f"{upstream} called" for upstream in model_names]
