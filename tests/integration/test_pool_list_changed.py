"""An upstream's tool list changes at runtime: the pool re-lists, bumps its generation, and sessions see the change.

Both protocol eras: the legacy era (2025-11-25, the default `mode="legacy"`) gets
`notifications/tools/list_changed` on the connection; the 2026-07-28 era (`mode="auto"`) only on a
`subscriptions/listen` stream, which the pool opens itself.
"""

from __future__ import annotations

import anyio
import pytest

from lash_core import FailureClass, LashCore
from lash_gateway import McpConnectionPool, McpPluginFactory
from tests.integration._helpers import ATTACHED_SERVER, TRANSPORTS, attached
from tests.servers.launch import UpstreamFactory

pytestmark = pytest.mark.anyio

SERVER = ATTACHED_SERVER
WAIT = 5.0
ADDED = "added_at_runtime"
MODERN = "2026-07-28"


def tool(name: str) -> str:
    return f"mcp__{SERVER}__{name}"


def names(pool: McpConnectionPool) -> set[str]:
    return {definition.name for definition in pool.definitions()}


async def change_and_wait(pool: McpConnectionPool, upstream_tool: str, name: str) -> int:
    """Call `add_tool`/`remove_tool` on the upstream and wait for the pool's next generation."""
    generation = pool.generation
    result = await pool.call_tool(tool(upstream_tool), {"name": name})
    assert not result.is_error, result
    try:
        with anyio.fail_after(WAIT):
            new = await pool.wait_for_change(generation)
    except TimeoutError:
        pytest.fail(
            f"the pool's tools did not change within {WAIT:g}s of the upstream's {upstream_tool}({name!r}) "
            f"(generation still {pool.generation}, protocol {pool.status(SERVER).protocol_version})"
        )
    assert new > generation
    assert pool.generation == new
    return new


async def check_tools_follow_the_upstream(factory: McpPluginFactory) -> None:
    pool = factory.pool
    session = LashCore.builder().plugin(factory).build().session()
    before = pool.definitions()
    assert tool(ADDED) not in names(pool)
    assert {d.name for d in session.tools()} == names(pool)

    await change_and_wait(pool, "add_tool", ADDED)
    assert names(pool) == {d.name for d in before} | {tool(ADDED)}
    assert tool(ADDED) in {d.name for d in session.tools()}
    assert pool.status(SERVER).tool_count == len(before) + 1
    with anyio.fail_after(WAIT):
        called = await session.call_tool(tool(ADDED), {})
    assert not called.is_error, called
    assert called.text() == f"{ADDED} called"

    await change_and_wait(pool, "remove_tool", ADDED)
    assert names(pool) == {d.name for d in before}
    assert tool(ADDED) not in {d.name for d in session.tools()}
    with anyio.fail_after(WAIT):
        gone = await session.call_tool(tool(ADDED), {})
    assert gone.failure_class is FailureClass.INVALID_INPUT
    assert gone.code == "unknown_tool"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_legacy_list_changed_updates_definitions_and_sessions(transport: str, upstream: UpstreamFactory) -> None:
    async with attached(transport, upstream) as factory:
        assert factory.pool.status(SERVER).protocol_version == "2025-11-25"
        await check_tools_follow_the_upstream(factory)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modern_era_list_changed_updates_definitions_and_sessions(
    transport: str, upstream: UpstreamFactory
) -> None:
    """On 2026-07-28 a change made right after `attach` returned must not be lost: the pool has to be subscribed
    (or re-list once subscribed) by then."""
    async with attached(transport, upstream, mode="auto") as factory:
        assert factory.pool.status(SERVER).protocol_version == MODERN
        await check_tools_follow_the_upstream(factory)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_modern_era_list_changed_once_subscribed(transport: str, upstream: UpstreamFactory) -> None:
    """The 2026-07-28 subscription itself works: after a first change has been seen (so the pool's
    `subscriptions/listen` stream is certainly open), later changes arrive too."""
    async with attached(transport, upstream, mode="auto") as factory:
        pool = factory.pool
        assert pool.status(SERVER).protocol_version == MODERN
        # A change made before the subscription is acknowledged can be missed (see the test above), so keep
        # changing until one is seen; each round is bounded.
        with anyio.fail_after(WAIT):
            for round_number in range(1000):
                generation = pool.generation
                await pool.call_tool(tool("add_tool"), {"name": f"warmup{round_number}"})
                with anyio.move_on_after(0.2):
                    await pool.wait_for_change(generation)
                if pool.generation != generation:
                    break
        await change_and_wait(pool, "add_tool", ADDED)
        assert tool(ADDED) in names(pool)
        await change_and_wait(pool, "remove_tool", ADDED)
        assert tool(ADDED) not in names(pool)
