"""A lash session's tools for the Anthropic Messages API, and the model's `tool_use` blocks run back through it.

    from adapters import anthropic as lash_anthropic

    # An MCP server that asks for a completion (sampling) gets one from your own model:
    caller = lash_core.Caller(on_sampling=lash_anthropic.sampling_handler(client.messages.create, model=model))
    session = core.session(caller=caller)

    tools = lash_anthropic.tool_definitions(session)
    message = await client.messages.create(model=model, max_tokens=1024, tools=tools, messages=messages)
    if message.stop_reason == "tool_use":
        messages.append({"role": "assistant", "content": message.content})
        messages.append({"role": "user", "content": await lash_anthropic.run_tool_uses(session, message)})

No dependency on the `anthropic` package: definitions and results are plain dicts (typed as the SDK's
`ToolParam` / `ToolResultBlockParam` for type checkers), and the input may be a `Message`, its `content`, or the
same as dicts. Only `tool_use` blocks are run; text, thinking and server-tool blocks are skipped.

What is adjusted for the API, and nothing else:

- Names: tool names must match `^[a-zA-Z0-9_-]{1,64}$`. Names that fit are unchanged; others are sanitised and
  shortened with a hash suffix (`adapters._names`), and a `tool_use` naming them is mapped back.
- `input_schema`: the API requires an object schema, so the top-level `"type"` is set to `"object"` when it is
  missing or different. Everything else (nested schemas, `$defs`, `additionalProperties`) is passed unchanged.
- Results: text parts become text blocks (empty ones are dropped: the API rejects empty text); images in JPEG,
  PNG, GIF or WebP become base64 image blocks; embedded PDF blobs become base64 `document` blocks; embedded
  text resources become text led by a `[resource <uri>]` line; resource links become one line of text. Audio,
  other image types and other blobs cannot be sent in a tool result, so a text note names what was left out and
  its size. Structured content is sent as JSON text when no text part carries it. A failure sets `is_error`;
  a call to a name the session does not offer, or with non-object input, is answered with `is_error` too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal, cast

from lash_core import (
    AudioPart,
    ImagePart,
    ResourceLinkPart,
    ResourcePart,
    Session,
    TextPart,
    ToolDefinition,
    ToolResult,
)

from ._calls import PendingCall, entries, execute_all, field, required_str
from ._content import is_pdf, model_parts, omitted_note, resource_link_text, resource_text
from ._names import NameMap as NameMap
from ._names import session_names

if TYPE_CHECKING:  # the SDK is optional: its types describe our plain dicts for type checkers only
    from anthropic.types import (
        Base64ImageSourceParam,
        Base64PDFSourceParam,
        DocumentBlockParam,
        ImageBlockParam,
        MessageParam,
        TextBlockParam,
        ToolParam,
        ToolResultBlockParam,
    )
    from anthropic.types.message_create_params import MessageCreateParamsNonStreaming

__all__ = [
    "DEFAULT_SAMPLING_MAX_TOKENS",
    "NameMap",
    "SamplingHandler",
    "run_tool_uses",
    "sampling_handler",
    "sampling_request",
    "sampling_result",
    "tool_definitions",
    "tool_names",
]

_ImageMediaType = Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
_IMAGE_MEDIA_TYPES: dict[str, _ImageMediaType] = {
    "image/jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "image/png": "image/png",
    "image/gif": "image/gif",
    "image/webp": "image/webp",
}


def tool_definitions(session: Session) -> list[ToolParam]:
    """The session's tool surface as Messages API `tools`, in surface order.

    Raises:
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    definitions = session.tools()
    names = session_names(session)
    return [_tool(definition, names.model_name(definition.name)) for definition in definitions]


def tool_names(session: Session) -> NameMap:
    """The map between the session's tool names and those `tool_definitions` gives the model.

    Use it to tell the session's `tool_use` blocks from those of tools you define yourself:
    `tool_names(session).lash_name(block.name) is not None`.
    """
    return session_names(session)


async def run_tool_uses(session: Session, content: object) -> list[ToolResultBlockParam]:
    """Run every `tool_use` block of a response through `session.call_tool`, concurrently, and return one
    `tool_result` block per `tool_use`, in the same order: the content of the next user message.

    Args:
        content: a `Message` (SDK object or dict), or its `content` list of blocks (SDK objects or dicts).

    Raises:
        TypeError: `content` is neither a message nor a list of blocks.
        ValueError: a `tool_use` block has no string `id` or `name`.
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    calls = [_pending(block) for block in entries(content, "content") if field(block, "type") == "tool_use"]
    if not calls:
        return []
    results = await execute_all(session, calls)
    return [_tool_result(call.call_id, result) for call, result in zip(calls, results, strict=True)]


def _tool(definition: ToolDefinition, name: str) -> ToolParam:
    tool: ToolParam = {"name": name, "input_schema": _object_schema(definition.input_schema)}
    if definition.description:
        tool["description"] = definition.description
    return tool


def _object_schema(schema: object) -> dict[str, object]:
    adjusted: dict[str, object] = dict(schema) if isinstance(schema, Mapping) else {}
    if adjusted.get("type") != "object":
        adjusted["type"] = "object"
    return adjusted


def _pending(block: object) -> PendingCall:
    call_id = required_str(block, "id", "tool_use block")
    name = required_str(block, "name", f"tool_use block {call_id!r}")
    arguments = field(block, "input")
    if arguments is None:
        return PendingCall(call_id, name, {})
    if isinstance(arguments, Mapping):
        return PendingCall(call_id, name, arguments)
    return PendingCall(call_id, name, None, f"input must be a JSON object, got {type(arguments).__name__}")


def _tool_result(tool_use_id: str, result: ToolResult) -> ToolResultBlockParam:
    block: ToolResultBlockParam = {"type": "tool_result", "tool_use_id": tool_use_id}
    content = _content_blocks(result)
    if content:
        block["content"] = content
    if result.is_error:
        block["is_error"] = True
    return block


def _content_blocks(result: ToolResult) -> list[TextBlockParam | ImageBlockParam | DocumentBlockParam]:
    blocks: list[TextBlockParam | ImageBlockParam | DocumentBlockParam] = []
    for part in model_parts(result):
        if isinstance(part, TextPart):
            blocks.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            media_type = _IMAGE_MEDIA_TYPES.get(part.mime_type.lower())
            if media_type is None:
                note = omitted_note(part, "Anthropic accepts JPEG, PNG, GIF and WebP images only")
                blocks.append({"type": "text", "text": note})
            else:
                blocks.append(
                    {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": part.data}}
                )
        elif isinstance(part, AudioPart):
            blocks.append({"type": "text", "text": omitted_note(part, "Anthropic tool results cannot carry audio")})
        elif isinstance(part, ResourcePart):
            if part.blob is None:
                blocks.append({"type": "text", "text": resource_text(part)})
            elif is_pdf(part):
                source: Base64PDFSourceParam = {"type": "base64", "media_type": "application/pdf", "data": part.blob}
                blocks.append({"type": "document", "source": source, "title": part.uri})
            else:
                note = omitted_note(part, "Anthropic tool results carry PDF documents only, no other binary data")
                blocks.append({"type": "text", "text": note})
        elif isinstance(part, ResourceLinkPart):
            blocks.append({"type": "text", "text": resource_link_text(part)})
    return blocks


# -- sampling: an upstream server asks the host's model ----------------------------------------------------------


DEFAULT_SAMPLING_MAX_TOKENS: Final = 1024
"""Tokens a server's sampling request may have the model write, at most, unless the host allows more."""
SamplingHandler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]
"""What `lash_core.Caller(on_sampling=...)` takes: MCP `sampling/createMessage` params in, its result out."""

_STOP_REASONS: dict[str, str] = {"end_turn": "endTurn", "max_tokens": "maxTokens", "stop_sequence": "stopSequence"}


def sampling_handler(
    create: Callable[..., Awaitable[object]], *, model: str, max_tokens: int = DEFAULT_SAMPLING_MAX_TOKENS
) -> SamplingHandler:
    """Answer an MCP server's sampling requests with your own Claude model:

        caller = lash_core.Caller(on_sampling=lash_anthropic.sampling_handler(client.messages.create, model=model))
        session = core.session(caller=caller)

    `create` is `AsyncAnthropic().messages.create` (or anything that takes its keyword arguments and returns a
    `Message` or the same as a dict); the server's model preferences are hints only, `model` decides, and
    `max_tokens` caps what a server may ask for (it spends your tokens).
    """

    async def answer(params: Mapping[str, Any]) -> dict[str, Any]:
        return sampling_result(await create(**sampling_request(params, model=model, max_tokens=max_tokens)))

    return answer


def sampling_request(
    params: Mapping[str, Any], *, model: str, max_tokens: int = DEFAULT_SAMPLING_MAX_TOKENS
) -> MessageCreateParamsNonStreaming:
    """The Messages API request for MCP `sampling/createMessage` params: text and image messages, the system
    prompt, `maxTokens` and `stopSequences`; audio and tool content become text notes. `temperature` is left
    out: current Claude models take none."""
    request: MessageCreateParamsNonStreaming = {
        "model": model,
        "max_tokens": _capped_tokens(params.get("maxTokens"), max_tokens),
        "messages": [_sampling_message(message) for message in params.get("messages") or ()],
    }
    if isinstance(params.get("systemPrompt"), str):
        request["system"] = params["systemPrompt"]
    if isinstance(params.get("stopSequences"), list):
        request["stop_sequences"] = [str(stop) for stop in params["stopSequences"]]
    return request


def sampling_result(message: object) -> dict[str, Any]:
    """An MCP `CreateMessageResult` for a Messages API `Message` (SDK object or dict): its text, model and why
    it stopped."""
    text = "".join(
        str(field(block, "text") or "") for block in entries(message, "content") if field(block, "type") == "text"
    )
    result: dict[str, Any] = {
        "role": "assistant",
        "content": {"type": "text", "text": text},
        "model": str(field(message, "model") or ""),
    }
    stop = field(message, "stop_reason")
    if isinstance(stop, str):
        result["stopReason"] = _STOP_REASONS.get(stop, stop)
    return result


def _capped_tokens(asked: object, cap: int) -> int:
    """What the server asked for, within the host's cap; the cap when it asked for nothing sensible."""
    if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0:
        return min(asked, cap)
    return cap


def _sampling_message(message: Mapping[str, Any]) -> MessageParam:
    role = "assistant" if message.get("role") == "assistant" else "user"
    contents = message.get("content")
    blocks: list[TextBlockParam | ImageBlockParam] = []
    for content in contents if isinstance(contents, list) else [contents]:
        item: Mapping[str, Any] = content if isinstance(content, Mapping) else {}
        kind = item.get("type")
        media_type = _IMAGE_MEDIA_TYPES.get(str(item.get("mimeType", "")).lower())
        if kind == "text":
            blocks.append({"type": "text", "text": str(item.get("text", ""))})
        elif kind == "image" and media_type is not None:
            source: Base64ImageSourceParam = {"type": "base64", "media_type": media_type, "data": str(item.get("data"))}
            blocks.append({"type": "image", "source": source})
        else:
            blocks.append({"type": "text", "text": f"[{kind or 'unknown'} content left out: not sent to the model]"})
    return cast("MessageParam", {"role": role, "content": blocks})
