"""`lash-gateway stdio --config F`, as Claude Desktop runs it: the console script started by the SDK's stdio client.

The config has one stdio upstream (`local`, `tests.servers.upstream`); the plugin tool `lash_gateway_status` is
always there. Covers listing, calls, progress, cancellation and upstream `list_changed` in both protocol eras, and
that stdout carries nothing but JSON-RPC while the logs (even at `-v` debug level) go to stderr.
"""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal

import anyio
import mcp_types as types
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream
from mcp import StdioServerParameters

from tests.integration._gateway import (
    CONSOLE_SCRIPT,
    STATE_DIR_ENV,
    STDIO_SERVER,
    GatewayClient,
    connect_stdio,
    poll,
    stdio_upstream,
    text_of,
    write_config,
)
from tests.servers.launch import PROJECT_ROOT

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
"""Bound on waits for things that should happen promptly."""
STARTUP_WAIT: Final = 30.0
"""Bound on the gateway starting and connecting its stdio upstream (two Python processes)."""
PLUGIN_TOOL: Final = "lash_gateway_status"
MAX_LINE: Final = 16 * 1024 * 1024


def gateway_command(tmp_path: Path, *global_args: str) -> tuple[list[str], dict[str, str]]:
    """The `lash-gateway [global_args] stdio --config F` command line and its environment additions."""
    config = write_config(tmp_path / "config.json", {STDIO_SERVER: stdio_upstream()})
    args = [*global_args, "stdio", "--config", str(config)]
    return [str(CONSOLE_SCRIPT), *args], {STATE_DIR_ENV: str(tmp_path / "state")}


def gateway_params(tmp_path: Path, *global_args: str) -> StdioServerParameters:
    command, env = gateway_command(tmp_path, *global_args)
    return StdioServerParameters(command=command[0], args=command[1:], cwd=str(PROJECT_ROOT), env=env)


async def wait_for_upstream_tools(client: GatewayClient) -> set[str]:
    """The stdio gateway answers at once; its upstream's tools appear (with a list_changed) once it connected."""

    async def listed() -> set[str] | None:
        names = await client.tool_names()
        return names if f"{STDIO_SERVER}__echo" in names else None

    return await poll(listed, STARTUP_WAIT)


@pytest.mark.parametrize("mode", ["stdio-legacy", "stdio-auto"])
async def test_stdio_gateway_lists_calls_reports_progress_cancels_and_announces_changes(
    tmp_path: Path, mode: Literal["stdio-legacy", "stdio-auto"]
) -> None:
    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
        async with connect_stdio(gateway_params(tmp_path), mode, errlog=errlog) as client:
            assert client.client.protocol_version == ("2026-07-28" if client.modern else "2025-11-25")
            capabilities = client.client.server_capabilities
            assert capabilities.tools is not None and capabilities.tools.list_changed is True
            names = await wait_for_upstream_tools(client)
            assert PLUGIN_TOOL in names
            assert not [name for name in names if name.startswith("mcp__") or len(name) > 64]

            with anyio.fail_after(WAIT):
                echoed = await client.client.call_tool(f"{STDIO_SERVER}__echo", {"text": "over stdio"})
                status = await client.client.call_tool(PLUGIN_TOOL, {})
            assert text_of(echoed) == "over stdio"
            assert echoed.structured_content == {"text": "over stdio"}
            assert status.structured_content is not None
            assert [(s["name"], s["connected"]) for s in status.structured_content["servers"]] == [(STDIO_SERVER, True)]

            seen: list[tuple[float, float | None, str | None]] = []

            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen.append((progress, total, message))

            with anyio.fail_after(WAIT):
                slow = await client.client.call_tool(
                    f"{STDIO_SERVER}__slow", {"seconds": 0.1, "steps": 2}, progress_callback=on_progress
                )
            assert not slow.is_error, text_of(slow)
            assert sorted(seen) == [(0, 2, "step 0/2"), (1, 2, "step 1/2"), (2, 2, "done")]

            # Cancelling the call (once it reached the upstream: first progress) cancels it upstream.
            with anyio.fail_after(WAIT):
                cancelled_before = (await cancel_log(client)).count("slow")
                in_flight = anyio.Event()

                async def first_progress(progress: float, total: float | None, message: str | None) -> None:
                    in_flight.set()

                async with anyio.create_task_group() as tg:
                    tg.start_soon(
                        partial(
                            client.client.call_tool,
                            f"{STDIO_SERVER}__slow",
                            {"seconds": 60, "steps": 600},
                            progress_callback=first_progress,
                        )
                    )
                    await in_flight.wait()
                    tg.cancel_scope.cancel()

                async def upstream_saw_it() -> bool | None:
                    return True if (await cancel_log(client)).count("slow") > cancelled_before else None

                await poll(upstream_saw_it, WAIT)

            with anyio.fail_after(WAIT):
                changes = client.tools_changed
                added = await client.client.call_tool(f"{STDIO_SERVER}__add_tool", {"name": "late_tool"})
                assert not added.is_error, text_of(added)
                await client.wait_tools_changed(changes)
                assert f"{STDIO_SERVER}__late_tool" in await client.tool_names()
                late = await client.client.call_tool(f"{STDIO_SERVER}__late_tool", {})
            assert text_of(late) == "late_tool called"
            # A non-JSON line on the gateway's stdout would have reached the message handler as an exception.
            assert not client.transport_errors


async def cancel_log(client: GatewayClient) -> list[str]:
    result = await client.client.call_tool(f"{STDIO_SERVER}__cancel_log", {})
    assert result.structured_content is not None, text_of(result)
    cancelled: list[str] = result.structured_content["cancelled"]
    return cancelled


async def _reply(stdout: BufferedByteReceiveStream, request_id: int, lines: list[bytes]) -> dict[str, Any]:
    """Read stdout lines (kept in `lines`) until the reply to `request_id`."""
    while True:
        line = await stdout.receive_until(b"\n", MAX_LINE)
        lines.append(line)
        message = json.loads(line)
        if message.get("id") == request_id:
            reply: dict[str, Any] = message
            return reply


async def test_stdout_carries_only_json_rpc_even_with_debug_logging(tmp_path: Path) -> None:
    """Raw stdio exchange with `-v`: every byte the gateway writes to stdout is a JSON-RPC message, while the debug
    and info logs of the gateway and of its upstream connection land on stderr."""
    command, env = gateway_command(tmp_path, "-v")
    stdout_lines: list[bytes] = []
    next_id = 0

    with (tmp_path / "stderr.log").open("w+b") as errlog:
        async with await anyio.open_process(
            command, cwd=PROJECT_ROOT, env={**os.environ, **env}, stderr=errlog
        ) as process:
            assert process.stdin is not None and process.stdout is not None
            stdout = BufferedByteReceiveStream(process.stdout)

            async def request(method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
                nonlocal next_id
                next_id += 1
                message: dict[str, Any] = {"jsonrpc": "2.0", "id": next_id, "method": method}
                if params is not None:
                    message["params"] = params
                assert process.stdin is not None
                await process.stdin.send(json.dumps(message).encode() + b"\n")
                return await _reply(stdout, next_id, stdout_lines)

            with anyio.fail_after(STARTUP_WAIT):
                init = await request(
                    "initialize",
                    {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "raw", "version": "0"},
                    },
                )
                assert init["result"]["serverInfo"]["name"] == "lash-gateway"
                await process.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')

                async def upstream_connected() -> bool | None:
                    status = await request("tools/call", {"name": PLUGIN_TOOL, "arguments": {}})
                    servers = status["result"]["structuredContent"]["servers"]
                    return True if servers and servers[0]["connected"] else None

                await poll(upstream_connected, STARTUP_WAIT)
                echoed = await request(
                    "tools/call", {"name": f"{STDIO_SERVER}__echo", "arguments": {"text": "only JSON here"}}
                )
                assert echoed["result"]["content"] == [{"type": "text", "text": "only JSON here"}]

                await process.stdin.aclose()  # the client hangs up: the gateway closes its upstream and exits
                rest = b""
                async for chunk in process.stdout:
                    rest += chunk
                assert await process.wait() == 0

        errlog.seek(0)
        stderr = errlog.read().decode(errors="replace")

    stdout_lines += [line for line in rest.split(b"\n") if line]
    for line in stdout_lines:
        message = json.loads(line)  # raises on anything that is not JSON
        assert message.get("jsonrpc") == "2.0", line
    assert " DEBUG " in stderr, stderr[-2000:]
    assert "upstream local: connected (stdio" in stderr, stderr[-2000:]


@pytest.mark.parametrize("mode", ["stdio-legacy", "stdio-auto"])
async def test_the_whole_surface_over_stdio(tmp_path: Path, mode: Literal["stdio-legacy", "stdio-auto"]) -> None:
    """Resources, prompts, completion and a question answered by the client, as Claude Desktop runs the gateway."""

    async def roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root.model_validate({"uri": "file:///home/desk", "name": "desk"})])

    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
        async with connect_stdio(gateway_params(tmp_path), mode, errlog=errlog, list_roots_callback=roots) as handle:
            await wait_for_upstream_tools(handle)
            client = handle.client
            with anyio.fail_after(WAIT):
                uris = {str(r.uri) for r in (await client.list_resources()).resources}
                assert "test://static/text" in uris
                text = (await client.read_resource("test://static/text")).contents[0]
                assert isinstance(text, types.TextResourceContents) and text.text == "static text from upstream"
                got = await client.get_prompt(f"{STDIO_SERVER}__greet", {"name": "ada"})
                assert isinstance(got.messages[0].content, types.TextContent)
                assert got.messages[0].content.text == "Hello, ada! (from upstream)"
                ref = types.PromptReference(type="ref/prompt", name=f"{STDIO_SERVER}__greet")
                assert (await client.complete(ref, {"name": "name", "value": "b"})).completion.values == ["bob"]
                rooted = await client.call_tool(f"{STDIO_SERVER}__roots", {})
                assert text_of(rooted) == "file:///home/desk"
