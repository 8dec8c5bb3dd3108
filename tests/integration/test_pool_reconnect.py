"""A connection lost mid-life, per transport: the in-flight call fails clearly, the tools stay advertised, and the
pool reconnects by itself; `reconnect_server` forces a new connection.

Real processes: stdio children killed (the `crash` tool or SIGKILL), HTTP servers killed and restarted on the same
port. A restarted streamable-HTTP server no longer knows the gateway's session and answers 404.
"""

from __future__ import annotations

import os
import signal
from typing import Any, Final

import anyio
import pytest

from lash_core import FailureClass, Session, ToolResult
from lash_gateway import McpConnectionPool, McpPluginFactory, ServerNotAttached
from tests.integration._helpers import (
    TRANSPORTS,
    call_in_background,
    http_config,
    server_config,
    session_of,
    stdio_server_pids,
    wait_until,
)
from tests.servers.launch import HttpTransport, UpstreamFactory

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_garbage")]

WAIT: Final = 20.0
"""Bound on waits for things that should happen promptly (generous: the machine may be loaded)."""


def assert_unavailable(result: ToolResult, server: str) -> None:
    assert result.is_error
    assert result.failure_class is FailureClass.UNAVAILABLE, result.failure
    assert result.code == "upstream_unavailable"
    assert result.message is not None and result.message.startswith(f"{server}: "), result.message


def reconnected(pool: McpConnectionPool, name: str, since: float | None) -> bool:
    status = pool.status(name)
    return status.connected and status.connected_since != since


async def assert_outage_keeps_tools(pool: McpConnectionPool, session: Session, definitions: Any) -> None:
    """While the server is down its tools stay advertised, and calls fail at once."""
    await wait_until(lambda: not pool.status("srv").connected, timeout=WAIT)
    assert pool.definitions() is definitions
    assert "mcp__srv__echo" in {tool.name for tool in session.tools()}
    result = await session.call_tool("mcp__srv__echo", {"text": "during the outage"})
    assert_unavailable(result, "srv")
    assert "not connected" in (result.message or "")


@pytest.mark.parametrize("how", ["crash-tool", "sigkill"])
async def test_stdio_child_killed_mid_call_fails_the_call_and_is_respawned(how: str, upstream: UpstreamFactory) -> None:
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", server_config("stdio", upstream, startup_timeout=15, call_timeout=30))
        (child,) = stdio_server_pids() - unrelated
        session = session_of(factory)
        definitions, generation = pool.definitions(), pool.generation
        since = pool.status("srv").connected_since

        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_in_background, session, "mcp__srv__wait_for_release", {"key": "k"}, results)
                await wait_until(lambda: pool.status("srv").calls_in_flight == 1)
                if how == "crash-tool":
                    assert_unavailable(await session.call_tool("mcp__srv__crash", {}), "srv")
                else:
                    os.kill(child, signal.SIGKILL)
        (in_flight,) = results
        assert_unavailable(in_flight, "srv")
        assert "wait_for_release" in (in_flight.message or "")

        with anyio.fail_after(WAIT):
            await assert_outage_keeps_tools(pool, session, definitions)
        await wait_until(lambda: reconnected(pool, "srv", since), timeout=WAIT)
        assert pool.status("srv").reconnect_attempts == 0
        assert pool.definitions() is definitions and pool.generation == generation  # no churn for the same tools
        (new_child,) = stdio_server_pids() - unrelated  # the dead child was reaped, a new one runs
        assert new_child != child
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__srv__echo", {"text": "back"})
        assert result.structured == {"text": "back"}


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_http_server_killed_mid_call_fails_the_call_and_reconnects_once_restarted(
    transport: HttpTransport, upstream: UpstreamFactory
) -> None:
    server = upstream(transport=transport)
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", http_config(server, startup_timeout=15, call_timeout=30))
        session = session_of(factory)
        definitions, generation = pool.definitions(), pool.generation
        since = pool.status("srv").connected_since

        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_in_background, session, "mcp__srv__wait_for_release", {"key": "k"}, results)
                await wait_until(lambda: pool.status("srv").calls_in_flight == 1)
                server.kill()
        (in_flight,) = results
        assert_unavailable(in_flight, "srv")

        with anyio.fail_after(WAIT):
            await assert_outage_keeps_tools(pool, session, definitions)
        # The first failure is the lost connection; the attempts after it find nobody listening.
        await wait_until(lambda: pool.status("srv").reconnect_attempts >= 2, timeout=WAIT)
        assert "cannot connect" in (pool.status("srv").last_error or "")

        await anyio.to_thread.run_sync(server.restart)  # same port, fresh process
        await wait_until(lambda: reconnected(pool, "srv", since), timeout=WAIT)
        assert pool.definitions() is definitions and pool.generation == generation
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__srv__echo", {"text": "back"})
        assert result.structured == {"text": "back"}


async def test_streamable_http_session_expired_by_a_restart_fails_the_call_and_reconnects(
    upstream: UpstreamFactory,
) -> None:
    """A restarted server answers 404 "Session not found": the call fails as unavailable and the pool reconnects."""
    server = upstream(transport="streamable_http")
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", http_config(server, startup_timeout=15, call_timeout=30))
        session = session_of(factory)
        definitions = pool.definitions()
        since = pool.status("srv").connected_since

        await anyio.to_thread.run_sync(server.restart)  # while idle: the gateway learns of it from the next call
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__srv__echo", {"text": "who are you"})
        assert_unavailable(result, "srv")
        assert "Session not found" in (result.message or "")

        await wait_until(lambda: reconnected(pool, "srv", since), timeout=WAIT)
        assert pool.definitions() is definitions
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__srv__echo", {"text": "new session"})
        assert result.structured == {"text": "new session"}


async def test_sse_server_restarted_while_idle_is_noticed_and_reconnected(upstream: UpstreamFactory) -> None:
    server = upstream(transport="sse")
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", http_config(server, startup_timeout=15))
        definitions = pool.definitions()
        since = pool.status("srv").connected_since

        await anyio.to_thread.run_sync(server.restart)  # the event stream ends: no call is needed to notice
        await wait_until(lambda: reconnected(pool, "srv", since), timeout=WAIT)
        assert pool.definitions() is definitions
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__srv__echo", {"text": "back"})
        assert result.structured == {"text": "back"}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_reconnect_server_action_forces_a_new_connection(transport: str, upstream: UpstreamFactory) -> None:
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", server_config(transport, upstream, startup_timeout=15))
        session = session_of(factory)
        children = stdio_server_pids() - unrelated
        definitions = pool.definitions()
        since = pool.status("srv").connected_since

        assert await session.invoke_action("reconnect_server", {"name": "srv"}) == {"reconnecting": "srv"}
        await wait_until(lambda: reconnected(pool, "srv", since), timeout=WAIT)
        assert pool.definitions() is definitions
        if transport == "stdio":
            new_children = stdio_server_pids() - unrelated
            assert len(new_children) == 1 and not new_children & children  # a new child; the old one reaped
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__srv__echo", {"text": "fresh"})
        assert result.structured == {"text": "fresh"}
        with pytest.raises(ServerNotAttached):
            await session.invoke_action("reconnect_server", {"name": "nope"})
