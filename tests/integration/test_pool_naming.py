"""Tool names across several attached servers: `mcp__<server>__<tool>`, normalised, unique and stable.

Servers whose names normalise alike ("My-Docs", "my_docs", "MY.DOCS") all keep their tools apart; the server
attached first keeps the plain name and later ones take the documented digest suffix. Calls go to the server that
offered the tool, under the tool's original upstream name.
"""

from __future__ import annotations

import hashlib
import re

import anyio
import pytest

from lash_core import LashCore
from lash_gateway import McpConnectionPool, McpPluginFactory, McpServerConfig, StdioServerConfig
from tests.servers.launch import PROJECT_ROOT, UpstreamFactory, stdio_command
from tests.servers.upstream import TOOL_NAMES

pytestmark = pytest.mark.anyio

STARTUP = 15.0
WAIT = 5.0
LASH_NAME = re.compile(r"mcp__[a-z0-9_]+__[a-z0-9_]+")


def stdio_server(*args: str) -> StdioServerConfig:
    command, stdio_args = stdio_command(*args)
    return McpServerConfig.stdio(command, stdio_args, cwd=str(PROJECT_ROOT))


def suffixed(part: str, original: str) -> str:
    """The documented collision rule: `_` and 6 hex digits of the sha256 of the original name."""
    return f"{part}_{hashlib.sha256(original.encode()).hexdigest()[:6]}"


def tools_by_server(pool: McpConnectionPool) -> dict[str, dict[str, str]]:
    """server -> {lash name: upstream tool name}, from the pool's own routing."""
    found: dict[str, dict[str, str]] = {}
    for definition in pool.definitions():
        server, original = pool.route(definition.name)
        found.setdefault(server, {})[definition.name] = original
    return found


async def attach(pool: McpConnectionPool, name: str, server_name: str) -> None:
    with anyio.fail_after(STARTUP):
        await pool.attach(name, stdio_server("--name", server_name))
    assert pool.status(name).server_name == server_name


async def add_upstream_tool(pool: McpConnectionPool, add_tool: str, name: str) -> None:
    """Call one server's `add_tool` through the pool and wait until the pool has re-listed."""
    generation = pool.generation
    with anyio.fail_after(WAIT):
        result = await pool.call_tool(add_tool, {"name": name})
        assert result.text() == f"added {name}", result
        await pool.wait_for_change(generation)


async def test_servers_whose_names_normalise_alike_keep_their_tools_apart() -> None:
    async with McpPluginFactory() as factory:
        pool = factory.pool
        await attach(pool, "My-Docs", "docs-a")
        await attach(pool, "my_docs", "docs-b")
        first, second = "my_docs", suffixed("my_docs", "my_docs")

        by_server = tools_by_server(pool)
        assert by_server["My-Docs"] == {f"mcp__{first}__{tool}": tool for tool in TOOL_NAMES}
        assert by_server["my_docs"] == {f"mcp__{second}__{tool}": tool for tool in TOOL_NAMES}
        names = [definition.name for definition in pool.definitions()]
        assert len(names) == len(set(names)) == 2 * len(TOOL_NAMES)
        assert all(LASH_NAME.fullmatch(name) for name in names), names

        # Each server's add_tool reaches that server: the new tool shows up under its prefix only, and calling it
        # sends the original (un-normalised) name upstream.
        session = LashCore.builder().plugin(factory).build().session()
        await add_upstream_tool(pool, f"mcp__{first}__add_tool", "Get-Weather.Now")
        await add_upstream_tool(pool, f"mcp__{second}__add_tool", "From B!")
        by_server = tools_by_server(pool)
        assert by_server["My-Docs"][f"mcp__{first}__get_weather_now"] == "Get-Weather.Now"
        assert by_server["my_docs"][f"mcp__{second}__from_b_"] == "From B!"
        assert not any(name.endswith("get_weather_now") for name in by_server["my_docs"])
        assert not any(name.endswith("from_b_") for name in by_server["My-Docs"])
        assert {d.name for d in session.tools()} == {d.name for d in pool.definitions()}
        with anyio.fail_after(WAIT):
            weather = await session.call_tool(f"mcp__{first}__get_weather_now", {})
            from_b = await session.call_tool(f"mcp__{second}__from_b_", {})
        assert weather.text() == "Get-Weather.Now called"
        assert from_b.text() == "From B! called"


async def test_attaching_another_server_renames_no_existing_tool() -> None:
    async with McpPluginFactory() as factory:
        pool = factory.pool
        await attach(pool, "my_docs", "docs-a")
        await attach(pool, "My-Docs", "docs-b")
        before = tools_by_server(pool)
        generation = pool.generation

        await attach(pool, "MY.DOCS", "docs-c")
        after = tools_by_server(pool)
        assert pool.generation > generation
        assert after["my_docs"] == before["my_docs"]
        assert after["My-Docs"] == before["My-Docs"]
        assert set(after["my_docs"]) == {f"mcp__my_docs__{tool}" for tool in TOOL_NAMES}
        third = suffixed("my_docs", "MY.DOCS")
        assert after["MY.DOCS"] == {f"mcp__{third}__{tool}": tool for tool in TOOL_NAMES}
        assert len({name for tools in after.values() for name in tools}) == 3 * len(TOOL_NAMES)

        with anyio.fail_after(WAIT):
            echoed = await pool.call_tool(f"mcp__{third}__echo", {"text": "third"})
        assert echoed.text() == "third"


async def test_a_tool_an_upstream_adds_never_takes_a_name_another_server_holds() -> None:
    """Server `a` adds a tool `b__echo`, whose name spells `mcp__a__b__echo`, the name of `a__b`'s `echo`: the
    newcomer gets the suffix, and a client calling `mcp__a__b__echo` still reaches `a__b`, never `a` (which would
    be handed arguments meant for another server)."""
    async with McpPluginFactory() as factory:
        pool = factory.pool
        await attach(pool, "a", "hostile")
        await attach(pool, "a__b", "victim")
        await add_upstream_tool(pool, "mcp__a__add_tool", "b__echo")

        assert pool.route("mcp__a__b__echo") == ("a__b", "echo")
        assert pool.route(f"mcp__a__{suffixed('b__echo', 'b__echo')}") == ("a", "b__echo")
        with anyio.fail_after(WAIT):
            echoed = await pool.call_tool("mcp__a__b__echo", {"text": "for a__b"})
        assert echoed.text() == "for a__b"


async def test_a_server_replaced_without_its_prefix_is_named_afresh() -> None:
    async with McpPluginFactory() as factory:
        pool = factory.pool
        await attach(pool, "docs", "docs")
        assert pool.route("mcp__docs__echo") == ("docs", "echo")
        command, args = stdio_command("--name", "docs")
        unprefixed = McpServerConfig.parse(
            {"command": command, "args": args, "cwd": str(PROJECT_ROOT), "prefix": False}
        )
        with anyio.fail_after(STARTUP):
            await pool.attach("docs", unprefixed)
        assert {definition.name for definition in pool.definitions()} == {f"mcp__{tool}" for tool in TOOL_NAMES}


async def test_detaching_a_server_renames_no_other_servers_tool() -> None:
    """A client holding `mcp__my_docs_<hash>__echo` must not silently reach another server, nor lose
    the tool, because the server that held the plain name went away."""
    async with McpPluginFactory() as factory:
        pool = factory.pool
        await attach(pool, "my_docs", "docs-a")
        await attach(pool, "My-Docs", "docs-b")
        before = tools_by_server(pool)["My-Docs"]

        with anyio.fail_after(WAIT):
            await pool.detach("my_docs")

        assert tools_by_server(pool) == {"My-Docs": before}
        assert all(name.startswith(f"mcp__{suffixed('my_docs', 'My-Docs')}__") for name in before)


async def test_attach_servers_names_servers_in_the_order_given(upstream: UpstreamFactory) -> None:
    """`McpPluginFactory.attach_servers` attaches concurrently but documents that "each keeps its place in the
    naming order": the first server of the mapping keeps the plain name even when it is the slower to connect."""
    async with McpPluginFactory() as factory:
        servers: dict[str, McpServerConfig] = {
            # A child process to start and 3,000 extra tools to list: this one connects well after the other,
            # an HTTP server that is already listening.
            "My-Docs": stdio_server("--name", "slow", "--behaviour", "many-tools=3000"),
            "my_docs": McpServerConfig.streamable_http(upstream("--name", "fast").url),
        }
        with anyio.fail_after(STARTUP):
            await factory.attach_servers(servers)
        pool = factory.pool
        assert {status.name: status.server_name for status in pool.server_statuses()} == {
            "My-Docs": "slow",
            "my_docs": "fast",
        }
        assert pool.route("mcp__my_docs__echo") == ("My-Docs", "echo")
        assert pool.route(f"mcp__{suffixed('my_docs', 'my_docs')}__echo") == ("my_docs", "echo")


async def test_which_server_connects_first_changes_no_name(upstream: UpstreamFactory) -> None:
    """Three servers named by their tools alone, the first attached connecting last: every `echo` is named by its
    server's place, as if they had connected in order (a clash's suffixes included)."""
    unprefixed = {"prefix": False}
    command, args = stdio_command("--name", "slow", "--behaviour", "many-tools=3000")
    servers = {
        "a": McpServerConfig.parse({"command": command, "args": args, "cwd": str(PROJECT_ROOT), **unprefixed}),
        "b": McpServerConfig.parse({"url": upstream("--name", "b").url, **unprefixed}),
        "c": McpServerConfig.parse({"url": upstream("--name", "c").url, **unprefixed}),
    }
    digest = hashlib.sha256(b"echo").hexdigest()
    async with McpPluginFactory() as factory:
        with anyio.fail_after(STARTUP):
            await factory.attach_servers(servers)
        pool = factory.pool
        assert pool.route("mcp__echo") == ("a", "echo")
        assert pool.route(f"mcp__echo_{digest[:6]}") == ("b", "echo")
        assert pool.route(f"mcp__echo_{digest[:8]}") == ("c", "echo")
