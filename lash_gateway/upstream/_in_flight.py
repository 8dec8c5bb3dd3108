"""The calls in flight on one upstream server: their cancel scopes, where the server's log messages go, and how
they end when the server stops.

A log message goes to the call it belongs to, and to no other: a log line of one client's call may say what
that client asked. On streamable HTTP the SDK hands the message over in the context of the task whose request's
stream carried it (`_LOGS_FOR`); elsewhere MCP ties it to the connection only, so it goes to the one call in
flight, and when several are, to the gateway's own log. When the server stops, every call is cancelled and the
connection stays open until each has told the upstream (within a grace period), or the upstream would keep
running calls that nobody waits for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import anyio
import mcp_types as types

from lash_core import LogReporter, ProgressReporter

from ._relay import CallRelay

__all__ = ["CallsInFlight"]

_LOGS_FOR: ContextVar[CallRelay | None] = ContextVar("lash_gateway_logs_for", default=None)
"""The relay of the call whose task this is (set while it waits for its answer)."""


class CallsInFlight:
    def __init__(self, server: str) -> None:
        self._server = server
        self._scopes: set[anyio.CancelScope] = set()
        self._listening: list[CallRelay] = []
        self._ended: anyio.Event | None = None
        self.stop_reason: str | None = None
        """Why the server stopped, once it did: every call then ends with `ServerDetached(stop_reason)`."""
        self.notices_dropped = 0
        """Progress and log messages dropped for callers that did not read them (see `CallRelay`)."""

    def __len__(self) -> int:
        return len(self._scopes)

    def relay(self, tool: str, progress: ProgressReporter | None, log_to: LogReporter | None) -> CallRelay:
        """Where one call's progress and log messages wait for its caller."""
        return CallRelay(progress, log_to, label=f"upstream {self._server}: tool {tool!r}", on_drop=self._dropped)

    @contextmanager
    def tracking(self, scope: anyio.CancelScope) -> Iterator[None]:
        """Count the call whose scope this is as in flight, for `end()` to cancel."""
        self._scopes.add(scope)
        try:
            yield
        finally:
            self._scopes.discard(scope)
            if not self._scopes and self._ended is not None:
                self._ended.set()

    @contextmanager
    def taking_logs(self, relay: CallRelay) -> Iterator[None]:
        """While this lasts, the server's log messages of this call reach `relay` (for transports that do not
        route them per call themselves, as the stdio lane does)."""
        self._listening.append(relay)
        token = _LOGS_FOR.set(relay)
        try:
            yield
        finally:
            _LOGS_FOR.reset(token)
            self._listening.remove(relay)

    async def deliver_log(self, params: types.LoggingMessageNotificationParams) -> bool:
        """Hand a log message to the call it belongs to; False when that is no call that takes logs, or not
        knowable (the caller logs it then)."""
        relay = _LOGS_FOR.get()
        if relay is None or relay not in self._listening:
            relay = self._listening[0] if len(self._scopes) == 1 and len(self._listening) == 1 else None
        if relay is None or relay.on_log is None:
            return False
        if relay.log(params.level, params.data, params.logger):
            await relay.deliver()
        return True

    async def end(self, reason: str, grace: float, flush: Callable[[], Awaitable[None]]) -> None:
        """Cancel every call with `reason`; return once each has unwound (and so told the upstream) and `flush()`
        saw those notices out, or after `grace` seconds."""
        self.stop_reason = reason
        if not self._scopes:
            return
        self._ended = anyio.Event()
        for scope in list(self._scopes):
            scope.cancel()
        with anyio.move_on_after(grace):
            await self._ended.wait()
            await flush()

    def _dropped(self) -> None:
        self.notices_dropped += 1
