"""Helpers shared by the pool integration tests: server configs for each transport, and bounded waits.

`server_config` turns a transport name into a `McpServerConfig` for `tests.servers.upstream`: stdio servers are
described for the pool to spawn (with `cwd=PROJECT_ROOT`), HTTP servers are started through the `upstream` fixture
factory (which stops them at teardown). `wait_until` is the one place a test may poll: a bounded wait on an
observable (e.g. `pool.status(name)`), never a sleep used to synchronise. `attached` gives a plugin factory with
one server attached; `session_of` and `call_in_background` build a session on it and run a call from a task group.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio

from lash_core import LashCore, Session, ToolResult
from lash_gateway import HttpServerConfig, McpPluginFactory, McpServerConfig
from tests.servers.launch import (
    PROJECT_ROOT,
    SERVER_MODULE,
    UpstreamFactory,
    UpstreamProcess,
    leaked_processes,
    stdio_command,
)

__all__ = [
    "ATTACHED_SERVER",
    "ATTACH_TIMEOUT",
    "POLL_INTERVAL",
    "TRANSPORTS",
    "attached",
    "call_in_background",
    "established_connections",
    "http_config",
    "server_config",
    "session_of",
    "stdio_server_pids",
    "wait_until",
]

TRANSPORTS: Final = ("stdio", "streamable_http", "sse")
"""The three upstream transports, for `pytest.mark.parametrize("transport", TRANSPORTS)`."""
POLL_INTERVAL: Final = 0.01
"""Seconds between two checks of `wait_until`'s predicate."""
ATTACHED_SERVER: Final = "up"
"""The name `attached` gives its server unless told otherwise (tool names are `mcp__up__<tool>`)."""
ATTACH_TIMEOUT: Final = 15.0
"""Bound on attaching one server (process start, handshake, tools/list)."""


def server_config(transport: str, upstream: UpstreamFactory, *args: str, **config_kwargs: Any) -> McpServerConfig:
    """A config for `tests.servers.upstream` run with `args` (e.g. ``"--behaviour", "paginate"``) over `transport`.

    For "stdio" nothing is started: the pool spawns the server (cwd is the project root). For "streamable_http" and
    "sse" the server is started now via the `upstream` fixture factory and stopped at the test's teardown.
    `config_kwargs` (startup_timeout, call_timeout, tools, mode, env/headers) go to the `McpServerConfig` constructor.
    """
    if transport == "stdio":
        command, stdio_args = stdio_command(*args)
        return McpServerConfig.stdio(command, stdio_args, cwd=str(PROJECT_ROOT), **config_kwargs)
    if transport == "streamable_http":
        return McpServerConfig.streamable_http(upstream(*args, transport="streamable_http").url, **config_kwargs)
    if transport == "sse":
        return McpServerConfig.sse(upstream(*args, transport="sse").url, **config_kwargs)
    raise ValueError(f"unknown transport {transport!r}; expected one of {TRANSPORTS}")


def http_config(server: UpstreamProcess, **config_kwargs: Any) -> HttpServerConfig:
    """A config for an HTTP upstream the test holds on to (to kill or restart it), over the server's transport."""
    if server.transport == "sse":
        return McpServerConfig.sse(server.url, **config_kwargs)
    return McpServerConfig.streamable_http(server.url, **config_kwargs)


@asynccontextmanager
async def attached(
    transport: str, upstream: UpstreamFactory, *, server: str = ATTACHED_SERVER, **config: Any
) -> AsyncIterator[McpPluginFactory]:
    """A plugin factory whose pool has the upstream test server attached as `server` (with `config`)."""
    async with McpPluginFactory() as factory:
        with anyio.fail_after(ATTACH_TIMEOUT):
            await factory.attach_server(server, server_config(transport, upstream, **config))
        yield factory


def session_of(factory: McpPluginFactory) -> Session:
    """A session of a core built with `factory` as its only plugin."""
    return LashCore.builder().plugin(factory).build().session()


async def call_in_background(session: Session, tool: str, args: dict[str, Any], into: list[ToolResult]) -> None:
    """Call `tool` and append the result to `into`: for `task_group.start_soon`, which drops return values."""
    into.append(await session.call_tool(tool, args))


# ASYNC109: the timeout is part of the shared API and is applied with anyio.fail_after just below.
async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:  # noqa: ASYNC109
    """Return once `predicate()` is true, checking every `POLL_INTERVAL` seconds.

    Raises:
        TimeoutError: still false after `timeout` seconds.
    """
    with anyio.fail_after(timeout):
        # ASYNC110: the observables polled here (pool status) have no event to wait on; the poll is bounded.
        while not predicate():  # noqa: ASYNC110
            await anyio.sleep(POLL_INTERVAL)


def stdio_server_pids() -> set[int]:
    """Pids of this process's descendants that run `tests.servers.upstream` over stdio, zombies included.

    A stdio server the pool started and stopped properly is absent: an unreaped (zombie) child still counts.
    """
    return {
        info.pid
        for info in leaked_processes(os.getpid())
        if SERVER_MODULE in info.cmdline and "--transport stdio" in info.cmdline
    }


def established_connections(port: int) -> list[str]:
    """``local -> remote`` of this process's established TCP connections to 127.0.0.1:`port` (from /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed between listdir and readlink
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    with open("/proc/self/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if fields[3] == "01" and remote_port == port and fields[9] in inodes:  # 01 = TCP_ESTABLISHED
                found.append(f"{fields[1]} -> {fields[2]}")
    return found
