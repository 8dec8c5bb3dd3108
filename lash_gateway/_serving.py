"""uvicorn as the gateway runs it: the listening socket, bounded request heads, and a shutdown that answers.

- A request's URL and headers together may take `MAX_HEAD_BYTES`; past that the connection gets 431
  and is closed while the head is still being parsed, so a client cannot make the gateway buffer
  megabytes of headers (uvicorn's httptools protocol has no limit of its own).
- On SIGTERM uvicorn stops accepting and waits for requests in flight. After `drain` seconds the
  gateway's `end_calls` answers every call still running with an error saying it is shutting down
  (and cancels it upstream); then, after `FLUSH` seconds for those answers to be written, the SSE
  streams (legacy SSE connections, SDK stream responses) close. uvicorn's own cut, which answers
  `500 Internal Server Error` with a traceback in the log, comes only `END_GRACE` seconds later, for
  whatever is still open then. sse-starlette would close every SSE stream at the signal itself, so
  its automatic drain is switched off and its `AppStatus.should_exit` is set here instead.

The protocol subclass relies on uvicorn's httptools protocol calling `on_url`, `on_header` and, for a
parse error, `send_400_response`; `tests/adversarial` sends an oversized head and fails if it is read.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Final

import anyio
import uvicorn
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ._edge import ABORT_EXTENSION

__all__ = ["END_GRACE", "MAX_HEAD_BYTES", "http_server", "listening_socket"]

log = logging.getLogger("lash_gateway.serving")

MAX_HEAD_BYTES: Final = 64 * 1024
"""Longest request line and headers, together, in bytes (as nginx's default of 4 x 8 KiB buffers, doubled)."""
END_GRACE: Final = 2
"""Seconds calls ended at the end of the drain get to send their answer before uvicorn cuts what is left."""
FLUSH: Final = 0.25
"""Seconds between the last call's end and the SSE streams' close: its answer is a few task switches away."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound and listening for `http_server` (port 0 picks a free one)."""
    sock = socket.create_server((host, port))
    # Connections inherit this. asyncio sets it only on sockets it knows are TCP, and create_server()
    # leaves the protocol unset; without it, a response written in two parts (headers, then body)
    # waits out the client's delayed ACK (~40 ms per request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def http_server(
    app: ASGIApp, *, drain: float, end_calls: Callable[[], Awaitable[None]] | None = None
) -> uvicorn.Server:
    """uvicorn as `serve` runs it: calls in flight get `drain` seconds at shutdown, then `end_calls()`.

    No access log: it was never shown at this log level, yet uvicorn built its fields for every request.
    Proxy headers stay trusted from loopback, so the admin API's loopback check sees a local proxy's real
    client.
    """
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=int(drain) + 1 + END_GRACE,
        access_log=False,
        http=_BoundedHttpTools,
    )
    AppStatus.enable_automatic_graceful_drain = False  # what its disable_automatic_graceful_drain() does
    return _DrainingServer(config, drain, end_calls)


class _HeadTooLarge(Exception):
    pass


class _BoundedHttpTools(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting the bytes of each request head."""

    _head_bytes = 0
    _head_too_large = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        # An ASGI extension: the app can drop the connection at once, unflushed (a client that stopped reading).
        self.scope["extensions"] = {ABORT_EXTENSION: {"abort": self.transport.abort}}

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value))
        super().on_header(name, value)

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._head_too_large = True
            raise _HeadTooLarge  # the parser stops; uvicorn answers through send_400_response and closes

    def send_400_response(self, msg: str) -> None:
        if not self._head_too_large:
            super().send_400_response(msg)
            return
        log.warning("request refused: its head is over %d bytes", MAX_HEAD_BYTES, extra={"limit": MAX_HEAD_BYTES})
        body = f"the request line and headers are over {MAX_HEAD_BYTES} bytes".encode()
        self.transport.write(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: text/plain; charset=utf-8\r\n"
            + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
            + body
        )
        self.transport.close()


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain: float, end_calls: Callable[[], Awaitable[None]] | None) -> None:
        super().__init__(config)
        self._drain, self._end_calls = drain, end_calls

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._end_after_drain)
                await super().shutdown(sockets)
                tg.cancel_scope.cancel()
        finally:
            AppStatus.should_exit = False  # process-wide: a later server in this process starts afresh

    async def _end_after_drain(self) -> None:
        await anyio.sleep(self._drain)  # the drain period itself: a deadline, not a wait for something
        if self._end_calls is not None:
            with anyio.move_on_after(END_GRACE / 2):
                await self._end_calls()
            await anyio.sleep(FLUSH)
        AppStatus.should_exit = True  # sse-starlette ends its streams
