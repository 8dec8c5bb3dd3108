"""The MCP server the official conformance suite's server scenarios expect (npm `@modelcontextprotocol/conformance`,
0.1.x), built on the SDK's `MCPServer`: the tools, resources, prompts and behaviours each scenario names.

    python -m tests.servers.conformance --transport stdio|streamable_http [--port 0]

Over streamable HTTP it binds 127.0.0.1, serves `/mcp` and writes ``LISTENING http://127.0.0.1:<port>`` to stderr
once it listens, as `tests.servers.upstream` does. The gateway's conformance test puts it behind the gateway
(over stdio, `prefix: false`) and runs the suite against both.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Sequence
from typing import Any, Final

import anyio
import mcp_types as types
import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import ServerMessageMetadata

from tests.servers.upstream import HOST, PNG_BYTES, WAV_BYTES, _AnnouncingServer

PNG: Final = base64.b64encode(PNG_BYTES).decode()
WAV: Final = base64.b64encode(WAV_BYTES).decode()
ASK_TIMEOUT: Final = 30.0

mcp = MCPServer("conformance", version="1.0.0")


async def _ask(ctx: Context, request: Any, result_type: Any) -> Any:
    """A question to the client, on the stream of the request that asked for it."""
    metadata = ServerMessageMetadata(related_request_id=ctx.request_id)
    return await ctx.session.send_request(
        request, result_type, request_read_timeout_seconds=ASK_TIMEOUT, metadata=metadata
    )


async def _log(ctx: Context, message: str) -> None:
    params = types.LoggingMessageNotificationParams(level="info", data=message, logger="conformance")
    await ctx.session.send_notification(types.LoggingMessageNotification(params=params), ctx.request_id)


async def _elicit(ctx: Context, message: str, schema: dict[str, Any]) -> str:
    request = types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))
    result = await _ask(ctx, request, types.ElicitResult)
    return f"Elicitation completed: action={result.action}, content={json.dumps(result.content)}"


# -- tools ---------------------------------------------------------------------------------------------------------


@mcp.tool(description="A simple text response.")
def test_simple_text() -> str:
    return "This is a simple text response for testing."


@mcp.tool(description="An image.")
def test_image_content() -> list[types.ContentBlock]:
    return [types.ImageContent(type="image", data=PNG, mime_type="image/png")]


@mcp.tool(description="An audio clip.")
def test_audio_content() -> list[types.ContentBlock]:
    return [types.AudioContent(type="audio", data=WAV, mime_type="audio/wav")]


@mcp.tool(description="An embedded resource.")
def test_embedded_resource() -> list[types.ContentBlock]:
    resource = types.TextResourceContents(
        uri="test://embedded-resource", mime_type="text/plain", text="This is an embedded resource content."
    )
    return [types.EmbeddedResource(type="resource", resource=resource)]


@mcp.tool(description="Text, an image and a resource.")
def test_multiple_content_types() -> list[types.ContentBlock]:
    resource = types.TextResourceContents(
        uri="test://mixed-content-resource",
        mime_type="application/json",
        text=json.dumps({"test": "data", "value": 123}),
    )
    return [
        types.TextContent(type="text", text="Multiple content types test:"),
        types.ImageContent(type="image", data=PNG, mime_type="image/png"),
        types.EmbeddedResource(type="resource", resource=resource),
    ]


@mcp.tool(description="Sends three log messages while it runs.")
async def test_tool_with_logging(ctx: Context) -> str:
    await _log(ctx, "Tool execution started")
    await anyio.sleep(0.05)
    await _log(ctx, "Tool processing data")
    await anyio.sleep(0.05)
    await _log(ctx, "Tool execution completed")
    return "Tool with logging executed successfully"


@mcp.tool(description="Reports progress 0, 50 and 100 of 100.")
async def test_tool_with_progress(ctx: Context) -> str:
    for progress in (0, 50, 100):
        await ctx.report_progress(progress, 100)
        if progress < 100:
            await anyio.sleep(0.05)
    return "Tool with progress executed successfully"


@mcp.tool(description="Always fails.")
def test_error_handling() -> str:
    raise RuntimeError("This tool intentionally returns an error for testing")


@mcp.tool(description="Asks the client's model.")
async def test_sampling(prompt: str, ctx: Context) -> str:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=prompt))
    request = types.CreateMessageRequest(params=types.CreateMessageRequestParams(messages=[message], max_tokens=100))
    result = await _ask(ctx, request, types.CreateMessageResult)
    text = result.content.text if isinstance(result.content, types.TextContent) else str(result.content)
    return f"LLM response: {text}"


@mcp.tool(description="Asks the user for a username and an email address.")
async def test_elicitation(message: str, ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {
            "username": {"type": "string", "description": "User's response"},
            "email": {"type": "string", "description": "User's email address"},
        },
        "required": ["username", "email"],
    }
    return await _elicit(ctx, message, schema)


@mcp.tool(description="Elicitation with a default for every primitive type (SEP-1034).")
async def test_elicitation_sep1034_defaults(ctx: Context) -> str:
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "default": "John Doe"},
            "age": {"type": "integer", "default": 30},
            "score": {"type": "number", "default": 95.5},
            "status": {"type": "string", "enum": ["active", "inactive", "pending"], "default": "active"},
            "verified": {"type": "boolean", "default": True},
        },
    }
    return await _elicit(ctx, "Please review your details", schema)


@mcp.tool(description="Elicitation with the five kinds of enum (SEP-1330).")
async def test_elicitation_sep1330_enums(ctx: Context) -> str:
    options = ["option1", "option2", "option3"]
    schema = {
        "type": "object",
        "properties": {
            "untitledSingle": {"type": "string", "enum": options},
            "titledSingle": {
                "type": "string",
                "oneOf": [
                    {"const": "value1", "title": "First Option"},
                    {"const": "value2", "title": "Second Option"},
                    {"const": "value3", "title": "Third Option"},
                ],
            },
            "legacyEnum": {
                "type": "string",
                "enum": ["opt1", "opt2", "opt3"],
                "enumNames": ["Option One", "Option Two", "Option Three"],
            },
            "untitledMulti": {"type": "array", "items": {"type": "string", "enum": options}},
            "titledMulti": {
                "type": "array",
                "items": {
                    "anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"},
                    ]
                },
            },
        },
    }
    return await _elicit(ctx, "Please pick your options", schema)


# -- resources -----------------------------------------------------------------------------------------------------


@mcp.resource("test://static-text", name="static-text", description="A static text.", mime_type="text/plain")
def static_text() -> str:
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary", name="static-binary", description="A static image.", mime_type="image/png")
def static_binary() -> bytes:
    return PNG_BYTES


@mcp.resource("test://watched-resource", name="watched", description="Subscribable.", mime_type="text/plain")
def watched() -> str:
    return "watched"


@mcp.resource("test://template/{id}/data", name="template", description="Data for an id.", mime_type="application/json")
def template(id: str) -> str:
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


# -- prompts -------------------------------------------------------------------------------------------------------


@mcp.prompt(description="A simple prompt.")
def test_simple_prompt() -> str:
    return "This is a simple prompt for testing."


@mcp.prompt(description="A prompt with two arguments.")
def test_prompt_with_arguments(arg1: str, arg2: str) -> str:
    return f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"


@mcp.prompt(description="A prompt that embeds a resource.")
def test_prompt_with_embedded_resource(resourceUri: str) -> list[dict[str, Any]]:
    resource = {"uri": resourceUri, "mimeType": "text/plain", "text": "Embedded resource content for testing."}
    return [
        {"role": "user", "content": {"type": "resource", "resource": resource}},
        {"role": "user", "content": {"type": "text", "text": "Please process the embedded resource above."}},
    ]


@mcp.prompt(description="A prompt with an image.")
def test_prompt_with_image() -> list[dict[str, Any]]:
    return [
        {"role": "user", "content": {"type": "image", "data": PNG, "mimeType": "image/png"}},
        {"role": "user", "content": {"type": "text", "text": "Please analyze the image above."}},
    ]


async def complete(ref: Any, argument: Any, context: Any) -> types.Completion:
    values = [value for value in ("paris", "park", "party") if value.startswith(argument.value)]
    return types.Completion(values=values, total=len(values), has_more=False)


mcp.completion()(complete)  # type: ignore[no-untyped-call]  # the SDK's decorator is untyped


# -- what MCPServer has no handler for -----------------------------------------------------------------------------


async def _accept(ctx: Any, params: Any) -> types.EmptyResult:
    return types.EmptyResult()


# MCPServer offers no subscriptions or log levels; its low-level server (a private attribute) takes the handlers.
for method, params_type in (
    ("resources/subscribe", types.SubscribeRequestParams),
    ("resources/unsubscribe", types.UnsubscribeRequestParams),
    ("logging/setLevel", types.SetLevelRequestParams),
):
    mcp._lowlevel_server.add_request_handler(method, params_type, _accept)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.servers.conformance")
    parser.add_argument("--transport", choices=("stdio", "streamable_http"), default="stdio")
    parser.add_argument("--port", type=int, default=0)
    options = parser.parse_args(argv)
    if options.transport == "stdio":
        mcp.run("stdio")
        return
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{HOST}:*", "localhost:*"],
        allowed_origins=[f"http://{HOST}:*", "http://localhost:*"],
    )
    app = mcp.streamable_http_app(transport_security=security)
    config = uvicorn.Config(app, host=HOST, port=options.port, log_level="warning", timeout_graceful_shutdown=1)
    _AnnouncingServer(config).run()


if __name__ == "__main__":
    main()
