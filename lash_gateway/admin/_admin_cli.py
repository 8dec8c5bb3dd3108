"""`lash-gateway attach | detach | status | virtual-server | audit`: talk to a running gateway's admin API.

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
import time
from collections.abc import Iterable, Mapping
from typing import Any

import httpx2

from ._state import ADMIN_TOKEN_ENV, ADMIN_URL_ENV, TOKEN_FILE, URL_FILE, read_text, state_dir

EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 1, 2, 3, 4
TIMEOUT = httpx2.Timeout(10.0, read=120.0)  # an attach waits for the server's startup timeout
APPROVAL_POLL = 0.5
"""Seconds between two looks at a server waiting for an operator's approval."""


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
    attach.add_argument(
        "--oauth",
        action="store_true",
        help="the server requires OAuth: the gateway registers itself and prints a URL to approve in a browser",
    )
    attach.add_argument("--client-id", help="with --oauth: a client registered with the authorization server")
    attach.add_argument("--client-secret", help="with --oauth: that client's secret")
    attach.add_argument("--wait", type=float, default=600.0, help="seconds to wait for the approval (default 600)")
    detach = commands.add_parser("detach", parents=[common], help="detach a server")
    detach.add_argument("name")
    commands.add_parser("status", parents=[common], help="a table of attached servers")
    virtual = commands.add_parser(
        "virtual-server", aliases=["vs"], parents=[common], help="list, show, put or remove virtual servers; tokens"
    )
    actions = virtual.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[common], help="a table of virtual servers")
    actions.add_parser("show", parents=[common], help="one virtual server, with its tools").add_argument("name")
    put = actions.add_parser("put", parents=[common], help="make or change one from a JSON file (- for stdin)")
    put.add_argument("name")
    put.add_argument("file", help="the virtual server's config as JSON, as in gateway.virtual_servers.<name>")
    actions.add_parser("rm", parents=[common], help="remove one (its clients are disconnected)").add_argument("name")
    token = actions.add_parser("token", parents=[common], help="make a client token (printed once)")
    token.add_argument("name")
    token.add_argument("--replace", action="store_true", help="revoke every other token of it (rotation)")
    revoke = actions.add_parser("revoke", parents=[common], help="revoke a client token by its id")
    revoke.add_argument("name")
    revoke.add_argument("token_id")
    audit = commands.add_parser("audit", parents=[common], help="tool call records, newest first")
    audit.add_argument("--limit", type=int, default=50, help="how many records (default 50)")
    audit.add_argument("--since", help="only records from this time on (ISO 8601)")
    audit.add_argument("--tool", help="only calls of this tool (as the client called it)")
    audit.add_argument("--virtual-server", help="only calls through this virtual server")
    audit.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")


ADMIN_COMMANDS = ("attach", "detach", "status", "virtual-server", "vs", "audit")


def run_admin_command(args: argparse.Namespace) -> int:
    try:
        if args.command == "attach":
            body = _attach_body(args)
            result = _request(args, "PUT", f"/admin/servers/{args.name}", body)
            if "authorization_url" in result:
                result = _await_approval(args, result["authorization_url"])
            print(f"attached {args.name}: {result.get('tool_count', 0)} tools ({result.get('state')})")
        elif args.command == "detach":
            _request(args, "DELETE", f"/admin/servers/{args.name}")
            print(f"detached {args.name}")
        elif args.command in ("virtual-server", "vs"):
            _virtual_server(args)
        elif args.command == "audit":
            _audit(args)
        else:
            print_status_table(_request(args, "GET", "/admin/servers").get("servers", []))
        return 0
    except CliError as exc:
        print(f"lash-gateway: {exc}", file=sys.stderr)
        return exc.code


def _virtual_server(args: argparse.Namespace) -> None:
    base = "/admin/virtual-servers"
    if args.action == "list":
        rows = _request(args, "GET", base).get("virtual_servers", [])
        print(f"{'VIRTUAL SERVER':<24} {'MODE':<7} {'TOKENS':>6}  SERVERS")
        for row in rows:
            print(f"{row['name']:<24} {row['mode']:<7} {len(row['token_ids']):>6}  {', '.join(row['servers'])}")
    elif args.action == "show":
        print(json.dumps(_request(args, "GET", f"{base}/{args.name}"), indent=2))
    elif args.action == "put":
        try:
            text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
            body = json.loads(text)
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read {args.file} as JSON: {exc}", EXIT_USAGE) from None
        result = _request(args, "PUT", f"{base}/{args.name}", body)
        print(f"virtual server {args.name}: {result['mode']} mode, tokens {', '.join(result['token_ids']) or 'none'}")
        if "token" in result:
            print(f"client token (shown once): {result['token']}")
    elif args.action == "rm":
        _request(args, "DELETE", f"{base}/{args.name}")
        print(f"removed virtual server {args.name}")
    elif args.action == "token":
        result = _request(args, "POST", f"{base}/{args.name}/tokens", {"replace": args.replace})
        print(f"token {result['id']} of virtual server {args.name} (shown once): {result['token']}")
    else:
        _request(args, "DELETE", f"{base}/{args.name}/tokens/{args.token_id}")
        print(f"revoked token {args.token_id} of virtual server {args.name}")


def _audit(args: argparse.Namespace) -> None:
    query = {"limit": str(args.limit)}
    for key, value in (("since", args.since), ("tool", args.tool), ("virtual_server", args.virtual_server)):
        if value is not None:
            query[key] = value
    records = _request(args, "GET", "/admin/audit", params=query).get("records", [])
    if args.json:
        for record in records:
            print(json.dumps(record))
        return
    print(f"{'TIME':<29} {'VIRTUAL SERVER':<16} {'TOKEN':<8} {'TOOL':<32} {'SERVER':<16} {'OUTCOME':<13} {'MS':>9}")
    for r in records:
        print(
            f"{r['time']:<29} {r['virtual_server'] or '-':<16} {r['token_id'] or '-':<8} {r['tool']:<32} "
            f"{r['server'] or '-':<16} {r['outcome']:<13} {r['duration_ms']:>9.1f}"
        )


def _await_approval(args: argparse.Namespace, url: str) -> dict[str, Any]:
    """Print the authorization URL on a line of its own, and wait (at most `--wait` seconds) for the server to connect
    once an operator approved it in a browser. Ctrl-C gives up (the gateway gives up on its own at its timeout)."""
    print(f"{args.name} needs authorization; open this URL in a browser and approve:", flush=True)
    print(url, flush=True)
    deadline = time.monotonic() + args.wait
    try:
        while time.monotonic() < deadline:
            time.sleep(APPROVAL_POLL)  # polling the admin API: no event to wait on from this process
            status = _request(args, "GET", f"/admin/servers/{args.name}")  # a failed attach answers 502: final
            replacement = status.get("replacement")  # the attach waited for, over a server already there
            if replacement is not None:
                if replacement.get("state") == "failed":
                    raise CliError(f"could not attach: {replacement.get('error')}", EXIT_FAILED)
                continue
            if status.get("connected"):
                return status
    except KeyboardInterrupt:
        raise CliError("gave up waiting for the authorization", EXIT_FAILED) from None
    raise CliError(f"not authorized within {args.wait:g} s", EXIT_FAILED)


def _attach_body(args: argparse.Namespace) -> dict[str, Any]:
    command: list[str] = args.server_command
    if bool(args.url) == bool(command):
        raise CliError("give either --url URL or -- COMMAND [ARGS...]", EXIT_USAGE)
    if args.url:
        if args.env:
            raise CliError("--env applies to stdio servers; use --header for URL servers", EXIT_USAGE)
        transport = "sse" if args.sse else "streamable_http"
        body: dict[str, Any] = {"transport": transport, "url": args.url, "headers": _pairs(args.header, "--header")}
        if args.oauth:
            oauth = {"grant": "authorization_code", "client_id": args.client_id, "client_secret": args.client_secret}
            body["oauth"] = {key: value for key, value in oauth.items() if value is not None}
        return body
    if args.oauth:
        raise CliError("--oauth applies to URL servers", EXIT_USAGE)
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


def _request(
    args: argparse.Namespace, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
) -> dict[str, Any]:
    directory = state_dir(args.state_dir)
    base = args.admin_url or os.environ.get(ADMIN_URL_ENV) or read_text(directory / URL_FILE)
    token = args.admin_token or os.environ.get(ADMIN_TOKEN_ENV) or read_text(directory / TOKEN_FILE)
    if not base:
        raise CliError(f"no gateway address: pass --admin-url, set {ADMIN_URL_ENV}, or start one", EXIT_UNREACHABLE)
    if not token:
        raise CliError(f"no admin token: pass --admin-token or set {ADMIN_TOKEN_ENV}", EXIT_UNAUTHORIZED)
    try:
        with httpx2.Client(base_url=base, timeout=TIMEOUT) as http:
            response = http.request(
                method, path, json=body, params=params, headers={"Authorization": f"Bearer {token}"}
            )
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
