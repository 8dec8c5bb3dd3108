"""Re-export lash sessions as one MCP server.

Each downstream MCP connection gets its own lash session, built from the core on its first request
(`build` is cheap by contract), so per-session plugin state and surface rules apply per client.
`tools/list` is that session's surface under export names; `tools/call` runs `session.call_tool`, so
hooks and the output budget apply. Progress and cancellation flow through; surface changes reach
every client on both protocol eras (`notifications/tools/list_changed` on handshake connections,
the `subscriptions/listen` bus for 2026-07-28 ones).

The SDK has no public registry of connections: `_connection_of` is the one place that reads the
private `ServerSession._connection`, to reach the public per-connection `state` and `exit_stack`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final, Self, cast

import anyio
import mcp_types as types
from anyio.abc import TaskGroup
from mcp import MCPError
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.caching import CacheHint
from mcp.server.connection import Connection
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import (
    AudioPart,
    ContentPart,
    ImagePart,
    LashCore,
    LogReporter,
    ProgressReporter,
    ResourcePart,
    Session,
    TextPart,
    ToolDefinition,
    ToolResult,
)

from ._naming import MAX_TOOL_NAME_LENGTH, export_names
from ._schema import SanitizedTool, sanitize_tool

log = logging.getLogger("lash_gateway.export")

_STATE_KEY = "lash_gateway.session"
DEFAULT_NOTIFY_TIMEOUT: Final = 5.0
Closer = Callable[[], Awaitable[None]]
"""Closes one client's connection."""


@dataclass(frozen=True, slots=True)
class ClientLink:
    """How the export reaches one client's connection from outside its server loop."""

    close: Closer
    sent: Callable[[], int] | None = None
    """Bytes that left for the client so far, where the transport can tell: a client that reads slowly makes
    it grow, one that stopped reading does not."""


_LINK: ContextVar[ClientLink | None] = ContextVar("lash_gateway_client_link", default=None)
"""Set by whatever serves a connection (see `linked`), read when that connection finishes its handshake."""
CallObserver = Callable[[str, ToolResult | None, float], None]
"""Told of every call: lash tool name, result (None when cancelled) and seconds taken."""


@dataclass(frozen=True, slots=True)
class _Surface:
    """One session surface as exported: MCP tools and export name -> lash name."""

    key: tuple[ToolDefinition, ...]
    tools: tuple[Mapping[str, Any], ...]
    lash_names: Mapping[str, str]


def _export_surface(tools: tuple[ToolDefinition, ...], limit: int) -> _Surface:
    names = export_names([t.name for t in tools], limit)
    wire: list[Mapping[str, Any]] = []
    lash_names: dict[str, str] = {}
    for tool in tools:
        exported = _tool_to_wire(tool, names[tool.name])
        if exported is not None:
            wire.append(exported)
            lash_names[names[tool.name]] = tool.name
    return _Surface(tools, tuple(wire), lash_names)


class McpExport:
    """The MCP server half of the gateway: a low-level SDK `Server` over a `LashCore`.

    Serve `self.server` on any SDK transport, within `async with export:`; call `tools_changed()` when the
    surface may have changed.
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
        self._handshake_connections: dict[int, Connection] = {}
        self._links: dict[int, ClientLink] = {}
        self._again: dict[int, bool] = {}
        """Connections with a notifier running -> whether a change came after its notification went out."""
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._notify_timeout = notify_timeout
        self.close_http_session: Callable[[str], Awaitable[None]] | None = None
        """Ends a streamable-HTTP session by its id (the serving app sets it), for clients that stop reading."""
        self._http_connections: dict[str, Connection] = {}
        self._surface: _Surface | None = None
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

    @property
    def connected_clients(self) -> int:
        """Open handshake-era connections (2026-07-28 clients are connectionless per request)."""
        return len(self._handshake_connections)

    async def __aenter__(self) -> Self:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        await self._stack.aclose()

    async def tools_changed(self) -> None:
        """Tell every connected client to re-list its tools. Each client has a notifier task of its own (owned by
        `async with export`), so one that stopped reading holds up nobody else; one that takes no notification
        within `notify_timeout` seconds has its connection closed. Changes while a notification is on its way
        make one more notification, not one each.

        Raises:
            RuntimeError: the export was not entered (`async with export:`).
        """
        if self._tg is None:
            raise RuntimeError("enter the export (`async with export:`) before telling clients about changes")
        await self._bus.publish(ToolsListChanged())
        for key, connection in list(self._handshake_connections.items()):
            if key in self._again:
                self._again[key] = True  # its notifier sends once more
            else:
                self._again[key] = False
                self._tg.start_soon(self._notify, key, connection)

    async def _notify(self, key: int, connection: Connection) -> None:
        try:
            while True:
                await self._notify_once(key, connection)
                if not self._again.get(key):
                    return
                self._again[key] = False
        finally:
            self._again.pop(key, None)

    async def _notify_once(self, key: int, connection: Connection) -> None:
        """Send one notification. A client with no link (stdio: the only client there is) is waited for; one
        that takes nothing for `notify_timeout` seconds while nothing else reaches it either is dropped."""
        link = self._links.get(key)
        if link is None:
            await connection.send_tool_list_changed()
            return
        while True:
            sent = link.sent() if link.sent is not None else None
            with anyio.move_on_after(self._notify_timeout) as waited:
                await connection.send_tool_list_changed()
            if not waited.cancelled_caught:
                return
            if sent is None or link.sent is None or link.sent() <= sent:
                await self._drop(key, connection, link)
                return
            # It reads, slowly (a large result ahead of the notification): it is not stalled.

    async def _drop(self, key: int, connection: Connection, link: ClientLink) -> None:
        self._handshake_connections.pop(key, None)
        self._links.pop(key, None)
        log.warning(
            "client %s dropped: in %gs it took no tools/list_changed, nor anything else (it stopped reading)",
            connection.session_id or f"#{key}",
            self._notify_timeout,
            extra={"session": connection.session_id, "timeout": self._notify_timeout},
        )
        await link.close()

    def http_connection(self, session_id: str) -> Connection | None:
        """The connection behind a streamable-HTTP `Mcp-Session-Id`, once `initialize` was answered."""
        return self._http_connections.get(session_id)

    async def _track_connection(
        self, ctx: ServerRequestContext[Any, Any], call_next: Callable[..., Awaitable[Any]]
    ) -> Any:
        result = await call_next(ctx)
        if ctx.method == "initialize":
            connection = _connection_of(ctx)
            # Registered before the initialize answer goes out, so the client's next request finds it.
            if connection.session_id:
                self._http_connections[connection.session_id] = connection
                connection.exit_stack.callback(self._http_connections.pop, connection.session_id, None)
        elif ctx.method == "notifications/initialized":
            connection = _connection_of(ctx)
            key = id(connection)
            self._handshake_connections[key] = connection
            connection.exit_stack.callback(self._handshake_connections.pop, key, None)
            link = _LINK.get()
            if link is None and connection.session_id is not None and self.close_http_session is not None:
                link = ClientLink(partial(self.close_http_session, connection.session_id))
            if link is not None:
                self._links[key] = link
                connection.exit_stack.callback(self._links.pop, key, None)
        return result

    async def session_of(self, connection: Connection) -> Session:
        """The connection's lash session, built on its first request."""
        session: Session | None = connection.state.get(_STATE_KEY)
        if session is None:
            session = connection.state[_STATE_KEY] = self._core.session()
            await session.ready()
            connection.exit_stack.push_async_callback(session.aclose)
        return session

    def _surface_of(self, session: Session) -> _Surface:
        """The export of a session's surface. Sessions with the same providers share one surface
        tuple (lash_core caches it), so one entry serves every client: a stateless client builds a
        session per request, and sanitising thousands of tools each time would cost more than the
        call. Sessions whose surfaces differ (per-session hide rules) rebuild it."""
        tools = session.tools()
        surface = self._surface
        if surface is None or surface.key is not tools:
            surface = self._surface = _export_surface(tools, self._limit)
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
            return _error_result(f"unknown tool {name!r}: it is not in this gateway's tool list")
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
        session = await self.session_of(_connection_of(ctx))
        # The SDK takes wire-form dicts from handlers (and validates them); building N Tool models
        # per list would cost more than the list itself.
        return cast(types.ListToolsResult, _for_era(ctx, self.list_result(session)))

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        wants_progress = (ctx.meta or {}).get("progress_token") is not None
        try:
            result = await self.call(
                await self.session_of(_connection_of(ctx)),
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


@contextmanager
def linked(link: ClientLink) -> Iterator[None]:
    """Handle a connection's messages within this block to let the export reach it through `link` (to drop a
    client that stopped reading). The SDK runs a message's handler in the context of whoever delivered it."""
    token = _LINK.set(link)
    try:
        yield
    finally:
        _LINK.reset(token)


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


def _connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    connection: Connection = ctx.session._connection
    return connection


def _tool_to_wire(tool: ToolDefinition, name: str) -> Mapping[str, Any] | None:
    """The MCP form of a tool, sanitised so the SDK's strict result check accepts it (a plugin's
    sloppy schema must not break `tools/list` for every tool)."""
    raw: dict[str, Any] = {"name": name, "description": tool.description, "inputSchema": tool.input_schema}
    if tool.output_schema is not None:
        raw["outputSchema"] = tool.output_schema
    if tool.title is not None:
        raw["title"] = tool.title
    if tool.annotations is not None:
        raw["annotations"] = tool.annotations
    clean = sanitize_tool(raw)
    if not isinstance(clean, SanitizedTool):
        log.warning("tool not exported", extra={"tool": tool.name, "reason": clean.reason})
        return None
    wire: dict[str, Any] = {"name": name, "inputSchema": clean.input_schema}
    if clean.description:
        wire["description"] = clean.description
    if clean.output_schema is not None:
        wire["outputSchema"] = clean.output_schema
    if clean.title is not None:
        wire["title"] = clean.title
    if clean.annotations:
        wire["annotations"] = clean.annotations
    return wire


def result_to_wire(result: ToolResult) -> dict[str, Any]:
    """A `ToolResult` as a `tools/call` result; failures are `isError` results, never JSON-RPC errors."""
    wire: dict[str, Any] = {"content": [_part_to_wire(p) for p in result.content], "isError": result.is_error}
    if result.structured is not None and not result.is_error:
        wire["structuredContent"] = dict(result.structured)
    if result.meta:
        wire["_meta"] = dict(result.meta)
    return wire


def _error_result(message: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _part_to_wire(part: ContentPart) -> dict[str, Any]:
    wire: dict[str, Any]
    if isinstance(part, TextPart):
        wire = {"type": "text", "text": part.text}
    elif isinstance(part, ImagePart | AudioPart):
        wire = {"type": part.type, "data": part.data, "mimeType": part.mime_type}
    elif isinstance(part, ResourcePart):
        resource: dict[str, Any] = {"uri": part.uri}
        if part.mime_type is not None:
            resource["mimeType"] = part.mime_type
        if part.blob is not None:
            resource["blob"] = part.blob
        else:
            resource["text"] = part.text or ""
        wire = {"type": "resource", "resource": resource}
    else:
        wire = {"type": "resource_link", "uri": part.uri, "name": part.name}
        if part.mime_type is not None:
            wire["mimeType"] = part.mime_type
        if part.description is not None:
            wire["description"] = part.description
    if part.annotations:
        wire["annotations"] = dict(part.annotations)
    return wire
