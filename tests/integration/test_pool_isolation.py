"""One bad upstream never hurts the others, nor its own good tools.

A tool with an unusable schema is skipped (and reported) while the server's other tools work; an upstream whose
tools/list hangs fails its own attach at the startup timeout while a healthy server works alongside; garbage on a
stdio server's stdout is shrugged off; an upstream that crashes mid-call leaves concurrent calls on another server be;
an HTTP upstream's message over the message limit fails its call and the server reconnects, while another server
answers.
"""

from __future__ import annotations

import logging
from typing import Final

import anyio
import pytest

from lash_core import FailureClass, ToolResult
from lash_gateway import McpPluginFactory, McpServerConfig, UpstreamUnavailable
from lash_gateway.upstream._limits import MAX_MESSAGE_BYTES
from tests.integration._helpers import TRANSPORTS, call_in_background, server_config, session_of, wait_until
from tests.servers.launch import UpstreamFactory
from tests.servers.upstream import BAD_SCHEMA_TOOL, TOOL_NAMES

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_garbage")]

WAIT: Final = 20.0
"""Bound on waits for things that should happen promptly (generous: the machine may be loaded)."""
BUILTIN_TOOL_COUNT: Final = len(TOOL_NAMES)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_with_a_bad_schema_is_skipped_and_the_other_tools_work(
    transport: str, upstream: UpstreamFactory
) -> None:
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            status = await factory.attach_server(
                "srv", server_config(transport, upstream, "--behaviour", "bad-schema", startup_timeout=15)
            )
        assert status.connected
        assert status.tool_count == BUILTIN_TOOL_COUNT
        (skipped,) = status.skipped_tools
        assert skipped.name == BAD_SCHEMA_TOOL
        assert "inputSchema" in skipped.reason and "'string'" in skipped.reason
        names = {definition.name for definition in factory.pool.definitions()}
        assert f"mcp__srv__{BAD_SCHEMA_TOOL}" not in names
        assert len(names) == BUILTIN_TOOL_COUNT

        session = session_of(factory)
        with anyio.fail_after(WAIT):
            echoed = await session.call_tool("mcp__srv__echo", {"text": "fine"})
            added = await session.call_tool("mcp__srv__add", {"a": 2, "b": 3})
            skipped_call = await session.call_tool(f"mcp__srv__{BAD_SCHEMA_TOOL}", {})
        assert echoed.structured == {"text": "fine"}
        assert added.structured == {"sum": 5}
        assert skipped_call.code == "unknown_tool"


async def test_hanging_tools_list_fails_its_attach_at_the_startup_timeout_while_a_healthy_server_works(
    upstream: UpstreamFactory,
) -> None:
    hanging = server_config("streamable_http", upstream, "--behaviour", "hang-list", startup_timeout=1)
    healthy = server_config("stdio", upstream, startup_timeout=15)
    errors: list[UpstreamUnavailable] = []
    results: list[ToolResult] = []

    async with McpPluginFactory() as factory:
        session = session_of(factory)

        async def attach_hanging() -> None:
            with pytest.raises(UpstreamUnavailable) as caught:
                await factory.attach_server("hang", hanging)
            errors.append(caught.value)

        async def attach_healthy_and_call() -> None:
            await factory.attach_server("good", healthy)
            results.append(await session.call_tool("mcp__good__echo", {"text": "unaffected"}))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(attach_hanging)
                tg.start_soon(attach_healthy_and_call)

        (error,) = errors
        assert str(error).startswith("hang: ")
        assert "tools/list" in str(error) and "1s" in str(error)
        (result,) = results
        assert result.structured == {"text": "unaffected"}
        assert [status.name for status in factory.pool.server_statuses()] == ["good"]
        assert not any(definition.name.startswith("mcp__hang__") for definition in factory.pool.definitions())
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__good__add", {"a": 1, "b": 1})
        assert result.structured == {"sum": 2}


async def test_garbage_on_stdout_is_isolated(upstream: UpstreamFactory) -> None:
    configs: dict[str, McpServerConfig] = {
        "garbage": server_config("stdio", upstream, "--behaviour", "garbage", startup_timeout=15),
        "good": server_config("stdio", upstream, startup_timeout=15),
    }
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for name, config in configs.items():
                    tg.start_soon(factory.attach_server, name, config)
        session = session_of(factory)
        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for i in range(3):
                    for name in configs:
                        tg.start_soon(
                            call_in_background, session, f"mcp__{name}__echo", {"text": f"{name}{i}"}, results
                        )
        assert sorted(str(r.structured) for r in results) == sorted(
            str({"text": f"{name}{i}"}) for i in range(3) for name in configs
        )
        for status in factory.pool.server_statuses():
            assert status.connected and status.reconnect_attempts == 0 and status.last_error is None
            assert status.tool_count == BUILTIN_TOOL_COUNT


@pytest.mark.parametrize("crasher", TRANSPORTS)
async def test_upstream_crashing_mid_call_leaves_concurrent_calls_on_another_server_alone(
    crasher: str, upstream: UpstreamFactory
) -> None:
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(factory.attach_server, "good", server_config("stdio", upstream, startup_timeout=15))
                tg.start_soon(factory.attach_server, "bad", server_config(crasher, upstream, startup_timeout=15))
        session = session_of(factory)
        good_since = pool.status("good").connected_since

        waiting: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_in_background, session, "mcp__good__wait_for_release", {"key": "k"}, waiting)
                await wait_until(lambda: pool.status("good").calls_in_flight == 1)
                crashed = await session.call_tool("mcp__bad__crash", {})
                # The other server's call is still in flight, on the same connection; now let it finish.
                assert pool.status("good").calls_in_flight == 1
                released = await session.call_tool("mcp__good__release", {"key": "k"})

        assert crashed.failure_class is FailureClass.UNAVAILABLE, crashed.failure
        assert (crashed.message or "").startswith("bad: ")
        (waited,) = waiting
        assert waited.structured == {"key": "k", "in_flight": 2}
        assert released.structured == {"key": "k", "in_flight": 2}
        good = pool.status("good")
        assert good.connected and good.connected_since == good_since and good.reconnect_attempts == 0


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_an_http_message_over_the_limit_fails_its_call_and_the_server_reconnects(
    transport: str, upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the SDK's HTTP clients were told to take SSE events of any size, so an upstream could make the
    gateway hold as much of one message as it sent."""
    caplog.set_level(logging.WARNING, logger="lash_gateway.upstream")
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(WAIT):
            await factory.attach_servers(
                {
                    "good": server_config("stdio", upstream, startup_timeout=15),
                    "big": server_config(transport, upstream, startup_timeout=15),
                }
            )
        session = session_of(factory)
        since = pool.status("big").connected_since
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__big__big", {"size_bytes": MAX_MESSAGE_BYTES + 1})
        assert result.failure_class is FailureClass.UNAVAILABLE, result.failure
        assert (result.message or "").startswith("big: ")
        await wait_until(lambda: pool.status("big").connected and pool.status("big").connected_since != since, WAIT)
        # Streamable HTTP fails the call saying why; legacy SSE loses its stream, and the supervisor says why.
        limit = f"exceeded the {MAX_MESSAGE_BYTES} byte limit"
        assert limit in (result.message or "") or limit in caplog.text
        with anyio.fail_after(WAIT):
            for name in ("big", "good"):
                echoed = await session.call_tool(f"mcp__{name}__echo", {"text": "fine"})
                assert echoed.structured == {"text": "fine"}
