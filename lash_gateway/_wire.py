"""Raw MCP requests on an SDK session, and the mapping of raw results to lash values.

This is the one module that reaches into `mcp` internals (`ClientSession._stamp` and
`._dispatcher`), for two reasons the public API cannot serve:
- `list_tools()` validates the whole page strictly, so one upstream tool with a bad schema would
  hide every other tool of that server; we take the raw page and sanitise tool by tool.
- `call_tool()` validates results strictly and, after a success, silently re-lists the tools to
  check structured output; a gateway forwards results as they are and never adds round trips.
`tests/integration` pins this behaviour, so an SDK upgrade that moves these fails loudly.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
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

log = logging.getLogger("lash_gateway.wire")

SDK_META_PREFIX = "io.modelcontextprotocol/"
"""`_meta` keys the SDK stamps per connection (protocol version, server info): never forwarded."""


async def send_raw(
    session: ClientSession,
    method: str,
    params: Mapping[str, Any] | None,
    *,
    on_progress: ProgressReporter | None = None,
) -> dict[str, Any]:
    """Send one request the way `ClientSession.send_request` does, without result validation.

    Raises:
        mcp.MCPError: an error response, or `CONNECTION_CLOSED` when the transport went away.
    """
    data: dict[str, Any] = {"method": method, "params": dict(params) if params is not None else {}}
    opts: CallOptions = {}
    session._stamp(data, opts)  # protocol headers, and the 2026 per-request envelope
    if on_progress is not None:
        opts["on_progress"] = on_progress
    return await session._dispatcher.send_raw_request(method, data["params"], opts)


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
    if not isinstance(item, Mapping):
        return TextPart(json.dumps(item))
    annotations = item.get("annotations") if isinstance(item.get("annotations"), Mapping) else None
    kind = item.get("type")
    if kind == "text" and isinstance(item.get("text"), str):
        return TextPart(item["text"], annotations)
    if kind == "image" and isinstance(item.get("data"), str):
        return ImagePart(item["data"], str(item.get("mimeType", "application/octet-stream")), annotations)
    if kind == "audio" and isinstance(item.get("data"), str):
        return AudioPart(item["data"], str(item.get("mimeType", "application/octet-stream")), annotations)
    if kind == "resource" and isinstance(resource := item.get("resource"), Mapping) and "uri" in resource:
        return ResourcePart(
            str(resource["uri"]),
            resource.get("mimeType"),
            resource.get("text"),
            resource.get("blob"),
            annotations,
        )
    if kind == "resource_link" and "uri" in item:
        return ResourceLinkPart(
            str(item["uri"]), str(item.get("name", "")), item.get("mimeType"), item.get("description"), annotations
        )
    # Unknown or malformed content stays visible rather than vanishing.
    log.warning("unrecognised content item in tool result", extra={"server": server, "tool": tool, "type": kind})
    return TextPart(json.dumps(item, ensure_ascii=False))
