"""The transport's streams as the SDK `Client` takes them, and a read stream that reports its own end.

For stdio and SSE, the end of the read stream is the only sign of a dead upstream (the SDK's dispatcher
just stops reading), so the supervisor watches it.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Self

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.shared.message import SessionMessage

from ._transports import WriteStream

__all__ = ["WatchedReadStream", "opened"]


class WatchedReadStream:
    """The transport's read stream, reporting its end: for stdio and SSE, EOF is the only sign of a
    dead upstream (the SDK's dispatcher just stops reading)."""

    def __init__(self, inner: MemoryObjectReceiveStream[SessionMessage | Exception], on_end: Callable[[], None]):
        self._inner, self._on_end = inner, on_end

    @property
    def last_context(self) -> contextvars.Context | None:
        """The context the last message was sent in, where the transport keeps it (streamable HTTP: the task that
        posted the request whose stream carried it). The SDK's dispatcher reads this attribute, duck-typed, to run
        a server's request in that context: that is how `_asks` tells which call a question belongs to."""
        context: contextvars.Context | None = getattr(self._inner, "last_context", None)
        return context

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


@asynccontextmanager
async def opened(read: WatchedReadStream, write: WriteStream) -> AsyncIterator[tuple[WatchedReadStream, WriteStream]]:
    """An already open stream pair in the shape `mcp.Client` takes as a transport."""
    yield read, write
