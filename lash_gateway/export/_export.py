"""Re-export lash sessions as one MCP server.

Each downstream MCP connection gets its own lash session, built from the core on its first request
(`build` is cheap by contract), so per-session plugin state and surface rules apply per client.
`tools/list` is that session's surface under export names; `tools/call` runs `session.call_tool`, so
hooks and the output budget apply. Progress and cancellation flow through; surface changes reach
every client on both protocol eras (`notifications/tools/list_changed` on handshake connections,
the `subscriptions/listen` bus for 2026-07-28 ones).

The SDK has no public registry of connections: a request's connection is reached through `_sdk`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.connection import Connection
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import (
    LashCore,
    LogReporter,
    ProgressReporter,
    Session,
    ToolResult,
)

from .._naming import MAX_TOOL_NAME_LENGTH
from .._sdk import connection_of
from ._notify import DEFAULT_NOTIFY_TIMEOUT, Notifier
from ._wire import Surface, error_result, export_surface, result_to_wire

log = logging.getLogger("lash_gateway.export")

_STATE_KEY = "lash_gateway.session"
CallObserver = Callable[[str, ToolResult | None, float], None]
"""Told of every call: lash tool name, result (None when cancelled) and seconds taken."""


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
    ) -> None:
        self._core = core
        self._limit = name_limit
        self._on_call = on_call
        self._bus = InMemorySubscriptionBus()
        self._notifier = Notifier(notify_timeout)
        self._http_connections: dict[str, Connection] = {}
        self._surface: Surface | None = None
        self._calls: set[anyio.CancelScope] = set()
        self._ended: str | None = None
        self._no_calls: anyio.Event | None = None
        self.server = _GatewayServer(
            name,
            version=version,
            instructions=instructions,
            on_list_tools=self._list_tools,
            on_call_tool=self._call_tool,
            on_subscriptions_listen=ListenHandler(self._bus),
            # 2026-07-28 results carry cache hints; tool lists change at runtime, so never cache them.
            cache_hints={"tools/list": CacheHint(ttl_ms=0, scope="private")},
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

    async def __aenter__(self) -> Self:
        await self._notifier.__aenter__()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._notifier.__aexit__(exc_type, exc, tb)

    async def tools_changed(self) -> None:
        """Tell every connected client to re-list its tools: 2026-07-28 listeners through the bus, handshake
        connections each through a notifier of its own (see `_notify`), owned by `async with export`.

        Raises:
            RuntimeError: the export was not entered (`async with export:`).
        """
        self._notifier.tools_changed()
        await self._bus.publish(ToolsListChanged())

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
            # Registered before the initialize answer goes out, so the client's next request finds it.
            if connection.session_id:
                self._http_connections[connection.session_id] = connection
                connection.exit_stack.callback(self._http_connections.pop, connection.session_id, None)
        elif ctx.method == "notifications/initialized":
            self._notifier.add(connection_of(ctx))
        return result

    async def session_of(self, connection: Connection) -> Session:
        """The connection's lash session, built on its first request."""
        session: Session | None = connection.state.get(_STATE_KEY)
        if session is None:
            session = connection.state[_STATE_KEY] = self._core.session()
            await session.ready()
            connection.exit_stack.push_async_callback(session.aclose)
        return session

    def _surface_of(self, session: Session) -> Surface:
        """The export of a session's surface. Sessions with the same providers share one surface
        tuple (lash_core caches it), so one entry serves every client: a stateless client builds a
        session per request, and sanitising thousands of tools each time would cost more than the
        call. Sessions whose surfaces differ (per-session hide rules) rebuild it."""
        tools = session.tools()
        surface = self._surface
        if surface is None or surface.key is not tools:
            surface = self._surface = export_surface(tools, self._limit)
        return surface

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
    ) -> dict[str, Any]:
        """Run a `tools/call` for an exported name; the result is in wire form, failures are `isError` results.

        Raises:
            CallsEnded: `end_calls()` ended this call, or was called before it began.
        """
        lash_name = self._surface_of(session).lash_names.get(name)
        if lash_name is None:
            return error_result(f"unknown tool {name!r}: it is not in this gateway's tool list")
        if self._ended is not None:
            raise CallsEnded(self._ended)
        started = time.perf_counter()
        result: ToolResult | None = None
        with anyio.CancelScope() as scope:
            self._calls.add(scope)
            try:
                result = await session.call_tool(lash_name, arguments, call_id=call_id, progress=progress, log=log)
            finally:
                self._calls.discard(scope)
                if not self._calls and self._no_calls is not None:
                    self._no_calls.set()
                if self._on_call is not None:
                    self._on_call(lash_name, result, time.perf_counter() - started)
        if result is None:
            raise CallsEnded(self._ended or "the call was ended")
        return result_to_wire(result)

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
        session = await self.session_of(connection_of(ctx))
        # The SDK takes wire-form dicts from handlers (and validates them); building N Tool models
        # per list would cost more than the list itself.
        return cast(types.ListToolsResult, _for_era(ctx, self.list_result(session)))

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        wants_progress = (ctx.meta or {}).get("progress_token") is not None
        try:
            result = await self.call(
                await self.session_of(connection_of(ctx)),
                params.name,
                params.arguments or {},
                call_id=str(ctx.request_id) if ctx.request_id is not None else uuid.uuid4().hex,
                progress=ctx.session.report_progress if wants_progress else None,
                log=partial(_relay_log, ctx),
            )
        except CallsEnded as exc:
            raise MCPError(CALLS_ENDED, str(exc)) from None
        return cast(types.CallToolResult, _for_era(ctx, result))  # a wire-form dict, as above


CALLS_ENDED: Final = types.INTERNAL_ERROR
"""JSON-RPC error code of a call `end_calls()` ended (the message says why: the gateway is shutting down)."""


class CallsEnded(Exception):
    """The gateway ended the call (`McpExport.end_calls`); `str()` says why, for the client."""


class _GatewayServer(Server[Any]):
    """Advertises `tools.listChanged` on every transport: the streamable-HTTP session manager calls
    `create_initialization_options()` without options, which would advertise false."""

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> Any:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


async def _relay_log(ctx: ServerRequestContext[Any, Any], level: str, data: Any, logger: str | None = None) -> None:
    """Upstream log messages of a call go to the client that made it (on its request's stream)."""
    await ctx.session.send_log_message(cast(types.LoggingLevel, level), data, logger, related_request_id=ctx.request_id)


def _for_era(ctx: ServerRequestContext[Any, Any], result: dict[str, Any]) -> dict[str, Any]:
    """2026-07-28 results must say `resultType` (the SDK fills it only for models it builds)."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        result["resultType"] = "complete"
    return result
