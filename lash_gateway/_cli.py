"""The `lash-gateway` command.

`stack` shows the plugin stack a gateway session is built from and the tools a session sees;
`inspect --config FILE` connects to the servers of an `mcpServers` file (as Claude Desktop, Claude
Code and Cursor write it), prints their status and tools, and disconnects. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio

from lash_core import LashCore, Session

from ._config import load_mcp_servers
from ._errors import GatewayError
from ._plugin import McpPluginFactory
from ._upstream import ServerStatus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lash-gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level (to stderr)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("stack", help="show the plugin stack and the tools a session sees")
    inspect = commands.add_parser("inspect", help="connect to the servers of an mcpServers file and list their tools")
    inspect.add_argument("--config", type=Path, required=True, help="JSON file with an 'mcpServers' object")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, stream=sys.stderr)
    try:
        if args.command == "stack":
            return anyio.run(_stack)
        return anyio.run(_inspect, args.config)
    except GatewayError as exc:
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return 2


async def _stack() -> int:
    async with McpPluginFactory.empty() as factory:
        core = LashCore.builder().plugin(factory).build()
        print("plugin stack (in session build order):")
        for plugin in core.plugins:
            print(f"  - {plugin.id()}  ({type(plugin).__name__})")
        _print_session(core.session())
    return 0


async def _inspect(config: Path) -> int:
    servers = load_mcp_servers(config)
    async with McpPluginFactory.empty() as factory:
        await factory.attach_servers(servers, fail_fast=False)
        _print_statuses(factory.server_statuses())
        _print_session(LashCore.builder().plugin(factory).build().session())
        return 0 if all(s.connected for s in factory.server_statuses()) else 1


def _print_statuses(statuses: Sequence[ServerStatus]) -> None:
    print(f"{'server':<24} {'transport':<16} {'connected':<10} {'tools':>5}  last error")
    for s in statuses:
        connected = "yes" if s.connected else "no"
        print(f"{s.name:<24} {s.transport:<16} {connected:<10} {s.tool_count:>5}  {s.last_error or ''}")


def _print_session(session: Session) -> None:
    tools = session.tools()
    print(f"tools in a root session: {len(tools)}")
    for tool in tools:
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        print(f"  - {tool.name}  {summary[:80]}")
    actions = ", ".join(a.name for a in session.actions())
    print(f"actions: {actions}")
