"""One export served over HTTP: streamable HTTP at its MCP path (the SDK's session manager behind the fast path) and
legacy SSE (a stream and its message route). The plain endpoint and every virtual server have one each, so their
sessions, session ids and SSE connections never mix."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import anyio
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from .._sdk import http_transports, prefix_session_ids, report_admissions
from ._adopt import ADOPTED_ID, Adoptions
from ._edge import CONNECTION_EXTENSION, HOLDS_PLACE, RETRY_WHEN_FULL, reply
from ._export import McpExport
from ._fast_path import FastPath, close_http_session, open_http_sessions
from ._legacy_sse import LegacySse

__all__ = ["LISTEN_END_GRACE", "HttpEndpoint"]

LISTEN_END_GRACE: Final = 0.5
"""Seconds listen streams get to send their closing result when their endpoint goes or the drain ends (within the
second `serve` gives calls ended then, `_serving.END_GRACE / 2`)."""

# Host and Origin are the edge's to check, on every route; the SDK keeps its Content-Type check.
_SECURITY = TransportSecuritySettings(enable_dns_rebinding_protection=False)
_SESSION_HEADER = MCP_SESSION_ID_HEADER.lower().encode("latin-1")


class HttpEndpoint:
    """The ASGI apps of one export: `mcp` (streamable HTTP), `sse` (`GET` of a legacy SSE stream) and `messages` (its
    `POST`s, announced to the client at `messages_path`). Serve them within `async with endpoint.running():`."""

    def __init__(
        self,
        export: McpExport,
        *,
        messages_path: str,
        session_idle_timeout: float,
        max_sessions: int,
        session_prefix: str = "",
        adoptions: Adoptions | None = None,
    ) -> None:
        """`session_prefix` starts every streamable-HTTP session id (a replica's, so others know where it lives);
        `adoptions` are the sessions of gone replicas this one opens again when next used."""
        self.export = export
        self._manager = StreamableHTTPSessionManager(
            app=export.server,
            security_settings=_SECURITY,
            session_idle_timeout=session_idle_timeout,
            max_sessions=max_sessions,
        )
        if session_prefix:
            prefix_session_ids(self._manager, session_prefix, ADOPTED_ID.get)
        report_admissions(self._manager)  # after the prefix: the session is counted under its own name by then
        self._legacy = LegacySse(SseServerTransport(messages_path, security_settings=_SECURITY), export)
        fast = FastPath(export, self._manager, _SECURITY)
        self.mcp: ASGIApp = fast if adoptions is None else partial(self._adopting, fast, adoptions)
        self.sse: ASGIApp = self._legacy
        self.messages: ASGIApp = self._legacy.messages
        export.close_http_session = partial(close_http_session, self._manager)
        self._listens: dict[object, Callable[[], object]] = {}
        """How to end each 2026-07-28 listen stream open now (see `listen`), by a key of its own (two listens in turn on
        one connection share its `abort`)."""
        self._none_open = anyio.Event()
        """Set while none is open (a new one once one opens)."""
        self._none_open.set()

    async def _adopting(self, app: ASGIApp, adoptions: Adoptions, scope: Scope, receive: Receive, send: Send) -> None:
        """`app`, after opening again a session taken over from a gone replica, if this request is its first here."""
        for name, value in scope["headers"]:
            if name == _SESSION_HEADER:
                session = value.decode("latin-1")
                if adoptions.pending(session) and scope.get(HOLDS_PLACE):  # counted as a new session: it opens it
                    await adoptions.adopt(session, app, scope, partial(self.holds, session))
                elif adoptions.pending(session):  # it waits while another opens it, and a DELETE ends the claim
                    await adoptions.settled(session)
                    if scope["method"] == "DELETE":
                        adoptions.forget(session)
                break
        await app(scope, receive, send)

    async def listen(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve a 2026-07-28 `subscriptions/listen` request, counted as a session while its stream is open: a
        2026-07-28 client holds it open as a handshake client holds its session's stream. Past `max_sessions` of them,
        503; and once the streams are being ended (`end_listens`), since a new one would miss their close."""
        if self.export.listens_refused:  # its streams are being ended (`end_listens`): refused before the SDK
            await reply(send, 503, "this endpoint is closing; listen again in a moment", rpc=True)
            return
        limit = self.max_sessions
        if limit is not None and self.listening >= limit:  # a virtual server's (the gateway's own is the edge's)
            message = f"this virtual server holds {limit} listen streams, its limit (its max_sessions)"
            await reply(send, 503, message, rpc=True, retry_after=RETRY_WHEN_FULL)
            return
        abort = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {}).get("abort")
        with anyio.CancelScope() as stream:
            # Reset, as its client would: the stream ends as on any disconnect (a cancel under another ASGI server).
            key = object()
            self._listens[key] = abort if abort is not None else stream.cancel
            if self._none_open.is_set():
                self._none_open = anyio.Event()
            try:
                await self.mcp(scope, receive, send)
            finally:
                del self._listens[key]
                if not self._listens:
                    self._none_open.set()

    @property
    def listening(self) -> int:
        """2026-07-28 `subscriptions/listen` streams open now."""
        return len(self._listens)

    @property
    def max_sessions(self) -> int | None:
        return self._manager.max_sessions

    @max_sessions.setter
    def max_sessions(self, limit: int | None) -> None:
        """Sessions of this endpoint: streamable-HTTP sessions (503 past it, from the SDK's manager) and, as many
        again, legacy SSE connections and 2026-07-28 listen streams; None: the gateway's cap alone."""
        self._manager.max_sessions = limit
        self._legacy.max_open = limit

    def holds(self, session: str) -> bool:
        return session in http_transports(self._manager)

    async def close_session(self, session: str) -> None:
        """End a streamable-HTTP session of this endpoint, if it has it."""
        await close_http_session(self._manager, session)

    def session_ids(self) -> list[str]:
        """The streamable-HTTP sessions this endpoint holds now."""
        return list(http_transports(self._manager))

    def open_sessions(self) -> int:
        """Streamable-HTTP sessions, legacy SSE connections and 2026-07-28 listen streams open now."""
        return open_http_sessions(self._manager) + self._legacy.open + self.listening

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The session manager's lifetime: its sessions end when this exits (once per endpoint), and so do the legacy
        SSE connections and the listen streams, which run in their requests' own tasks."""
        try:
            async with self._manager.run():
                yield
        finally:
            await self.end_listens()
            await self._legacy.close_all()

    async def end_listens(self) -> None:
        """End every listen stream of this endpoint: as the protocol closes one (`McpExport.end_listens`), and those
        still open after `LISTEN_END_GRACE` seconds as a lost connection ends one (a client that does not read; a
        stream that began so late it missed the close; one whose upstream unsubscribe is slow), and at once if this
        is cancelled (a shutdown's deadline). Listens that come from then on are refused: here at once, and in the
        export those that were on their way (subscribing to their resources) when this began."""
        self.export.refuse_listens()
        if not self._listens:
            return
        self.export.end_listens()
        try:
            with anyio.move_on_after(LISTEN_END_GRACE):
                await self._none_open.wait()
        finally:
            for end in list(self._listens.values()):
                end()
