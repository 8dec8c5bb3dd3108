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
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, Protocol

import anyio
import anyio.lowlevel
import mcp_types as types
from anyio.abc import TaskStatus
from mcp import Client
from mcp.client.subscriptions import Subscription
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import NO_CALLER, Caller, LogReporter, ProgressReporter, ToolResult

from .._config import ServerConfig
from .._errors import (
    UpstreamUnavailable,
)
from .._redact import redact, remember_secrets
from .._schema import SanitizedTool
from .._secrets import redacted, secret_values
from .._types import ServerStatus, SkippedTool, State
from ._asks import Asks
from ._catalog import Catalog, CatalogKind, list_catalog
from ._describe import describe_error, log_failure
from ._in_flight import CallsInFlight
from ._network import NetworkGuard
from ._oauth import CONNECTING, Connecting, UpstreamAuth
from ._requests import Live, Requests
from ._stdio import StdioLane
from ._streams import WatchedReadStream, opened
from ._subscriptions import ResourceSubscriptions, drain
from ._tool_list import list_tools
from ._transports import Pipe, open_transport
from ._wire import result_from_wire

log = logging.getLogger("lash_gateway.upstream")

RECONNECT_INITIAL = 0.5
"""Seconds before the first reconnect attempt; doubles per failure."""
RECONNECT_MAX = 30.0
"""Cap on the reconnect delay."""
HEALTH_INTERVAL = 30.0
"""Seconds between pings of an idle legacy-era connection."""
CANCEL_GRACE = 2.0
"""Seconds a stopping server's calls get to send their cancellation upstream before the connection closes."""
UPSTREAM_LOG_LINES_PER_SECOND: Final = 20
"""Log messages of a server that no caller takes and that reach the gateway's log in a second; past it, the rest of
that second's are left out, with one warning: a server must not fill the gateway's log (or its disk)."""
MAX_LOGGED_DATA: Final = 2_000
"""Characters of a server's log message data the gateway's log line shows; the rest are counted."""

_ALL_KINDS: frozenset[CatalogKind] = frozenset({"resources", "prompts"})


class UpstreamOwner(Protocol):
    """Told of an upstream's changes (the pool)."""

    def tools_changed(self, upstream: Upstream) -> None: ...

    def catalog_changed(self, upstream: Upstream, kind: CatalogKind) -> None: ...

    def resource_updated(self, upstream: Upstream, uri: str) -> None: ...


class Upstream:
    """One attached server. Created by the pool; `supervise` runs in the pool's task group until
    `stop()`."""

    def __init__(
        self,
        name: str,
        config: ServerConfig,
        owner: UpstreamOwner,
        guard: NetworkGuard | None = None,
        auth: UpstreamAuth | None = None,
    ) -> None:
        """`auth`: access tokens by OAuth, for a server that requires them (one per attach, shared by its per-client
        connections: its tokens outlive reconnects)."""
        self.name = name
        self.config = config
        self.guard = guard
        remember_secrets(secret_values(config))
        self.auth = auth
        if auth is not None and auth.on_reauthorize is None:  # a per-client connection shares the shared one's
            auth.on_reauthorize = self.reconnect
        self.tools: tuple[SanitizedTool, ...] = ()
        self.skipped: tuple[SkippedTool, ...] = ()
        self.catalog = Catalog()
        """Resources, templates and prompts as last listed; kept while the server is down, like its tools."""
        self.tools_listed = self.catalog_listed = False
        """Whether the tools (the catalog) were listed once: what it lists from then on are changes (see the pool)."""
        self.conflicts: tuple[str, ...] = ()
        """Set by the pool: what this server lists that another serves."""
        self.last_error: str | None = None
        self._owner = owner
        self._asks = Asks(name)
        self._subscriptions = ResourceSubscriptions(min(10.0, config.call_timeout), self._warn)
        self._stale: set[CatalogKind | None] = set()
        """What to list again: a catalog kind, or None for the tools."""
        self._client: Client | None = None
        self._lane: StdioLane | None = None
        self._subscription: Subscription | None = None
        self._lost = anyio.Event()
        self._refresh = anyio.Event()
        self._scope = anyio.CancelScope()
        self._stopped = anyio.Event()
        self._calls = CallsInFlight(name)
        self._requests = Requests(name, config, self._calls, self._asks)
        self._attempts = 0
        self._reconnect_requested = False
        self._transport_errors = 0
        self._log_second = -1
        self._logged_this_second = 0
        self._last_unexpected: str | None = None
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
                            log.info("upstream %s: reconnecting on request", self.name, extra={"server": self.name})
                        else:
                            self.last_error = describe_error(exc)
                            if not started and fail_fast:
                                raise UpstreamUnavailable(self.name, self.last_error) from None
                            self._log_failure(exc)
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
            # This connection's requests (made in its transport's tasks, which copy this context) see it being opened:
            # an operator's approval is not counted against its startup deadline (see `UpstreamAuth`).
            connecting = Connecting(startup)
            CONNECTING.set(connecting)
            async with open_transport(self.config, self.name, self.guard, self.auth) as pipe, self._dropped_by(pipe):
                client = Client(
                    opened(WatchedReadStream(pipe.read, lost.set), pipe.write),
                    mode=self.config.mode,
                    message_handler=self._on_message,
                    logging_callback=self._on_log,
                    # Declared to every server, so those that offer tools only to such clients offer them; a call
                    # whose client lacks one gets an error saying so (see `_asks`).
                    sampling_callback=self._asks.sampling,
                    elicitation_callback=self._asks.elicitation,
                    list_roots_callback=self._asks.roots,
                    client_info=types.Implementation(name="lash-gateway", version="0.1.0"),
                    cache=None,
                )
                async with client, contextlib.AsyncExitStack() as listening:
                    modern = client.protocol_version in MODERN_PROTOCOL_VERSIONS
                    if modern:
                        # Subscribe before the first tools/list: a change made after that list is then never missed.
                        self._subscription = await self._subscribe(client, listening)
                    await self._list_tools(client)
                    await self._list_catalog(client, _ALL_KINDS)
                    await self._subscriptions.restore(client)
                    startup.deadline = math.inf
                    connecting.scope = None  # opened: an authorization from now on is a call's, not the connect's
                    self._client = client
                    # 2026-07-28 requests carry a per-request envelope only the SDK session writes.
                    self._lane = None if modern else pipe.lane
                    self._connected_since = time.time()
                    self._state = "connected"
                    self.last_error = None
                    self._last_unexpected = (
                        None  # a bug that comes back after a good connection shows its traceback again
                    )
                    self._transport_errors = 0
                    log.info(
                        "upstream %s: connected (%s, protocol %s): %d tools",
                        self.name,
                        self.config.transport,
                        client.protocol_version,
                        len(self.tools),
                        extra={
                            "server": self.name,
                            "transport": self.config.transport,
                            "protocol": client.protocol_version,
                            "tools": len(self.tools),
                        },
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

    @asynccontextmanager
    async def _dropped_by(self, pipe: Pipe) -> AsyncIterator[None]:
        """A connection the transport dropped itself (the server broke a limit) fails with the transport's reason,
        whichever way its end showed (lost read stream, a request failing)."""
        try:
            yield
        except Exception as exc:
            if pipe.dropped is None:
                raise
            raise UpstreamUnavailable(self.name, pipe.dropped) from exc

    async def _serve(self) -> None:
        """Run while connected: refresh tools on list_changed, ping while idle; return when lost."""
        client = self._client
        assert client is not None
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._refresh_on_request, client)
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                if self._subscription is not None:
                    tg.start_soon(self._listen, self._subscription)
                tg.start_soon(self._subscriptions.listen, client)
            else:
                tg.start_soon(self._health_check, client)
            await self._lost.wait()
            tg.cancel_scope.cancel()
        raise UpstreamUnavailable(self.name, "connection lost")

    def _warn(self, what: str, exc: Exception) -> None:
        log_failure(log, self.name, what, exc)

    def _log_failure(self, exc: Exception) -> None:
        attempt = self._attempts + 1
        what = f"connection failed (attempt {attempt})"
        facts = {"transport": self.config.transport, "attempt": attempt}
        self._last_unexpected = log_failure(log, self.name, what, exc, self._last_unexpected, **facts)

    async def _on_message(self, message: Any) -> None:
        # 2026-07-28 subscription events arrive here too, as these same notifications.
        if isinstance(message, types.ToolListChangedNotification):
            self._stale.add(None)
            self._refresh.set()
        elif isinstance(message, types.ResourceListChangedNotification | types.PromptListChangedNotification):
            kind: CatalogKind = "resources" if isinstance(message, types.ResourceListChangedNotification) else "prompts"
            self._stale.add(kind)
            self._refresh.set()
        elif isinstance(message, types.ResourceUpdatedNotification):
            self._owner.resource_updated(self, message.params.uri)
        elif isinstance(message, Exception):
            # Garbage on stdout, a failed POST: the session carries on. An upstream that writes garbage
            # with every message would flood the log, so only the first per connection is a warning.
            self._transport_errors += 1
            level = logging.WARNING if self._transport_errors == 1 else logging.DEBUG
            error = describe_error(message)
            facts = {"server": self.name, "reason": error}
            log.log(level, "upstream %s: transport error (the session carries on): %s", self.name, error, extra=facts)

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        """Upstream log messages go to the callers in flight that take logs; with none, to the gateway's log."""
        if await self._calls.deliver_log(params):
            return
        second = int(anyio.current_time())
        if second != self._log_second:
            self._log_second, self._logged_this_second = second, 0
        self._logged_this_second += 1
        if self._logged_this_second > UPSTREAM_LOG_LINES_PER_SECOND:
            if self._logged_this_second == UPSTREAM_LOG_LINES_PER_SECOND + 1:
                log.warning(
                    "upstream %s: over %d log messages in a second; the rest of this second's are left out",
                    self.name,
                    UPSTREAM_LOG_LINES_PER_SECOND,
                    extra={"server": self.name},
                )
            return
        data: Any = params.data
        text = json.dumps(data, ensure_ascii=False, default=str)
        if len(text) > MAX_LOGGED_DATA:  # then the field is the text cut short, not the object
            text = redact(text)  # before the cut, which could leave the start of a secret unrecognised
            data = text = f"{text[:MAX_LOGGED_DATA]}... ({len(text) - MAX_LOGGED_DATA:,} more characters)"
        log.info(
            "upstream %s: log message (%s): %s",
            self.name,
            params.level,
            text,
            extra={"server": self.name, "upstream_level": params.level, "data": data},
        )

    async def _refresh_on_request(self, client: Client) -> None:
        while True:
            await self._refresh.wait()
            self._refresh = anyio.Event()
            stale, self._stale = self._stale, set()
            kinds = frozenset(kind for kind in stale if kind is not None)
            try:
                with anyio.fail_after(self.config.startup_timeout):
                    if None in stale:
                        await self._list_tools(client)
                    if kinds:
                        await self._list_catalog(client, kinds)
            except Exception as exc:
                self._warn("list refresh failed", exc)

    async def _subscribe(self, client: Client, stack: contextlib.AsyncExitStack) -> Subscription | None:
        """A list_changed subscription, open (acknowledged) until `stack` closes; None if the server refuses."""
        try:
            listen = client.listen(tools_list_changed=True, resources_list_changed=True, prompts_list_changed=True)
            return await stack.enter_async_context(listen)
        except Exception as exc:
            self._warn("change subscription refused", exc)
            return None

    async def _listen(self, subscription: Subscription) -> None:
        """2026-07-28 connections deliver list_changed only on a subscription stream (opened by `_connect`). Each
        event reaches `_on_message` too, which acts on it: here the stream is only drained."""
        try:
            await drain(subscription)
        except Exception as exc:
            self._warn("change subscription ended", exc)

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
        tools, self.skipped = await list_tools(client.session, self.name, self.config.tools)
        first, self.tools_listed = not self.tools_listed, True
        if tools != self.tools or first:
            self.tools = tools
            self._owner.tools_changed(self)

    async def _list_catalog(self, client: Client, kinds: frozenset[CatalogKind]) -> None:
        old = self.catalog
        new = await list_catalog(client.session, self.name, client.server_capabilities, old, kinds)
        self.catalog = new
        first, self.catalog_listed = not self.catalog_listed, True
        if (new.resources, new.templates) != (old.resources, old.templates) or first:
            self._owner.catalog_changed(self, "resources")
        if new.prompts != old.prompts or first:
            self._owner.catalog_changed(self, "prompts")

    async def roots_changed(self) -> None:
        """Tell the server its client's roots changed (`notifications/roots/list_changed`)."""
        client = self._client
        if client is None:
            return
        try:
            with anyio.fail_after(min(10.0, self.config.call_timeout)):
                await client.session.send_notification(types.RootsListChangedNotification())
        except Exception as exc:
            self._warn("roots/list_changed not sent", exc)

    # -- resource subscriptions ----------------------------------------------------------------

    def subscribed(self, uri: str) -> bool:
        return uri in self._subscriptions

    async def subscribe(self, uri: str) -> None:
        """Keep `uri` subscribed upstream, now and on every reconnect (when the server offers subscriptions)."""
        await self._subscriptions.add(self._client, uri)

    async def unsubscribe(self, uri: str) -> None:
        await self._subscriptions.remove(self._client, uri)

    # -- calls ---------------------------------------------------------------------------------

    async def call(
        self,
        tool: str,
        args: Mapping[str, Any],
        *,
        progress: ProgressReporter | None,
        call_timeout: float | None,
        log_to: LogReporter | None = None,
        caller: Caller = NO_CALLER,
    ) -> ToolResult:
        """Call one upstream tool by its original name; `caller` answers the server's questions during the call.

        Raises:
            UpstreamUnavailable: not connected, or the connection was lost during the call.
            ServerDetached: the server was detached (or replaced) while the call was in flight.
            CallTimeout: no answer within the timeout; the upstream is told to cancel.
            UpstreamCallError: the upstream answered with a JSON-RPC error.
        """
        params = {"name": tool, "arguments": dict(args)}
        raw = await self.request(
            "tools/call", params, tool, progress=progress, call_timeout=call_timeout, log_to=log_to, caller=caller
        )
        return result_from_wire(self.name, tool, raw)

    async def request(
        self,
        method: str,
        params: Mapping[str, Any],
        label: str,
        *,
        progress: ProgressReporter | None = None,
        call_timeout: float | None = None,
        log_to: LogReporter | None = None,
        caller: Caller = NO_CALLER,
    ) -> dict[str, Any]:
        """Send one request that may take a while and ask the caller (`tools/call`, `resources/read`,
        `prompts/get`, `completion/complete`) and return its raw result; see `Requests.send`.

        Raises:
            as `call`.
        """
        client = self._client
        live = Live(client, self._lane, self._lost) if client is not None else None
        return await self._requests.send(
            live,
            self.last_error or "still connecting",
            method,
            params,
            label,
            progress=progress,
            call_timeout=call_timeout,
            log_to=log_to,
            caller=caller,
        )

    # -- control -------------------------------------------------------------------------------

    def reconnect(self) -> None:
        """Drop the current connection; the supervisor connects again at once, without backoff."""
        self._reconnect_requested = True
        self._lost.set()

    async def stop(self, reason: str) -> None:
        """End in-flight calls with `ServerDetached(reason)` (each cancelled upstream before the connection closes),
        close the connection and reap any child. Once begun, a stop finishes even when its caller is cancelled, and
        the cancellation is raised after it."""
        # The pool let go of this server before stopping it: a stop cut short would leave it connected, its child
        # running, and nothing to reach them by. Each wait is bounded: the calls by `CANCEL_GRACE`, the supervisor's
        # unwinding (its scope cancelled) by the transport's own bounded stop.
        with anyio.CancelScope(shield=True):
            await self._calls.end(reason, CANCEL_GRACE, self._flush)
            self._scope.cancel()
            await self._stopped.wait()
        await anyio.lowlevel.checkpoint_if_cancelled()

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
            notices_dropped=self._calls.notices_dropped,
            resource_count=len(self.catalog.resources),
            resource_template_count=len(self.catalog.templates),
            prompt_count=len(self.catalog.prompts),
            conflicts=self.conflicts,
            config=redacted(self.config),
            authorization=self.auth.authorization() if self.auth is not None else None,
        )
