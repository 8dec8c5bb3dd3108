"""The test server `tests.servers.upstream` against the official SDK client, over stdio, streamable HTTP and SSE."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
import pydantic
import pytest
from mcp import Client, MCPError
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.subscriptions import ToolsListChanged

from tests.servers.launch import UpstreamFactory, stdio_params
from tests.servers.upstream import BAD_SCHEMA_TOOL, BLOB_BYTES, PNG_BYTES, TOOL_NAMES, WAV_BYTES, big_text

pytestmark = pytest.mark.anyio

Transport = Literal["stdio", "streamable_http", "sse"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "streamable_http", "sse")
WAIT = 5.0  # bound on every wait for something the server should do promptly


@contextlib.asynccontextmanager
async def connect(
    transport: Transport, *server_args: str, upstream: UpstreamFactory | None = None, **client_kwargs: Any
) -> AsyncIterator[Client]:
    """An SDK `Client` (legacy mode unless `mode` is given) connected to a fresh upstream server on `transport`."""
    client_kwargs.setdefault("mode", "legacy")
    if transport == "stdio":
        async with Client(stdio_params(*server_args), **client_kwargs) as client:
            yield client
        return
    assert upstream is not None, "HTTP transports need the upstream fixture"
    server = upstream(*server_args, transport=transport)
    if transport == "sse":
        async with Client(sse_client(server.url), **client_kwargs) as client:
            yield client
        return
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(10, read=60)) as http:
        target = streamable_http_client(server.url, http_client=http, max_sse_event_size=None)
        async with Client(target, **client_kwargs) as client:
            yield client


@contextlib.asynccontextmanager
async def connect_url(url: str) -> AsyncIterator[Client]:
    """A legacy-mode SDK `Client` on an already running streamable-HTTP server."""
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="legacy") as client:
            yield client


def text_of(result: types.CallToolResult) -> str:
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_lists_tools_and_echoes(transport: Transport, upstream: UpstreamFactory) -> None:
    async with connect(transport, upstream=upstream) as client:
        assert client.server_capabilities.tools is not None
        assert client.server_capabilities.tools.list_changed is True
        listed = await client.list_tools()
        assert {tool.name for tool in listed.tools} == TOOL_NAMES
        assert listed.next_cursor is None
        result = await client.call_tool("echo", {"text": "hello"})
    assert text_of(result) == "hello"
    assert result.structured_content == {"text": "hello"}
    assert not result.is_error


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_add_tool_sends_list_changed(transport: Transport, upstream: UpstreamFactory) -> None:
    changed = anyio.Event()

    async def on_message(message: types.ServerNotification | Exception) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            changed.set()

    async with connect(transport, upstream=upstream, message_handler=on_message) as client:
        await client.call_tool("add_tool", {"name": "added"})
        with anyio.fail_after(WAIT):
            await changed.wait()
        names = {tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools}
        assert "added" in names
        assert text_of(await client.call_tool("added", {})) == "added called"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_slow_reports_progress(transport: Transport, upstream: UpstreamFactory) -> None:
    seen: list[tuple[float, float | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total))

    async with connect(transport, upstream=upstream) as client:
        with anyio.fail_after(WAIT):
            await client.call_tool("slow", {"seconds": 0.05, "steps": 3}, progress_callback=on_progress)
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_bad_schema_makes_sdk_list_tools_raise(transport: Transport, upstream: UpstreamFactory) -> None:
    async with connect(transport, "--behaviour", "bad-schema", upstream=upstream) as client:
        with pytest.raises(pydantic.ValidationError, match="inputSchema"):
            await client.list_tools()


async def test_bad_schema_tool_is_on_the_wire(upstream: UpstreamFactory) -> None:
    """The SDK client drops nothing silently: read the raw answer to see the bad tool itself."""
    server = upstream("--behaviour", "bad-schema")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        response = await http.post(server.url, json=init, headers=headers)
        headers["Mcp-Session-Id"] = response.headers["mcp-session-id"]
        headers["Mcp-Protocol-Version"] = "2025-11-25"
        await http.post(server.url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
        response = await http.post(
            server.url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers
        )
        await http.delete(server.url, headers=headers)
    assert f'"name":"{BAD_SCHEMA_TOOL}"' in response.text
    assert '"inputSchema":{"type":"string"}' in response.text


async def test_modern_client_gets_tools_changed_via_listen(upstream: UpstreamFactory) -> None:
    async with connect("streamable_http", upstream=upstream, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        async with client.listen(tools_list_changed=True) as subscription:
            await client.call_tool("remove_tool", {"name": "crash"})
            with anyio.fail_after(WAIT):
                async for event in subscription:
                    assert isinstance(event, ToolsListChanged)
                    break


async def test_paginate_with_many_tools() -> None:
    async with connect("stdio", "--behaviour", "paginate", "--behaviour", "many-tools=3") as client:
        names: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            assert len(page.tools) <= 2
            names += [tool.name for tool in page.tools]
            pages += 1
            cursor = page.next_cursor
            if cursor is None:
                break
    assert set(names) == TOOL_NAMES | {"t0", "t1", "t2"}
    assert len(names) == len(set(names)) == len(TOOL_NAMES) + 3
    assert pages == -(-len(names) // 2)  # pages of 2


@pytest.mark.parametrize("transport", ["stdio", "streamable_http"])
async def test_wait_for_release_completes_only_concurrently(transport: Transport, upstream: UpstreamFactory) -> None:
    results: dict[str, types.CallToolResult] = {}
    async with connect(transport, upstream=upstream) as client:
        await client.list_tools()  # caches output schemas, so call_tool makes no hidden tools/list round trip

        async def call(tool: str) -> None:
            results[tool] = await client.call_tool(tool, {"key": "k"})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "release")  # release first: it must wait for the waiter to arrive
                tg.start_soon(call, "wait_for_release")
    assert results["wait_for_release"].structured_content == {"key": "k", "in_flight": 2}
    assert results["release"].structured_content == {"key": "k", "in_flight": 2}


async def test_cancelled_call_is_logged() -> None:
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with connect("stdio") as client:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def slow_call() -> None:
                    await client.call_tool("slow", {"seconds": 60}, progress_callback=on_progress)

                tg.start_soon(slow_call)
                await started.wait()
                tg.cancel_scope.cancel()  # the client sends notifications/cancelled
            # The cancel notification and this request travel in order, but the handler records its cancellation
            # in its own task: ask until it has.
            while (await client.call_tool("cancel_log", {})).structured_content != {"cancelled": ["slow"]}:
                pass


async def test_content_kinds_fail_and_add() -> None:
    async with connect("stdio") as client:
        kinds = await client.call_tool("content_kinds", {})
        failed = await client.call_tool("fail", {"message": "boom"})
        added = await client.call_tool("add", {"a": 2, "b": 0.5})
        bad_arguments = await client.call_tool("add", {"a": "x", "b": 1})
    text, image, audio, text_resource, blob_resource, link = kinds.content
    assert isinstance(text, types.TextContent)
    assert isinstance(image, types.ImageContent) and base64.b64decode(image.data) == PNG_BYTES
    assert image.mime_type == "image/png" and PNG_BYTES.startswith(b"\x89PNG")
    assert isinstance(audio, types.AudioContent) and base64.b64decode(audio.data) == WAV_BYTES
    assert audio.mime_type == "audio/wav" and WAV_BYTES.startswith(b"RIFF")
    assert isinstance(text_resource, types.EmbeddedResource)
    assert isinstance(text_resource.resource, types.TextResourceContents)
    assert isinstance(blob_resource, types.EmbeddedResource)
    assert isinstance(blob_resource.resource, types.BlobResourceContents)
    assert base64.b64decode(blob_resource.resource.blob) == BLOB_BYTES
    assert isinstance(link, types.ResourceLink)
    assert kinds.structured_content is not None
    assert failed.is_error and text_of(failed) == "boom"
    assert added.structured_content == {"sum": 2.5} and not added.is_error
    assert bad_arguments.is_error


@pytest.mark.parametrize(
    ("transport", "size"),
    # The SDK's stdio client re-splits its whole line buffer per 64 KiB chunk (quadratic): 16 MiB takes ~3 s there.
    [("stdio", 4 * 1024 * 1024), ("streamable_http", 16 * 1024 * 1024)],
)
async def test_big_result_arrives_intact(transport: Transport, size: int, upstream: UpstreamFactory) -> None:
    async with connect(transport, upstream=upstream) as client:
        with anyio.fail_after(30):
            result = await client.call_tool("big", {"size_bytes": size})
    assert text_of(result) == big_text(size)


async def test_garbage_lines_do_not_end_the_stdio_session() -> None:
    errors: list[Exception] = []

    async def on_message(message: types.ServerNotification | Exception) -> None:
        if isinstance(message, Exception):
            errors.append(message)

    async with connect("stdio", "--behaviour", "garbage", message_handler=on_message) as client:
        result = await client.call_tool("echo", {"text": "still here"})
    assert text_of(result) == "still here"
    assert errors, "the garbage lines reached the client as parse errors"


async def test_hang_list_never_answers() -> None:
    async with connect("stdio", "--behaviour", "hang-list") as client:
        with pytest.raises(MCPError) as caught:
            await client.session.send_request(
                types.ListToolsRequest(), types.ListToolsResult, request_read_timeout_seconds=0.3
            )
    assert caught.value.code == types.REQUEST_TIMEOUT


async def test_crash_exits_the_process(upstream: UpstreamFactory) -> None:
    server = upstream(transport="sse")
    with pytest.raises(ExceptionGroup) as caught:  # the SDK reports transport loss as a task-group error
        async with Client(sse_client(server.url), mode="legacy") as client:
            await client.call_tool("crash", {})
    assert caught.group_contains(MCPError)
    with anyio.fail_after(WAIT):
        returncode = await anyio.to_thread.run_sync(server.process.wait)
    assert returncode == 1


async def test_restart_reuses_the_port(upstream: UpstreamFactory) -> None:
    server = upstream()
    port, pid = server.port, server.process.pid
    async with connect_url(server.url) as client:
        await client.call_tool("add_tool", {"name": "before_restart"})
    server.restart()
    assert (server.port, server.url.endswith(f":{port}/mcp")) == (port, True)
    assert server.process.pid != pid
    async with connect_url(server.url) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
    assert names == TOOL_NAMES  # a fresh process has fresh state
