"""The admin HTTP API: attach, detach, reconnect and inspect upstream servers at runtime.

    GET    /admin/servers                    statuses
    GET    /admin/servers/{name}             one status, with its tools
    PUT    /admin/servers/{name}             attach or replace (body: typed config or mcpServers entry)
    DELETE /admin/servers/{name}             detach
    POST   /admin/servers/{name}/reconnect   drop the connection and connect again

Every request needs `Authorization: Bearer <token>` (compared in constant time) and, unless
`gateway.admin.allow_remote`, must come from a loopback address. Starting a process is code
execution: a stdio attach passes only what the allow-lists of `gateway.admin` admit (command line,
working directory, environment; see `_policy`); a URL attach is refused if its host resolves into
`gateway.admin.deny_networks`, and each of its connections is checked again. Changes go to the MCP
plugin's pool and are written to the store before the answer. Errors are `{"error": "<what to
fix>"}`; no answer contains a header or env value.
"""

from __future__ import annotations

import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Final

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._bearer import Bearer
from .._config import McpServerConfig
from .._errors import ConfigError, PolicyError, ServerNotAttached, StoreError, UpstreamUnavailable
from .._naming import validate_server_name
from ..upstream._plugin import status_dict
from ..upstream._pool import McpConnectionPool
from ._policy import AdminPolicy
from ._settings import AdminSettings
from ._store import StateStore

log = logging.getLogger("lash_gateway.admin")

Handler = Callable[[Request], Awaitable[Response]]

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest `PUT /admin/servers/{name}` body: one server config is a few KiB."""


class AdminApi:
    """Routes for the Starlette app, over the MCP plugin's pool. Attaches pass `AdminPolicy` first."""

    def __init__(
        self, pool: McpConnectionPool, store: StateStore, settings: AdminSettings, policy: AdminPolicy, token: str
    ) -> None:
        self._pool = pool
        self._store = store
        self._settings = settings
        self._policy = policy
        self._token = Bearer(token)
        self._locks = _NameLocks()

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
            if not self._token.matches(request.scope["headers"]):
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
        async with self._locks.hold(name):  # the pool and the store change together, one request at a time
            return await self._attach(name, request)

    async def _attach(self, name: str, request: Request) -> Response:
        try:
            validate_server_name(name)
            config = McpServerConfig.parse(await _json_body(request), name=name)
            to_run, guard = await self._policy.admit(config)
        except _BodyError as exc:
            return _error(exc.status, str(exc))
        except ConfigError as exc:
            return _error(422, str(exc))
        except PolicyError as exc:
            return _error(403, str(exc))
        previous = self._pool.attachment(name)
        try:
            status = await self._pool.attach(name, to_run, guard=guard)
        except UpstreamUnavailable as exc:
            return _error(502, f"could not attach: {exc}")
        try:
            # The config as given: a restart admits it again under the policy of that day.
            await self._store.record_attach(name, config)
        except StoreError as exc:
            # Unrecorded changes would vanish on restart: undo, so the answer and the state agree.
            if previous is None:
                await self._pool.detach(name)
            else:
                await self._pool.attach(name, previous[0], fail_fast=False, guard=previous[1])
            return _error(500, f"{exc}; the attach was undone")
        log.info(
            "server %s attached through the admin API (%s)",
            name,
            config.transport,
            extra={"server": name, "transport": config.transport},
        )
        return JSONResponse(status_dict(status), status_code=201 if previous is None else 200)

    async def _delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        async with self._locks.hold(name):
            try:
                await self._pool.detach(name)
            except ServerNotAttached as exc:
                return _error(404, str(exc))
            try:
                await self._store.record_detach(name)
            except StoreError as exc:
                return _error(500, f"{exc}; the server is detached now but comes back when the gateway restarts")
        log.info("server %s detached through the admin API", name, extra={"server": name})
        return JSONResponse({"detached": name})

    async def _reconnect(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            self._pool.reconnect(name)
        except ServerNotAttached as exc:
            return _error(404, str(exc))
        return JSONResponse({"reconnecting": name}, status_code=202)


class _NameLocks:
    """One lock per server name while some request holds or waits for it; none kept for names at rest."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (anyio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


class _BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _json_body(request: Request) -> dict[str, object]:
    """The request body as one JSON object, read within `MAX_BODY_BYTES`; anything else is a `_BodyError`."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise _BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes; one server config is a few KiB")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise _BodyError(422, "the body is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise _BodyError(422, "the body is not valid JSON for a server config: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise _BodyError(422, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _BodyError(422, "the body must be one server config as a JSON object")
    return body


def is_loopback(host: str) -> bool:
    """Whether a client address or bind host is this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def _error(code: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=code)
