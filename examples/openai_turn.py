"""One OpenAI Responses API turn with the tools of a real MCP server, attached through lash's connection pool.

    python examples/openai_turn.py

Attaches the PyPI server `mcp-server-time` (`pip install mcp-server-time`, part of the `test` extra) over stdio,
offers its tools to the model with `adapters.openai.response_tools`, runs the model's `function_call` items back
through the session with `adapters.openai.run_function_calls`, and prints the `function_call_output` items: the
input of the next request. With OPENAI_API_KEY set and the `openai` package installed, the model is OpenAI's
(OPENAI_MODEL, default `DEFAULT_MODEL`) and the turn runs until it answers; otherwise a recorded response stands in
for the model and nothing goes over the network.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from typing import TYPE_CHECKING

import anyio

from adapters import openai as lash_openai
from lash_core import LashCore, Session
from lash_gateway import McpPluginFactory, McpServerConfig

if TYPE_CHECKING:
    from openai.types.responses import FunctionToolParam, ResponseInputParam
    from openai.types.responses.response_input_item_param import FunctionCallOutput

SERVER = "time"
"""The server's name in the pool: its tools are offered as `mcp__time__<tool>`."""
TIME_SERVER = McpServerConfig.stdio(sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"])
QUESTION = "What time is it in Tokyo?"
DEFAULT_MODEL = "gpt-4.1-mini"
MAX_ROUNDS = 5
"""Model calls in one live turn before giving up on an answer."""

RECORDED_RESPONSE: dict[str, object] = {
    "id": "resp_tokyo_time_recorded_response",
    "object": "response",
    "created_at": 1763774700,
    "model": DEFAULT_MODEL,
    "status": "completed",
    "output": [
        {
            "type": "function_call",
            "id": "fc_tokyo_time_recorded_item",
            "call_id": "call_TokyoTimeRecordedCall",
            "name": "mcp__time__get_current_time",
            "arguments": '{"timezone":"Asia/Tokyo"}',
            "status": "completed",
        }
    ],
    "parallel_tool_calls": True,
    "tool_choice": "auto",
    "tools": [],
}
"""A Responses API response to `QUESTION`, as the model answered it: one call of the time server's tool."""


def show_response(response: dict[str, object]) -> None:
    """Print what the model said and which functions it called."""
    output = response.get("output")
    for item in output if isinstance(output, list) else []:
        if item.get("type") == "message":
            for part in item.get("content", []):
                if part.get("type") == "output_text":
                    print(f"model: {part['text']}")
        elif item.get("type") == "function_call":
            print(f"model calls {item['name']}({item['arguments']}) as {item['call_id']}")


def show_outputs(outputs: list[FunctionCallOutput]) -> None:
    """Print the `function_call_output` items: the input of the next request."""
    print("function_call_output items (the next request's input):")
    print(json.dumps(outputs, indent=2))


async def recorded_turn(session: Session, tools: list[FunctionToolParam]) -> None:
    offered = {tool["name"] for tool in tools}
    show_response(RECORDED_RESPONSE)
    outputs = await lash_openai.run_function_calls(session, RECORDED_RESPONSE)
    for output in outputs:
        text = output["output"]
        if isinstance(text, str) and text.startswith("Error: "):
            raise SystemExit(f"the recorded call failed (tools offered: {sorted(offered)}): {json.dumps(output)}")
    show_outputs(outputs)


async def live_turn(session: Session, tools: list[FunctionToolParam], model: str) -> None:
    import openai

    request_input: str | ResponseInputParam = QUESTION
    previous_response_id: str | None = None
    async with openai.AsyncOpenAI() as client:
        for _ in range(MAX_ROUNDS):
            response = await client.responses.create(
                model=model, input=request_input, previous_response_id=previous_response_id, tools=tools
            )
            show_response(response.model_dump(mode="json"))
            outputs = await lash_openai.run_function_calls(session, response)
            if not outputs:
                return
            show_outputs(outputs)
            # The server keeps the conversation: the next request is the outputs and a pointer to this response.
            request_input, previous_response_id = list(outputs), response.id
    print(f"no answer after {MAX_ROUNDS} model calls")


async def main() -> None:
    async with McpPluginFactory() as factory:
        await factory.attach_server(SERVER, TIME_SERVER)
        session = LashCore.builder().plugin(factory).build().session()
        tools = lash_openai.response_tools(session)
        print(f"tools offered: {', '.join(tool['name'] for tool in tools)}")
        print(f"user: {QUESTION}")
        if os.environ.get("OPENAI_API_KEY") and importlib.util.find_spec("openai") is not None:
            await live_turn(session, tools, os.environ.get("OPENAI_MODEL") or DEFAULT_MODEL)
        else:
            print("(OPENAI_API_KEY unset or `openai` not installed: a recorded response stands in for the model)")
            await recorded_turn(session, tools)


if __name__ == "__main__":
    if importlib.util.find_spec("mcp_server_time") is None:
        sys.exit("this example needs the MCP server `mcp-server-time`: pip install mcp-server-time")
    anyio.run(main)
