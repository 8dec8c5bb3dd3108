"""The admin HTTP API: attach, detach, reconnect and inspect upstream servers at runtime.

    GET    /admin/servers                    statuses
    GET    /admin/servers/{name}             one status, with its tools
    PUT    /admin/servers/{name}             attach or replace (body: typed config or mcpServers entry)
    DELETE /admin/servers/{name}             detach
    POST   /admin/servers/{name}/reconnect   drop the connection and connect again

Every request needs `Authorization: Bearer <token>` (compared in constant time) and, unless
`gateway.admin.allow_remote`, must come from a loopback address. Starting a process is code
execution: a stdio attach is refused unless its command line matches `gateway.admin.stdio_allow`;
a URL attach is refused if its host resolves into `gateway.admin.deny_networks`. Changes go
through the MCP plugin's actions and are written to the store before the answer. Errors are
`{"error": "<what to fix>"}`; no answer contains a header or env value.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import shlex
from collections.abc import Awaitable, Callable, Sequence
from fnmatch import fnmatchcase
from urllib.parse import urlsplit

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from lash_core import Session

from ._config import (
    HttpServerConfig,
    McpServerConfig,
    ServerConfig,
    StdioServerConfig,
    redacted,
    validate_server_name,
)
from ._errors import ConfigError, ServerNotAttached, UpstreamUnavailable
from ._plugin import status_dict
from ._pool import McpConnectionPool
from ._settings import AdminSettings
from ._store import StateStore, StoreError

log = logging.getLogger("lash_gateway.admin")

Handler = Callable[[Request], Awaitable[Response]]


class PolicyError(Exception):
    """An attach the operator's policy refuses (403); the message says how to allow it."""


class AdminApi:
    """Routes for the Starlette app. `session` is the gateway's own lash session whose actions
    do the work, so the admin API and embedded hosts share one code path."""

    def __init__(
        self, session: Session, pool: McpConnectionPool, store: StateStore, settings: AdminSettings, token: str
    ) -> None:
        self._session = session
        self._pool = pool
        self._store = store
        self._settings = settings
        self._expected = f"Bearer {token}".encode()

    def routes(self) -> list[Route]:
        return [
            Route("/admin/servers", self._guard(self._list), methods=["GET"]),
            Route("/admin/servers/{name}", self._guard(self._get), methods=["GET"]),
            Route("/admin/servers/{name}", self._guard(self._put), methods=["PUT"]),
            Route("/admin/servers/{name}", self._guard(self._delete), methods=["DELETE"]),
            Route("/admin/servers/{name}/reconnect", self._guard(self._reconnect), methods=["POST"]),
        ]

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            client = request.client.host if request.client else ""
            if not self._settings.allow_remote and not is_loopback(client):
                return _error(403, "the admin API only answers loopback clients; set gateway.admin.allow_remote")
            given = request.headers.get("authorization", "").encode()
            if not hmac.compare_digest(given, self._expected):
                return _error(401, "missing or wrong admin token (Authorization: Bearer <token>)")
            return await handler(request)

        return guarded

    async def _list(self, request: Request) -> Response:
        return JSONResponse({"servers": [status_dict(s) for s in self._pool.server_statuses()]})

    async def _get(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            status = status_dict(self._pool.status(name))
        except ServerNotAttached as exc:
            return _error(404, str(exc))
        status["tools"] = [
            {"name": tool.name, "upstream_name": self._pool.route(tool.name)[1], "description": tool.description}
            for tool in self._pool.definitions()
            if self._pool.route(tool.name)[0] == name
        ]
        return JSONResponse(status)

    async def _put(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            validate_server_name(name)
            body = json.loads(await request.body())
            if not isinstance(body, dict):
                raise ConfigError(name, "the body must be one server config as a JSON object")
            config = McpServerConfig.parse(body, name=name)
            await self._check_policy(config)
        except json.JSONDecodeError as exc:
            return _error(422, f"the body is not valid JSON: {exc}")
        except UnicodeDecodeError:
            return _error(422, "the body is not valid JSON: it is not UTF-8 text")
        except ConfigError as exc:
            return _error(422, str(exc))
        except PolicyError as exc:
            return _error(403, str(exc))
        try:
            previous: ServerConfig | None = self._pool.config(name)
        except ServerNotAttached:
            previous = None
        try:
            status = await self._session.invoke_action("attach_server", {"name": name, "config": body})
        except UpstreamUnavailable as exc:
            return _error(502, f"could not attach: {exc}")
        try:
            await self._store.record_attach(name, config)
        except StoreError as exc:
            # Unrecorded changes would vanish on restart: undo, so the answer and the state agree.
            if previous is None:
                await self._session.invoke_action("detach_server", {"name": name})
            else:
                await self._pool.attach(name, previous, fail_fast=False)
            return _error(500, f"{exc}; the attach was undone")
        log.info("server attached through the admin API", extra={"server": name, "transport": config.transport})
        return JSONResponse(status, status_code=201 if previous is None else 200)

    async def _delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            await self._session.invoke_action("detach_server", {"name": name})
        except ServerNotAttached as exc:
            return _error(404, str(exc))
        try:
            await self._store.record_detach(name)
        except StoreError as exc:
            return _error(500, f"{exc}; the server is detached now but comes back when the gateway restarts")
        log.info("server detached through the admin API", extra={"server": name})
        return JSONResponse({"detached": name})

    async def _reconnect(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            await self._session.invoke_action("reconnect_server", {"name": name})
        except ServerNotAttached as exc:
            return _error(404, str(exc))
        return JSONResponse({"reconnecting": name}, status_code=202)

    async def _check_policy(self, config: ServerConfig) -> None:
        if isinstance(config, StdioServerConfig):
            check_stdio_allowed(config, self._settings.stdio_allow)
        elif isinstance(config, HttpServerConfig):
            await check_url_allowed(config.url, self._settings.deny_networks)


def check_stdio_allowed(config: StdioServerConfig, allow: Sequence[str]) -> None:
    """Raises `PolicyError` unless the command line matches an allow-list glob."""
    command_line = shlex.join([config.command, *config.args])
    if any(fnmatchcase(command_line, pattern) for pattern in allow):
        return
    shown = redacted(config)
    args = shown["args"] if isinstance(shown["args"], list) else []
    raise PolicyError(
        f"starting a process through the admin API is refused: the command line "
        f"{shlex.join([str(shown['command']), *(str(a) for a in args)])!r} matches no "
        "pattern of gateway.admin.stdio_allow in the gateway's config file; add a glob pattern that matches it "
        f"(for example {shlex.join([config.command])!r} followed by ' *') and restart the gateway"
    )


async def check_url_allowed(url: str, deny: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> None:
    """Raises `PolicyError` if the URL's host resolves into a denied network.

    Resolution failures pass: the attach then fails to connect with its own clear error.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = await anyio.getaddrinfo(host, parts.port or (443 if parts.scheme == "https" else 80))
    except OSError:
        return
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        for network in deny:
            if address in network:
                raise PolicyError(
                    f"the host {host!r} resolves to {address}, inside the denied network {network} (cloud metadata "
                    "and link-local addresses are denied by default); change gateway.admin.deny_networks to allow it"
                )


def is_loopback(host: str) -> bool:
    """Whether a client address or bind host is this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _error(code: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=code)
