"""SIGTERM with calls in flight: after the drain period every call still running is answered with a JSON-RPC error
saying the gateway is shutting down, on every path (the fast path, the SDK's handshake and 2026-07-28 paths, legacy
SSE), and every one of them is cancelled upstream before the gateway exits.

Regressions: calls cut by the drain got HTTP 500 `text/plain` with a traceback each in the log; with 5 calls in
flight to an HTTP upstream only one was cancelled upstream, and two kept running after the gateway exited.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Final

import anyio
import httpx2
import pytest
from mcp import MCPError

from lash_gateway import McpPluginFactory, McpServerConfig
from lash_gateway.admin._serving import END_GRACE
from tests.integration._gateway import (
    HTTP_SERVER,
    ClientMode,
    GatewayStarter,
    RawSession,
    connect,
    http_upstream,
    listening,
    raw_session,
    sse_message,
    wait_servers_connected,
)
from tests.servers.launch import UpstreamProcess, write_config

pytestmark = pytest.mark.anyio

DRAIN: Final = 0.5
FAST_CALLS: Final = 5
WAIT: Final = 15.0
LONG_CALL: Final = {"seconds": 60, "steps": 600}
TOOL: Final = f"{HTTP_SERVER}__slow"
SDK_MODES: Final[tuple[ClientMode, ...]] = ("sse-legacy", "http-auto", "sse-auto")
"""The SDK's server paths: legacy SSE, and 2026-07-28 requests on both endpoints."""


async def fast_path_call(session: RawSession, request_id: int, started: anyio.Event, answers: list[str]) -> None:
    """A call on the fast path (a handshake session's POST); its final message is recorded."""
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": TOOL, "arguments": LONG_CALL, "_meta": {"progressToken": f"p-{request_id}"}},
    }
    async with session.stream(message) as reply:
        async for line in reply.aiter_lines():
            event = sse_message(line)
            if event is None:
                continue
            if event.get("method") == "notifications/progress":
                started.set()
            elif event.get("id") == request_id:
                assert "error" in event, event
                answers.append(event["error"]["message"])
                return


async def sdk_call(mode: ClientMode, base_url: str, started: anyio.Event, answers: list[str]) -> None:
    """A call through an SDK client in `mode`; the message of its error is recorded."""
    answered = len(answers) + 1

    async def progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    try:
        async with connect(base_url, mode) as client:
            try:
                await client.client.call_tool(TOOL, LONG_CALL, progress_callback=progress)
            except MCPError as exc:
                answers.append(exc.message)
            else:
                pytest.fail(f"{mode}: the call returned a result although the gateway shut down")
    except* MCPError:
        # A 2026-07-28 client's listen stream ends with "Connection closed" as the gateway goes away.
        assert len(answers) >= answered, f"{mode}: the call got no answer"


async def test_calls_cut_by_the_drain_get_a_shutting_down_error_and_are_cancelled_upstream(
    gateway_process: GatewayStarter, tmp_path: Path
) -> None:
    with UpstreamProcess("streamable_http") as upstream:
        config = write_config(
            tmp_path / "config.json", {HTTP_SERVER: http_upstream(upstream.url)}, {"shutdown_drain": DRAIN}
        )
        process = gateway_process(config)
        await wait_servers_connected(process.base_url, [HTTP_SERVER])
        answers: list[str] = []
        async with raw_session(process.mcp_url) as session:
            calls: list[Callable[[anyio.Event, list[str]], Coroutine[object, object, None]]] = [
                *(partial(fast_path_call, session, 10 + index) for index in range(FAST_CALLS)),
                *(partial(sdk_call, mode, process.base_url) for mode in SDK_MODES),
            ]
            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    started = [anyio.Event() for _ in calls]
                    for run, event in zip(calls, started, strict=True):
                        tg.start_soon(run, event, answers)
                    for event in started:
                        await event.wait()  # every call runs upstream
                    process.process.send_signal(signal.SIGTERM)
                await anyio.to_thread.run_sync(process.process.wait, DRAIN + END_GRACE + WAIT)
        assert len(answers) == len(calls), answers
        assert all("the gateway is shutting down" in answer for answer in answers), answers
        process.stop()
        log = process.stderr_text()
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log

        cancelled = await cancelled_upstream(upstream, len(calls))
        assert cancelled.count("slow") == len(calls), cancelled


async def cancelled_upstream(upstream: UpstreamProcess, expected: int) -> list[str]:
    """The upstream's own record of cancelled handlers, asked over a fresh connection until `expected` of them are
    `slow` (cancel notices and handlers run on after the gateway is gone) or `WAIT` runs out."""
    async with McpPluginFactory() as factory:
        await factory.attach_server("direct", McpServerConfig.streamable_http(upstream.url))
        with anyio.move_on_after(WAIT):
            while True:
                result = await factory.pool.call_tool("mcp__direct__cancel_log", {})
                assert result.structured is not None
                cancelled = [str(name) for name in result.structured["cancelled"]]
                if cancelled.count("slow") >= expected:
                    break
        return cancelled


async def test_a_listen_stream_ends_with_the_drain_and_holds_no_shutdown_up(
    gateway_process: GatewayStarter, tmp_path: Path
) -> None:
    """A 2026-07-28 client that only listens (its stream open, no call in flight) is let go when the drain is over,
    with the result that closes a stream: the gateway exits then, not when its server gives up waiting on the stream
    and cuts it with an error."""
    process = gateway_process(write_config(tmp_path / "config.json", {}, {"shutdown_drain": DRAIN}))
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        with anyio.fail_after(WAIT):
            async with listening(http, process.mcp_url, {}) as lines:
                process.process.send_signal(signal.SIGTERM)
                rest = [message async for line in lines if (message := sse_message(line)) is not None]
    assert rest[-1]["id"] == 1 and "result" in rest[-1], rest  # the stream's own end, not a cut connection
    await anyio.to_thread.run_sync(process.process.wait, DRAIN + END_GRACE + WAIT)
    process.stop()
    log = process.stderr_text()
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log, log
