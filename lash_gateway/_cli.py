"""The `lash-gateway` command.

`serve` runs the gateway over HTTP (streamable HTTP at /mcp, legacy SSE at /sse); `stdio` runs it for
one client that launches it as a process (Claude Desktop); `stack` shows the plugin stack a session
is built from; `inspect` connects to the servers of a config, lists their tools and exits.
Configs are the `mcpServers` JSON of Claude Desktop / Claude Code / Cursor, with an optional
`gateway` section. Logs go to stderr, never stdout.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

import anyio
import uvicorn

from lash_core import Session

from ._app import MCP_PATH, SSE_PATH, Gateway
from ._errors import GatewayError
from ._settings import GatewayConfig, load_gateway_config
from ._upstream import ServerStatus


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lash-gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level (to stderr)")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway over HTTP (streamable HTTP and legacy SSE)")
    serve.add_argument("--config", type=Path, help="mcpServers JSON, optionally with a 'gateway' section")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8765; 0 picks a free one)")
    stdio = commands.add_parser("stdio", help="serve one MCP client over stdin/stdout")
    stdio.add_argument("--config", type=Path)
    stack = commands.add_parser("stack", help="show the plugin stack and the tools a session sees")
    stack.add_argument("--config", type=Path)
    inspect = commands.add_parser("inspect", help="connect to the configured servers, list their tools, exit")
    inspect.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        config = load_gateway_config(args.config) if args.config else GatewayConfig()
        if args.command == "serve":
            return _serve(config, args.host, args.port)
        if args.command == "stdio":
            return anyio.run(_stdio, config)
        return anyio.run(_stack if args.command == "stack" else _inspect, config)
    except GatewayError as exc:
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return 2


def _serve(config: GatewayConfig, host: str | None, port: int | None) -> int:
    settings = config.settings
    host = host or settings.host
    # Bind before serving, so port 0 works and the printed address is the real one.
    sock = socket.create_server((host, settings.port if port is None else port))
    bound_port = sock.getsockname()[1]
    gateway = Gateway(config)
    server = uvicorn.Server(uvicorn.Config(gateway.http_app(), log_level="warning", lifespan="on"))
    shown = f"[{host}]" if ":" in host else host
    base = f"http://{shown}:{bound_port}"
    print(_banner(base, config), flush=True)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    return 0


def _banner(base: str, config: GatewayConfig) -> str:
    servers = ", ".join(config.servers) or "none (pass --config with an mcpServers file)"
    return "\n".join(
        [
            f"lash gateway listening on {base}",
            f"  streamable HTTP: {base}{MCP_PATH}",
            f"  legacy SSE:      {base}{SSE_PATH}",
            f"  health: {base}/healthz   ready: {base}/readyz   metrics: {base}/metrics",
            f"  upstream servers: {servers}",
            f"Connect Claude Code:    claude mcp add --transport http lash {base}{MCP_PATH}",
            'Connect Claude Desktop: add {"lash": {"command": "lash-gateway", "args": ["stdio", "--config", '
            '"/path/to/config.json"]}} to "mcpServers" in claude_desktop_config.json',
        ]
    )


async def _stdio(config: GatewayConfig) -> int:
    async with Gateway(config) as gateway:
        await gateway.serve_stdio()
    return 0


async def _stack(config: GatewayConfig) -> int:
    async with Gateway(config) as gateway:
        print("plugin stack (in session build order):")
        for plugin in gateway.core.plugins:
            print(f"  - {plugin.id()}  ({type(plugin).__name__})")
        _print_session(gateway.core.session())
    return 0


async def _inspect(config: GatewayConfig) -> int:
    async with Gateway(config) as gateway:
        await gateway.ready.wait()
        statuses = gateway.factory.server_statuses()
        _print_statuses(statuses)
        _print_session(gateway.core.session())
        return 0 if all(s.connected for s in statuses) else 1


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
    print(f"actions: {', '.join(a.name for a in session.actions())}")
