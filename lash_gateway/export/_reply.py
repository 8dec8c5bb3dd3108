"""The answer to one POST the fast path serves: plain JSON when the result is all there is to send, an SSE stream as
soon as a notification (progress, a log message) has to go before it, as the SDK answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard

import anyio
import pydantic_core
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import RequestId
from starlette.types import Send

__all__ = ["HANDSHAKE", "MODERN", "Reply", "ReplyShape", "is_request_id"]

Headers = Sequence[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class ReplyShape:
    """What an era's answers look like on the wire, beyond the JSON-RPC message."""

    sse_headers: Headers
    """Sent with an SSE answer (after `content-type`)."""
    error_statuses: Mapping[int, int]
    """HTTP status of a JSON error answer by JSON-RPC error code (unlisted: 200)."""


HANDSHAKE: Final = ReplyShape(((b"cache-control", b"no-cache, no-transform"),), {})
"""As the SDK answers on a handshake-era session (errors with 200)."""
MODERN: Final = ReplyShape(
    ((b"cache-control", b"no-cache, no-transform"), (b"connection", b"keep-alive"), (b"x-accel-buffering", b"no")),
    ERROR_CODE_HTTP_STATUS,
)
"""As the SDK answers a 2026-07-28 request: a JSON error with the status the protocol gives its code."""


class Reply:
    """One POST's answer. Notifications come from other tasks (the upstream's); a lock, made by the first of them,
    keeps events whole and in order, the result last. After the answer is complete, notifications are dropped."""

    def __init__(self, send: Send, request_id: RequestId, shape: ReplyShape, headers: Headers = ()) -> None:
        """`headers` go with every answer (a session's id)."""
        self._send = send
        self._request_id = request_id
        self._shape = shape
        self._headers = headers
        self._lock: anyio.Lock | None = None
        self._streaming = False
        self.done = False
        """The answer is complete (or being completed): nothing more goes out."""

    async def notify(self, method: str, params: Mapping[str, Any]) -> None:
        if self.done:
            return  # the answer is complete: nowhere left to send it
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if not self._streaming:
                self._streaming = True
                await self._start(200, b"text/event-stream", self._shape.sse_headers)
            event = _event({"jsonrpc": "2.0", "method": method, "params": params})
            await self._send({"type": "http.response.body", "body": event, "more_body": True})

    async def result(self, result: Mapping[str, Any]) -> None:
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "result": result})

    async def error(self, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "error": error}, code)

    async def _finish(self, message: Mapping[str, Any], code: int | None = None) -> None:
        self.done = True  # before any await: notifications that begin after this are dropped
        if self._lock is None:
            body = pydantic_core.to_json(message)
            status = 200 if code is None else self._shape.error_statuses.get(code, 200)
            await self._start(status, b"application/json", [(b"content-length", str(len(body)).encode("latin-1"))])
            await self._send({"type": "http.response.body", "body": body})
            return
        async with self._lock:  # after the notifications that began before the result
            await self._send({"type": "http.response.body", "body": _event(message)})

    async def _start(self, status: int, content_type: bytes, extra: Headers) -> None:
        headers = [(b"content-type", content_type), *self._headers, *extra]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})


def _event(message: Mapping[str, Any]) -> bytes:
    return b"event: message\r\ndata: " + pydantic_core.to_json(message) + b"\r\n\r\n"


def is_request_id(value: object) -> TypeGuard[RequestId]:
    """A JSON-RPC request id: a string or an integer (never a bool, which JSON parsers give as an int's kin)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
