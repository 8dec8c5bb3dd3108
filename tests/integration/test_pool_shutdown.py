"""Stopping a server with calls in flight: every one of them is cancelled upstream before the connection closes.

Regression: with 5 calls in flight to an HTTP upstream, closing the pool cancelled only the first upstream; the
others kept running after the gateway was gone (the transport was torn down while its cancel notices queued).
"""

from __future__ import annotations

from typing import Literal

import anyio
import pytest

from lash_gateway import McpConnectionPool, McpPluginFactory, ServerDetached
from tests.integration._helpers import ATTACH_TIMEOUT, http_config
from tests.servers.launch import HttpTransport, UpstreamFactory

pytestmark = pytest.mark.anyio

IN_FLIGHT = 5
WAIT = 10.0
LONG_CALL = {"seconds": 60, "steps": 600}
"""A `slow` call that never ends within a test, but reports progress every 0.1 s."""


async def cancelled_on(pool: McpConnectionPool, server: str) -> list[str]:
    result = await pool.call_tool(f"mcp__{server}__cancel_log", {})
    assert result.structured is not None, result
    return [str(name) for name in result.structured["cancelled"]]


async def run_calls_then(transport: HttpTransport, upstream: UpstreamFactory, stop: Literal["detach", "close"]) -> None:
    """Start `IN_FLIGHT` long calls, stop their server while they run (detach it, or close its pool), and check the
    upstream saw every one of them cancelled (asked through a second connection, since the first one is gone)."""
    server = upstream(transport=transport)
    errors: list[BaseException] = []
    started = [anyio.Event() for _ in range(IN_FLIGHT)]

    async def call(factory: McpPluginFactory, index: int) -> None:
        async def progress(progress: float, total: float | None = None, message: str | None = None) -> None:
            started[index].set()

        try:
            await factory.pool.call_tool("mcp__up__slow", LONG_CALL, progress=progress)
        except ServerDetached as exc:
            errors.append(exc)

    async with McpPluginFactory() as observer:
        with anyio.fail_after(ATTACH_TIMEOUT):
            await observer.attach_server("obs", http_config(server))
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                async with McpPluginFactory() as factory:
                    await factory.attach_server("up", http_config(server))
                    for index in range(IN_FLIGHT):
                        tg.start_soon(call, factory, index)
                    for event in started:
                        await event.wait()  # every upstream handler is running
                    if stop == "detach":
                        await factory.detach_server("up")
                # leaving the factory closed its pool
        assert len(errors) == IN_FLIGHT

        async def all_cancelled() -> bool:
            return (await cancelled_on(observer.pool, "obs")).count("slow") == IN_FLIGHT

        with anyio.fail_after(WAIT):
            while not await all_cancelled():
                pass  # each round trip is the wait


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_detach_cancels_every_call_in_flight_upstream(
    transport: HttpTransport, upstream: UpstreamFactory
) -> None:
    await run_calls_then(transport, upstream, "detach")


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_closing_the_pool_cancels_every_call_in_flight_upstream(
    transport: HttpTransport, upstream: UpstreamFactory
) -> None:
    await run_calls_then(transport, upstream, "close")
