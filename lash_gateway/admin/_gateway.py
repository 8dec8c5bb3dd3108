"""The gateway service: one `LashCore` (runtime stack, MCP plugin, status plugin), its MCP export,
and the ways to serve it: a Starlette app (streamable HTTP at `/mcp`, legacy SSE at `/sse`,
`/healthz`, `/readyz`, `/metrics`) and stdio.

`Gateway` is an async context manager that owns every connection and background task; the HTTP
app enters it in its lifespan, so uvicorn's shutdown closes upstreams and reaps their children.
"""

from __future__ import annotations

import html
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from types import TracebackType
from typing import Any, Self

import anyio
from anyio.abc import TaskGroup
from mcp.server.stdio import stdio_server
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from lash_core import LashCore, PluginFactory, ToolOutputBudget, ToolOutputBudgetPluginFactory

from .._config import ServerConfig
from .._errors import ConfigError, GatewayError, PolicyError, ServerNotAttached, UnknownTool
from .._hosts import HostRules
from ..export._edge import Edge
from ..export._endpoint import HttpEndpoint
from ..export._export import CallRecord, McpExport
from ..export._forward import Forwarder
from ..export._limits import Limiter
from ..export._router import Router, token_digest
from ..upstream._oauth import CALLBACK_PATH, CLIENT_METADATA_PATH
from ..upstream._plugin import McpPluginFactory, status_dict
from ..upstream._status_plugin import GatewayStatusPluginFactory
from ._api import AdminApi
from ._audit import AuditLog
from ._http import RegistryLocks
from ._metrics import CONTENT_TYPE, GatewayMetrics
from ._policy import AdminPolicy
from ._postgres_store import PostgresStore
from ._replicas import Appliers, Replication
from ._settings import GatewayConfig
from ._store import Store, apply_changes
from ._virtual import VirtualServers
from ._virtual_settings import VirtualServerConfig

log = logging.getLogger("lash_gateway.app")

MCP_PATH = "/mcp"
SSE_PATH = "/sse"
SSE_MESSAGES_PATH = "/messages/"
LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


class Gateway:
    """The running gateway. `async with Gateway(config) as gateway:` attaches the configured servers
    in the background (`ready` is set once each had its first connect attempt) and forwards every
    surface change to connected clients until exit."""

    def __init__(
        self,
        config: GatewayConfig | None = None,
        *,
        plugins: Sequence[PluginFactory] = (),
        store: Store | None = None,
        admin_token: str | None = None,
        request_state_key: bytes | None = None,
    ) -> None:
        """`store` restores runtime attaches on start and records the admin API's changes;
        `admin_token` enables the admin API (it needs a store too); `request_state_key` signs the state of
        input-required rounds (a random key of this process without it)."""
        self.config = config or GatewayConfig()
        self.store = store
        self._admin_token = admin_token
        self.factory = McpPluginFactory()
        if store is not None:  # OAuth servers' tokens outlive a restart, encrypted
            self.factory.pool.vault = store
        budget = ToolOutputBudget(max_text_chars=self.config.settings.export.max_text_chars)
        builder = (
            LashCore.builder()
            .configure_plugins(lambda stack: stack.replace(ToolOutputBudgetPluginFactory(budget)))
            .plugin(self.factory)
            .plugin(GatewayStatusPluginFactory(self.factory.pool))
        )
        for plugin in plugins:
            builder.plugin(plugin)
        self.core = builder.build()
        # The client gauge reads the exports at scrape time, so metrics can exist before them.
        self.metrics = GatewayMetrics(self.factory.pool, self._connected_clients, self.open_sessions)
        self._request_state_key = request_state_key
        self.export = self._export(None)
        auth_token = self.config.settings.auth_token
        reserved = frozenset({token_digest(auth_token.get_secret_value())} if auth_token else ())
        self.virtual = VirtualServers(self._virtual_export, self.metrics.limited, reserved)
        """The virtual servers (`gateway.virtual_servers`, and those the admin API made)."""
        self.audit = (
            AuditLog(store, self.config.settings.audit)
            if store is not None and self.config.settings.audit.enabled
            else None
        )
        self.policy = AdminPolicy(self.config.settings.admin)
        self.locks = RegistryLocks()
        self.replication = (
            Replication(
                store,
                Appliers(self._apply_server, self._apply_virtual_server, self.locks),
                url=self.config.settings.advertise_url,
                servers=lambda: [status_dict(status) for status in self.factory.server_statuses()],
                sessions=self.held_sessions,
                session_idle_timeout=self.config.settings.export.session_idle_timeout,
                close_session=self.close_session,
            )
            if isinstance(store, PostgresStore)
            else None
        )
        """With a shared store: this replica's heartbeat, and the changes of other replicas applied here. Its `url`
        is where they reach this one (set it before entering, once the listening address is known)."""
        self.ready = anyio.Event()
        self._stack = AsyncExitStack()
        self._endpoint: HttpEndpoint | None = None
        self._forwarder: Forwarder | None = None
        """Hands handshake-era sessions to the replica that holds them (replicas only; made with `http_app`)."""
        self._tasks: TaskGroup | None = None

    def _export(self, virtual_server: str | None, **view: Any) -> McpExport:
        """The plain export (`virtual_server` None: everything) or a virtual server's (what its view shows)."""
        settings = self.config.settings.export
        return McpExport(
            self.core,
            name_limit=settings.name_limit,
            on_call=partial(self._observe, virtual_server),
            notify_timeout=settings.notify_timeout,
            catalog=self.factory.pool,
            request_state_key=self._request_state_key,
            **view,
        )

    def _virtual_export(self, name: str, config: VirtualServerConfig, limiter: Limiter) -> McpExport:
        return self._export(name, view=config.view(), server_of=self._server_of, limiter=limiter)

    def _server_of(self, lash_name: str) -> str | None:
        route = self._upstream_of(lash_name)
        return route[0] if route is not None else None

    def _upstream_of(self, lash_name: str) -> tuple[str, str] | None:
        """(server, upstream tool) of a lash tool; None for a plugin's."""
        try:
            return self.factory.pool.route(lash_name)
        except UnknownTool:
            return None

    def _observe(self, virtual_server: str | None, record: CallRecord) -> None:
        route = self._upstream_of(record.lash_name) if record.lash_name is not None else None  # once, for both
        self.metrics.observe(record, route)
        if self.audit is not None:
            self.audit.add(virtual_server, record, route)

    def _connected_clients(self) -> int:
        return self.export.connected_clients + self.virtual.connected_clients

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            if isinstance(self.store, PostgresStore):  # open first, closed last: the audit log writes to it at exit
                await stack.enter_async_context(self.store)
                self._request_state_key = await self.store.request_state_key()
                self.export.sign_rounds_with(self._request_state_key)
            if self.audit is not None:  # left last: it writes the records of every call that ended before
                await stack.enter_async_context(self.audit)
            await stack.enter_async_context(self.factory)
            await stack.enter_async_context(self.export)
            await stack.enter_async_context(self.virtual)
            await self._serve_virtual_configured()
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # runs first on exit: background tasks end before the pool
            tg.start_soon(self._attach_configured)
            tg.start_soon(self._forward_changes)
            if self.replication is not None:
                tg.start_soon(self.replication.heartbeats)
            self._tasks = tg
            self._stack = stack.pop_all()
        return self

    def spawn(self, func: Callable[[], Coroutine[Any, Any, object]]) -> None:
        """Run `func()` in a task of the gateway (cancelled when it stops), for work that outlives a request.

        Raises:
            RuntimeError: the gateway is not entered.
        """
        if self._tasks is None:
            raise RuntimeError("the gateway is not running (enter it first)")
        self._tasks.start_soon(func)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)

    async def _attach_configured(self) -> None:
        """The config file's servers, with the store's runtime changes on top. A stored attach came through the
        admin API, so it passes the admin policy of today again, and its connections get the API's guard. A
        store that cannot be read leaves the config file's servers, said in the log."""
        configured = self.config.servers
        servers = dict(configured)
        if self.store is not None:
            try:
                servers = apply_changes(configured, await self.store.load())
            except GatewayError as exc:
                log.error("runtime attaches not restored: %s", exc, extra={"reason": str(exc)})
        async with anyio.create_task_group() as tg:
            for name, config in servers.items():
                from_store = config is not configured.get(name)
                tg.start_soon(self._attach_one, name, config, from_store)
        if self.replication is not None:  # the store is read: from here on, what changes in it is applied
            self.spawn(self.replication.follow)
        self.ready.set()
        attached = len(self.factory.pool.server_statuses())
        log.info("attached %d of %d configured servers", attached, len(servers), extra={"servers": attached})

    async def _serve_virtual_configured(self) -> None:
        """The config file's virtual servers, with the store's runtime changes on top (as for servers)."""
        servers: dict[str, VirtualServerConfig] = dict(self.config.settings.virtual_servers)
        if self.store is not None:
            try:
                for name, config in await self.store.load_virtual_servers():
                    if config is None:
                        servers.pop(name, None)
                    else:
                        servers[name] = config
            except GatewayError as exc:  # fail closed: a token revoked at runtime may still be in the config file
                log.error(
                    "no virtual server is served: the store's changes to them cannot be read: %s",
                    exc,
                    extra={"reason": str(exc)},
                )
                return
        for name, config in servers.items():
            try:
                await self.virtual.put(name, config)
            except ConfigError as exc:
                log.error("virtual server %s not served: %s", name, exc, extra={"virtual_server": name})
        if servers and self.config.settings.auth_token is None:
            log.warning(
                "virtual servers restrict nothing over HTTP while gateway.auth_token is unset: a client without a "
                "token gets every tool on /mcp and /sse; set gateway.auth_token"
            )

    async def _attach_one(self, name: str, config: ServerConfig, from_store: bool) -> None:
        guard = None
        if from_store:
            try:
                config, guard = await self.policy.admit(config)
            except PolicyError as exc:
                log.error(
                    "server %s, attached through the admin API, is not restored: %s",
                    name,
                    exc,
                    extra={"server": name, "reason": str(exc)},
                )
                return
        await self.factory.pool.attach(name, config, fail_fast=False, guard=guard)

    async def _apply_server(self, name: str, config: ServerConfig | None) -> None:
        """A change another replica made (None: a detach); the replica that made it revoked any OAuth tokens."""
        if config is not None:
            await self._attach_one(name, config, from_store=True)
            return
        try:
            await self.factory.pool.detach(name)
        except ServerNotAttached:
            pass

    async def _apply_virtual_server(self, name: str, config: VirtualServerConfig | None) -> None:
        """A change another replica made (None: removed)."""
        if config is None:
            await self.virtual.remove(name)
            return
        try:
            await self.virtual.put(name, config)
        except ConfigError as exc:
            log.error("virtual server %s not served: %s", name, exc, extra={"virtual_server": name})

    async def _forward_changes(self) -> None:
        pool = self.factory.pool
        generation = pool.generation
        while True:
            generation = await pool.wait_for_change(generation)
            await self.export.tools_changed()
            await self.virtual.tools_changed()

    async def serve_stdio(self, virtual_server: str | None = None) -> None:
        """Serve one MCP client over this process's stdin/stdout until it disconnects; with `virtual_server`,
        as that virtual server (its view and limits; no token: the process is the client's own).

        Waits (at most the longest startup timeout) for the configured servers first: a client that
        launches the gateway lists tools once, and some never re-list on `list_changed`.

        Raises:
            ConfigError: there is no virtual server of that name.
        """
        export = self.export
        if virtual_server is not None:
            served = self.virtual.get(virtual_server)
            if served is None:
                known = ", ".join(sorted(self.virtual.configs())) or "none"
                raise ConfigError(None, f"no virtual server is named {virtual_server!r} (configured: {known})")
            export = served.export
        timeouts = [config.startup_timeout for config in self.config.servers.values()]
        with anyio.move_on_after(max(timeouts, default=0)):
            await self.ready.wait()
        server = export.server
        # No link: the only client there is is never dropped, whatever it is slow to read.
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())

    def http_app(self) -> ASGIApp:
        """The ASGI app: the edge (`_edge`), then the router of the MCP paths (`_router`) or Starlette. Its lifespan
        enters this gateway."""
        settings = self.config.settings
        replication = self.replication
        forwarder = self._forwarder = (
            Forwarder(
                replication.id,
                replication.address,
                replication.store,
                self.spawn,
                self.holds_session,
                settings.export.session_idle_timeout,
            )
            if replication is not None
            else None
        )

        def endpoint(export: McpExport, messages_path: str) -> HttpEndpoint:
            return HttpEndpoint(
                export,
                messages_path=messages_path,
                session_idle_timeout=settings.export.session_idle_timeout,
                max_sessions=settings.export.max_sessions,
                session_prefix=forwarder.prefix if forwarder is not None else "",
                adoptions=forwarder.adoptions if forwarder is not None else None,
            )

        main = self._endpoint = endpoint(self.export, SSE_MESSAGES_PATH)
        self.virtual.http = lambda name, export: endpoint(export, f"{SSE_MESSAGES_PATH}{name}/")
        token = settings.auth_token.get_secret_value() if settings.auth_token else None

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(self)
                await stack.enter_async_context(main.running())
                if forwarder is not None:
                    await stack.enter_async_context(forwarder.running())
                yield

        admin: list[BaseRoute] = []
        if self._admin_token is not None and self.store is not None:
            api = AdminApi(
                self.factory.pool,
                self.store,
                settings.admin,
                self.policy,
                self._admin_token,
                self.virtual,
                self.audit,
                self.spawn,
                self.locks,
                self.replication.replicas if self.replication is not None else None,
            )
            admin = list(api.routes())
        app = Starlette(
            routes=[
                *admin,
                Route(CALLBACK_PATH, endpoint=self._oauth_callback),
                Route(CLIENT_METADATA_PATH, endpoint=self._client_metadata),
                Route("/healthz", endpoint=self._healthz),
                Route("/readyz", endpoint=self._readyz),
                Route("/metrics", endpoint=self._metrics),
            ],
            lifespan=lifespan,
        )
        return Edge(
            app,
            router=Router(main, token, self.virtual),
            rules=HostRules([*LOOPBACK_HOSTS, *settings.allowed_hosts], [*LOOPBACK_ORIGINS, *settings.allowed_origins]),
            max_body=DEFAULT_MAX_REQUEST_BODY_SIZE,
            body_timeout=settings.request_timeout,
            max_sessions=settings.export.max_sessions,
            open_sessions=self.open_sessions,
            on_refused=self.metrics.session_refused,
            forwarder=forwarder,
        )

    async def draining(self) -> None:
        """The service stops taking requests (`serve` calls this at SIGTERM): a replica leaves its cluster at once."""
        if self.replication is not None:
            await self.replication.leave()

    async def end_calls(self) -> None:
        """End every tool call in flight with an error saying the gateway is shutting down (and cancel it
        upstream), and every listen stream, which would hold the shutdown up; `serve` calls this when its drain
        period is over. Returns once the calls are over."""
        reason = "the gateway is shutting down; the call was cancelled, retry it once the gateway is back"
        async with anyio.create_task_group() as tg:
            for endpoint in self._endpoints():
                tg.start_soon(endpoint.end_listens)
            tg.start_soon(self.export.end_calls, reason)
            tg.start_soon(self.virtual.end_calls, reason)

    def _endpoints(self) -> list[HttpEndpoint]:
        main = [self._endpoint] if self._endpoint is not None else []
        return main + self.virtual.endpoints()

    def holds_session(self, session: str) -> bool:
        """Whether this gateway serves the streamable-HTTP session `session` now (on any endpoint). On a replica it
        runs for every request of its own sessions: the plain endpoint, where most are, is asked first."""
        main = self._endpoint
        if main is not None and main.holds(session):
            return True
        return any(endpoint.holds(session) for endpoint in self.virtual.endpoints())

    async def close_session(self, session: str) -> None:
        """End the streamable-HTTP session `session`, wherever this gateway serves it (or would open it again)."""
        if self._forwarder is not None:
            self._forwarder.adoptions.forget(session)
        for endpoint in self._endpoints():
            await endpoint.close_session(session)

    def held_sessions(self) -> list[str]:
        """The streamable-HTTP sessions this gateway holds now (every endpoint's), and those it took over and opens
        again at their next request: the store must not forget those either."""
        held = [session for endpoint in self._endpoints() for session in endpoint.session_ids()]
        return held + (self._forwarder.adoptions.waiting() if self._forwarder is not None else [])

    def open_sessions(self) -> int:
        """Downstream sessions open now: streamable-HTTP sessions, legacy SSE connections and 2026-07-28 listen streams
        of `http_app`."""
        main = self._endpoint.open_sessions() if self._endpoint is not None else 0
        return main + self.virtual.open_sessions()

    async def _oauth_callback(self, request: Request) -> Response:
        """Where an operator's browser comes back from approving an upstream's authorization: the `state` names the
        flow waiting for it (an unguessable value only that flow's authorization URL carried)."""
        query = request.query_params
        server = self.factory.pool.authorizations.complete(
            query.get("state", ""), query.get("code"), query.get("iss"), query.get("error")
        )
        if server is None:
            return HTMLResponse(_page("This authorization is unknown or over; start it again."), status_code=400)
        if "error" in query:
            return HTMLResponse(_page(f"The authorization of {server} was refused."), status_code=400)
        return HTMLResponse(_page(f"{server} is authorized. You can close this window."))

    async def _client_metadata(self, request: Request) -> Response:
        """The gateway's Client ID Metadata Document: an authorization server that supports them fetches it."""
        document = self.factory.pool.authorizations.client_metadata()
        if document is None:
            return JSONResponse({"error": "no client metadata: gateway.public_url is not https"}, status_code=404)
        return JSONResponse(document)

    async def _healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        servers = {s.name: {"connected": s.connected, "state": s.state} for s in self.factory.server_statuses()}
        ready = self.ready.is_set()
        return JSONResponse({"ready": ready, "servers": servers}, status_code=200 if ready else 503)

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)


def _page(message: str) -> str:
    return f"<!doctype html><title>lash gateway</title><p>{html.escape(message)}</p>"
