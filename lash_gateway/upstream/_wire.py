"""Raw MCP requests on an SDK session, and the mapping of raw results to lash values.

Requests go out without the SDK's result validation (`_sdk.send_raw_request` says why), and results are
mapped here, field by field, dropping only what is malformed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mcp import ClientSession
from mcp.shared.dispatcher import CallOptions

from lash_core import (
    AudioPart,
    ContentPart,
    FailureClass,
    ImagePart,
    ProgressReporter,
    ResourceLinkPart,
    ResourcePart,
    TextPart,
    ToolFailure,
    ToolResult,
)

from .._sdk import send_raw_request

log = logging.getLogger("lash_gateway.wire")

SDK_META_PREFIX = "io.modelcontextprotocol/"
"""`_meta` keys the SDK stamps per connection (protocol version, server info): never forwarded."""


async def send_raw(
    session: ClientSession,
    method: str,
    params: Mapping[str, Any] | None,
    *,
    on_progress: ProgressReporter | None = None,
    declares: Callable[[str, Any], Any] | None = None,
) -> dict[str, Any]:
    """Send one request the way `ClientSession.send_request` does, without result validation; `declares` says what a
    2026-07-28 server hears of this request's client's capabilities (see `_sdk.send_raw_request`).

    Raises:
        mcp.MCPError: an error response, or `CONNECTION_CLOSED` when the transport went away.
    """
    opts: CallOptions = {}
    if on_progress is not None:
        opts["on_progress"] = on_progress
    return await send_raw_request(session, method, params or {}, opts, declares)


def strip_sdk_meta(meta: Any) -> dict[str, Any] | None:
    if not isinstance(meta, Mapping):
        return None
    kept = {k: v for k, v in meta.items() if not str(k).startswith(SDK_META_PREFIX)}
    return kept or None


def result_from_wire(server: str, tool: str, raw: Mapping[str, Any]) -> ToolResult:
    """A `tools/call` result as it came off the wire, as a `ToolResult`; nothing is dropped but the
    SDK's own `_meta` stamps. `isError: true` is a failure result, never an exception."""
    items = raw.get("content")
    parts = tuple(_part(server, tool, item) for item in items) if isinstance(items, list) else ()
    structured = raw.get("structuredContent")
    failure = None
    if raw.get("isError") is True:
        text = "\n".join(p.text for p in parts if isinstance(p, TextPart))
        failure = ToolFailure(
            FailureClass.TOOL_ERROR, "upstream_tool_error", text or f"tool {tool!r} reported an error"
        )
    return ToolResult.from_parts(
        parts,
        structured=structured if isinstance(structured, Mapping) else None,
        failure=failure,
        meta=strip_sdk_meta(raw.get("_meta")),
    )


def _part(server: str, tool: str, item: Any) -> ContentPart:
    # Fields of the wrong type are dropped here: passed through, they would make the gateway's own
    # answer fail the SDK's result check, and the client would get an opaque internal error.
    if not isinstance(item, Mapping):
        return TextPart(json.dumps(item))
    annotations = _annotations(item.get("annotations"))
    kind = item.get("type")
    if kind == "text" and isinstance(item.get("text"), str):
        return TextPart(item["text"], annotations)
    if kind in ("image", "audio") and isinstance(item.get("data"), str):
        mime = _str(item.get("mimeType")) or "application/octet-stream"
        return (ImagePart if kind == "image" else AudioPart)(item["data"], mime, annotations)
    if kind == "resource" and isinstance(resource := item.get("resource"), Mapping) and "uri" in resource:
        return ResourcePart(
            str(resource["uri"]),
            _str(resource.get("mimeType")),
            _str(resource.get("text")),
            _str(resource.get("blob")),
            annotations,
        )
    if kind == "resource_link" and "uri" in item:
        return ResourceLinkPart(
            str(item["uri"]),
            str(item.get("name", "")),
            _str(item.get("mimeType")),
            _str(item.get("description")),
            annotations,
        )
    # Unknown or malformed content stays visible rather than vanishing.
    log.warning(
        "upstream %s: tool %r answered a content item of unknown type %r; passed on as text",
        server,
        tool,
        kind,
        extra={"server": server, "tool": tool, "type": kind},
    )
    return TextPart(json.dumps(item, ensure_ascii=False))


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _annotations(raw: Any) -> dict[str, Any] | None:
    """MCP content annotations that are well-formed: `audience` of roles, `priority` in [0, 1],
    `lastModified` a string; anything else is dropped."""
    if not isinstance(raw, Mapping):
        return None
    kept: dict[str, Any] = {}
    audience = raw.get("audience")
    if isinstance(audience, list) and all(role in ("user", "assistant") for role in audience):
        kept["audience"] = audience
    priority = raw.get("priority")
    if isinstance(priority, int | float) and not isinstance(priority, bool) and 0 <= priority <= 1:
        kept["priority"] = priority
    if isinstance(raw.get("lastModified"), str):
        kept["lastModified"] = raw["lastModified"]
    return kept or None
