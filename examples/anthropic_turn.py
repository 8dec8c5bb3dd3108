"""One Claude turn with the tools of a real MCP server, attached through lash's connection pool.

    python examples/anthropic_turn.py

Attaches the PyPI server `mcp-server-time` (`pip install mcp-server-time`, part of the `test` extra) over stdio,
offers its tools to the model with `adapters.anthropic.tool_definitions`, runs the model's `tool_use` blocks back
through the session with `adapters.anthropic.run_tool_uses`, and prints the `tool_result` blocks and the next user
message. With ANTHROPIC_API_KEY set and the `anthropic` package installed, the model is Claude (ANTHROPIC_MODEL,
default `DEFAULT_MODEL`) and the turn runs until it answers; otherwise a recorded Messages API response stands in
for the model and nothing goes over the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING

import anyio

from adapters import anthropic as lash_anthropic
from lash_core import LashCore, Session
from lash_gateway import McpPluginFactory, McpServerConfig

if TYPE_CHECKING:
    from anthropic.types import MessageParam, ToolParam, ToolResultBlockParam

SERVER = "time"
"""The server's name in the pool: its tools are offered as `mcp__time__<tool>`."""
TIME_SERVER = McpServerConfig.stdio(sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"])
QUESTION = "What time is it in Tokyo?"
DEFAULT_MODEL = "claude-sonnet-4-5"
MAX_TOKENS = 1024
MAX_ROUNDS = 5
"""Model calls in one live turn before giving up on an answer."""

RECORDED_RESPONSE: dict[str, object] = {
    "id": "msg_01TokyoTimeRecordedResponse",
    "type": "message",
    "role": "assistant",
    "model": DEFAULT_MODEL,
    "content": [
        {"type": "text", "text": "I'll look up the current time in Tokyo."},
        {
            "type": "tool_use",
            "id": "toolu_01TokyoTimeRecordedCall",
            "name": "mcp__time__get_current_time",
            "input": {"timezone": "Asia/Tokyo"},
        },
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 794, "output_tokens": 71},
}
"""A Messages API response to `QUESTION`, as Claude answered it: one `tool_use` of the time server's tool."""


def show_response(message: dict[str, object]) -> None:
    """Print what the model said and which tools it called."""
    blocks = message.get("content")
    for block in blocks if isinstance(blocks, list) else []:
        if block.get("type") == "text":
            print(f"model: {block['text']}")
        elif block.get("type") == "tool_use":
            print(f"model calls {block['name']}({json.dumps(block['input'])}) as {block['id']}")


def show_results(results: list[ToolResultBlockParam]) -> None:
    """Print the `tool_result` blocks, then the user message that carries them back to the model."""
    print("tool_result blocks:")
    for block in results:
        print(f"  {json.dumps(block)}")
    next_message: MessageParam = {"role": "user", "content": results}
    print("next user message:")
    print(json.dumps(next_message, indent=2))


async def recorded_turn(session: Session, tools: list[ToolParam]) -> None:
    offered = {tool["name"] for tool in tools}
    show_response(RECORDED_RESPONSE)
    results = await lash_anthropic.run_tool_uses(session, RECORDED_RESPONSE)
    for result in results:
        if result.get("is_error"):
            raise SystemExit(f"the recorded call failed (tools offered: {sorted(offered)}): {json.dumps(result)}")
    show_results(results)


async def live_turn(session: Session, tools: list[ToolParam], model: str) -> None:
    import anthropic

    messages: list[MessageParam] = [{"role": "user", "content": QUESTION}]
    async with anthropic.AsyncAnthropic() as client:
        for _ in range(MAX_ROUNDS):
            message = await client.messages.create(model=model, max_tokens=MAX_TOKENS, tools=tools, messages=messages)
            show_response(message.model_dump(mode="json"))
            if message.stop_reason != "tool_use":
                return
            results = await lash_anthropic.run_tool_uses(session, message)
            show_results(results)
            messages.append({"role": "assistant", "content": message.content})
            messages.append({"role": "user", "content": results})
    print(f"no answer after {MAX_ROUNDS} model calls")


async def main() -> None:
    async with McpPluginFactory() as factory:
        await factory.attach_server(SERVER, TIME_SERVER)
        session = LashCore.builder().plugin(factory).build().session()
        tools = lash_anthropic.tool_definitions(session)
        print(f"tools offered: {', '.join(tool['name'] for tool in tools)}")
        print(f"user: {QUESTION}")
        if os.environ.get("ANTHROPIC_API_KEY") and importlib.util.find_spec("anthropic") is not None:
            await live_turn(session, tools, os.environ.get("ANTHROPIC_MODEL") or DEFAULT_MODEL)
        else:
            print("(ANTHROPIC_API_KEY unset or `anthropic` not installed: a recorded response stands in for the model)")
            await recorded_turn(session, tools)


if __name__ == "__main__":
    if importlib.util.find_spec("mcp_server_time") is None:
        sys.exit("this example needs the MCP server `mcp-server-time`: pip install mcp-server-time")
    anyio.run(main)
