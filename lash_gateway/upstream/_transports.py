"""Open the byte pipe to one upstream: stdio child, streamable HTTP, or legacy HTTP+SSE.

Each opener is an async context manager yielding a `Pipe` (the SDK's stream pair, plus the call
lane on stdio) and owning everything it started (child process, HTTP client). Events have no size
limit: a 16 MiB tool result is a normal thing to forward, and the SDK's HTTP clients would drop
anything over 1 MiB.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import TypeAlias, cast
from urllib.parse import urljoin, urlparse

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.message import SessionMessage

from .._config import HttpServerConfig, ServerConfig, StdioServerConfig
from .._redact import redacted_url
from ._network import NetworkGuard, guarded_transport
from ._stdio import StdioLane, open_stdio

log = logging.getLogger("lash_gateway.transport")

ReadStream: TypeAlias = MemoryObjectReceiveStream[SessionMessage | Exception]
WriteStream: TypeAlias = MemoryObjectSendStream[SessionMessage]


@dataclass(frozen=True, slots=True)
class Pipe:
    """An open connection's streams for the SDK session, and the lane that bypasses it (stdio only)."""

    read: ReadStream
    write: WriteStream
    lane: StdioLane | None = None


@asynccontextmanager
async def open_transport(config: ServerConfig, guard: NetworkGuard | None = None) -> AsyncIterator[Pipe]:
    """The pipe for `config`; leaving the context closes it and reaps any child. HTTP connections pass `guard`."""
    if isinstance(config, StdioServerConfig):
        async with open_stdio(config) as (read, write, lane):
            yield Pipe(read, write, lane)
        return
    async with AsyncExitStack() as stack:
        http = await stack.enter_async_context(_http_client(config, guard))
        if config.transport == "streamable_http":
            # Typed by the SDK with its private stream protocols; they are anyio memory streams.
            streams = await stack.enter_async_context(
                streamable_http_client(config.url, http_client=http, max_sse_event_size=None)
            )
            read, write = cast(tuple[ReadStream, WriteStream], streams)
        else:
            read, write = await stack.enter_async_context(_sse_transport(config.url, http))
        yield Pipe(read, write)


def _http_client(config: HttpServerConfig, guard: NetworkGuard | None) -> httpx2.AsyncClient:
    # No read timeout: the server-to-client stream idles for as long as nothing changes, and
    # each request's wait is bounded by the pool (startup and call timeouts) instead.
    return httpx2.AsyncClient(
        headers={key: value.get_secret_value() for key, value in config.headers.items()},
        timeout=httpx2.Timeout(config.startup_timeout, read=None),
        follow_redirects=False,
        transport=guarded_transport(guard) if guard is not None else None,
    )


@asynccontextmanager
async def _sse_transport(url: str, http: httpx2.AsyncClient) -> AsyncIterator[tuple[ReadStream, WriteStream]]:
    """The legacy HTTP+SSE client transport (2024-11-05 spec).

    Written here rather than taken from `mcp.client.sse` because the SDK's version caps one event at
    1 MiB; this one has no cap.
    """
    async with http.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        events = httpx2.EventSource(response, max_event_size=None)
        read_writer, read_stream = anyio.create_memory_object_stream[SessionMessage | Exception](16)
        write_stream, write_reader = anyio.create_memory_object_stream[SessionMessage](16)

        async def read_events(*, task_status: TaskStatus[str]) -> None:
            async with read_writer:
                async for event in events:
                    if event.event == "endpoint":
                        endpoint = urljoin(url, event.data)
                        if urlparse(endpoint)[:2] != urlparse(url)[:2]:
                            shown = redacted_url(endpoint)
                            raise ValueError(
                                f"the SSE endpoint {shown!r} is not on the origin of {redacted_url(url)!r}"
                            )
                        task_status.started(endpoint)
                    elif event.event == "message" and event.data:
                        try:
                            message = types.jsonrpc_message_adapter.validate_json(event.data, by_name=False)
                        except ValueError as exc:
                            await read_writer.send(exc)
                            continue
                        await read_writer.send(SessionMessage(message))

        async def post(endpoint: str, message: SessionMessage) -> None:
            body = message.message.model_dump(by_alias=True, mode="json", exclude_unset=True)
            try:
                reply = await http.post(endpoint, json=body)
                reply.raise_for_status()
            except httpx2.HTTPError as exc:
                # The reader may have closed already; the connection is then lost anyway.
                with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                    await read_writer.send(exc)

        async def write_messages(endpoint: str) -> None:
            # One at a time, in order: a `notifications/cancelled` must not overtake the request it cancels.
            # The server answers each POST with 202 at once; results come back on the stream.
            async with write_reader:
                async for message in write_reader:
                    await post(endpoint, message)

        async with read_writer, read_stream, write_stream, write_reader, anyio.create_task_group() as tg:
            endpoint = await tg.start(read_events)
            tg.start_soon(write_messages, endpoint)
            yield read_stream, write_stream
            tg.cancel_scope.cancel()
