"""`lash-gateway attach | detach | status`: talk to a running gateway's admin API.

The address comes from `--admin-url`, LASH_GATEWAY_ADMIN_URL, or the `admin-url` file the local
gateway writes in its state directory; the token from `--admin-token`, LASH_GATEWAY_ADMIN_TOKEN,
or the state directory's `admin-token` file.

Exit codes: 0 done; 1 the gateway refused or failed the operation (the message says why);
2 bad usage or arguments; 3 no gateway answered at the admin URL; 4 the token was refused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

import httpx2

from ._state import ADMIN_TOKEN_ENV, ADMIN_URL_ENV, TOKEN_FILE, URL_FILE, read_text, state_dir

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 1, 2, 3, 4
TIMEOUT = httpx2.Timeout(10.0, read=120.0)  # an attach waits for the server's startup timeout


class CliError(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def add_admin_commands(commands: Any) -> None:
    """Add `attach`, `detach` and `status` to the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--admin-url", help=f"the gateway's base URL (default: ${ADMIN_URL_ENV} or the state dir)")
    common.add_argument("--admin-token", help=f"admin bearer token (default: ${ADMIN_TOKEN_ENV} or the state dir)")
    common.add_argument("--state-dir", help="the local gateway's state directory, to find its URL and token")
    attach = commands.add_parser(
        "attach",
        parents=[common],
        help="attach or replace a server: NAME -- COMMAND [ARGS...], or NAME --url URL",
        usage="lash-gateway attach NAME (--url URL [--sse] [--header K=V]... | [--env K=V]... -- COMMAND [ARGS...])",
    )
    attach.add_argument("name")
    attach.add_argument("--url", help="streamable HTTP endpoint (or SSE stream with --sse)")
    attach.add_argument("--sse", action="store_true", help="the URL is a legacy HTTP+SSE endpoint")
    attach.add_argument("--header", action="append", default=[], metavar="K=V", help="HTTP header (repeatable)")
    attach.add_argument("--env", action="append", default=[], metavar="K=V", help="stdio env variable (repeatable)")
    detach = commands.add_parser("detach", parents=[common], help="detach a server")
    detach.add_argument("name")
    commands.add_parser("status", parents=[common], help="a table of attached servers")


def run_admin_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "attach":
            body = _attach_body(args)
            result = _request(args, "PUT", f"/admin/servers/{args.name}", body)
            print(f"attached {args.name}: {result.get('tool_count', 0)} tools ({result.get('state')})")
        elif args.command == "detach":
            _request(args, "DELETE", f"/admin/servers/{args.name}")
            print(f"detached {args.name}")
        else:
            print_status_table(_request(args, "GET", "/admin/servers").get("servers", []))
        return 0
    except CliError as exc:
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return exc.code


def _attach_body(args: argparse.Namespace) -> dict[str, Any]:
    command: list[str] = args.server_command
    if bool(args.url) == bool(command):
        raise CliError("give either --url URL or -- COMMAND [ARGS...]", EXIT_USAGE)
    if args.url:
        if args.env:
            raise CliError("--env applies to stdio servers; use --header for URL servers", EXIT_USAGE)
        transport = "sse" if args.sse else "streamable_http"
        return {"transport": transport, "url": args.url, "headers": _pairs(args.header, "--header")}
    if args.header or args.sse:
        raise CliError("--header and --sse apply to URL servers", EXIT_USAGE)
    return {"transport": "stdio", "command": command[0], "args": command[1:], "env": _pairs(args.env, "--env")}


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CliError(f"{flag} takes KEY=VALUE (got a value without '=' or without a key)", EXIT_USAGE)
        pairs[key] = value
    return pairs


def _request(args: argparse.Namespace, method: str, path: str, body: Any = None) -> dict[str, Any]:
    directory = state_dir(args.state_dir)
    base = args.admin_url or os.environ.get(ADMIN_URL_ENV) or read_text(directory / URL_FILE)
    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or read_text(directory / TOKEN_FILE)
    if not base:
        raise CliError(f"no gateway address: pass --admin-url, set {ADMIN_URL_ENV}, or start one", EXIT_UNREACHABLE)
    if not token:
        raise CliError(f"no admin token: pass --admin-token or set {ADMIN_TOKEN_ENV}", EXIT_UNAUTHORIZED)
    try:
        with httpx2.Client(base_url=base, timeout=TIMEOUT) as http:
            response = http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx2.HTTPError as exc:
        raise CliError(f"no gateway answered at {base}: {type(exc).__name__}", EXIT_UNREACHABLE) from None
    try:
        data = response.json()
    except json.JSONDecodeError:
        data = {"error": response.text[:200]}
    if response.status_code == 401:
        raise CliError(data.get("error", "unauthorized"), EXIT_UNAUTHORIZED)
    if response.status_code >= 400:
        raise CliError(f"{data.get('error', response.reason_phrase)} (HTTP {response.status_code})", EXIT_FAILED)
    result: dict[str, Any] = data
    return result


def print_status_table(servers: Iterable[Mapping[str, Any]]) -> None:
    """Servers (as the admin API shows them) as a table: name, transport, connected, tools, last error."""
    print(f"{'SERVER':<24} {'TRANSPORT':<16} {'CONNECTED':<10} {'TOOLS':>5}  LAST ERROR")
    for s in servers:
        connected = "yes" if s.get("connected") else "no"
        error = s.get("last_error") or ""
        print(f"{s['name']:<24} {s['transport']:<16} {connected:<10} {s.get('tool_count', 0):>5}  {error}")
