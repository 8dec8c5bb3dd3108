"""Open the byte pipe to one upstream: stdio child, streamable HTTP, or legacy HTTP+SSE.

Each opener is an async context manager yielding a `Pipe` (the SDK's stream pair, plus the call
lane on stdio) and owning everything it started (child process, HTTP client). One message may take
`MAX_MESSAGE_BYTES` on every transport: a 16 MiB tool result is a normal thing to forward (the SDK's
HTTP clients would drop anything over 1 MiB), and an upstream that sends no end of one must not take the
gateway's memory with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias, cast

import httpx2
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from .._config import HttpServerConfig, ServerConfig, StdioServerConfig
from ._limits import MAX_MESSAGE_BYTES
from ._network import NetworkGuard, guarded_transport
from ._sse_client import sse_client
from ._stdio import StdioLane, open_stdio

ReadStream: TypeAlias = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream: TypeAlias = MemoryObjectSendStream[SessionMessage]


@dataclass(frozen=True, slots=True)
class Pipe:
    """An open connection's streams for the SDK session, and the lane that bypasses it (stdio only)."""

    read: ReadStream
    write: WriteStream
    lane: StdioLane | None = None

    @property
    def dropped(self) -> str | None:
        """Why the transport dropped the connection itself (the server broke a limit); None if it did not."""
        return self.lane.dropped if self.lane is not None else None


@asynccontextmanager
async def open_transport(
    config: ServerConfig, server: str, guard: NetworkGuard | None = None, auth: httpx2.Auth | None = None
) -> AsyncIterator[Pipe]:
    """The pipe for `config` (of the server named `server`); leaving the context closes it and reaps any child and
    the processes it started. HTTP connections pass `guard`, and `auth` (OAuth) signs their requests."""
    if isinstance(config, StdioServerConfig):
        async with open_stdio(config, server) as (read, write, lane):
            yield Pipe(read, write, lane)
        return
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(_http_client(config, guard, auth))
        if config.transport == "streamable_http":
            # Typed by the SDK with its private stream protocols; they are anyio memory streams.
            streams = await stack.enter_async_context(
                streamable_http_client(config.url, http_client=http, max_sse_event_size=MAX_MESSAGE_BYTES)
            )
            read, write = cast(tuple[ReadStream, WriteStream], streams)
        else:
            read, write = await stack.enter_async_context(sse_client(config.url, http))
        yield Pipe(read, write)


def _http_client(config: HttpServerConfig, guard: NetworkGuard | None, auth: httpx2.Auth | None) -> httpx2.AsyncClient:
    # No read timeout: the server-to-client stream idles for as long as nothing changes, and
    # each request's wait is bounded by the pool (startup and call timeouts) instead.
    return httpx2.AsyncClient(
        headers={key: value.get_secret_value() for key, value in config.headers.items()},
        timeout=httpx2.Timeout(config.startup_timeout, read=None),
        follow_redirects=False,
        transport=guarded_transport(guard) if guard is not None else None,
        auth=auth,
    )
