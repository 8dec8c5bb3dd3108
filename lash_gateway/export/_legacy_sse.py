"""The legacy HTTP+SSE endpoint (2024-11-05 transport): `GET /sse` holds one connection's stream, and its
messages arrive as `POST /messages/?session_id=<id>`.

Each connection runs its own server loop inside a cancel scope, so the export can close a connection
whose client stopped reading (`linked`). The SDK runs a message's handler in the context of the
POST that carried it, so the POST route looks the connection up by its session id (read off the
`endpoint` event the stream announces it in) and hands its closer on in that context.
"""

from __future__ import annotations

import re
from typing import Final
from uuid import UUID

import anyio
from mcp.server.sse import SseServerTransport
from starlette.datastructures import QueryParams
from starlette.types import Message, Receive, Scope, Send

from ._edge import CONNECTION_EXTENSION, RETRY_WHEN_FULL, reply
from ._export import McpExport
from ._notify import ClientLink, linked

__all__ = ["LegacySse"]

_SESSION_IN_ENDPOINT: Final = re.compile(rb"session_id=([0-9a-f]{32})")


class LegacySse:
    """The ASGI app of `GET /sse` (Starlette takes a bound method for a request handler, so this is the
    instance's `__call__`), and `messages`, the ASGI app of the message route."""

    def __init__(self, transport: SseServerTransport, export: McpExport) -> None:
        self._transport, self._server = transport, export.server
        self._links: dict[str, ClientLink] = {}
        self.open = 0
        """Connections open now."""
        self.max_open: int | None = None
        """Connections this endpoint may hold (the gateway's own cap, over every endpoint, is the edge's)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        session: list[str] = []
        dropped = anyio.Event()
        server = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {})
        abort, buffered = server.get("abort"), server.get("buffered")
        handed = 0

        async def close() -> None:
            # Reset the socket (what is buffered for a client that stopped reading is dropped with it); its
            # disconnect then ends the SSE response, and the connection's streams close as on any disconnect.
            if abort is not None:
                abort()
            dropped.set()

        def sent() -> int:
            waiting: int = buffered()
            return handed - waiting

        async def send_noting_session(message: Message) -> None:
            nonlocal handed
            if message["type"] == "http.response.body":
                body = message.get("body", b"")
                handed += len(body)
                if not session and (found := _SESSION_IN_ENDPOINT.search(body)) is not None:
                    session.append(found.group(1).decode())
                    self._links[session[0]] = ClientLink(close, sent if buffered is not None else None)
            await send(message)

        if self.max_open is not None and self.open >= self.max_open:
            full = f"this endpoint holds {self.max_open} SSE connections, its limit"
            await reply(send, 503, full, rpc=True, retry_after=RETRY_WHEN_FULL)
            return
        self.open += 1
        try:
            async with self._transport.connect_sse(scope, _until(dropped, receive), send_noting_session) as (r, w):
                await self._server.run(r, w, self._server.create_initialization_options())
        finally:
            self.open -= 1
            if session:
                del self._links[session[0]]

    async def close_all(self) -> None:
        """Drop every open connection (its endpoint is going away: a removed virtual server)."""
        for link in list(self._links.values()):
            await link.close()

    async def messages(self, scope: Scope, receive: Receive, send: Send) -> None:
        link = self._links.get(_session_of(scope))
        if link is None:
            await self._transport.handle_post_message(scope, receive, send)
            return
        with linked(link):
            await self._transport.handle_post_message(scope, receive, send)


def _session_of(scope: Scope) -> str:
    """The session a message is for, read as the SDK reads it (the last `session_id`, as a UUID in any case), so
    the link is always the connection's the SDK hands the message to; "" if there is none."""
    value = QueryParams(scope.get("query_string", b"")).get("session_id")
    try:
        return UUID(hex=value).hex if value else ""
    except ValueError:
        return ""  # the SDK answers it 400


def _until(dropped: anyio.Event, receive: Receive) -> Receive:
    """`receive`, answering `http.disconnect` once `dropped` is set (under a server that cannot abort)."""

    async def receive_until_dropped() -> Message:
        message: Message = {"type": "http.disconnect"}
        if dropped.is_set():
            return message
        async with anyio.create_task_group() as tg:

            async def take() -> None:
                nonlocal message
                message = await receive()
                tg.cancel_scope.cancel()

            async def drop() -> None:
                await dropped.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(take)
            tg.start_soon(drop)
        return message

    return receive_until_dropped
