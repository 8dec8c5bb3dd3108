"""The real `lash-gateway serve` process, driven by the official SDK's clients over streamable HTTP and SSE.

One gateway per module (`service_gateway`) serves a stdio upstream (`local`) and a streamable-HTTP upstream
(`remote`), both `tests.servers.upstream`, plus the plugin tool `lash_gateway_status`. Each client test runs on every
transport and protocol era the SDK serves: `/mcp` and `/sse`, each negotiated as 2025-11-25 (`mode="legacy"`) and
as 2026-07-28 (`mode="auto"`). Covers: export names and definitions, calls to each upstream and the plugin, progress,
cancellation reaching the upstream, upstream `list_changed` reaching every client, an upstream crash, `/healthz`,
`/readyz`, `/metrics`, DNS-rebinding protection, a hand-built 2025-06-18 client, and the bearer token.
"""

from __future__ import annotations

import re
import socket
import uuid
from functools import partial
from typing import Any, Final

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client

from tests.integration._gateway import (
    AUTH_TOKEN,
    BANNER_PREFIX,
    CLIENT_MODES,
    EXTRA_ALLOWED_HOST,
    EXTRA_ALLOWED_ORIGIN,
    HTTP_SERVER,
    MCP_HEADERS,
    STDIO_SERVER,
    ClientMode,
    GatewayClient,
    GatewayProcess,
    GatewayStarter,
    ServiceGateway,
    connect,
    gauge,
    http_upstream,
    initialize_body,
    metrics,
    poll,
    reply_to,
    text_of,
    wait_servers_connected,
    write_config,
)
from tests.servers.upstream import TOOL_NAMES

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
"""Bound on waits for things that should happen promptly."""
RECONNECT_WAIT: Final = 30.0
"""Bound on a crashed stdio upstream being respawned and reconnected."""
PLUGIN_TOOL: Final = "lash_gateway_status"
PLUGIN_SERVER_LABEL: Final = "(plugin)"
UPSTREAMS: Final = (STDIO_SERVER, HTTP_SERVER)
EXPORTABLE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
LOG_LINE: Final = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")
AUTH: Final = {"Authorization": f"Bearer {AUTH_TOKEN}"}

mode_params = pytest.mark.parametrize("mode", CLIENT_MODES)


# --- helpers ------------------------------------------------------------------------------------------------------


def tool_dict(tool: types.Tool) -> dict[str, Any]:
    """A tool's definition in wire form, without its name."""
    return tool.model_dump(by_alias=True, exclude_none=True, exclude={"name"})


async def direct_tools(url: str) -> dict[str, types.Tool]:
    """The tools the streamable-HTTP upstream at `url` lists to a client of its own."""
    async with Client(url, mode="legacy", cache=None) as client:
        return {tool.name: tool for tool in (await client.list_tools()).tools}


def calls(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], server: str, tool: str, outcome: str) -> float:
    key = frozenset({"server": server, "tool": tool, "outcome": outcome}.items())
    return samples.get(("lash_gateway_tool_calls_total", key), 0.0)


def latency_count(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], server: str, tool: str) -> float:
    return samples.get(("lash_gateway_tool_call_seconds_count", frozenset({"server": server, "tool": tool}.items())), 0)


async def cancel_log(client: GatewayClient, server: str) -> list[str]:
    result = await client.client.call_tool(f"{server}__cancel_log", {})
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    cancelled: list[str] = result.structured_content["cancelled"]
    return cancelled


# --- endpoints ----------------------------------------------------------------------------------------------------


async def test_health_ready_and_banner_only_on_stdout(service_gateway: ServiceGateway) -> None:
    process = service_gateway.process
    async with httpx2.AsyncClient(timeout=5.0) as http:
        health = await http.get(f"{process.base_url}/healthz")
        ready = await http.get(f"{process.base_url}/readyz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok"}
    assert ready.status_code == 200
    assert ready.json() == {
        "ready": True,
        "servers": {name: {"connected": True, "state": "connected"} for name in UPSTREAMS},
    }
    # stdout carries the banner and nothing else; the logs went to stderr.
    stdout = process.stdout_text().splitlines()
    assert stdout[0] == f"{BANNER_PREFIX}{process.base_url}"
    assert f"{process.base_url}/mcp" in process.stdout_text() and f"{process.base_url}/sse" in process.stdout_text()
    assert not [line for line in stdout if LOG_LINE.match(line)], stdout
    assert any(LOG_LINE.match(line) and ": connected (" in line for line in process.stderr_text().splitlines())


async def test_readyz_waits_for_the_first_connect_attempt_only(gateway_process: GatewayStarter, tmp_path: Any) -> None:
    """A server that accepts TCP but never answers holds readiness for its startup timeout (503), then the
    gateway is ready with that server reported down and retrying."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # listens, never accepts: the handshake hangs
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/mcp"
        config = write_config(tmp_path / "config.json", {"silent": {**http_upstream(url), "startup_timeout": 3}})
        process = await anyio.to_thread.run_sync(gateway_process, config)
        async with httpx2.AsyncClient(timeout=5.0) as http:
            first = await http.get(f"{process.base_url}/readyz")
            assert first.status_code == 503, first.text
            assert first.json()["ready"] is False

            async def ready() -> httpx2.Response | None:
                reply = await http.get(f"{process.base_url}/readyz")
                return reply if reply.status_code == 200 else None

            body = (await poll(ready, WAIT)).json()
        assert body["ready"] is True
        assert body["servers"]["silent"]["connected"] is False
        assert body["servers"]["silent"]["state"] == "reconnecting"
        samples = await metrics(process.base_url)
        assert gauge(samples, "lash_gateway_servers_attached") == 1
        assert gauge(samples, "lash_gateway_servers_connected") == 0


# --- tools over every transport and era ---------------------------------------------------------------------------


@mode_params
async def test_lists_both_upstreams_and_the_plugin_under_export_names(
    service_gateway: ServiceGateway, mode: ClientMode
) -> None:
    with anyio.fail_after(WAIT):
        reference = await direct_tools(service_gateway.http_upstream.url)
        async with connect(service_gateway.base_url, mode) as client:
            assert client.client.protocol_version == ("2026-07-28" if client.modern else "2025-11-25")
            # The HTTP transport (and SSE) advertises list_changed, in both eras.
            capabilities = client.client.server_capabilities
            assert capabilities.tools is not None and capabilities.tools.list_changed is True
            tools = await client.list_tools()
    names = [tool.name for tool in tools]
    assert len(names) == len(set(names)), "exported names must be unique"
    assert not [name for name in names if name.startswith("mcp__")]
    assert not [name for name in names if not EXPORTABLE.fullmatch(name)], "names must fit [A-Za-z0-9_-]{1,64}"
    assert PLUGIN_TOOL in names
    by_name = {tool.name: tool for tool in tools}
    for server in UPSTREAMS:
        assert {f"{server}__{tool}" for tool in TOOL_NAMES} <= set(names)
    # The HTTP upstream's tools, exactly, with their definitions unchanged (schemas, output schemas, descriptions,
    # titles, annotations); the stdio upstream runs the same code, so its built-in tools must match them too.
    assert {name for name in names if name.startswith(f"{HTTP_SERVER}__")} == {
        f"{HTTP_SERVER}__{name}" for name in reference
    }
    for name, upstream_tool in reference.items():
        assert tool_dict(by_name[f"{HTTP_SERVER}__{name}"]) == tool_dict(upstream_tool), name
        if name in TOOL_NAMES:
            assert tool_dict(by_name[f"{STDIO_SERVER}__{name}"]) == tool_dict(upstream_tool), name
    assert reference["add"].output_schema is not None  # the comparison covers an output schema
    status = by_name[PLUGIN_TOOL]
    assert status.description and "MCP servers" in status.description
    assert status.input_schema == {"type": "object", "properties": {}}


@mode_params
async def test_calls_reach_each_upstream_and_the_plugin(service_gateway: ServiceGateway, mode: ClientMode) -> None:
    with anyio.fail_after(WAIT):
        async with connect(service_gateway.base_url, mode) as client:
            echoed = await client.client.call_tool(f"{STDIO_SERVER}__echo", {"text": f"hello {mode}"})
            added = await client.client.call_tool(f"{HTTP_SERVER}__add", {"a": 2, "b": 3.5})
            failed = await client.client.call_tool(f"{HTTP_SERVER}__fail", {"message": "nope"})
            status = await client.client.call_tool(PLUGIN_TOOL, {})
    assert not echoed.is_error
    assert text_of(echoed) == f"hello {mode}"
    assert echoed.structured_content == {"text": f"hello {mode}"}
    assert not added.is_error
    assert added.structured_content == {"sum": 5.5}
    assert text_of(added) == "5.5"
    assert failed.is_error is True
    assert "nope" in text_of(failed)
    assert not status.is_error, text_of(status)
    assert status.structured_content is not None
    servers = {s["name"]: s for s in status.structured_content["servers"]}
    assert set(servers) == set(UPSTREAMS)
    assert servers[STDIO_SERVER]["transport"] == "stdio"
    assert servers[HTTP_SERVER]["transport"] == "streamable_http"
    assert all(s["connected"] for s in servers.values())


@mode_params
async def test_upstream_log_messages_reach_the_client_that_made_the_call(
    service_gateway: ServiceGateway, mode: ClientMode
) -> None:
    async with connect(service_gateway.base_url, mode) as client:
        for server in UPSTREAMS:
            with anyio.fail_after(WAIT):
                result = await client.client.call_tool(f"{server}__log", {"message": f"hello from {server}"})
            assert text_of(result) == f"logged hello from {server}"
        assert [(log.level, log.data, log.logger) for log in client.logs] == [
            ("info", {"message": f"hello from {server}"}, "upstream") for server in UPSTREAMS
        ]


@mode_params
async def test_progress_reaches_the_client(service_gateway: ServiceGateway, mode: ClientMode) -> None:
    async with connect(service_gateway.base_url, mode) as client:
        for server in UPSTREAMS:
            seen: list[tuple[float, float | None, str | None]] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append((progress, total, message))  # noqa: B023 (awaited before the loop moves on)

            with anyio.fail_after(WAIT):
                result = await client.client.call_tool(
                    f"{server}__slow", {"seconds": 0.2, "steps": 4}, progress_callback=on_progress
                )
            assert not result.is_error, text_of(result)
            assert text_of(result) == "slept 0.2s in 4 steps"
            assert sorted(seen) == [
                (0, 4, "step 0/4"),
                (1, 4, "step 1/4"),
                (2, 4, "step 2/4"),
                (3, 4, "step 3/4"),
                (4, 4, "done"),
            ], server


@mode_params
async def test_cancelling_a_call_cancels_it_upstream(service_gateway: ServiceGateway, mode: ClientMode) -> None:
    base_url = service_gateway.base_url
    async with connect(base_url, mode) as client:
        for server in UPSTREAMS:
            with anyio.fail_after(WAIT):
                before = (await cancel_log(client, server)).count("slow")
                cancelled_before = calls(await metrics(base_url), server, "slow", "cancelled")
                in_flight = anyio.Event()

                async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                    in_flight.set()  # noqa: B023 (awaited before the loop moves on)

                # The call has reached the upstream once its first progress arrives; then the caller gives up.
                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        partial(
                            client.client.call_tool,
                            f"{server}__slow",
                            {"seconds": 60, "steps": 600},
                            progress_callback=on_progress,
                        )
                    )
                    await in_flight.wait()
                    tg.cancel_scope.cancel()

                async def upstream_saw_it() -> bool | None:
                    return True if (await cancel_log(client, server)).count("slow") > before else None  # noqa: B023

                await poll(upstream_saw_it, WAIT)

                async def counted() -> bool | None:
                    samples = await metrics(base_url)
                    return True if calls(samples, server, "slow", "cancelled") > cancelled_before else None  # noqa: B023

                await poll(counted, WAIT)


@mode_params
async def test_upstream_list_changed_reaches_the_client(service_gateway: ServiceGateway, mode: ClientMode) -> None:
    async with connect(service_gateway.base_url, mode) as client:
        for server in UPSTREAMS:
            new_tool = f"added_{uuid.uuid4().hex[:8]}"
            exported = f"{server}__{new_tool}"
            with anyio.fail_after(WAIT):
                assert exported not in await client.tool_names()
                seen = client.tools_changed
                added = await client.client.call_tool(f"{server}__add_tool", {"name": new_tool})
                assert not added.is_error, text_of(added)
                await client.wait_tools_changed(seen)
                assert exported in await client.tool_names()
                result = await client.client.call_tool(exported, {})
            assert not result.is_error, text_of(result)
            assert text_of(result) == f"{new_tool} called"
        assert not client.transport_errors


async def test_list_changed_reaches_every_connected_client_at_once(service_gateway: ServiceGateway) -> None:
    """One upstream change is announced to clients of all four transport/era combinations connected together."""
    base_url = service_gateway.base_url
    new_tool = f"added_{uuid.uuid4().hex[:8]}"
    exported = f"{HTTP_SERVER}__{new_tool}"
    async with (
        connect(base_url, "http-legacy") as http_legacy,
        connect(base_url, "http-auto") as http_auto,
        connect(base_url, "sse-legacy") as sse_legacy,
        connect(base_url, "sse-auto") as sse_auto,
    ):
        clients = (http_legacy, http_auto, sse_legacy, sse_auto)
        seen = [client.tools_changed for client in clients]
        with anyio.fail_after(WAIT):
            added = await http_legacy.client.call_tool(f"{HTTP_SERVER}__add_tool", {"name": new_tool})
            assert not added.is_error, text_of(added)
            for client, count in zip(clients, seen, strict=True):
                await client.wait_tools_changed(count)
                assert exported in await client.tool_names(), client.mode


async def test_long_upstream_names_are_shortened_unique_and_callable(service_gateway: ServiceGateway) -> None:
    stem = "a_very_long_tool_name_" * 3  # 66 characters shared by both tools
    long_names = {f"{stem}first_{uuid.uuid4().hex[:6]}", f"{stem}second_{uuid.uuid4().hex[:6]}"}
    async with connect(service_gateway.base_url, "http-legacy") as client:
        with anyio.fail_after(WAIT):
            before = await client.tool_names()
            for name in sorted(long_names):
                seen = client.tools_changed
                added = await client.client.call_tool(f"{HTTP_SERVER}__add_tool", {"name": name})
                assert not added.is_error, text_of(added)
                await client.wait_tools_changed(seen)
            tools = await client.list_tools()
            new = {tool.name for tool in tools} - before
            assert len(new) == 2
            assert all(EXPORTABLE.fullmatch(name) and name.startswith(f"{HTTP_SERVER}__") for name in new), new
            names = [tool.name for tool in tools]
            assert len(names) == len(set(names))
            answers = {text_of(await client.client.call_tool(name, {})) for name in new}
    assert answers == {f"{name} called" for name in long_names}


async def test_upstream_crash_fails_that_call_and_the_gateway_keeps_serving(service_gateway: ServiceGateway) -> None:
    base_url = service_gateway.base_url
    async with connect(base_url, "http-legacy") as client, connect(base_url, "sse-legacy") as other:
        with anyio.fail_after(WAIT):
            crashes_before = calls(await metrics(base_url), STDIO_SERVER, "crash", "upstream_unavailable")
            crashed = await client.client.call_tool(f"{STDIO_SERVER}__crash", {})
        assert crashed.is_error is True
        message = text_of(crashed)
        assert STDIO_SERVER in message and "crash" in message and "connection lost" in message, message

        # The other upstream and the plugin keep working, for this client and another one.
        with anyio.fail_after(WAIT):
            for gateway_client in (client, other):
                echoed = await gateway_client.client.call_tool(f"{HTTP_SERVER}__echo", {"text": "still here"})
                assert text_of(echoed) == "still here"
                status = await gateway_client.client.call_tool(PLUGIN_TOOL, {})
                assert not status.is_error

        # The gateway respawns the crashed stdio server; its tools work again.
        async def echo_works() -> types.CallToolResult | None:
            result = await client.client.call_tool(f"{STDIO_SERVER}__echo", {"text": "back"})
            return None if result.is_error else result

        assert text_of(await poll(echo_works, RECONNECT_WAIT)) == "back"
        assert service_gateway.process.alive
        samples = await metrics(base_url)
        assert calls(samples, STDIO_SERVER, "crash", "upstream_unavailable") == crashes_before + 1
        await wait_servers_connected(base_url, list(UPSTREAMS), timeout=WAIT)


# --- metrics ------------------------------------------------------------------------------------------------------


async def test_metrics_count_calls_errors_and_latency_per_server_and_tool(service_gateway: ServiceGateway) -> None:
    base_url = service_gateway.base_url
    expected = {
        (STDIO_SERVER, "echo", "ok"): 2,
        (HTTP_SERVER, "echo", "ok"): 1,
        (HTTP_SERVER, "fail", "upstream_tool_error"): 1,
        (PLUGIN_SERVER_LABEL, PLUGIN_TOOL, "ok"): 1,
    }
    with anyio.fail_after(WAIT):
        before = await metrics(base_url)
        async with connect(base_url, "http-legacy") as client:
            await client.client.call_tool(f"{STDIO_SERVER}__echo", {"text": "1"})
            await client.client.call_tool(f"{STDIO_SERVER}__echo", {"text": "2"})
            await client.client.call_tool(f"{HTTP_SERVER}__echo", {"text": "3"})
            await client.client.call_tool(f"{HTTP_SERVER}__fail", {"message": "counted"})
            await client.client.call_tool(PLUGIN_TOOL, {})
        after = await metrics(base_url)
    for (server, tool, outcome), count in expected.items():
        assert calls(after, server, tool, outcome) - calls(before, server, tool, outcome) == count, (server, tool)
    for server, tool in {(server, tool) for server, tool, _ in expected}:
        added = sum(count for (s, t, _), count in expected.items() if (s, t) == (server, tool))
        assert latency_count(after, server, tool) - latency_count(before, server, tool) == added, (server, tool)
    assert gauge(after, "lash_gateway_servers_attached") == 2
    assert gauge(after, "lash_gateway_servers_connected") == 2


async def test_metrics_count_connected_clients(service_gateway: ServiceGateway) -> None:
    base_url = service_gateway.base_url

    async def clients_connected(count: int) -> bool | None:
        return True if gauge(await metrics(base_url), "lash_gateway_clients_connected") == count else None

    await poll(partial(clients_connected, 0), WAIT)
    async with connect(base_url, "http-legacy"), connect(base_url, "sse-legacy"):
        await poll(partial(clients_connected, 2), WAIT)
    await poll(partial(clients_connected, 0), WAIT)


# --- protocol versions --------------------------------------------------------------------------------------------


async def test_a_2025_06_18_client_gets_a_working_session(service_gateway: ServiceGateway) -> None:
    """A hand-built JSON-RPC exchange at an older protocol version, as an mcp 1.12-era client sends it."""
    url = service_gateway.process.mcp_url
    version = "2025-06-18"
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        init_reply = await http.post(url, json=initialize_body(version), headers=MCP_HEADERS)
        init = reply_to(init_reply, 1)
        assert init["result"]["protocolVersion"] == version
        assert init["result"]["capabilities"]["tools"]["listChanged"] is True
        assert init["result"]["serverInfo"]["name"] == "lash-gateway"
        session_id = init_reply.headers["mcp-session-id"]
        headers = {**MCP_HEADERS, "Mcp-Session-Id": session_id, "MCP-Protocol-Version": version}

        initialized = await http.post(
            url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers
        )
        assert initialized.status_code == 202, initialized.text

        listed = reply_to(
            await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers), 2
        )
        names = {tool["name"] for tool in listed["result"]["tools"]}
        assert {f"{STDIO_SERVER}__echo", f"{HTTP_SERVER}__echo", PLUGIN_TOOL} <= names

        call = {
            "jsonrpc": "2.0",
            "id": 3,
            "method": "tools/call",
            "params": {"name": f"{HTTP_SERVER}__echo", "arguments": {"text": "from 2025-06-18"}},
        }
        called = reply_to(await http.post(url, json=call, headers=headers), 3)
        assert called["result"]["isError"] is False
        assert called["result"]["content"] == [{"type": "text", "text": "from 2025-06-18"}]

        closed = await http.delete(url, headers=headers)
        assert closed.status_code == 200


# --- DNS rebinding and the bearer token ---------------------------------------------------------------------------


def _endpoint_request(http: httpx2.AsyncClient, base_url: str, path: str, headers: dict[str, str]) -> Any:
    """A streamed request to one MCP endpoint: `POST /mcp` initialize, `GET /sse`, `POST /messages/`."""
    if path == "/mcp":
        return http.stream("POST", base_url + path, json=initialize_body(), headers={**MCP_HEADERS, **headers})
    if path == "/sse":
        return http.stream("GET", base_url + path, headers={"Accept": "text/event-stream", **headers})
    return http.stream(
        "POST",
        f"{base_url}/messages/?session_id={uuid.uuid4().hex}",
        json={"jsonrpc": "2.0", "method": "notifications/initialized"},
        headers={"Content-Type": "application/json", **headers},
    )


async def status_of(base_url: str, path: str, headers: dict[str, str]) -> int:
    async with httpx2.AsyncClient(timeout=WAIT) as http, _endpoint_request(http, base_url, path, headers) as reply:
        status: int = reply.status_code
    return status


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/messages/"])
async def test_dns_rebinding_is_refused(service_gateway: ServiceGateway, path: str) -> None:
    base_url = service_gateway.base_url
    port = service_gateway.process.port
    with anyio.fail_after(WAIT):
        assert await status_of(base_url, path, {"Host": "evil.example"}) == 421
        assert await status_of(base_url, path, {"Host": f"evil.example:{port}"}) == 421
        assert await status_of(base_url, path, {"Origin": "http://evil.example"}) == 403
        assert await status_of(base_url, path, {"Origin": f"http://evil.example:{port}"}) == 403
        # Loopback names pass (the unknown session of /messages/ is a 404 past the check).
        good = {"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"}
        assert await status_of(base_url, path, good) == (404 if path == "/messages/" else 200)


@pytest.mark.parametrize("path", ["/mcp", "/sse", "/messages/"])
async def test_bearer_token_is_required_on_mcp_endpoints(secured_gateway: GatewayProcess, path: str) -> None:
    base_url = secured_gateway.base_url
    with anyio.fail_after(WAIT):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": AUTH_TOKEN}):
            async with (
                httpx2.AsyncClient(timeout=WAIT) as http,
                _endpoint_request(http, base_url, path, headers) as reply,
            ):
                assert reply.status_code == 401, headers
                assert reply.headers["www-authenticate"] == "Bearer"
        assert await status_of(base_url, path, AUTH) == (404 if path == "/messages/" else 200)
        # The configured extra host and origin pass the rebinding check; others still do not.
        port = secured_gateway.port
        extra = {"Host": f"{EXTRA_ALLOWED_HOST}:{port}", "Origin": f"{EXTRA_ALLOWED_ORIGIN}:{port}"}
        assert await status_of(base_url, path, {**AUTH, **extra}) == (404 if path == "/messages/" else 200)
        assert await status_of(base_url, path, {**AUTH, "Host": "evil.example"}) == 421


async def test_health_endpoints_need_no_token(secured_gateway: GatewayProcess) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        for path in ("/healthz", "/readyz", "/metrics"):
            assert (await http.get(secured_gateway.base_url + path)).status_code == 200, path


@mode_params
async def test_sdk_clients_work_with_the_token(secured_gateway: GatewayProcess, mode: ClientMode) -> None:
    with anyio.fail_after(WAIT):
        async with connect(secured_gateway.base_url, mode, headers=AUTH) as client:
            assert await client.tool_names() == {PLUGIN_TOOL}
            status = await client.client.call_tool(PLUGIN_TOOL, {})
    assert not status.is_error, text_of(status)
    assert status.structured_content == {"servers": []}
