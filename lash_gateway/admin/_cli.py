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
import os
import sys
from collections.abc import Sequence
from functools import partial
from importlib.util import find_spec
from pathlib import Path

import anyio
from pydantic import SecretStr

from lash_core import Session

from .._errors import GatewayError
from .._redact import redacted_url
from ..upstream._plugin import status_dict
from ._admin_cli import ADMIN_COMMANDS, add_admin_commands, print_status_table, run_admin_command
from ._api import is_loopback
from ._gateway import MCP_PATH, SSE_PATH, Gateway
from ._logs import LOG_FORMATS, configure_logging
from ._postgres_store import PostgresStore, is_postgres_url
from ._serving import freeze_startup_heap, http_server, listening_socket
from ._settings import GatewayConfig, GatewaySettings, load_gateway_config
from ._sqlite_store import StateStore
from ._state import (
    ADMIN_TOKEN_ENV,
    STATE_DIR_ENV,
    STORE_FILE,
    URL_FILE,
    admin_token,
    ensure_private,
    ensure_state_dir,
    oauth_key,
    request_state_key,
    state_dir,
    write_private,
)
from ._store import Store

log = logging.getLogger("lash_gateway.cli")
STORE_ENV = "LASH_GATEWAY_STORE"
ADVERTISE_URL_ENV = "LASH_GATEWAY_ADVERTISE_URL"
STORE_HELP = (
    f"a SQLite file, or postgresql://... shared by replicas (default: ${STORE_ENV}, gateway.store, or state.sqlite3 "
    "in the state directory)"
)
_HAVE_UVLOOP = find_spec("uvloop") is not None
"""uvloop is a dependency except on Windows, where it does not exist."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lash-gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level (to stderr)")
    parser.add_argument(
        "--log-format", choices=LOG_FORMATS, help="text (default, or gateway.log_format) or json: one object per line"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the gateway over HTTP (streamable HTTP and legacy SSE)")
    serve.add_argument("--config", type=Path, help="mcpServers JSON, optionally with a 'gateway' section")
    serve.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="TCP port (default 8765; 0 picks a free one)")
    serve.add_argument("--admin-token", help=f"admin API token (default: ${ADMIN_TOKEN_ENV}, config, or generated)")
    serve.add_argument("--state-dir", help=f"state directory (default: ${STATE_DIR_ENV} or the per-user state dir)")
    serve.add_argument("--store", help=STORE_HELP)
    stdio = commands.add_parser("stdio", help="serve one MCP client over stdin/stdout")
    stdio.add_argument("--config", type=Path)
    stdio.add_argument("--state-dir", help="state directory whose runtime attaches to restore")
    stdio.add_argument("--store", help=STORE_HELP)
    stdio.add_argument("--virtual-server", metavar="NAME", help="serve this virtual server's view and limits")
    stack = commands.add_parser("stack", help="show the plugin stack and the tools a session sees")
    stack.add_argument("--config", type=Path)
    inspect = commands.add_parser("inspect", help="connect to the configured servers, list their tools, exit")
    inspect.add_argument("--config", type=Path, required=True)
    add_admin_commands(commands)
    # Everything after `--` is a stdio server's command line (`attach NAME -- COMMAND ARGS...`),
    # split off before argparse, which would otherwise read the command's own flags.
    argv = list(sys.argv[1:] if argv is None else argv)
    tail = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(tail) - 1] if "--" in argv else argv)
    args.server_command = tail
    if args.command in ADMIN_COMMANDS:
        return run_admin_command(args)
    level = logging.DEBUG if args.verbose else logging.INFO if args.command == "serve" else logging.WARNING
    configure_logging(level, args.log_format or "text")
    try:
        config = load_gateway_config(args.config) if args.config else GatewayConfig()
        if args.log_format is None and config.settings.log_format != "text":
            configure_logging(level, config.settings.log_format)
        if args.command == "serve":
            return _serve(config, args)
        if args.command == "stdio":
            directory = ensure_state_dir(state_dir(args.state_dir))
            store, key = _store(directory, args.store, config.settings), request_state_key(directory)
            freeze_startup_heap()
            return anyio.run(_stdio, config, store, key, args.virtual_server)
        return anyio.run(_stack if args.command == "stack" else _inspect, config)
    except GatewayError as exc:
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the state directory cannot be made or written, and the like
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return 2


class ServeError(GatewayError):
    """`serve` cannot start; the message says why and what to do."""


def _serve(config: GatewayConfig, args: argparse.Namespace) -> int:
    settings = config.settings
    host = args.host or settings.host
    directory = ensure_state_dir(state_dir(args.state_dir))
    configured = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or _secret(settings.admin.token)
    token, token_file = admin_token(directory, configured)
    # Bind before serving, so port 0 works and the printed address is the real one.
    port = settings.port if args.port is None else args.port
    try:
        sock = listening_socket(host, port)
    except OSError as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pick another --port") from None
    # A wildcard bind is reached through loopback locally; that is the address to print and store.
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    shown = f"[{shown}]" if ":" in shown else shown
    base = f"http://{shown}:{sock.getsockname()[1]}"
    write_private(directory / URL_FILE, base + "\n")
    if warning := exposure_warning(host, settings):
        log.warning(warning)
    store = _store(directory, args.store, settings)
    gateway = Gateway(config, store=store, admin_token=token, request_state_key=request_state_key(directory))
    gateway.factory.pool.authorizations.base_url = settings.public_url or base  # where OAuth approvals come back
    if gateway.replication is not None:  # where the other replicas reach this one
        advertised = os.environ.get(ADVERTISE_URL_ENV) or settings.advertise_url
        if advertised is None and not is_loopback(host):
            log.warning(
                "replicas on other hosts cannot reach this one at %s: set LASH_GATEWAY_ADVERTISE_URL (or "
                "gateway.advertise_url) to the address they reach it at",
                base,
                extra={"advertise_url": base},
            )
        gateway.replication.url = advertised or base
    server = http_server(
        gateway.http_app(),
        drain=settings.shutdown_drain,
        head_timeout=settings.request_timeout,
        end_calls=gateway.end_calls,
        draining=gateway.draining,
    )
    token_source = f"in {token_file}" if token_file else "as configured"
    print(_banner(base, config, token_source, directory, store), flush=True)
    freeze_startup_heap()
    try:
        # Under anyio.run rather than server.run(): anyio then reads its event loop from a context
        # variable instead of sniffing for it on every cancel scope, event and lock (~6% of a
        # call's CPU in a profile). The loop is uvloop when it is installed, as uvicorn would pick.
        anyio.run(partial(server.serve, sockets=[sock]), backend_options={"use_uvloop": _HAVE_UVLOOP})
    finally:
        sock.close()
    return 0


def _store(directory: Path, explicit: str | None, settings: GatewaySettings) -> Store:
    """The store `--store`, `LASH_GATEWAY_STORE` or `gateway.store` names, else the state directory's SQLite file; a
    store file others may read is made owner-only first (or refused)."""
    where = explicit or os.environ.get(STORE_ENV) or settings.store
    if where is not None and is_postgres_url(where):
        return PostgresStore(where, oauth_key(directory))
    if where is not None and ("://" in where or "password=" in where):  # a URL the gateway cannot use: not a file
        shown = redacted_url(where) if "://" in where else "(a connection string)"
        raise ServeError(
            f"the store {shown} is neither a file path nor a postgresql:// URL (postgresql+asyncpg:// and key=value "
            "strings are not read); give postgresql://user:password@host:port/database"
        )
    path = Path(where).expanduser() if where else directory / STORE_FILE
    ensure_private(path)
    return StateStore(path, oauth_key(directory))


def exposure_warning(host: str, settings: GatewaySettings) -> str | None:
    """What to tell an operator who exposes the MCP endpoints beyond this machine without a token."""
    if is_loopback(host) or settings.auth_token is not None:
        return None
    return (
        f"listening on {host} with no gateway.auth_token: anyone who can reach it and passes the Host check "
        "can call every attached tool; set gateway.auth_token"
    )


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _banner(base: str, config: GatewayConfig, token_source: str, directory: Path, store: Store) -> str:
    servers = ", ".join(config.servers) or "none (pass --config with an mcpServers file)"
    return "\n".join(
        [
            f"lash gateway listening on {base}",
            f"  streamable HTTP: {base}{MCP_PATH}",
            f"  legacy SSE:      {base}{SSE_PATH}",
            f"  health: {base}/healthz   ready: {base}/readyz   metrics: {base}/metrics",
            f"  admin API: {base}/admin/servers (bearer token {token_source})",
            f"  state directory: {directory}",
            f"  store: {store.where}" + (f" (replica {store.replica})" if isinstance(store, PostgresStore) else ""),
            f"  upstream servers: {servers}",
            "Attach a server:        lash-gateway attach NAME --url URL  (or: attach NAME -- COMMAND ARGS...)",
            f"Connect Claude Code:    claude mcp add --transport http lash {base}{MCP_PATH}",
            'Connect Claude Desktop: add {"lash": {"command": "lash-gateway", "args": ["stdio", "--config", '
            '"/path/to/config.json"]}} to "mcpServers" in claude_desktop_config.json',
        ]
    )


async def _stdio(config: GatewayConfig, store: Store, key: bytes, virtual_server: str | None) -> int:
    async with Gateway(config, store=store, request_state_key=key) as gateway:
        await gateway.serve_stdio(virtual_server)
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
        print_status_table(status_dict(status) for status in statuses)
        _print_session(gateway.core.session())
        return 0 if all(s.connected for s in statuses) else 1


def _print_session(session: Session) -> None:
    tools = session.tools()
    print(f"tools in a root session: {len(tools)}")
    for tool in tools:
        summary = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
        print(f"  - {tool.name}  {summary[:80]}")
    print(f"actions: {', '.join(a.name for a in session.actions())}")
