"""The answer to one POST the fast path serves: plain JSON when the result is all there is to send, an SSE stream as
soon as a notification (progress, a log message) has to go before it, as the SDK answers. An answer silent for
`KEEPALIVE` seconds becomes a stream too, with a comment line every `KEEPALIVE` seconds until the result, as the
SDK's do: a proxy that cuts idle connections (nginx after 60 s) must not cut a long call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Final, TypeGuard

import anyio
import pydantic_core
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import RequestId
from starlette.types import Send

__all__ = ["HANDSHAKE", "KEEPALIVE", "MODERN", "Reply", "ReplyShape", "is_request_id"]

Headers = Sequence[tuple[bytes, bytes]]
KEEPALIVE: Final = 15.0
"""Seconds an answer may stay silent (the SDK's interval)."""
_COMMENT: Final = b": ping\r\n\r\n"


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

    def __init__(
        self,
        send: Send,
        request_id: RequestId,
        shape: ReplyShape,
        headers: Headers = (),
        *,
        spawn: Callable[..., object],
    ) -> None:
        """`headers` go with every answer (a session's id); `spawn` runs the keepalive of an answer that is silent for
        long, in a task of the caller's (none is made for the rest). Call `close()` once the request is over."""
        self._send = send
        self._request_id = request_id
        self._shape = shape
        self._headers = headers
        self._lock: anyio.Lock | None = None
        self._streaming = False
        self._pinging: anyio.CancelScope | None = None
        self._timer = _later(KEEPALIVE, partial(_start, spawn, self._keep_alive))
        self.done = False
        """The answer is complete (or being completed): nothing more goes out."""

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._stream(_event(message))

    def close(self) -> None:
        """The request is over: no keepalive any more."""
        if self._timer is not None:
            self._timer.cancel()
        if self._pinging is not None:
            self._pinging.cancel()

    async def _keep_alive(self) -> None:
        with anyio.CancelScope() as self._pinging:
            while not self.done:
                await self._stream(_COMMENT)
                await anyio.sleep(KEEPALIVE)  # the interval itself: a deadline, not a wait for something

    async def _stream(self, data: bytes) -> None:
        if self.done:
            return  # the answer is complete: nowhere left to send it
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if not self._streaming:
                self._streaming = True
                await self._start(200, b"text/event-stream", self._shape.sse_headers)
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def result(self, result: Mapping[str, Any]) -> None:
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "result": result})

    async def error(self, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "error": error}, code)

    async def _finish(self, message: Mapping[str, Any], code: int | None = None) -> None:
        self.done = True  # before any await: notifications that begin after this are dropped
        self.close()
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


def _later(delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle | None:
    """`callback()` in `delay` seconds, on asyncio's loop (what every ASGI server the gateway runs under uses; under
    another event loop, answers get no keepalive)."""
    try:
        return asyncio.get_running_loop().call_later(delay, callback)
    except RuntimeError:
        return None


def _start(spawn: Callable[..., object], func: Callable[[], Awaitable[None]]) -> None:
    try:
        spawn(func)
    except RuntimeError:  # the export is closing: its answers are being cut anyway
        pass
