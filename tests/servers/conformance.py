"""The MCP server the official conformance suite's server scenarios expect (npm `@modelcontextprotocol/conformance`,
0.1.x, and the 2026-07-28 scenarios of 0.2.0), built on the SDK's `MCPServer`: the tools, resources, prompts and
behaviours each scenario names. What asks the client asks in either era: in input-required rounds on 2026-07-28
(the scenarios' keys and states), on the request's own stream before (all at once, as a round would carry them):
behind a gateway that speaks the handshake era to it, the gateway makes the rounds.

    python -m tests.servers.conformance --transport stdio|streamable_http [--port 0]

Over streamable HTTP it binds 127.0.0.1, serves `/mcp` and writes ``LISTENING http://127.0.0.1:<port>`` to stderr
once it listens, as `tests.servers.upstream` does. The gateway's conformance test puts it behind the gateway
(over stdio, `prefix: false`) and runs the suite against both.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Mapping, Sequence
from typing import Any, Final

import anyio
import mcp_types as types
import uvicorn
from mcp import MCPError
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

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


# -- input-required rounds (2026-07-28 scenarios) -----------------------------------------------------------------

InputRequest = types.ElicitRequest | types.CreateMessageRequest | types.ListRootsRequest
_ANSWER_TYPES: Final[dict[type[Any], Any]] = {
    types.ElicitRequest: types.ElicitResult,
    types.CreateMessageRequest: types.CreateMessageResult,
    types.ListRootsRequest: types.ListRootsResult,
}


def _modern(ctx: Context) -> bool:
    return ctx.protocol_version in MODERN_PROTOCOL_VERSIONS


async def _answers(
    ctx: Context, asks: Mapping[str, InputRequest], state: str | None = None, *, refusable: bool = False
) -> dict[str, Any] | types.InputRequiredResult:
    """The client's answers to `asks` by key, or, on 2026-07-28 while one is missing, the round that asks them.
    `refusable`: a question the client refuses (handshake era) is left out of the answers."""
    if _modern(ctx):
        responses = ctx.input_responses or {}
        if all(key in responses for key in asks):
            return {key: _wire(responses[key]) for key in asks}
        return types.InputRequiredResult(input_requests=dict(asks), request_state=state)
    answers: dict[str, Any] = {}

    async def ask(key: str, request: InputRequest) -> None:
        try:
            answers[key] = _wire(await _ask(ctx, request, _ANSWER_TYPES[type(request)]))
        except MCPError:
            if not refusable:
                raise

    async with anyio.create_task_group() as tg:  # at once: the gateway puts questions asked together in one round
        for key, request in asks.items():
            tg.start_soon(ask, key, request)
    return answers


def _wire(answer: Any) -> dict[str, Any]:
    if hasattr(answer, "model_dump"):
        answer = answer.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dict(answer) if isinstance(answer, dict) else {}


def _form(message: str, field: str, kind: str = "string") -> types.ElicitRequest:
    schema = {"type": "object", "properties": {field: {"type": kind}}, "required": [field]}
    return types.ElicitRequest(params=types.ElicitRequestFormParams(message=message, requested_schema=schema))


def _sampling(text: str) -> types.CreateMessageRequest:
    message = types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))
    return types.CreateMessageRequest(params=types.CreateMessageRequestParams(messages=[message], max_tokens=50))


def _accepted(answer: dict[str, Any], field: str) -> Any:
    return (answer.get("content") or {}).get(field)


@mcp.tool(description="Asks the user's name (input-required on 2026-07-28).")
async def test_input_required_result_elicitation(ctx: Context) -> str | types.InputRequiredResult:
    answers = await _answers(ctx, {"user_name": _form("What is your name?", "name")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return f"Hello, {_accepted(answers['user_name'], 'name')}!"


@mcp.tool(description="Asks the client's model (input-required on 2026-07-28).")
async def test_input_required_result_sampling(ctx: Context) -> str | types.InputRequiredResult:
    answers = await _answers(ctx, {"capital": _sampling("What is the capital of France?")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return f"The model said: {answers['capital'].get('content', {}).get('text')}"


@mcp.tool(description="Asks the client's roots (input-required on 2026-07-28).")
async def test_input_required_result_list_roots(ctx: Context) -> str | types.InputRequiredResult:
    answers = await _answers(ctx, {"client_roots": types.ListRootsRequest()})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return "Roots: " + ", ".join(root.get("uri", "?") for root in answers["client_roots"].get("roots", []))


@mcp.tool(description="Asks for a confirmation, with a requestState that must come back.")
async def test_input_required_result_request_state(ctx: Context) -> str | types.InputRequiredResult:
    return await _confirmed(ctx)


@mcp.tool(description="As test_input_required_result_request_state: a tampered requestState is refused.")
async def test_input_required_result_tampered_state(ctx: Context) -> str | types.InputRequiredResult:
    return await _confirmed(ctx)


async def _confirmed(ctx: Context) -> str | types.InputRequiredResult:
    answers = await _answers(ctx, {"confirm": _form("Please confirm", "ok", "boolean")}, "awaiting-confirmation")
    if isinstance(answers, types.InputRequiredResult):
        return answers
    if _modern(ctx) and ctx.request_state != "awaiting-confirmation":  # the SDK unsealed it: only ours come back
        raise MCPError(types.INVALID_PARAMS, "requestState is not the one this call sent")
    return f"state-ok: confirmed {_accepted(answers['confirm'], 'ok')}"


@mcp.tool(description="Asks an elicitation, a sampling and the roots in one round.")
async def test_input_required_result_multiple_inputs(ctx: Context) -> str | types.InputRequiredResult:
    asks: dict[str, InputRequest] = {
        "user_name": _form("What is your name?", "name"),
        "greeting": _sampling("Generate a greeting"),
        "client_roots": types.ListRootsRequest(),
    }
    answers = await _answers(ctx, asks, "three-questions")
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return f"Got {len(answers)} answers, {_accepted(answers['user_name'], 'name')} among them"


@mcp.tool(description="Two rounds: a name, then a colour, each with its own requestState.")
async def test_input_required_result_multi_round(ctx: Context) -> str | types.InputRequiredResult:
    step1 = {"step1": _form("Step 1: What is your name?", "name")}
    step2 = {"step2": _form("Step 2: What is your favorite color?", "color")}
    if not _modern(ctx):
        name = await _answers(ctx, step1)
        color = await _answers(ctx, step2)
        assert not isinstance(name, types.InputRequiredResult) and not isinstance(color, types.InputRequiredResult)
        return f"{_accepted(name['step1'], 'name')} likes {_accepted(color['step2'], 'color')}"
    responses, state = ctx.input_responses or {}, ctx.request_state or ""
    if state.startswith("round-2:") and "step2" in responses:  # the SDK seals the state: the name is the one given
        return f"{state.removeprefix('round-2:')} likes {_accepted(_wire(responses['step2']), 'color')}"
    if state == "round-1" and "step1" in responses:
        name = _accepted(_wire(responses["step1"]), "name")
        return types.InputRequiredResult(input_requests=dict(step2), request_state=f"round-2:{name}")
    return types.InputRequiredResult(input_requests=dict(step1), request_state="round-1")


@mcp.tool(description="Asks only what the client declared it takes (a sampling and an elicitation at most).")
async def test_input_required_result_capabilities(ctx: Context) -> str | types.InputRequiredResult:
    # A handshake-era client declared at its handshake, and its refusal is its answer: this era asks both.
    declared = ctx.client_capabilities if _modern(ctx) else None
    asks: dict[str, InputRequest] = {}
    if declared is None or declared.sampling is not None:
        asks["greeting"] = _sampling("Generate a greeting")
    if declared is None or declared.elicitation is not None:
        asks["user_name"] = _form("What is your name?", "name")
    answers = await _answers(ctx, asks, refusable=True)
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return f"answered: {', '.join(answers)}"


@mcp.tool(description="Needs the client's model: refused with -32021 to a 2026-07-28 client that did not declare it.")
async def test_missing_capability(ctx: Context) -> str | types.InputRequiredResult:
    declared = ctx.client_capabilities
    if _modern(ctx) and (declared is None or declared.sampling is None):
        data = types.MissingRequiredClientCapabilityErrorData(
            required_capabilities=types.ClientCapabilities(sampling=types.SamplingCapability())
        )
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            "this tool needs sampling",
            data.model_dump(by_alias=True, exclude_none=True, mode="json"),
        )
    answers = await _answers(ctx, {"greeting": _sampling("Generate a greeting")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    return "sampled"


@mcp.tool(description="Always refuses with -32021, naming `capability` as required, whatever the client declared.")
async def refuses_for(capability: str) -> str:
    data: dict[str, Any] = {"requiredCapabilities": {capability: {}}}
    raise MCPError(types.MISSING_REQUIRED_CLIENT_CAPABILITY, f"this tool needs {capability}", data)


@mcp.tool(description="The client capabilities this request declared (2026-07-28: in its envelope), as JSON.")
async def client_capabilities(ctx: Context) -> str:
    declared = ctx.client_capabilities
    return json.dumps(declared.model_dump(by_alias=True, exclude_none=True, mode="json") if declared else None)


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


@mcp.prompt(description="Asks for the context it uses (input-required on 2026-07-28).")
async def test_input_required_result_prompt(ctx: Context) -> list[dict[str, Any]] | types.InputRequiredResult:
    answers = await _answers(ctx, {"user_context": _form("What context should the prompt use?", "context")})
    if isinstance(answers, types.InputRequiredResult):
        return answers
    text = f"Use this context: {_accepted(answers['user_context'], 'context')}"
    return [{"role": "user", "content": {"type": "text", "text": text}}]


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
