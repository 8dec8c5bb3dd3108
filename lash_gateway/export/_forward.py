"""Requests of a session that another replica holds, handed to that replica: so a load balancer needs no affinity.

Replicas name their streamable-HTTP sessions `<replica>-<uuid>` (`_sdk.prefix_session_ids`), so the replica a
request lands on reads the holder from the `Mcp-Session-Id` and looks its address up (`address`, from the
replicas' heartbeats). The request goes there as it came (the client's token included: the holder checks it as it
would its own clients'), and the answer streams back as it is written, so progress, the client's answers to the
holder's questions, the GET stream and a session's DELETE all work wherever they land. A client that goes away
closes the forwarded request too, which ends the call on the holder as if the client had left it directly.

A request is handed on once at most (`FORWARDED`): the holder serves it, or says the session is not found.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import anyio
import httpx2
from starlette.types import Receive, Scope, Send

from ._edge import FORWARDED, reply

__all__ = ["Forwarder"]

log = logging.getLogger("lash_gateway.forward")

_NOT_PASSED: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
"""Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the request."""
_CONNECT_TIMEOUT: Final = 5.0


class Forwarder:
    """Finds a session's replica, and hands its requests over while `running()`."""

    def __init__(self, replica: str, address: Callable[[str], str | None]) -> None:
        """`address(replica)` is where a live replica is reached (None: unknown or silent too long)."""
        self.replica = replica
        self.prefix = replica + "-"
        self._address = address
        self._client: httpx2.AsyncClient | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        timeout = httpx2.Timeout(_CONNECT_TIMEOUT, read=None)  # a session's GET stream stays open for hours
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=64)
        async with httpx2.AsyncClient(timeout=timeout, limits=limits) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def holder(self, session: bytes) -> str | None:
        """The address of the replica that holds `session`, if that is another live one."""
        replica, dash, _ = session.decode("latin-1").partition("-")
        if not dash or replica == self.replica:
            return None
        return self._address(replica)

    async def forward(self, address: str, scope: Scope, body: bytes, receive: Receive, send: Send) -> None:
        """Hand the request (its `body` read already) to the replica at `address`, and stream its answer back."""
        client = self._client
        if client is None:
            await reply(send, 503, "the gateway is not running", rpc=True)
            return
        path = scope.get("raw_path") or scope["path"].encode()
        query = scope.get("query_string", b"")
        url = address + path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        headers = [(k, v) for k, v in scope["headers"] if k not in _NOT_PASSED and k != b"content-length"]
        headers.append((FORWARDED, self.replica.encode()))
        request = client.build_request(scope["method"], url, headers=headers, content=body)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_cancel_when_gone, receive, tg.cancel_scope)
            try:
                response = await client.send(request, stream=True)
            except httpx2.HTTPError as exc:
                log.warning(
                    "the replica at %s holding a session cannot be reached: %s",
                    address,
                    type(exc).__name__,
                    extra={"replica_url": address, "reason": type(exc).__name__},
                )
                # As for a session that ended: the client opens a new one (the holder is gone, or going).
                await reply(send, 404, "Session not found: the replica that held it is gone", rpc=True)
                tg.cancel_scope.cancel()
                return
            try:
                fields = [(k, v) for k, v in response.headers.raw if k.lower() not in _NOT_PASSED]
                await send({"type": "http.response.start", "status": response.status_code, "headers": fields})
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except httpx2.HTTPError:  # the holder went away mid-answer: so does this answer
                log.warning("a forwarded answer from %s was cut", address, extra={"replica_url": address})
            finally:
                await response.aclose()
                tg.cancel_scope.cancel()


async def _cancel_when_gone(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel `scope` when the client disconnects (its request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
