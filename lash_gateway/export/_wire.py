"""Lash values in MCP wire form, for the export: a session's tool surface as a `tools/list` result, a
`ToolResult` as a `tools/call` result.

Plain dicts, not SDK models: building thousands of `Tool` models per list would cost more than the
list itself. Tools are sanitised first, so a plugin's sloppy schema cannot break `tools/list` for every
tool: the SDK checks results strictly and would answer an internal error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from mcp.shared.inbound import x_mcp_header_map
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import AudioPart, ContentPart, ImagePart, ResourcePart, TextPart, ToolDefinition, ToolResult

from .._naming import export_names
from .._schema import SanitizedTool, sanitize_tool

__all__ = ["Surface", "error_result", "export_surface", "for_era", "is_plain_call_result", "result_to_wire"]

log = logging.getLogger("lash_gateway.export")


@dataclass(frozen=True, slots=True)
class Surface:
    """One session surface as exported: MCP tools and export name -> lash name."""

    key: tuple[ToolDefinition, ...]
    tools: tuple[Mapping[str, Any], ...]
    lash_names: Mapping[str, str]
    input_schemas: Mapping[str, Mapping[str, Any]]
    """Export name -> the input schema as exported."""
    routed: frozenset[str]
    """Export names of the tools whose schema asks for `Mcp-Param-*` headers (`x-mcp-header`)."""
    fixed: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Export name -> argument values a view fixes (`_views`)."""
    searchable: tuple[Mapping[str, Any], ...] | None = None
    """In a view's search mode: the tools `search_tools` searches (`tools` lists only it, `call_tool` and pins)."""


def export_surface(tools: tuple[ToolDefinition, ...], limit: int) -> Surface:
    names = export_names([t.name for t in tools], limit)
    wire: list[Mapping[str, Any]] = []
    lash_names: dict[str, str] = {}
    for tool in tools:
        exported = tool_to_wire(tool, names[tool.name])
        if exported is not None:
            wire.append(exported)
            lash_names[names[tool.name]] = tool.name
    schemas = {tool["name"]: tool["inputSchema"] for tool in wire}
    routed = frozenset(name for name, schema in schemas.items() if x_mcp_header_map(schema))
    return Surface(tools, tuple(wire), lash_names, schemas, routed)


def tool_to_wire(tool: ToolDefinition, name: str) -> Mapping[str, Any] | None:
    """The MCP form of a tool, sanitised so the SDK's strict result check accepts it (a plugin's
    sloppy schema must not break `tools/list` for every tool)."""
    raw: dict[str, Any] = {"name": name, "description": tool.description, "inputSchema": tool.input_schema}
    if tool.output_schema is not None:
        raw["outputSchema"] = tool.output_schema
    if tool.title is not None:
        raw["title"] = tool.title
    if tool.annotations is not None:
        raw["annotations"] = tool.annotations
    clean = sanitize_tool(raw)
    if not isinstance(clean, SanitizedTool):
        log.warning(
            "tool %s not exported: %s", tool.name, clean.reason, extra={"tool": tool.name, "reason": clean.reason}
        )
        return None
    wire: dict[str, Any] = {"name": name, "inputSchema": clean.input_schema}
    if clean.description:
        wire["description"] = clean.description
    if clean.output_schema is not None:
        wire["outputSchema"] = clean.output_schema
    if clean.title is not None:
        wire["title"] = clean.title
    if clean.annotations:
        wire["annotations"] = clean.annotations
    return wire


def result_to_wire(result: ToolResult) -> dict[str, Any]:
    """A `ToolResult` as a `tools/call` result; failures are `isError` results, never JSON-RPC errors."""
    wire: dict[str, Any] = {"content": [_part_to_wire(p) for p in result.content], "isError": result.is_error}
    if result.structured is not None and not result.is_error:
        wire["structuredContent"] = dict(result.structured)
    if result.meta:
        wire["_meta"] = dict(result.meta)
    return wire


def error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _part_to_wire(part: ContentPart) -> dict[str, Any]:
    wire: dict[str, Any]
    if isinstance(part, TextPart):
        wire = {"type": "text", "text": part.text}
    elif isinstance(part, ImagePart | AudioPart):
        wire = {"type": part.type, "data": part.data, "mimeType": part.mime_type}
    elif isinstance(part, ResourcePart):
        resource: dict[str, Any] = {"uri": part.uri}
        if part.mime_type is not None:
            resource["mimeType"] = part.mime_type
        if part.blob is not None:
            resource["blob"] = part.blob
        else:
            resource["text"] = part.text or ""
        wire = {"type": "resource", "resource": resource}
    else:
        wire = {"type": "resource_link", "uri": part.uri, "name": part.name}
        if part.mime_type is not None:
            wire["mimeType"] = part.mime_type
        if part.description is not None:
            wire["description"] = part.description
    if part.annotations:
        wire["annotations"] = dict(part.annotations)
    return wire


def for_era(protocol_version: str | None, result: dict[str, Any]) -> dict[str, Any]:
    """A wire-form result as the request's era wants it: 2026-07-28 results must say `resultType` (the SDK fills
    it only for models it builds)."""
    if protocol_version in MODERN_PROTOCOL_VERSIONS:
        result["resultType"] = "complete"
    return result


_PLAIN_CALL_KEYS: Final = frozenset({"content", "isError", "structuredContent", "resultType"})
_PLAIN_TEXT_KEYS: Final = frozenset({"type", "text"})
_JSON_SCALARS: Final = (str, int, bool, type(None))
_PLAIN_NODES: Final = 64
"""Values of `structuredContent` this check looks at; a larger one goes to the sieve, which is faster at that size."""


def is_plain_call_result(result: Mapping[str, Any]) -> bool:
    """Whether a 2026-07-28 `tools/call` result is one the protocol's result sieve (`serialize_server_result`) gives
    back unchanged, so sending it as it is sends what the SDK would: text content only, `isError` a boolean, and a
    small `structuredContent` of plain JSON (finite numbers, ASCII keys). Most results are; the rest go through the
    sieve. tests/unit/test_wire.py holds the installed SDK's sieve to this, for every result this accepts."""
    if result.get("resultType") != "complete" or not result.keys() <= _PLAIN_CALL_KEYS:
        return False
    content, is_error = result.get("content"), result.get("isError", False)
    if type(content) is not list or type(is_error) is not bool:
        return False
    for item in content:
        if type(item) is not dict or item.keys() != _PLAIN_TEXT_KEYS:
            return False
        if item["type"] != "text" or type(item["text"]) is not str:
            return False
    return "structuredContent" not in result or (
        result["structuredContent"] is not None and _plain_json(result["structuredContent"])
    )


def _plain_json(value: Any) -> bool:
    """Whether `value` is plain JSON of at most `_PLAIN_NODES` values (walked without recursion)."""
    waiting, left = [value], _PLAIN_NODES
    while waiting:
        left -= 1
        if left < 0:
            return False
        value = waiting.pop()
        kind = type(value)
        if kind is list or kind is dict:
            if len(value) > left:
                return False
            if kind is list:
                waiting.extend(value)
            elif all(type(key) is str and key.isascii() for key in value):  # the sieve fails on a lone surrogate
                waiting.extend(value.values())
            else:
                return False
        elif kind is float:
            if not math.isfinite(value):
                return False
        elif kind not in _JSON_SCALARS:
            return False
    return True
