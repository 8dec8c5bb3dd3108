"""The legacy HTTP+SSE client transport (2024-11-05): one GET stream for what the server sends, one POST per
message to the endpoint the stream announces (which must be on the stream's origin).

Written here rather than taken from `mcp.client.sse` because the SDK's version caps one event at 1 MiB; here the cap
is `MAX_MESSAGE_BYTES`, and an event over it drops the connection.
Messages are posted one at a time, in order: a `notifications/cancelled` must not overtake the request it
cancels. The server answers each POST with 202 at once; results come back on the stream.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urljoin, urlparse

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from .._redact import redacted_url
from ._limits import MAX_MESSAGE_BYTES

__all__ = ["sse_client"]

_Read = MemoryObjectReceiveStream[SessionMessage | Exception]
_Write = MemoryObjectSendStream[SessionMessage]


@asynccontextmanager
async def sse_client(
    url: str, http: httpx2.AsyncClient
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """The stream pair of a legacy HTTP+SSE connection to `url` (its SSE stream), over `http`."""
    async with http.stream("GET", url, headers={"Accept": "text/event-stream"}) as response:
        response.raise_for_status()
        events = httpx2.EventSource(response, max_event_size=MAX_MESSAGE_BYTES)
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
