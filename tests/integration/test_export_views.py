"""A view of the export's tools (`McpExport(view=...)`, the tools of a virtual server): picked by server and name,
renamed and rewritten, arguments fixed by the gateway, or found through search. Seen by the official SDK client,
in-process, in both protocol eras."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import mcp_types as types
import pytest
from mcp import Client
from pydantic import ValidationError

from lash_core import LashCore, ToolCall, ToolDefinition, ToolResult
from lash_core.testing import StaticToolProvider, simple_tool
from lash_gateway import ConfigError, McpExport, ToolFilter, ToolOverride, View

pytestmark = pytest.mark.anyio

MODES: Final = ("legacy", "auto")
TOOLS: Final = (
    simple_tool("mcp__docs__fetch", url="string", format="string"),
    simple_tool("mcp__docs__delete_page", url="string"),
    simple_tool("mcp__search__web", query="string"),
    simple_tool("mcp__other__thing"),
)
RENAMED: Final = {
    "docs__fetch": ToolOverride(name="read_page", description="Read a page as Markdown.", arguments={"format": "md"})
}


async def answer(call: ToolCall) -> ToolResult:
    return ToolResult.ok({"tool": call.name, "args": dict(call.args)})


def server_of(lash_name: str) -> str | None:
    return lash_name.split("__")[1] if lash_name.startswith("mcp__") else None


@asynccontextmanager
async def viewed(view: View, mode: Literal["legacy", "auto"]) -> AsyncIterator[tuple[Client, StaticToolProvider]]:
    provider = StaticToolProvider(TOOLS, answer)
    export = McpExport(LashCore.builder().tools(provider).build(), view=view, server_of=server_of)
    async with export, Client(export.server, mode=mode, cache=None) as client:
        yield client, provider


def structured(result: types.CallToolResult) -> Any:
    assert not result.is_error, result.content
    return result.structured_content


@pytest.mark.parametrize("mode", MODES)
async def test_a_view_shows_the_tools_it_picks_as_it_rewrites_them(mode: Literal["legacy", "auto"]) -> None:
    view = View(servers=("docs", "search"), tools=ToolFilter(deny=["*delete*"]), overrides=RENAMED)
    async with viewed(view, mode) as (client, provider):
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert set(tools) == {"read_page", "search__web"}
        assert tools["read_page"].description == "Read a page as Markdown."
        assert set(tools["read_page"].input_schema["properties"]) == {"url"}  # `format` is the gateway's to set
        assert tools["read_page"].input_schema["required"] == ["url"]

        read = await client.call_tool("read_page", {"url": "https://example.com"})
        assert structured(read) == {"tool": "mcp__docs__fetch", "args": {"url": "https://example.com", "format": "md"}}
        overruled = await client.call_tool("read_page", {"url": "u", "format": "html"})
        assert structured(overruled)["args"]["format"] == "md"
        for hidden in ("docs__delete_page", "other__thing", "docs__fetch"):
            refused = await client.call_tool(hidden, {"url": "u"})
            assert refused.is_error and "unknown tool" in str(refused.content)
        assert [call.name for call in provider.calls] == ["mcp__docs__fetch", "mcp__docs__fetch"]


@pytest.mark.parametrize("mode", MODES)
async def test_search_mode_lists_two_tools_and_the_pinned_and_finds_and_calls_the_rest(
    mode: Literal["legacy", "auto"],
) -> None:
    view = View(servers=("docs", "search"), overrides=RENAMED, mode="search", pinned=("search__web",))
    async with viewed(view, mode) as (client, provider):
        listed = [tool.name for tool in (await client.list_tools()).tools]
        assert listed == ["search_tools", "call_tool", "search__web"]

        found = structured(await client.call_tool("search_tools", {"query": "read a page"}))["tools"]
        assert found[0]["name"] == "read_page" and set(found[0]["inputSchema"]["properties"]) == {"url"}
        assert "other__thing" not in {tool["name"] for tool in found}

        called = await client.call_tool("call_tool", {"name": "read_page", "arguments": {"url": "u"}})
        assert structured(called) == {"tool": "mcp__docs__fetch", "args": {"url": "u", "format": "md"}}
        pinned = await client.call_tool("search__web", {"query": "q"})
        assert structured(pinned)["tool"] == "mcp__search__web"
        outside = await client.call_tool("call_tool", {"name": "other__thing", "arguments": {}})
        assert outside.is_error and "unknown tool" in str(outside.content)
        malformed = await client.call_tool("call_tool", {"name": 3})
        assert malformed.is_error and "call_tool takes" in str(malformed.content)


async def test_a_view_fails_closed() -> None:
    """A renamed tool whose new name is taken, or whose fixed argument cannot be taken out of its schema, is left
    out (never shown under its plain name, never with the argument the view fixes), and so is one whose fixed
    argument its schema sends as an `Mcp-Param-*` header; a renamed tool keeps the checks its schema asks for."""
    intricate = ToolDefinition(
        "mcp__docs__deploy",
        "Deploy.",
        {"type": "object", "properties": {"env": {"type": "string"}}, "anyOf": [{"properties": {"env": {}}}]},
    )
    routed = ToolDefinition(
        "mcp__docs__route",
        "Route.",
        {"type": "object", "properties": {"region": {"type": "string", "x-mcp-header": "Region"}}},
    )
    pinned_region = ToolDefinition("mcp__docs__pinned", "Pinned.", routed.input_schema)
    provider = StaticToolProvider([*TOOLS, intricate, routed, pinned_region], answer)
    overrides = {
        "docs__delete_page": ToolOverride(name="search__web"),  # taken by the tool of that name
        "docs__deploy": ToolOverride(arguments={"env": "staging"}),
        "docs__route": ToolOverride(name="route_to"),
        "docs__pinned": ToolOverride(arguments={"region": "eu"}),  # a header would say otherwise, unchecked
    }
    export = McpExport(LashCore.builder().tools(provider).build(), view=View(overrides=overrides), server_of=server_of)
    async with export, Client(export.server, mode="legacy", cache=None) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == {"docs__fetch", "search__web", "other__thing", "route_to"}
    assert export.routed_schema("route_to") is not None


def test_views_refuse_config_of_the_wrong_shape() -> None:
    with pytest.raises(ConfigError, match="servers"):
        View(servers="docs")  # type: ignore[arg-type]  # a string: every character a glob
    with pytest.raises(ValidationError, match="deny"):
        View(tools=ToolFilter(deny="docs__delete_page"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="mode"):
        View(mode="Search")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name"):
        ToolOverride(name="read page")
    with pytest.raises(ConfigError, match="title"):
        ToolOverride(title=5)  # type: ignore[arg-type]
