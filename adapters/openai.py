"""A lash session's tools for the OpenAI Chat Completions and Responses APIs, and the model's calls run back
through it.

    from adapters import openai as lash_openai

    # Chat Completions
    completion = await client.chat.completions.create(model=model, messages=messages,
                                                      tools=lash_openai.chat_tools(session))
    message = completion.choices[0].message
    messages.append(message)
    messages.extend(await lash_openai.run_tool_calls(session, message))

    # Responses
    response = await client.responses.create(model=model, input=items, tools=lash_openai.response_tools(session))
    items += response.output
    items += await lash_openai.run_function_calls(session, response)

No dependency on the `openai` package: definitions and results are plain dicts (typed as the SDK's params for
type checkers), and the input may be SDK objects or the same as dicts. Only function calls are run: custom tool
calls and other output items (messages, reasoning) are skipped.

What is adjusted for the API, and nothing else:

- Names: function names must match `^[a-zA-Z0-9_-]{1,64}$`. Names that fit are unchanged; others are sanitised
  and shortened with a hash suffix (`adapters._names`), and a call naming them is mapped back.
- `parameters`: the API requires an object schema and rejects one without `properties` ("object schema missing
  properties", common for MCP tools without arguments), so the top level gets `"type": "object"` when it is
  missing or different and `"properties": {}` when absent. Nested schemas are passed unchanged.
- Strict mode is not used: arbitrary MCP schemas do not meet its subset of JSON Schema. Chat tools leave
  `strict` unset (its default is off); Responses tools, where the API defaults to strict, send `"strict": false`.
- Arguments arrive as a JSON string; invalid JSON or a non-object value is answered with an error output
  without calling the tool. An empty string means no arguments.
- Results: OpenAI has no error flag for tool outputs, so a failure's text starts with `Error: `.
  Chat Completions tool messages carry text only: text parts, text resources (led by a `[resource <uri>]`
  line) and resource links are joined by newlines, and every image, audio or blob part becomes a text note.
  Responses `function_call_output` carries a string when the result is text only, otherwise a list of
  `input_text`, `input_image` (JPEG, PNG, GIF, WebP as `data:` URLs) and `input_file` (embedded PDFs, as
  `data:` URLs with a file name) items; audio, other images and other blobs become text notes.
  Structured content is sent as JSON text when no text part carries it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING

from lash_core import (
    AudioPart,
    ImagePart,
    ResourceLinkPart,
    ResourcePart,
    Session,
    TextPart,
    ToolResult,
)

from ._calls import PendingCall, entries, execute_all, field, required_str
from ._content import data_url, file_name, is_pdf, model_parts, omitted_note, resource_link_text, resource_text
from ._names import NameMap as NameMap
from ._names import session_names

if TYPE_CHECKING:  # the SDK is optional: its types describe our plain dicts for type checkers only
    from openai.types.chat import ChatCompletionFunctionToolParam, ChatCompletionToolMessageParam
    from openai.types.responses import FunctionToolParam, ResponseFunctionCallOutputItemParam
    from openai.types.responses.response_input_item_param import FunctionCallOutput

__all__ = ["NameMap", "chat_tools", "response_tools", "run_function_calls", "run_tool_calls", "tool_names"]

_IMAGE_MIME_TYPES = frozenset({"image/jpeg", "image/jpg", "image/png", "image/gif", "image/webp"})
_ERROR_PREFIX = "Error: "


def chat_tools(session: Session) -> list[ChatCompletionFunctionToolParam]:
    """The session's tool surface as Chat Completions `tools` (`{"type": "function", "function": {...}}`).

    Raises:
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    definitions = session.tools()
    names = session_names(session)
    tools: list[ChatCompletionFunctionToolParam] = []
    for definition in definitions:
        tool: ChatCompletionFunctionToolParam = {
            "type": "function",
            "function": {"name": names.model_name(definition.name), "parameters": _parameters(definition.input_schema)},
        }
        if definition.description:
            tool["function"]["description"] = definition.description
        tools.append(tool)
    return tools


def response_tools(session: Session) -> list[FunctionToolParam]:
    """The session's tool surface as Responses API `tools` (`{"type": "function", "name": ..., ...}`).

    Raises:
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    definitions = session.tools()
    names = session_names(session)
    tools: list[FunctionToolParam] = []
    for definition in definitions:
        tool: FunctionToolParam = {
            "type": "function",
            "name": names.model_name(definition.name),
            "parameters": _parameters(definition.input_schema),
            "strict": False,
        }
        if definition.description:
            tool["description"] = definition.description
        tools.append(tool)
    return tools


def tool_names(session: Session) -> NameMap:
    """The map between the session's tool names and those the model is given.

    Use it to tell the session's calls from those of functions you define yourself:
    `tool_names(session).lash_name(name) is not None`.
    """
    return session_names(session)


async def run_tool_calls(session: Session, tool_calls: object) -> list[ChatCompletionToolMessageParam]:
    """Run a Chat Completions message's function tool calls through `session.call_tool`, concurrently, and
    return one `{"role": "tool", ...}` message per call, in the same order.

    Args:
        tool_calls: the assistant message (`ChatCompletionMessage` or dict), or its `tool_calls` list.

    Raises:
        TypeError: `tool_calls` is neither a message nor a list of tool calls.
        ValueError: a tool call has no string `id` or function `name`.
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    calls = [_chat_call(item) for item in entries(tool_calls, "tool_calls") if field(item, "type") == "function"]
    if not calls:
        return []
    results = await execute_all(session, calls)
    return [
        {"role": "tool", "tool_call_id": call.call_id, "content": _chat_content(result)}
        for call, result in zip(calls, results, strict=True)
    ]


async def run_function_calls(session: Session, output: object) -> list[FunctionCallOutput]:
    """Run a Responses API response's `function_call` items through `session.call_tool`, concurrently, and
    return one `function_call_output` item per call, in the same order: input items for the next request.

    Args:
        output: a `Response` (SDK object or dict), or its `output` list of items.

    Raises:
        TypeError: `output` is neither a response nor a list of output items.
        ValueError: a `function_call` item has no string `call_id` or `name`.
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    calls = [_response_call(item) for item in entries(output, "output") if field(item, "type") == "function_call"]
    if not calls:
        return []
    results = await execute_all(session, calls)
    return [
        {"type": "function_call_output", "call_id": call.call_id, "output": _response_output(result)}
        for call, result in zip(calls, results, strict=True)
    ]


def _parameters(schema: Mapping[str, object]) -> dict[str, object]:
    adjusted = dict(schema)
    if adjusted.get("type") != "object":
        adjusted["type"] = "object"
    if "properties" not in adjusted:
        adjusted["properties"] = {}
    return adjusted


def _chat_call(item: object) -> PendingCall:
    call_id = required_str(item, "id", "tool call")
    function = field(item, "function")
    name = required_str(function, "name", f"tool call {call_id!r}")
    return _with_arguments(call_id, name, field(function, "arguments"))


def _response_call(item: object) -> PendingCall:
    call_id = required_str(item, "call_id", "function_call item")
    name = required_str(item, "name", f"function_call item {call_id!r}")
    return _with_arguments(call_id, name, field(item, "arguments"))


def _with_arguments(call_id: str, name: str, raw: object) -> PendingCall:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return PendingCall(call_id, name, {})
    if isinstance(raw, Mapping):  # hand-built calls and some OpenAI-compatible servers send an object
        return PendingCall(call_id, name, raw)
    if not isinstance(raw, str):
        return PendingCall(call_id, name, None, f"arguments must be a JSON string, got {type(raw).__name__}")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        return PendingCall(call_id, name, None, f"arguments are not valid JSON ({exc})")
    if not isinstance(value, dict):
        return PendingCall(call_id, name, None, f"arguments must be a JSON object, got {type(value).__name__}")
    return PendingCall(call_id, name, value)


def _chat_content(result: ToolResult) -> str:
    lines: list[str] = []
    for part in model_parts(result):
        if isinstance(part, TextPart):
            lines.append(part.text)
        elif isinstance(part, ResourcePart) and part.blob is None:
            lines.append(resource_text(part))
        elif isinstance(part, ResourceLinkPart):
            lines.append(resource_link_text(part))
        else:
            lines.append(omitted_note(part, "Chat Completions tool messages carry text only"))
    text = "\n".join(lines)
    return _ERROR_PREFIX + text if result.is_error else text


def _response_output(result: ToolResult) -> str | list[ResponseFunctionCallOutputItemParam]:
    items: list[ResponseFunctionCallOutputItemParam] = []
    for part in model_parts(result):
        if isinstance(part, TextPart):
            items.append({"type": "input_text", "text": part.text})
        elif isinstance(part, ImagePart) and part.mime_type.lower() in _IMAGE_MIME_TYPES:
            items.append({"type": "input_image", "image_url": data_url(part.mime_type, part.data)})
        elif isinstance(part, ImagePart):
            note = omitted_note(part, "OpenAI accepts JPEG, PNG, GIF and WebP images only")
            items.append({"type": "input_text", "text": note})
        elif isinstance(part, AudioPart):
            items.append({"type": "input_text", "text": omitted_note(part, "function outputs cannot carry audio")})
        elif isinstance(part, ResourcePart) and part.blob is None:
            items.append({"type": "input_text", "text": resource_text(part)})
        elif isinstance(part, ResourcePart) and is_pdf(part):
            items.append(
                {
                    "type": "input_file",
                    "filename": file_name(part.uri, "document.pdf"),
                    "file_data": data_url("application/pdf", part.blob or ""),
                }
            )
        elif isinstance(part, ResourcePart):
            note = omitted_note(part, "function outputs carry PDF files only, no other binary data")
            items.append({"type": "input_text", "text": note})
        else:
            items.append({"type": "input_text", "text": resource_link_text(part)})
    texts = [item["text"] for item in items if item["type"] == "input_text"]
    if len(texts) == len(items):
        text = "\n".join(texts)
        return _ERROR_PREFIX + text if result.is_error else text
    if result.is_error:
        first = items[0]
        if first["type"] == "input_text":
            items[0] = {"type": "input_text", "text": _ERROR_PREFIX + first["text"]}
        else:
            items.insert(0, {"type": "input_text", "text": _ERROR_PREFIX + (result.message or "")})
    return items
