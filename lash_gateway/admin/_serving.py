"""uvicorn as the gateway runs it: the listening socket, bounded request heads, and a shutdown that answers.

- A request's line and headers together may take `MAX_HEAD_BYTES` and `head_timeout` seconds; past
  either the connection gets 431 or 408 and is closed while the head is still arriving, so a client
  cannot make the gateway buffer megabytes of headers or hold a connection with half a head
  (uvicorn's httptools protocol has no limit of its own on either).
- On SIGTERM uvicorn stops accepting and waits for requests in flight. After `drain` seconds the
  gateway's `end_calls` answers every call still running with an error saying it is shutting down
  (and cancels it upstream); then, after `FLUSH` seconds for those answers to be written, the SSE
  streams (legacy SSE connections, SDK stream responses) close. uvicorn's own cut, which answers
  `500 Internal Server Error` with a traceback in the log, comes only `END_GRACE` seconds later, for
  whatever is still open then. sse-starlette would close every SSE stream at the signal itself, so
  its automatic drain is switched off and its `AppStatus.should_exit` is set here instead.

The protocol subclass relies on uvicorn's httptools protocol (`data_received`, `on_message_begin`,
`on_headers_complete`, `on_message_complete`, `connection_lost`, `loop`, `transport`, `scope`);
`tests/adversarial` sends oversized and stalled heads and fails if they are read on.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Final

import anyio
import uvicorn
from sse_starlette.sse import AppStatus
from starlette.types import ASGIApp
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from ..export._edge import CONNECTION_EXTENSION

__all__ = ["END_GRACE", "MAX_HEAD_BYTES", "freeze_startup_heap", "http_server", "listening_socket"]

log = logging.getLogger("lash_gateway.serving")

MAX_HEAD_BYTES: Final = 64 * 1024
"""Longest request line and headers, together, in bytes (as nginx's default of 4 x 8 KiB buffers, doubled)."""
DEFAULT_HEAD_TIMEOUT: Final = 30.0
"""Seconds a request's line and headers may take to arrive whole (408 after that)."""
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


def freeze_startup_heap() -> None:
    """Take every object alive now out of the cyclic garbage collector's view (`gc.freeze`), after one last full
    collection (about 50 ms, so no garbage is kept): called once, as `serve` and `stdio` start to serve, when about
    120,000 objects are alive (modules, classes, pydantic schemas, the config).

    Python's full collections walk every object in view. With these in it, one took about 110 ms on the development
    VM, once every few thousand calls, and every call in flight waited it out; the slowest of 8,000 sequential calls
    went from 107 ms to 14-21 ms (the bench's "slowest of" shows the same on 4,000). The objects frozen here live as
    long as the process; were one of them to fall into a reference cycle later, that cycle (and what it holds) would
    stay, since the collector takes frozen objects for roots."""
    gc.collect()
    gc.freeze()


def http_server(
    app: ASGIApp,
    *,
    drain: float,
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    end_calls: Callable[[], Awaitable[None]] | None = None,
    draining: Callable[[], Awaitable[None]] | None = None,
) -> uvicorn.Server:
    """uvicorn as `serve` runs it: calls in flight get `drain` seconds at shutdown, then `end_calls()`; `draining()`
    is awaited as the shutdown begins (a replica leaves its cluster then, so others take its sessions over at once).

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
        http=_bounded_http(head_timeout),
    )
    AppStatus.enable_automatic_graceful_drain = False  # what its disable_automatic_graceful_drain() does
    return _DrainingServer(config, drain, end_calls, draining)


def _bounded_http(head_timeout: float) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with request heads bounded in bytes and in time."""

    class BoundedHttpTools(HttpToolsProtocol):
        # Bytes are counted as they arrive, before the parser sees them: httptools buffers a header until it
        # ends, so a count in on_header would come after an endless one.
        _in_head = True
        _head_bytes = 0
        _head_timer: asyncio.TimerHandle | None = None
        _on_lost: set[Callable[[], None]]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._in_head, self._head_bytes = True, 0
            self._on_lost = set()

        def data_received(self, data: bytes) -> None:
            if not self._in_head:
                super().data_received(data)
                return
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(head_timeout, self._head_too_slow)
            room = MAX_HEAD_BYTES - self._head_bytes
            self._head_bytes += min(len(data), room)
            super().data_received(data[:room])  # the parser never sees more of a head than the limit
            if self._in_head and self._head_bytes >= MAX_HEAD_BYTES and not self.transport.is_closing():
                log.warning(
                    "request refused: its head is over %d bytes", MAX_HEAD_BYTES, extra={"limit": MAX_HEAD_BYTES}
                )
                message = f"the request line and headers are over {MAX_HEAD_BYTES} bytes"
                self._refuse(431, "Request Header Fields Too Large", message)
            elif len(data) > room and not self.transport.is_closing():
                super().data_received(data[room:])  # the head ended within the limit: the rest is its body

        def on_message_begin(self) -> None:
            super().on_message_begin()
            # An ASGI extension: the app can tell whether a client reads (what waits in the socket's buffer), drop
            # the connection at once, unflushed, when it stopped, and hear at once that it went away.
            transport = self.transport
            self.scope["extensions"] = {
                CONNECTION_EXTENSION: {
                    "abort": transport.abort,
                    "buffered": transport.get_write_buffer_size,
                    "on_disconnect": self._on_disconnect,
                }
            }

        def _on_disconnect(self, callback: Callable[[], None]) -> Callable[[], None]:
            self._on_lost.add(callback)
            return partial(self._on_lost.discard, callback)

        def on_headers_complete(self) -> None:
            self._end_head()
            super().on_headers_complete()
            cycle = self.cycle
            if cycle is not None and cycle.scope is self.scope:  # this request's, not a pipelined one's
                # Once the body is in, reading it cannot wait: the edge then reads it without a timer.
                self.scope["extensions"][CONNECTION_EXTENSION]["received"] = lambda: not cycle.more_body

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0  # the next request's head, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._end_head()
            super().connection_lost(exc)
            for callback in list(self._on_lost):  # those of the requests still being served
                callback()

        def _end_head(self) -> None:
            self._in_head = False
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_too_slow(self) -> None:
            self._head_timer = None
            if self._in_head and not self.transport.is_closing():
                self._refuse(408, "Request Timeout", f"the request head did not arrive within {head_timeout:g}s")

        def _refuse(self, status: int, reason: str, message: str) -> None:
            self._end_head()
            body = message.encode()
            self.transport.write(
                b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\n" % (status, reason.encode())
                + b"content-length: %d\r\nconnection: close\r\n\r\n" % len(body)
                + body
            )
            self.transport.close()

    return BoundedHttpTools


class _DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        drain: float,
        end_calls: Callable[[], Awaitable[None]] | None,
        draining: Callable[[], Awaitable[None]] | None,
    ) -> None:
        super().__init__(config)
        self._drain, self._end_calls, self._draining = drain, end_calls, draining

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._end_after_drain)
                tg.start_soon(self._begin_drain)
                await super().shutdown(sockets)
                tg.cancel_scope.cancel()
        finally:
            AppStatus.should_exit = False  # process-wide: a later server in this process starts afresh

    async def _begin_drain(self) -> None:
        if self._draining is not None:
            await self._draining()

    async def _end_after_drain(self) -> None:
        await anyio.sleep(self._drain)  # the drain period itself: a deadline, not a wait for something
        if self._end_calls is not None:
            with anyio.move_on_after(END_GRACE / 2):
                await self._end_calls()
            await anyio.sleep(FLUSH)
        AppStatus.should_exit = True  # sse-starlette ends its streams
