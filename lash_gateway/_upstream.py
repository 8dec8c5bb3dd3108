"""One upstream MCP server: its supervisor task, its cached tools, and calls to it.

Failure semantics (the pool's contract rests on them):
- The supervisor owns the SDK `Client` for its whole life and reconnects with capped exponential
  backoff and jitter; nothing it meets escapes, so one upstream can never take down the pool.
- A server that is down fails calls at once with `UpstreamUnavailable`; its cached tools stay
  advertised, so a short outage does not churn every client's tool list.
- A lost connection is noticed by whichever comes first: end of the read stream (a child that
  exited, an SSE stream that closed), a transport task failing, a call answered "session not found"
  (an HTTP server that restarted), or a failed health ping while idle.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Any, Literal, Self

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp import Client, MCPError
from mcp.client.subscriptions import Subscription
from mcp.shared.message import SessionMessage
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import LogReporter, ProgressReporter, ToolResult

from ._config import ServerConfig, StdioServerConfig, redacted
from ._errors import (
    CallTimeout,
    ServerDetached,
    UpstreamCallError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamUnavailable,
)
from ._network import NetworkGuard
from ._redact import config_secrets, redact, remember_secrets
from ._relay import CallRelay
from ._schema import SanitizedTool, sanitize_tool
from ._stdio import StdioLane
from ._transports import WriteStream, open_transport
from ._wire import result_from_wire, send_raw

log = logging.getLogger("lash_gateway.upstream")

RECONNECT_INITIAL = 0.5
"""Seconds before the first reconnect attempt; doubles per failure."""
RECONNECT_MAX = 30.0
"""Cap on the reconnect delay."""
HEALTH_INTERVAL = 30.0
"""Seconds between pings of an idle legacy-era connection."""
CANCEL_GRACE = 2.0
"""Seconds a stopping server's calls get to send their cancellation upstream before the connection closes."""
MAX_TOOL_PAGES = 1000
"""A server that paginates past this is lying about its cursor."""

State = Literal["connecting", "connected", "reconnecting", "detached"]


@dataclass(frozen=True, slots=True)
class SkippedTool:
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What an operator needs to know about one server; never contains header or env values."""

    name: str
    transport: str
    state: State
    connected: bool
    tool_count: int
    skipped_tools: tuple[SkippedTool, ...]
    last_error: str | None
    protocol_version: str | None
    server_name: str | None
    server_version: str | None
    reconnect_attempts: int
    connected_since: float | None
    """Unix time of the current connection, None while disconnected."""
    calls_in_flight: int
    notices_dropped: int
    """Progress and log messages dropped, since attach, for callers that did not read them."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The server's config with header and env values replaced by `***`."""


class _WatchedReadStream:
    """The transport's read stream, reporting its end: for stdio and SSE, EOF is the only sign of a
    dead upstream (the SDK's dispatcher just stops reading)."""

    def __init__(self, inner: MemoryObjectReceiveStream[SessionMessage | Exception], on_end: Callable[[], None]):
        self._inner, self._on_end = inner, on_end

    async def receive(self) -> SessionMessage | Exception:
        try:
            return await self._inner.receive()
        except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._on_end()
            raise

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SessionMessage | Exception:
        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()


class Upstream:
    """One attached server. Created by the pool; `supervise` runs in the pool's task group until
    `stop()`."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        on_tools_changed: Callable[[Upstream], None],
        guard: NetworkGuard | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.guard = guard
        remember_secrets(_secrets_of(config))
        self.tools: tuple[SanitizedTool, ...] = ()
        self.skipped: tuple[SkippedTool, ...] = ()
        self.last_error: str | None = None
        self._on_tools_changed = on_tools_changed
        self._client: Client | None = None
        self._lane: StdioLane | None = None
        self._subscription: Subscription | None = None
        self._lost = anyio.Event()
        self._refresh = anyio.Event()
        self._scope = anyio.CancelScope()
        self._stopped = anyio.Event()
        self._calls: set[anyio.CancelScope] = set()
        self._calls_ended: anyio.Event | None = None
        self._stop_reason: str | None = None
        self._attempts = 0
        self._reconnect_requested = False
        self._transport_errors = 0
        self._relays: list[CallRelay] = []
        """Calls in flight on an SDK transport (HTTP): where the upstream's log messages go."""
        self.notices_dropped = 0
        """Progress and log messages dropped for callers that did not read them (see `CallRelay`)."""
        self._connected_since: float | None = None
        self._state: State = "connecting"

    # -- supervision ---------------------------------------------------------------------------

    async def supervise(self, *, fail_fast: bool, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Keep a connection until `stop()`. With `fail_fast`, a failed first connect raises
        `UpstreamUnavailable` through `task_status` (attach); otherwise the first attempt, good or
        bad, releases the starter and failures are retried in the background."""
        started = False
        delay = RECONNECT_INITIAL
        try:
            with self._scope:
                while True:
                    try:
                        async with self._connect():
                            self._attempts, delay = 0, RECONNECT_INITIAL
                            if not started:
                                task_status.started()
                                started = True
                            await self._serve()
                    except Exception as exc:
                        if self._reconnect_requested:
                            log.info("reconnecting on request", extra={"server": self.name})
                        else:
                            self.last_error = describe_error(exc)
                            if not started and fail_fast:
                                raise UpstreamUnavailable(self.name, self.last_error) from None
                            log.warning(
                                "upstream connection failed",
                                extra={"server": self.name, "error": self.last_error, "attempt": self._attempts + 1},
                            )
                    finally:
                        self._subscription = None
                        self._connected_since = None
                    self._state = "reconnecting"
                    if not started:
                        task_status.started()
                        started = True
                    if self._reconnect_requested:
                        self._reconnect_requested = False
                        continue
                    self._attempts += 1
                    await anyio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, RECONNECT_MAX)
        finally:
            self._state = "detached"
            self._stopped.set()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[None]:
        """Connect, handshake and list tools within the startup timeout; yield while connected."""
        self._lost = anyio.Event()
        lost = self._lost
        deadline = anyio.current_time() + self.config.startup_timeout
        with anyio.CancelScope(deadline=deadline) as startup:
            async with open_transport(self.config, self.guard) as pipe:
                client = Client(
                    _opened(_WatchedReadStream(pipe.read, lost.set), pipe.write),
                    mode=self.config.mode,
                    message_handler=self._on_message,
                    logging_callback=self._on_log,
                    client_info=types.Implementation(name="lash-gateway", version="0.1.0"),
                    cache=None,
                )
                async with client, contextlib.AsyncExitStack() as listening:
                    modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
                    if modern:
                        # Subscribe before the first tools/list: a change made after that list is then never missed.
                        self._subscription = await self._subscribe(client, listening)
                    await self._list_tools(client)
                    startup.deadline = math.inf
                    self._client = client
                    # 2026-07-28 requests carry a per-request envelope only the SDK session writes.
                    self._lane = None if modern else pipe.lane
                    self._connected_since = time.time()
                    self._state = "connected"
                    self.last_error = None
                    self._transport_errors = 0
                    log.info(
                        "upstream connected",
                        extra={"server": self.name, "protocol": client.protocol_version, "tools": len(self.tools)},
                    )
                    try:
                        yield
                    finally:
                        # Before the client closes: a call starting now must see "not connected", not a closing client.
                        self._client = None
                        self._lane = None
        if startup.cancelled_caught:
            raise UpstreamUnavailable(
                self.name, f"no complete handshake and tools/list within {self.config.startup_timeout:g}s"
            )

    async def _serve(self) -> None:
        """Run while connected: refresh tools on list_changed, ping while idle; return when lost."""
        client = self._client
        assert client is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._refresh_on_request, client)
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                if self._subscription is not None:
                    tg.start_soon(self._listen, self._subscription)
            else:
                tg.start_soon(self._health_check, client)
            await self._lost.wait()
            tg.cancel_scope.cancel()
        raise UpstreamUnavailable(self.name, "connection lost")

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._refresh.set()
        elif isinstance(message, Exception):
            # Garbage on stdout, a failed POST: the session carries on. An upstream that writes garbage
            # with every message would flood the log, so only the first per connection is a warning.
            self._transport_errors += 1
            level = logging.WARNING if self._transport_errors == 1 else logging.DEBUG
            log.log(level, "upstream transport error", extra={"server": self.name, "error": describe_error(message)})

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Upstream log messages go to the callers with calls in flight on this server: MCP ties a
        log message to a connection, not a request, so with several calls in flight each caller
        gets it, reported in a task of its own so that a client that stopped reading holds up
        nobody else's copy. With none in flight it goes to the gateway's own log."""
        relays = [relay for relay in self._relays if relay.on_log is not None]
        if not relays:
            log.info(
                "upstream %s: log message (%s): %s",
                self.name,
                params.level,
                params.data,
                extra={"server": self.name, "level": params.level, "data": params.data},
            )
            return
        to_report = [relay for relay in relays if relay.log(params.level, params.data, params.logger)]
        if len(to_report) == 1:
            await to_report[0].deliver()
        elif to_report:
            async with anyio.create_task_group() as tg:
                for relay in to_report:
                    tg.start_soon(relay.deliver)

    async def _refresh_on_request(self, client: Client) -> None:
        while True:
            await self._refresh.wait()
            self._refresh = anyio.Event()
            try:
                with anyio.fail_after(self.config.startup_timeout):
                    await self._list_tools(client)
            except Exception as exc:
                log.warning("tool refresh failed", extra={"server": self.name, "error": describe_error(exc)})

    async def _subscribe(self, client: Client, stack: contextlib.AsyncExitStack) -> Subscription | None:
        """A tools/list_changed subscription, open (acknowledged) until `stack` closes; None if the server refuses."""
        try:
            return await stack.enter_async_context(client.listen(tools_list_changed=True))
        except Exception as exc:
            log.warning("change subscription refused", extra={"server": self.name, "error": describe_error(exc)})
            return None

    async def _listen(self, subscription: Subscription) -> None:
        """2026-07-28 connections deliver list_changed only on a subscription stream (opened by `_connect`)."""
        try:
            async for _ in subscription:
                self._refresh.set()
        except Exception as exc:
            log.warning("change subscription ended", extra={"server": self.name, "error": describe_error(exc)})

    async def _health_check(self, client: Client) -> None:
        while True:
            await anyio.sleep(HEALTH_INTERVAL)
            try:
                with anyio.fail_after(min(10.0, self.config.call_timeout)):
                    await client.session.send_ping()
            except Exception as exc:
                self.last_error = f"health ping failed: {describe_error(exc)}"
                self._lost.set()
                return

    async def _list_tools(self, client: Client) -> None:
        tools: list[SanitizedTool] = []
        skipped: list[SkippedTool] = []
        cursor: str | None = None
        for _ in range(MAX_TOOL_PAGES):
            page = await send_raw(client.session, "tools/list", {"cursor": cursor} if cursor else None)
            raw_tools = page.get("tools")
            if not isinstance(raw_tools, list):
                raise UpstreamProtocolError(self.name, "tools/list result has no 'tools' list")
            for raw in raw_tools:
                outcome = sanitize_tool(raw)
                if isinstance(outcome, SanitizedTool):
                    if outcome.warnings:
                        log.warning(
                            "upstream tool repaired",
                            extra={"server": self.name, "tool": outcome.name, "warnings": outcome.warnings},
                        )
                    if self.config.tools.allows(outcome.name):
                        tools.append(outcome)
                else:
                    skipped.append(SkippedTool(outcome.name or "<unnamed>", outcome.reason))
                    log.warning(
                        "upstream tool skipped",
                        extra={"server": self.name, "tool": outcome.name, "reason": outcome.reason},
                    )
            next_cursor = page.get("nextCursor")
            if not next_cursor:
                break
            if next_cursor == cursor:
                raise UpstreamProtocolError(self.name, f"tools/list returned the same cursor {cursor!r} twice")
            cursor = str(next_cursor)
        else:
            raise UpstreamProtocolError(self.name, f"tools/list did not end within {MAX_TOOL_PAGES} pages")
        unique = {tool.name: tool for tool in tools}
        new_tools = tuple(unique.values())
        self.skipped = tuple(skipped)
        if new_tools != self.tools:
            self.tools = new_tools
            self._on_tools_changed(self)

    # -- calls ---------------------------------------------------------------------------------

    async def call(
        self,
        tool: str,
        args: Mapping[str, Any],
        *,
        progress: ProgressReporter | None,
        call_timeout: float | None,
        log_to: LogReporter | None = None,
    ) -> ToolResult:
        """Call one upstream tool by its original name.

        Raises:
            UpstreamUnavailable: not connected, or the connection was lost during the call.
            ServerDetached: the server was detached (or replaced) while the call was in flight.
            CallTimeout: no answer within the timeout; the upstream is told to cancel.
            UpstreamCallError: the upstream answered with a JSON-RPC error.
        """
        if self._stop_reason is not None:  # stopping: its calls are being cancelled, this one would outlive them
            raise ServerDetached(self.name, self._stop_reason)
        client = self._client
        if client is None:
            detail = self.last_error or "still connecting"
            raise UpstreamUnavailable(self.name, f"not connected ({detail}); the gateway keeps reconnecting")
        limit = self.config.call_timeout if call_timeout is None else call_timeout
        params = {"name": tool, "arguments": dict(args)}
        # One scope serves the timeout and `stop()`; which one fired is told by `_stop_reason`.
        lane = self._lane
        relay = CallRelay(progress, log_to, label=f"upstream {self.name}: tool {tool!r}", on_drop=self._dropped)
        with anyio.CancelScope(deadline=anyio.current_time() + limit) as scope:
            self._calls.add(scope)
            try:
                error: UpstreamError | None = None
                if lane is not None:  # the lane's request delivers the relay's messages in this task
                    try:
                        raw = await lane.request("tools/call", params, relay)
                    except MCPError as exc:
                        error = self._call_error(tool, exc)
                else:
                    self._relays.append(relay)
                    try:
                        on_progress = partial(_report_progress, relay) if progress is not None else None
                        raw = await send_raw(client.session, "tools/call", params, on_progress=on_progress)
                    except MCPError as exc:
                        error = self._call_error(tool, exc)
                    finally:
                        self._relays.remove(relay)  # answered: no later message is this call's
                    await relay.settled()  # what came before the answer goes first, within the time limit
                if error is not None:
                    raise error from None
                return result_from_wire(self.name, tool, raw)
            finally:
                self._calls.discard(scope)
                if not self._calls and self._calls_ended is not None:
                    self._calls_ended.set()
                relay.close()
        if self._stop_reason is not None:
            raise ServerDetached(self.name, self._stop_reason)
        raise CallTimeout(self.name, tool, limit)

    def _call_error(self, tool: str, exc: MCPError) -> UpstreamError:
        if self._stop_reason is not None:
            return ServerDetached(self.name, self._stop_reason)
        if exc.code == types.CONNECTION_CLOSED:
            self._lost.set()
            return UpstreamUnavailable(self.name, f"connection lost during the call to {tool!r}; reconnecting")
        if exc.code == types.INVALID_REQUEST and exc.message in ("Session not found", "Session terminated"):
            # An HTTP server that restarted forgot our session: the call never ran.
            self._lost.set()
            return UpstreamUnavailable(
                self.name, f"the server no longer knows this session ({exc.message}); reconnecting"
            )
        return UpstreamCallError(self.name, tool, exc.code, exc.message)

    # -- control -------------------------------------------------------------------------------

    def _dropped(self) -> None:
        self.notices_dropped += 1

    def reconnect(self) -> None:
        """Drop the current connection; the supervisor connects again at once, without backoff."""
        self._reconnect_requested = True
        self._lost.set()

    async def stop(self, reason: str) -> None:
        """End in-flight calls with `ServerDetached(reason)`, close the connection and reap any child."""
        self._stop_reason = reason
        if self._calls:
            # Each call unwinds by telling the upstream to cancel it; the connection stays open until every
            # notice went out, or the upstream would keep running calls that nobody waits for any more.
            self._calls_ended = anyio.Event()
            for scope in list(self._calls):
                scope.cancel()
            with anyio.move_on_after(CANCEL_GRACE):
                await self._calls_ended.wait()
                await self._flush()
        self._scope.cancel()
        await self._stopped.wait()

    async def _flush(self) -> None:
        """Return once the messages sent so far went out. The HTTP transports post notifications one at a time,
        in order, and a ping's answer comes after them; the stdio lane writes its notices itself."""
        client = self._client
        if client is None or self._lane is not None or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # 2026-07-28 HTTP cancels by closing the request's stream: nothing is queued
        with contextlib.suppress(Exception):
            await client.session.send_ping()

    def status(self) -> ServerStatus:
        client = self._client
        info = client.server_info if client is not None else None
        return ServerStatus(
            name=self.name,
            transport=self.config.transport,
            state=self._state,
            connected=client is not None,
            tool_count=len(self.tools),
            skipped_tools=self.skipped,
            last_error=self.last_error,
            protocol_version=client.protocol_version if client is not None else None,
            server_name=info.name if info else None,
            server_version=info.version if info else None,
            reconnect_attempts=self._attempts,
            connected_since=self._connected_since,
            calls_in_flight=len(self._calls),
            notices_dropped=self.notices_dropped,
            config=redacted(self.config),
        )


def _secrets_of(config: ServerConfig) -> list[str]:
    if isinstance(config, StdioServerConfig):
        return config_secrets(values=[value.get_secret_value() for value in config.env.values()])
    return config_secrets(config.url, [value.get_secret_value() for value in config.headers.values()])


async def _report_progress(relay: CallRelay, progress: float, total: float | None, message: str | None) -> None:
    """The SDK's progress callback of a call (a task per notification): queue, then deliver unless a task is."""
    if relay.progress(progress, total, message):
        await relay.deliver()


@asynccontextmanager
async def _opened(
    read: _WatchedReadStream, write: WriteStream
) -> AsyncIterator[tuple[_WatchedReadStream, WriteStream]]:
    """An already open stream pair in the shape `mcp.Client` takes as a transport."""
    yield read, write


def describe_error(exc: BaseException) -> str:
    """One line an operator can act on, from whatever the SDK or transport raised; URLs in it are redacted."""
    return redact(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_describe(e) for e in exc.exceptions]
        return "; ".join(dict.fromkeys(leaves))
    if isinstance(exc, UpstreamError):
        return str(exc).split(": ", 1)[-1]
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"command not executable: {exc.filename or exc}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {_without_secrets(exc.request.url)}"
    if isinstance(exc, httpx2.ConnectError):
        reason = f": {exc}" if str(exc) else ""  # the socket's reason, or the deny-list's (never the URL)
        return f"cannot connect to {_without_secrets(exc.request.url)}{reason}"
    if isinstance(exc, httpx2.HTTPError):
        return f"{type(exc).__name__}: HTTP transport error"
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _without_secrets(url: httpx2.URL) -> str:
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))
