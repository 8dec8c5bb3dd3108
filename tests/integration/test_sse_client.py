"""The gateway's legacy HTTP+SSE client posts messages one at a time, in the order they were sent.

Regression: each message was posted in a task of its own, so a server that took longer over one POST than over the
next saw them out of order: a `notifications/cancelled` could overtake the request it cancels.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Final

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp.shared.message import SessionMessage
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from lash_gateway.upstream._sse_client import sse_client
from tests.integration._gateway import serve_app

pytestmark = pytest.mark.anyio

MESSAGES: Final = 20


def recording_server(received: list[str], all_in: anyio.Event) -> Starlette:
    """An SSE endpoint that announces `/messages`, and a message route that takes a random while over each POST."""

    async def stream(request: Request) -> EventSourceResponse:
        async def events() -> AsyncIterator[dict[str, str]]:
            yield {"event": "endpoint", "data": "/messages?session_id=1"}
            await anyio.sleep_forever()

        return EventSourceResponse(events())

    async def message(request: Request) -> Response:
        body = await request.json()
        await anyio.sleep(random.uniform(0, 0.02))  # a server that takes its time, differently each time
        received.append(body["method"])
        if len(received) == MESSAGES:
            all_in.set()
        return Response(status_code=202)

    return Starlette(routes=[Route("/sse", stream), Route("/messages", message, methods=["POST"])])


async def test_messages_reach_the_server_in_the_order_they_were_sent() -> None:
    received: list[str] = []
    all_in = anyio.Event()
    sent = [f"notifications/n{index}" for index in range(MESSAGES)]
    async with serve_app(recording_server(received, all_in), health_path=None) as base_url:
        async with httpx2.AsyncClient(timeout=10.0) as http, sse_client(f"{base_url}/sse", http) as (read, write):
            with anyio.fail_after(10):
                for method in sent:
                    notification = types.JSONRPCNotification(jsonrpc="2.0", method=method)
                    await write.send(SessionMessage(notification))
                await all_in.wait()
    assert received == sent
