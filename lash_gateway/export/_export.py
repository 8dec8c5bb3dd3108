"""Re-export lash sessions as one MCP server.

Each downstream MCP connection gets its own lash session, built from the core on its first request
(`build` is cheap by contract), so per-session plugin state and surface rules apply per client.
`tools/list` is that session's surface under export names; `tools/call` runs `session.call_tool`, so
hooks and the output budget apply. Progress and cancellation flow through; surface changes reach
every client on both protocol eras (`notifications/tools/list_changed` on handshake connections,
the `subscriptions/listen` bus for 2026-07-28 ones). With a `Catalog` (the pool), resources, prompts,
completion and subscriptions are served too (`_catalog`); log messages respect each client's level
(`_levels`); an upstream's questions during a call go to the client that made it (`_asking`).

The SDK has no public registry of connections: a request's connection is reached through `_sdk`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio
import mcp_types as types
import pydantic_core
from mcp import MCPError
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    ToolsListChanged,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import (
    NO_CALLER,
    Caller,
    LashCore,
    LogReporter,
    ProgressReporter,
    Session,
    ToolResult,
)

from .._declared import MISSING_CAPABILITY
from .._naming import MAX_TOOL_NAME_LENGTH
from .._sdk import connection_of
from ._asking import declared, request_caller
from ._bridge import Bridges, Round, reporters
from ._catalog import Catalog, CatalogExport
from ._edge import TOKEN_ID
from ._levels import allows, level_of_request, set_level
from ._limits import RATE_LIMITED, Limiter, LimitExceeded
from ._notify import DEFAULT_NOTIFY_TIMEOUT, ListKind, Notifier
from ._reply import Keepalive
from ._search import CALL_TOOL, SEARCH_TOOLS, ToolIndex, search_result
from ._views import View
from ._wire import Surface, error_result, export_surface, for_era, result_to_wire

log = logging.getLogger("lash_gateway.export")

_STATE_KEY = "lash_gateway.session"
Answered = Callable[[ProgressReporter | None, LogReporter, Caller], Awaitable[dict[str, Any]]]
"""Does the work of a request that may ask its client (see `McpExport.answer`)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One `tools/call` as the export saw it, for metrics and the audit log."""

    tool: str
    """The name the client called (for `call_tool`, the tool it named)."""
    lash_name: str | None
    """The lash tool that ran; None when none did (unknown name, `search_tools`, refused by a limit)."""
    session: str
    """The client's lash session (one per connection; per request for 2026-07-28 clients)."""
    token_id: str | None
    """Which client token the request carried (see `_edge.TOKEN_ID`); None without one."""
    arguments: Mapping[str, Any]
    """As the client sent them (a view's fixed arguments are the operator's: not here)."""
    outcome: str
    """`ok`, a failure class (`tool_error`, `unavailable`, `timeout`, ...), `cancelled`, `limited`, `unknown_tool`."""
    started: float
    """Wall-clock time the call began (`time.time()`)."""
    seconds: float
    result: ToolResult | None = None
    wire: Mapping[str, Any] | None = None
    """The result as the client got it."""


CallObserver = Callable[[CallRecord], None]
"""Told of every call, once it is over (it runs on the call's path: keep it to a few microseconds)."""


class McpExport:
    """The MCP server half of the gateway: a low-level SDK `Server` over a `LashCore`.

    Serve `self.server` on any SDK transport, within `async with export:`; call `tools_changed()` when the
    surface may have changed. `self.server.middleware` sees every inbound message on every transport (append
    to it to observe or rewrite requests; the fast path steps aside while it holds anything of yours).
    """

    def __init__(
        self,
        core: LashCore,
        *,
        name: str = "lash-gateway",
        version: str = "0.1.0",
        instructions: str | None = None,
        name_limit: int = MAX_TOOL_NAME_LENGTH,
        on_call: CallObserver | None = None,
        notify_timeout: float = DEFAULT_NOTIFY_TIMEOUT,
        catalog: Catalog | None = None,
        request_state_key: bytes | None = None,
        view: View | None = None,
        server_of: Callable[[str], str | None] = lambda lash_name: None,
        limiter: Limiter | None = None,
    ) -> None:
        """`catalog` serves resources, templates, prompts and completion (without one, only tools).
        `request_state_key` signs the `requestState` of input-required rounds (see `_bridge`): give every process
        of a deployment the same one; without it, a random key of this process. `view` shows the tools as one
        client should see them (`_views`); `server_of` names the upstream server of a lash tool, for its `servers`.
        `limiter` admits each call (`_limits`); one it refuses gets a `RATE_LIMITED` error."""
        self._core = core
        self._catalog_source = catalog
        self._view = view
        self._server_of = server_of
        self.limiter = limiter
        self._index: tuple[Surface, ToolIndex] | None = None
        self._limit = name_limit
        self._on_call = on_call
        self._bus = InMemorySubscriptionBus()
        self._notifier = Notifier(notify_timeout)
        self._http_connections: dict[str, Connection] = {}
        self._surface: Surface | None = None
        self._schema_session: Session | None = None
        """A session only to read the tool surface from (never called through)."""
        self._calls: set[anyio.CancelScope] = set()
        self._ended: str | None = None
        self.bridges = Bridges(self.spawn, request_state_key)
        """The 2026-07-28 calls that asked their client, held between its input-required rounds."""
        self.keepalive = Keepalive()
        """Comment lines for the fast path's answers that are silent for long (runs while the export is entered)."""
        self._no_calls: anyio.Event | None = None
        self._catalog: CatalogExport | None = None
        listen: Callable[..., Awaitable[types.SubscriptionsListenResult]]
        self._listens = ListenHandler(self._bus)
        self.listens_refused = False
        """Set by `refuse_listens`: a listen stream is refused before it opens."""
        listen = self._listen
        handlers: dict[str, Any] = {}
        if catalog is not None:
            served = self._catalog = CatalogExport(
                catalog, self._bus, name_limit, self.answer, self._client_of, self._listen, lambda: self._view
            )
            listen = served.listen
            handlers = {
                "on_list_resources": served.list_resources,
                "on_list_resource_templates": served.list_resource_templates,
                "on_read_resource": served.read_resource,
                "on_subscribe_resource": served.subscribe,
                "on_unsubscribe_resource": served.unsubscribe,
                "on_list_prompts": served.list_prompts,
                "on_get_prompt": served.get_prompt,
                "on_completion": served.complete,
            }
        never = CacheHint(ttl_ms=0, scope="private")
        self.server = _GatewayServer(
            name,
            version=version,
            instructions=instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            get_tool_input_schema=self._input_schema,
            on_subscriptions_listen=listen,
            # 2026-07-28 results carry cache hints; every list changes at runtime, so none is cached.
            cache_hints={
                "tools/list": never,
                "resources/list": never,
                "resources/templates/list": never,
                "prompts/list": never,
                "resources/read": never,  # an upstream's own hint passes through and wins
            },
            **handlers,
        )
        # Registered, not passed: the constructor's keyword for it is deprecated (it warns).
        self.server.add_request_handler("logging/setLevel", types.SetLevelRequestParams, set_level)
        if self._catalog is not None:  # registered, not passed: the constructor's keyword warns too
            roots_changed = self._catalog.roots_changed
            self.server.add_notification_handler(
                "notifications/roots/list_changed", types.NotificationParams, roots_changed
            )
        self.server.middleware.append(self._track_connection)
        self._own_middleware = tuple(self.server.middleware)

    @property
    def connected_clients(self) -> int:
        """Open handshake-era connections (2026-07-28 clients are connectionless per request)."""
        return len(self._notifier)

    @property
    def close_http_session(self) -> Callable[[str], Awaitable[None]] | None:
        """Ends a streamable-HTTP session by its id, for clients that stop reading; the serving app sets it."""
        return self._notifier.close_http_session

    @close_http_session.setter
    def close_http_session(self, close: Callable[[str], Awaitable[None]] | None) -> None:
        self._notifier.close_http_session = close

    def sign_rounds_with(self, key: bytes) -> None:
        """Sign and check the `requestState` of input-required rounds with `key` from now on: replicas read the one
        they share from their store once it is open, after the export was made."""
        self.bridges.key = key

    async def __aenter__(self) -> Self:
        await self._notifier.__aenter__()
        self.spawn(self.keepalive.run)
        if self._catalog_source is not None:
            self._catalog_source.watch(self._catalog_changed)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._catalog_source is not None:  # the catalog outlives an export (a virtual server's, removed)
            self._catalog_source.unwatch(self._catalog_changed)
        await self._notifier.__aexit__(exc_type, exc, tb)

    def end_listens(self) -> None:
        """Close every 2026-07-28 listen stream as the protocol closes one: its last message is its result, so its
        client knows to listen again. A client that stopped reading never gets it (see `HttpEndpoint.end_listens`)."""
        self._listens.close()

    def refuse_listens(self) -> None:
        """From now on a listen stream is refused before it opens, with an error saying to listen again: its endpoint
        is ending, and a stream that opened after `end_listens` would miss the close."""
        self.listens_refused = True

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        # Nothing awaits between this check and the SDK's handler taking the stream in: one that passes is closed.
        if self.listens_refused:
            raise MCPError(types.INTERNAL_ERROR, "this endpoint is closing its listen streams; listen again")
        return await self._listens(ctx, params)

    def spawn(self, func: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
        """Run `func(*args)` in a task the export owns (cancelled at its exit), for work no request may wait for.

        Raises:
            RuntimeError: the export was not entered (`async with export:`).
        """
        self._notifier.start_soon(func, *args)

    async def tools_changed(self) -> None:
        """Tell every connected client to re-list its tools: 2026-07-28 listeners through the bus, handshake
        connections each through a notifier of its own (see `_notify`), owned by `async with export`.

        Raises:
            RuntimeError: the export was not entered (`async with export:`).
        """
        self._notifier.changed("tools")
        await self._bus.publish(ToolsListChanged())

    def _catalog_changed(self, kind: ListKind | None, uri: str | None) -> None:
        """The catalog's listener: a list changed (`kind`), or the resource at `uri` did."""
        served = self._catalog
        if served is None or not self._notifier.running:
            return  # not serving (yet, or any more): no client to tell
        if uri is not None:
            if not served.shows_uri(uri):
                return  # its view hides it: no client here may hear of it
            for connection in served.subscribers(uri):
                self._notifier.updated(connection, uri)
        elif kind is not None:
            self._notifier.changed(kind)
        self._notifier.start_soon(served.publish, kind, uri)

    @property
    def view(self) -> View | None:
        return self._view

    @view.setter
    def view(self, view: View | None) -> None:
        """Show the catalog through another view from the next request on (then call `view_changed()`)."""
        self._view = view
        self._surface = None

    async def view_changed(self) -> None:
        """Tell every connected client to list its tools, resources and prompts again.

        Raises:
            RuntimeError: the export was not entered (`async with export:`).
        """
        await self.tools_changed()
        self._catalog_changed("resources", None)
        self._catalog_changed("prompts", None)

    @property
    def has_user_middleware(self) -> bool:
        """Whether a user added to `server.middleware`, the one extension point every inbound message passes on
        every transport: the fast path then leaves `tools/call` and the rest to the SDK, which runs it."""
        return tuple(self.server.middleware) != self._own_middleware

    def http_connection(self, session_id: str) -> Connection | None:
        """The connection behind a streamable-HTTP `Mcp-Session-Id`, once `initialize` was answered."""
        return self._http_connections.get(session_id)

    async def _track_connection(
        self, ctx: ServerRequestContext[Any, Any], call_next: Callable[..., Awaitable[Any]]
    ) -> Any:
        result = await call_next(ctx)
        if ctx.method == "initialize":
            connection = connection_of(ctx)
            # Registered before the initialize answer goes out, so the client's next request finds it; once, as a
            # client may repeat its handshake on the session.
            if connection.session_id and connection.session_id not in self._http_connections:
                self._http_connections[connection.session_id] = connection
                connection.exit_stack.callback(self._http_connections.pop, connection.session_id, None)
        elif ctx.method == "notifications/initialized":
            self._notifier.add(connection_of(ctx))
        return result

    async def session_of(self, connection: Connection, *, stateless: bool = False) -> Session:
        """The connection's lash session, built on its first request (`stateless` for a 2026-07-28 request, whose
        connection is that request)."""
        session: Session | None = connection.state.get(_STATE_KEY)
        if session is None:
            session = connection.state[_STATE_KEY] = self._core.session(stateless=stateless)
            await session.ready()
            connection.exit_stack.push_async_callback(session.aclose)
        return session

    async def _session_for(self, ctx: ServerRequestContext[Any, Any]) -> Session:
        return await self.session_of(connection_of(ctx), stateless=ctx.protocol_version in MODERN_PROTOCOL_VERSIONS)

    async def _client_of(self, ctx: ServerRequestContext[Any, Any]) -> str | None:
        """Who a request's client is, for servers that give each client a connection of its own: its session;
        None for a 2026-07-28 request, whose session is that request only (it uses the shared connection)."""
        session = await self._session_for(ctx)
        return None if session.context.stateless else session.id

    def _input_schema(self, name: str) -> Mapping[str, Any] | None:
        """A tool's input schema, for the SDK's check of a 2026-07-28 call's `Mcp-Param-*` headers. Without it the
        SDK lists every tool again for each call (about 15% of a call's CPU); the surface export is cached."""
        return self._stateless_surface().input_schemas.get(name)

    def routed_schema(self, name: str) -> Mapping[str, Any] | None:
        """The input schema of a tool whose `Mcp-Param-*` headers must match its arguments (None: the tool has none
        of those, or is unknown), for the fast path's check of a 2026-07-28 call."""
        surface = self._stateless_surface()
        return surface.input_schemas[name] if name in surface.routed else None

    def _stateless_surface(self) -> Surface:
        """The surface a 2026-07-28 request sees (each builds a session of its own, with the same providers)."""
        if self._schema_session is None:
            self._schema_session = self._core.session(stateless=True)
        return self._surface_of(self._schema_session)

    def _surface_of(self, session: Session) -> Surface:
        """The export of a session's surface. Sessions with the same providers share one surface
        tuple (lash_core caches it), so one entry serves every client: a stateless client builds a
        session per request, and sanitising thousands of tools each time would cost more than the
        call. Sessions whose surfaces differ (per-session hide rules) rebuild it."""
        tools = session.tools()
        surface = self._surface
        if surface is None or surface.key is not tools:
            surface = export_surface(tools, self._limit)
            if self._view is not None:
                surface = self._view.apply(surface, self._server_of)
            self._surface = surface
        return surface

    def _index_of(self, surface: Surface) -> ToolIndex:
        """The search index of a view's surface, built on its first search and kept while the surface lasts."""
        index = self._index
        if index is None or index[0] is not surface:
            index = self._index = (surface, ToolIndex.of(surface.searchable or ()))
        return index[1]

    def tool_names(self) -> list[str]:
        """Every tool name a client may call here (in search mode, those reached through `call_tool` too)."""
        return list(self._stateless_surface().lash_names)

    def list_result(self, session: Session) -> dict[str, Any]:
        """A `tools/list` result (wire form) for `session`."""
        return {"tools": list(self._surface_of(session).tools)}

    async def call(
        self,
        session: Session,
        name: str,
        arguments: Mapping[str, Any],
        *,
        call_id: str,
        progress: ProgressReporter | None,
        log: LogReporter,
        caller: Caller = NO_CALLER,
        token_id: str | None = None,
    ) -> dict[str, Any]:
        """Run a `tools/call` for an exported name; the result is in wire form, failures are `isError` results.
        `caller` answers the upstream's questions during the call; `token_id` names the client token of the request
        (for limits and the record).

        Raises:
            CallsEnded: `end_calls()` ended this call, or was called before it began.
            LimitExceeded: the limiter refused the call.
            ClientLacks: the call's server refused it: its client lacks a capability the call needs.
        """
        started, clock = time.time(), time.perf_counter()
        surface = self._surface_of(session)
        if surface.searchable is not None and name == CALL_TOOL["name"]:  # a view in search mode
            called, called_with = arguments.get("name"), arguments.get("arguments") or {}
            if not isinstance(called, str) or not isinstance(called_with, Mapping):
                self._observe(name, None, session, token_id, arguments, "invalid_input", started, clock)
                return error_result("call_tool takes a tool's `name` (a string) and its `arguments` (an object)")
            name, arguments = called, called_with
        lash_name = surface.lash_names.get(name)
        sent = arguments
        if name in surface.fixed:
            arguments = {**arguments, **surface.fixed[name]}
        try:
            if self._ended is not None:
                raise CallsEnded(self._ended)
            release = self.limiter.acquire(token_id, name) if self.limiter is not None else None
        except (CallsEnded, LimitExceeded) as exc:
            refused = "limited" if isinstance(exc, LimitExceeded) else "ended"
            self._observe(name, None, session, token_id, sent, refused, started, clock)
            raise
        outcome, result, wire = "cancelled", None, None
        try:
            if surface.searchable is not None and name == SEARCH_TOOLS["name"]:
                outcome, wire = "ok", search_result(self._index_of(surface), arguments)
                return wire
            if lash_name is None:
                outcome = "unknown_tool"
                wire = error_result(f"unknown tool {name!r}: it is not in this gateway's tool list")
                return wire
            with anyio.CancelScope() as scope:
                self._calls.add(scope)
                try:
                    result = await session.call_tool(
                        lash_name, arguments, call_id=call_id, progress=progress, log=log, caller=caller
                    )
                finally:
                    self._calls.discard(scope)
                    if not self._calls and self._no_calls is not None:
                        self._no_calls.set()
            if result is None:
                raise CallsEnded(self._ended or "the call was ended")
            outcome = "ok" if result.failure_class is None else str(result.failure_class)
            if result.failure is not None and result.failure.code == MISSING_CAPABILITY:
                raise ClientLacks(result.failure.message, result.failure.data)
            wire = result_to_wire(result)
            return wire
        finally:
            if release is not None:
                release()
            self._observe(name, lash_name, session, token_id, sent, outcome, started, clock, result, wire)

    async def open_stateless(self) -> Session:
        """A lash session for one 2026-07-28 request served without the SDK's connection (see `close_stateless`)."""
        session = self._core.session(stateless=True)
        await session.ready()
        return session

    async def close_stateless(self, session: Session) -> None:
        """Close a session of `open_stateless` once its request was answered, as the SDK closes a request's connection
        (and with it the session the handler path built): shielded, within `STATELESS_CLOSE_TIMEOUT` seconds, and a
        close hook that fails is logged, never the request's answer."""
        if not session.closes_with_hooks:
            return  # the common case; the timeout's scope would cost more than the rest of the close
        with anyio.move_on_after(STATELESS_CLOSE_TIMEOUT, shield=True) as scope:
            try:
                await session.aclose()
            except Exception:
                log.exception("a close hook of session %s failed", session.id, extra={"session": session.id})
        if scope.cancelled_caught:
            log.warning(
                "session %s took over %gs to close; its remaining close hooks were abandoned",
                session.id,
                STATELESS_CLOSE_TIMEOUT,
                extra={"session": session.id},
            )

    def _observe(
        self,
        name: str,
        lash_name: str | None,
        session: Session,
        token_id: str | None,
        arguments: Mapping[str, Any],
        outcome: str,
        started: float,
        clock: float,
        result: ToolResult | None = None,
        wire: Mapping[str, Any] | None = None,
    ) -> None:
        if self._on_call is not None:
            seconds = time.perf_counter() - clock
            record = CallRecord(
                name, lash_name, session.id, token_id, arguments, outcome, started, seconds, result, wire
            )
            self._on_call(record)

    async def end_calls(self, reason: str) -> None:
        """End every call in flight, and every later one, with `CallsEnded(reason)`: each is cancelled (and so
        is its upstream call) and its client gets an error saying `reason`, not a cut connection. Returns once
        no call is in flight any more (bound it with a timeout: a plugin may hold out)."""
        self._ended = reason
        if self._calls:
            self._no_calls = anyio.Event()
            for scope in list(self._calls):
                scope.cancel()
            await self._no_calls.wait()

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        session = await self._session_for(ctx)
        # The SDK takes wire-form dicts from handlers (and validates them); building N Tool models
        # per list would cost more than the list itself.
        return cast(types.ListToolsResult, for_era(ctx.protocol_version, self.list_result(session)))

    async def answer(
        self,
        ctx: ServerRequestContext[Any, Any],
        method: str,
        params: Any,
        run: Answered,
    ) -> dict[str, Any]:
        """Serve a request whose upstream may ask its client (`tools/call`, `resources/read`, `prompts/get`):
        `run(progress, log, caller)` does the work and returns the wire-form result. A handshake-era client is
        asked on the request's own stream; a 2026-07-28 client through input-required rounds (`_bridge`), each
        retry checked to be the same request."""
        wants_progress = (ctx.meta or {}).get("progress_token") is not None
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        kinds = declared(ctx) if modern else {}
        here = _RequestRound(ctx)
        if not kinds and not (modern and getattr(params, "request_state", None)):
            # asked on the request's stream, or never asked (then no bridge, no task: the request runs here)
            progress, relay_log = reporters(lambda: here, wants_progress)
            return for_era(ctx.protocol_version, await run(progress, relay_log, request_caller(ctx)))

        async def bridged(caller: Caller, current: Callable[[], Round]) -> dict[str, Any]:
            progress, relay_log = reporters(current, wants_progress)
            return for_era(ctx.protocol_version, await run(progress, relay_log, caller))

        return await self.bridges.serve(method, kinds, params, bridged, here)

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        session = await self._session_for(ctx)
        call_id = str(ctx.request_id) if ctx.request_id is not None else uuid.uuid4().hex
        scope = getattr(ctx.request, "scope", None)
        token_id = scope.get(TOKEN_ID) if isinstance(scope, dict) else None

        async def run(progress: ProgressReporter | None, relay_log: LogReporter, caller: Caller) -> dict[str, Any]:
            try:
                return await self.call(
                    session,
                    params.name,
                    params.arguments or {},
                    call_id=call_id,
                    progress=progress,
                    log=relay_log,
                    caller=caller,
                    token_id=token_id,
                )
            except REFUSED as exc:
                raise refusal(exc) from None

        return cast(types.CallToolResult, await self.answer(ctx, "tools/call", params, run))


STATELESS_CLOSE_TIMEOUT: Final = 5.0
"""Seconds the close hooks of a 2026-07-28 request's session get (the SDK's bound on a connection's cleanup)."""
CALLS_ENDED: Final = types.INTERNAL_ERROR
"""JSON-RPC error code of a call `end_calls()` ended (the message says why: the gateway is shutting down)."""


class CallsEnded(Exception):
    """The gateway ended the call (`McpExport.end_calls`); `str()` says why, for the client."""


MAX_ERROR_DATA: Final = 64 * 1024
"""Bytes of a server's missing-capability error data passed on to its client (past it, the error goes without)."""


class ClientLacks(Exception):
    """A call its server refused because the client lacks a capability the call needs (MCP's -32021): the client
    hears it as the server said it, with what the call requires (`data`, when the server said it well-formed)."""

    def __init__(self, message: str, data: Any) -> None:
        super().__init__(message)
        self.data: dict[str, Any] | None = None
        try:
            required = types.MissingRequiredClientCapabilityErrorData.model_validate(data, by_name=False)
            shown = required.model_dump(by_alias=True, exclude_none=True, mode="json")
        except ValueError:  # malformed, or not JSON (a plugin's): the error goes without it
            return
        if len(pydantic_core.to_json(shown)) <= MAX_ERROR_DATA:  # what a server may make the gateway send
            self.data = shown


REFUSED: Final = (CallsEnded, LimitExceeded, ClientLacks)
"""What `McpExport.call` raises for a call the gateway refused, or its server refused as the client's protocol
defines (`refusal` is its answer)."""


def refusal(exc: CallsEnded | LimitExceeded | ClientLacks) -> MCPError:
    """The answer to a call refused, the same on every path: `RATE_LIMITED` with when to retry (an HTTP 429 where the
    whole request is refused), the server's missing-capability error as it gave it (HTTP 400 on 2026-07-28), or an
    internal error saying why the calls ended."""
    if isinstance(exc, LimitExceeded):
        return MCPError(RATE_LIMITED, str(exc), exc.data)
    if isinstance(exc, ClientLacks):
        return MCPError(types.MISSING_REQUIRED_CLIENT_CAPABILITY, str(exc), exc.data)
    return MCPError(CALLS_ENDED, str(exc))


class _GatewayServer(Server[Any]):
    """Advertises `listChanged` on every transport: the streamable-HTTP session manager calls
    `create_initialization_options()` without options, which would advertise false. (Capabilities for lists
    the server has no handler for are left out by the SDK.)"""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> Any:
        every_list = NotificationOptions(tools_changed=True, resources_changed=True, prompts_changed=True)
        return super().create_initialization_options(
            notification_options or every_list, experimental_capabilities, extensions
        )


@dataclass(frozen=True, slots=True)
class _RequestRound:
    """A request the SDK serves, as a `Round`: its progress and log messages go on its own stream."""

    ctx: ServerRequestContext[Any, Any]

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        await self.ctx.session.report_progress(progress, total, message)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        await _relay_log(self.ctx, level, data, logger)


async def _relay_log(ctx: ServerRequestContext[Any, Any], level: str, data: Any, logger: str | None = None) -> None:
    """Upstream log messages of a call go to the client that made it (on its request's stream), at or above the
    level it asked for."""
    if not allows(level_of_request(ctx), level):
        return
    # A notification, not `send_log_message`: that warns (logging is deprecated as of 2026-07-28), and the level
    # was checked above already.
    params = types.LoggingMessageNotificationParams(level=cast(types.LoggingLevel, level), data=data, logger=logger)
    await ctx.session.send_notification(types.LoggingMessageNotification(params=params), ctx.request_id)
