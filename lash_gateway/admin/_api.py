"""The admin HTTP API: attach, detach, reconnect and inspect upstream servers at runtime.

    GET    /admin/servers                    statuses
    GET    /admin/servers/{name}             one status, with its tools
    PUT    /admin/servers/{name}             attach or replace (body: typed config or mcpServers entry)
    DELETE /admin/servers/{name}             detach
    POST   /admin/servers/{name}/reconnect   drop the connection and connect again
    ...    /admin/virtual-servers, /admin/audit  see `_virtual_api`

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
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._bearer import Bearer
from .._config import HttpServerConfig, McpServerConfig, ServerConfig
from .._errors import ConfigError, PolicyError, ServerNotAttached, StoreError, UpstreamUnavailable
from .._naming import validate_server_name
from ..upstream._network import NetworkGuard
from ..upstream._plugin import status_dict
from ..upstream._pool import McpConnectionPool
from ._audit import AuditLog
from ._http import BodyError, RegistryLocks, error, json_body
from ._policy import AdminPolicy
from ._settings import AdminSettings
from ._store import Store
from ._virtual import VirtualServers
from ._virtual_api import VirtualServerApi

log = logging.getLogger("lash_gateway.admin")

Handler = Callable[[Request], Awaitable[Response]]


@dataclass(eq=False)
class _Approval:
    """An attach waiting for an operator's approval: the URL to approve, once announced; why it ended, if it failed."""

    url: str | None = None
    error: str | None = None


class AdminApi:
    """Routes for the Starlette app, over the MCP plugin's pool. Attaches pass `AdminPolicy` first."""

    def __init__(
        self,
        pool: McpConnectionPool,
        store: Store,
        settings: AdminSettings,
        policy: AdminPolicy,
        token: str,
        virtual: VirtualServers,
        audit: AuditLog | None,
        spawn: Callable[[Callable[[], Coroutine[Any, Any, object]]], None],
        locks: RegistryLocks,
        replicas: Callable[[], Awaitable[list[dict[str, Any]]]] | None = None,
    ) -> None:
        """`spawn` runs an attach that waits for an operator's approval (OAuth) past the request that began it.
        `locks` hold a name while it changes (shared with the changes of other replicas); `replicas` is every
        replica's view of its servers, with a shared store."""
        self._virtual = VirtualServerApi(virtual, store, audit, locks.virtual)
        self._replicas = replicas
        self._spawn = spawn
        self._approvals: dict[str, _Approval] = {}
        """Attaches that wait for an operator's approval, or ended without it, by server name."""
        self._generations: dict[str, int] = {}
        """Changes (PUT, DELETE) of each name so far: an attach not the latest of its name does not take its place."""
        self._pool = pool
        self._store = store
        self._settings = settings
        self._policy = policy
        self._token = Bearer(token)
        self._locks = locks.servers

    def routes(self) -> list[Route]:
        return [
            Route("/admin/servers", self._guard(self._list), methods=["GET"]),
            Route("/admin/servers/{name}", self._guard(self._get), methods=["GET"]),
            Route("/admin/servers/{name}", self._guard(self._put), methods=["PUT"]),
            Route("/admin/servers/{name}", self._guard(self._delete), methods=["DELETE"]),
            Route("/admin/servers/{name}/reconnect", self._guard(self._reconnect), methods=["POST"]),
            *self._virtual.routes(self._guard),
        ]

    def _guard(self, handler: Handler) -> Handler:
        async def guarded(request: Request) -> Response:
            client = request.client.host if request.client else ""
            if not self._settings.allow_remote and not is_loopback(client):
                return error(403, "the admin API only answers loopback clients; set gateway.admin.allow_remote")
            if not self._token.matches(request.scope["headers"]):
                return error(401, "missing or wrong admin token (Authorization: Bearer <token>)")
            return await handler(request)

        return guarded

    async def _list(self, request: Request) -> Response:
        body: dict[str, Any] = {"servers": [status_dict(s) for s in self._pool.server_statuses()]}
        if self._replicas is not None:
            try:
                body["replicas"] = await self._replicas()
            except StoreError as exc:
                body["replicas_error"] = str(exc)
        return JSONResponse(body)

    async def _get(self, request: Request) -> Response:
        name = request.path_params["name"]
        approval = self._approvals.get(name)
        try:
            status = status_dict(self._pool.status(name))
        except ServerNotAttached as exc:
            if approval is None:
                return error(404, str(exc))
            if approval.error is not None:
                return error(502, f"could not attach: {approval.error}")
            pending = {"state": "needs_authorization", "authorization_url": approval.url}
            return JSONResponse({"name": name, "state": "connecting", "connected": False, "authorization": pending})
        if approval is not None:  # the server as it is, and the attach that is to replace it
            status["replacement"] = (
                {"state": "failed", "error": approval.error}
                if approval.error is not None
                else {"state": "needs_authorization", "authorization_url": approval.url}
            )
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
            config = McpServerConfig.parse(await json_body(request), name=name)
            to_run, guard = await self._policy.admit(config)
        except BodyError as exc:
            return error(exc.status, str(exc))
        except ConfigError as exc:
            return error(422, str(exc))
        except PolicyError as exc:
            return error(403, str(exc))
        previous = self._pool.attachment(name)
        generation = self._change(name)
        if (
            isinstance(config, HttpServerConfig)
            and config.oauth is not None
            and config.oauth.grant == "authorization_code"
        ):
            return await self._attach_approved(name, config, to_run, guard, previous is None, generation)
        try:
            status = await self._pool.attach(name, to_run, guard=guard)
        except UpstreamUnavailable as exc:
            return error(502, f"could not attach: {exc}")
        try:
            # The config as given: a restart admits it again under the policy of that day.
            await self._store.record_attach(name, config)
        except StoreError as exc:
            # Unrecorded changes would vanish on restart: undo, so the answer and the state agree.
            if previous is None:
                await self._pool.detach(name)
            else:
                await self._pool.attach(name, previous[0], fail_fast=False, guard=previous[1])
            return error(500, f"{exc}; the attach was undone")
        log.info(
            "server %s attached through the admin API (%s)",
            name,
            config.transport,
            extra={"server": name, "transport": config.transport},
        )
        return JSONResponse(status_dict(status), status_code=201 if previous is None else 200)

    def _change(self, name: str) -> int:
        """A PUT or DELETE of `name` (under its lock): an earlier attach still waiting for an operator is withdrawn,
        and one not yet in place is not put in place (see `_attach_approved`). Returns this change's generation."""
        generation = self._generations[name] = self._generations.get(name, 0) + 1
        approval = self._approvals.pop(name, None)
        if approval is not None and approval.url is not None:
            self._pool.authorizations.withdraw(approval.url)
        return generation

    async def _attach_approved(
        self,
        name: str,
        config: ServerConfig,
        to_run: ServerConfig,
        guard: NetworkGuard | None,
        new: bool,
        generation: int,
    ) -> Response:
        """An attach that may need an operator to approve it in a browser (OAuth authorization code): it goes on in
        the gateway's background, and the answer comes once it is done or its authorization URL is known (202, with
        `authorization_url`). It takes the server's place, and is stored, only if no later PUT or DELETE of the name
        came meanwhile."""
        approval = self._approvals[name] = _Approval()
        announced, done = anyio.Event(), anyio.Event()
        answered = False
        """Whether this request answered 202: then the attach stores itself once connected; otherwise this request,
        which holds the name's lock, stores it."""

        def current() -> bool:
            return self._generations.get(name) == generation

        def authorization(url: str) -> None:
            approval.url = url
            announced.set()

        async def attach() -> None:
            try:
                await self._pool.attach(name, to_run, guard=guard, wanted=current, on_authorization=authorization)
                if answered:
                    async with self._locks.hold(name):
                        if current():
                            await self._store.record_attach(name, config)
                log.info("server %s attached through the admin API, authorized", name, extra={"server": name})
                if self._approvals.get(name) is approval:
                    del self._approvals[name]
            except Exception as exc:  # the gateway's task: nothing escapes it
                approval.error = str(exc)  # GET says so until the name changes again
                log.warning("server %s not attached: %s", name, exc, extra={"server": name, "reason": str(exc)})
            finally:
                done.set()

        self._spawn(attach)
        async with anyio.create_task_group() as tg:

            async def first(event: anyio.Event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(first, announced)
            tg.start_soon(first, done)
        if approval.error is not None:
            self._approvals.pop(name, None)  # this answer says why
            return error(502, f"could not attach: {approval.error}")
        if not done.is_set():
            answered = True
            body = {"name": name, "state": "needs_authorization", "authorization_url": approval.url}
            return JSONResponse(body, status_code=202)
        try:  # connected without an operator (a token it held): stored here
            status = status_dict(self._pool.status(name))
            await self._store.record_attach(name, config)
        except StoreError as exc:
            return error(500, f"{exc}; the server is attached now but not after a restart")
        return JSONResponse(status, status_code=201 if new else 200)

    async def _delete(self, request: Request) -> Response:
        name = request.path_params["name"]
        async with self._locks.hold(name):
            pending = name in self._approvals
            self._change(name)  # an attach still waiting for its approval goes too
            try:
                await self._pool.detach(name, revoke=True)  # an OAuth server's tokens end with it
            except ServerNotAttached as exc:
                if pending:
                    return JSONResponse({"detached": name})
                return error(404, str(exc))
            try:
                await self._store.drop_oauth(name)
                await self._store.record_detach(name)
            except StoreError as exc:
                return error(500, f"{exc}; the server is detached now but comes back when the gateway restarts")
        log.info("server %s detached through the admin API", name, extra={"server": name})
        return JSONResponse({"detached": name})

    async def _reconnect(self, request: Request) -> Response:
        name = request.path_params["name"]
        try:
            self._pool.reconnect(name)
        except ServerNotAttached as exc:
            return error(404, str(exc))
        return JSONResponse({"reconnecting": name}, status_code=202)


def is_loopback(host: str) -> bool:
    """Whether a client address or bind host is this machine only."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
