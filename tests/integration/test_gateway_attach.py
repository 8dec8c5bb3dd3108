"""Attaching and detaching servers while clients are connected: the gateway in-process (`inprocess_gateway`), its
HTTP app under uvicorn on a loopback socket, servers attached through `gateway.factory` (there is no network admin
API in this issue), and the official SDK's clients on `/mcp` and `/sse` in both protocol eras.

Covers: every connected client hears `tools/list_changed` on attach and on detach and sees the tools come and go; a
call in flight when its server is detached ends with a clear error result; definitions of an attached server pass
through unchanged (schemas, output schemas, titles, annotations, descriptions) after the sanitising the SDK needs,
under names that drop `mcp__`, stay unique and fit 64 characters.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any, Final, cast

import anyio
import mcp_types as types
import pytest
from mcp.server import Server, ServerRequestContext
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import Route

from tests.integration._gateway import (
    CLIENT_MODES,
    ClientMode,
    GatewayClient,
    InProcessGateway,
    connect,
    serve_app,
    text_of,
)
from tests.integration._helpers import server_config, wait_until
from tests.servers.launch import UpstreamFactory

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
"""Bound on waits for things that should happen promptly."""
ATTACH_WAIT: Final = 30.0
"""Bound on attaching a server that is a fresh Python process."""
EXPORTABLE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
PLUGIN_TOOL: Final = "lash_gateway_status"


@asynccontextmanager
async def clients_of(served: InProcessGateway) -> AsyncIterator[list[GatewayClient]]:
    """One client per transport and era (`CLIENT_MODES`), all connected at once."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(connect(served.base_url, mode)) for mode in CLIENT_MODES]


async def wait_all_notified(clients: list[GatewayClient], seen: list[int]) -> None:
    for client, count in zip(clients, seen, strict=True):
        await client.wait_tools_changed(count)


async def test_attach_and_detach_reach_every_connected_client(
    inprocess_gateway: InProcessGateway, upstream: UpstreamFactory
) -> None:
    factory = inprocess_gateway.gateway.factory
    async with clients_of(inprocess_gateway) as clients:
        with anyio.fail_after(WAIT):
            for client in clients:
                assert await client.tool_names() == {PLUGIN_TOOL}, client.mode

        seen = [client.tools_changed for client in clients]
        with anyio.fail_after(ATTACH_WAIT):
            status = await factory.attach_server("extra", server_config("stdio", upstream))
        assert status.connected
        with anyio.fail_after(WAIT):
            await wait_all_notified(clients, seen)
            for client in clients:
                names = await client.tool_names()
                assert {"extra__echo", "extra__slow", PLUGIN_TOOL} <= names, client.mode
                echoed = await client.client.call_tool("extra__echo", {"text": client.mode})
                assert text_of(echoed) == client.mode

        seen = [client.tools_changed for client in clients]
        with anyio.fail_after(WAIT):
            await factory.detach_server("extra")
            await wait_all_notified(clients, seen)
            for client in clients:
                assert await client.tool_names() == {PLUGIN_TOOL}, client.mode
            assert not [client.transport_errors for client in clients if client.transport_errors]


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_calling_a_tool_that_is_not_listed_gives_an_error_result(
    inprocess_gateway: InProcessGateway, mode: ClientMode
) -> None:
    """What a client with a stale list meets after a detach: an `isError` result naming the tool, in both eras.

    Regression: the unknown-tool result skipped `_for_era`, so 2026-07-28 clients got JSON-RPC error -32603
    "Handler returned an invalid result" (no `resultType`) instead of a tool error."""
    with anyio.fail_after(WAIT):
        async with connect(inprocess_gateway.base_url, mode) as client:
            result = await client.client.call_tool("detached__echo", {"text": "hello?"})
            assert result.is_error is True
            assert "detached__echo" in text_of(result), text_of(result)
            assert not (await client.client.call_tool(PLUGIN_TOOL, {})).is_error  # the session carries on


async def test_detach_ends_in_flight_calls_with_a_clear_error(
    inprocess_gateway: InProcessGateway, upstream: UpstreamFactory
) -> None:
    factory = inprocess_gateway.gateway.factory
    with anyio.fail_after(ATTACH_WAIT):
        await factory.attach_server("doomed", server_config("stdio", upstream))
    results: dict[str, types.CallToolResult] = {}

    async def call(client: GatewayClient) -> None:
        key = f"{client.mode}-{uuid.uuid4().hex[:6]}"
        results[client.mode] = await client.client.call_tool("doomed__wait_for_release", {"key": key})

    async with clients_of(inprocess_gateway) as clients:
        with anyio.fail_after(WAIT):
            for client in clients:
                assert "doomed__wait_for_release" in await client.tool_names()
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(call, client)
                await wait_until(lambda: factory.pool.status("doomed").calls_in_flight == len(clients))
                await factory.detach_server("doomed")
        assert set(results) == set(CLIENT_MODES)
        for mode, result in results.items():
            assert result.is_error is True, mode
            message = text_of(result)
            assert "doomed" in message and "detached" in message, (mode, message)
        # The gateway keeps serving every client.
        with anyio.fail_after(WAIT):
            for client in clients:
                assert not (await client.client.call_tool(PLUGIN_TOOL, {})).is_error


# --- definitions pass through -------------------------------------------------------------------------------------

LONG_STEM: Final = "fetch_the_quarterly_financial_report_for_the_selected_business_unit"
"""67 characters: with the server part, two tools named after it must be shortened, and still differ."""
GOOD_TOOLS: Final[list[dict[str, Any]]] = [
    {
        "name": "search_documents",
        "title": "Search documents",
        "description": "Full-text search over the corpus.\n\nReturns the best matches first. Ünïcödé ✓",
        "inputSchema": {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "properties": {
                "query": {"type": "string", "minLength": 1, "description": "what to look for"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10},
                "filters": {"$ref": "#/$defs/filters"},
                "mode": {"enum": ["fast", "exact"]},
            },
            "required": ["query"],
            "additionalProperties": False,
            "$defs": {"filters": {"type": "object", "properties": {"tags": {"type": "array", "items": {}}}}},
        },
        "outputSchema": {
            "type": "object",
            "properties": {"hits": {"type": "array", "items": {"type": "object"}}},
            "required": ["hits"],
        },
        "annotations": {
            "title": "Search",
            "readOnlyHint": True,
            "destructiveHint": False,
            "idempotentHint": True,
            "openWorldHint": False,
        },
    },
    {
        "name": "delete_everything",
        "description": "Destructive.",
        "inputSchema": {"type": "object", "properties": {"confirm": {"const": True}}, "required": ["confirm"]},
        "annotations": {"destructiveHint": True},
    },
    {"name": "get.file", "description": "dotted name", "inputSchema": {"type": "object"}},
    {"name": "Get-File", "description": "dashed name", "inputSchema": {"type": "object"}},
    {"name": f"{LONG_STEM}_as_pdf", "description": "long name 1", "inputSchema": {"type": "object"}},
    {"name": f"{LONG_STEM}_as_csv", "description": "long name 2", "inputSchema": {"type": "object"}},
]
"""Tools the SDK accepts as they are: they must reach clients unchanged."""
REPAIRED_TOOLS: Final[list[tuple[dict[str, Any], dict[str, Any]]]] = [
    (
        {
            "name": "nullable_object",
            "description": "type list and null required",
            "inputSchema": {"type": ["object", "null"], "properties": {"x": {"type": "string"}}, "required": None},
        },
        {
            "name": "nullable_object",
            "description": "type list and null required",
            "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    ),
    (
        {"name": "no_schema", "description": "inputSchema missing"},
        {"name": "no_schema", "description": "inputSchema missing", "inputSchema": {"type": "object"}},
    ),
    (
        {
            "name": "array_output",
            "description": "an output schema only 2026-07-28 allows",
            "inputSchema": {"type": "object"},
            "outputSchema": {"type": "array"},
            "annotations": {"readOnlyHint": "yes", "title": "kept"},
        },
        {
            "name": "array_output",
            "description": "an output schema only 2026-07-28 allows",
            "inputSchema": {"type": "object"},
            "annotations": {"title": "kept"},
        },
    ),
]
"""(as the upstream sends it, as clients must get it): what the SDK would reject is repaired or dropped."""
REJECTED_TOOL: Final = {"name": "string_args", "description": "unusable", "inputSchema": {"type": "string"}}
"""No repair keeps its meaning: not exported, and the rest of the list is unaffected."""
CALL_ARGS: Final[dict[str, dict[str, Any]]] = {
    "search_documents": {"query": "q"},
    "delete_everything": {"confirm": True},
}


def rich_upstream_app() -> Starlette:
    """A streamable-HTTP MCP server (low-level SDK `Server`) listing `GOOD_TOOLS`, and after the SDK's result check
    (which would refuse them) the upstream forms of `REPAIRED_TOOLS` and `REJECTED_TOOL`. Every tool answers with
    the text ``called <name>`` (and the structured content its output schema asks for)."""

    # Handlers may return wire-form dicts (the SDK validates them); that keeps the definitions byte for byte.
    async def list_tools(
        ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return cast(types.ListToolsResult, {"tools": GOOD_TOOLS})

    async def call_tool(
        ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        result: dict[str, Any] = {"content": [{"type": "text", "text": f"called {params.name}"}]}
        if params.name == "search_documents":
            result["structuredContent"] = {"hits": []}
        return cast(types.CallToolResult, result)

    async def inject_unsanitised(
        ctx: ServerRequestContext[Any, Any], call_next: Callable[[ServerRequestContext[Any, Any]], Awaitable[Any]]
    ) -> Any:
        result = await call_next(ctx)
        if ctx.method == "tools/list" and isinstance(result, dict):
            bad = [raw for raw, _ in REPAIRED_TOOLS] + [REJECTED_TOOL]
            result = {**result, "tools": [*result["tools"], *bad]}
        return result

    server: Server[Any] = Server("rich", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(inject_unsanitised)
    manager = StreamableHTTPSessionManager(
        app=server, security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False)
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return Starlette(routes=[Route("/mcp", endpoint=StreamableHTTPASGIApp(manager))], lifespan=lifespan)


def wire_form(tool: types.Tool) -> dict[str, Any]:
    return tool.model_dump(by_alias=True, exclude_none=True)


def without_name(tool: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in tool.items() if key != "name"}


async def test_attached_definitions_pass_through_unchanged(inprocess_gateway: InProcessGateway) -> None:
    async with serve_app(rich_upstream_app(), health_path=None) as rich_url:
        factory = inprocess_gateway.gateway.factory
        with anyio.fail_after(WAIT):
            status = await factory.attach_server("rich", {"url": f"{rich_url}/mcp"})
        assert status.connected
        assert [(s.name, "inputSchema" in s.reason) for s in status.skipped_tools] == [("string_args", True)]

        listings: dict[str, list[types.Tool]] = {}
        with anyio.fail_after(WAIT):
            for mode in ("http-legacy", "http-auto"):
                async with connect(inprocess_gateway.base_url, mode) as client:
                    listings[mode] = await client.list_tools()
                    # Each exported name calls the upstream tool it stands for.
                    exported = {tool.description: tool.name for tool in listings[mode]}
                    for tool in GOOD_TOOLS:
                        args = CALL_ARGS.get(tool["name"], {})
                        result = await client.client.call_tool(exported[tool["description"]], args)
                        assert text_of(result) == f"called {tool['name']}", (mode, tool["name"])
            await factory.detach_server("rich")  # before its server goes away
    assert [wire_form(tool) for tool in listings["http-legacy"]] == [
        wire_form(tool) for tool in listings["http-auto"]
    ], "both eras list the same definitions"

    tools = listings["http-legacy"]
    names = [tool.name for tool in tools]
    assert len(names) == len(set(names))
    assert all(EXPORTABLE.fullmatch(name) for name in names), names
    assert not [name for name in names if name.startswith("mcp__")]
    by_description = {tool.description: wire_form(tool) for tool in tools}
    # Unchanged but for the name.
    for expected in GOOD_TOOLS:
        assert without_name(by_description[expected["description"]]) == without_name(expected), expected["name"]
    assert by_description["Full-text search over the corpus.\n\nReturns the best matches first. Ünïcödé ✓"]["name"] == (
        "rich__search_documents"
    )
    # "get.file" and "Get-File" both normalise to get_file: one keeps it, the other gets a digest suffix.
    assert {by_description["dotted name"]["name"], by_description["dashed name"]["name"]} & {"rich__get_file"}
    assert all(
        re.fullmatch(r"rich__get_file(_[0-9a-f]{6})?", by_description[which]["name"])
        for which in ("dotted name", "dashed name")
    )
    long_names = [by_description[f"long name {i}"]["name"] for i in (1, 2)]
    assert all(name.startswith(f"rich__{LONG_STEM}"[:40]) for name in long_names), long_names
    # Repaired where the SDK would refuse; the unusable one is left out.
    for _, expected in REPAIRED_TOOLS:
        assert without_name(by_description[expected["description"]]) == without_name(expected), expected["name"]
    assert "unusable" not in by_description
    assert PLUGIN_TOOL in names
