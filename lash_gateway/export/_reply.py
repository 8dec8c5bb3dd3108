"""The answer to one POST the fast path serves: plain JSON when the result is all there is to send, an SSE stream as
soon as a notification (progress, a log message) has to go before it, as the SDK answers. An answer silent for
`KEEPALIVE` seconds becomes a stream too, with a comment line about every `KEEPALIVE` seconds until the result, as
the SDK's do: a proxy that cuts idle connections (nginx after 60 s) must not cut a long call. One task per export
sends them all (`Keepalive`): nothing per request.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeGuard, cast

import anyio
import pydantic_core
from mcp.shared.inbound import ERROR_CODE_HTTP_STATUS
from mcp_types import INTERNAL_ERROR, ProgressToken, RequestId
from starlette.types import Message, Send

from ._limits import RATE_LIMITED

__all__ = [
    "HANDSHAKE",
    "INVALID_RESULT",
    "KEEPALIVE",
    "MODERN",
    "Keepalive",
    "Reply",
    "ReplyShape",
    "is_request_id",
    "rate_limited_as_429",
]

log = logging.getLogger("lash_gateway.fast_path")

Headers = Sequence[tuple[bytes, bytes]]
KEEPALIVE: Final = 15.0
"""Seconds an answer may stay silent (the SDK's interval)."""
_COMMENT: Final = b": ping\r\n\r\n"
INVALID_RESULT: Final = "Handler returned an invalid result"
"""The SDK's message for a result it cannot send (its check refused it)."""
_RATE_LIMITED_CODE: Final = b'"code":%d' % RATE_LIMITED
"""How the SDK writes the code in a JSON error answer (compact separators): a cheap look before parsing one."""


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
    keeps events whole and in order (it is fair: first come, first sent), the result last. After the answer is
    complete, or the request is over (`close`), nothing more goes out."""

    def __init__(
        self, send: Send, request_id: RequestId, shape: ReplyShape, keepalive: Keepalive, headers: Headers = ()
    ) -> None:
        """`headers` go with every answer (a session's id). Call `close()` once the request is over."""
        self._send = send
        self._request_id = request_id
        self._shape = shape
        self._headers = headers
        self._lock: anyio.Lock | None = None
        self._streaming = False
        self._keepalive = keepalive
        self._pinging = False
        self.last_sent = time.monotonic()
        """When something last went out (or the request began)."""
        self.done = False
        """The answer is complete (or being completed), or the request is over: nothing more goes out."""
        keepalive.add(self)

    async def notify(self, method: str, params: Mapping[str, Any] | None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            message["params"] = params
        await self._stream(_event(_encoded(message)))

    async def progress(
        self, token: ProgressToken, progress: float, total: float | None = None, message: str | None = None
    ) -> None:
        params: dict[str, Any] = {"progressToken": token, "progress": progress}
        if total is not None:
            params["total"] = total
        if message is not None:
            params["message"] = message
        await self.notify("notifications/progress", params)

    def close(self) -> None:
        """The request is over (answered or not): nothing more goes out, no keepalive either."""
        self.done = True
        self._keepalive.discard(self)

    def due(self, now: float) -> bool:
        """Whether the answer has been silent for `KEEPALIVE` seconds (and no comment is on its way)."""
        return not self.done and not self._pinging and now - self.last_sent >= KEEPALIVE

    async def ping(self) -> None:
        """A comment line, making the answer an SSE stream if it is not one yet. A failure is the request's to see:
        it ends nothing else."""
        self._pinging = True
        try:
            await self._stream(_COMMENT)
        except Exception as exc:
            log.debug("keepalive not sent: %s", exc, extra={"reason": str(exc)})
        finally:
            self._pinging = False

    async def _stream(self, data: bytes) -> None:
        if self.done:
            return
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if self.done:
                return  # completed while this waited its turn
            if not self._streaming:
                await self._start(200, b"text/event-stream", self._shape.sse_headers)
                self._streaming = True
            await self._send({"type": "http.response.body", "body": data, "more_body": True})
            self.last_sent = time.monotonic()

    async def result(self, result: Mapping[str, Any]) -> None:
        """The answer. One that cannot be sent as JSON at all is answered as the SDK answers a result its check
        refuses: an internal error, the details in the log only."""
        if self.done:
            return
        try:
            encoded = _encoded({"jsonrpc": "2.0", "id": self._request_id, "result": result})
        except (TypeError, ValueError) as exc:
            log.error("a result could not be sent as JSON: %s", exc, extra={"reason": str(exc)})
            await self.error(INTERNAL_ERROR, INVALID_RESULT)
            return
        await self._finish(encoded)

    async def error(self, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        status, extra = self._shape.error_statuses.get(code, 200), cast(Headers, ())
        if (limited := _rate_limited(code, data)) is not None:
            status, extra = limited
        encoded = _encoded({"jsonrpc": "2.0", "id": self._request_id, "error": error})
        await self._finish(encoded, status, extra)

    async def _finish(self, encoded: bytes, status: int = 200, extra: Headers = ()) -> None:
        """Send the JSON-RPC message `encoded`, as the whole answer or as the stream's last event."""
        if self.done:
            return
        self.close()  # before any await: notifications and comments that begin after this are dropped
        if self._lock is None:
            length = (b"content-length", str(len(encoded)).encode("latin-1"))
            await self._start(status, b"application/json", [length, *extra])
            await self._send({"type": "http.response.body", "body": encoded})
            return
        async with self._lock:  # after the notifications that began before the result
            if not self._streaming:  # the stream's first send never went out (it was cancelled)
                await self._start(200, b"text/event-stream", self._shape.sse_headers)
                self._streaming = True
            await self._send({"type": "http.response.body", "body": _event(encoded)})

    async def _start(self, status: int, content_type: bytes, extra: Headers) -> None:
        headers = [(b"content-type", content_type), *self._headers, *extra]
        await self._send({"type": "http.response.start", "status": status, "headers": headers})


class Keepalive:
    """Comment lines for the answers silent for `KEEPALIVE` seconds: one task for every answer of an export (`run`,
    for the export's lifetime), which looks every `KEEPALIVE / 3` seconds and sends each due comment in a task of
    its own, so a client that stopped reading holds up nobody else's."""

    def __init__(self) -> None:
        self._replies: set[Reply] = set()

    def add(self, reply: Reply) -> None:
        self._replies.add(reply)

    def discard(self, reply: Reply) -> None:
        self._replies.discard(reply)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            while True:
                await anyio.sleep(KEEPALIVE / 3)  # the interval itself: a deadline, not a wait for something
                now = time.monotonic()
                for reply in [reply for reply in self._replies if reply.due(now)]:
                    tg.start_soon(reply.ping)


def _encoded(message: Mapping[str, Any]) -> bytes:
    """`message` as JSON. A string with a lone surrogate (a plugin's: no upstream's JSON can carry one) has no UTF-8
    form, and goes out escaped, as the SDK's own encoder (`json.dumps`) sends it.

    Raises:
        TypeError, ValueError: it is no JSON even so.
    """
    try:
        return pydantic_core.to_json(message)
    except ValueError:
        return json.dumps(message, separators=(",", ":")).encode()


def _event(encoded: bytes) -> bytes:
    return b"event: message\r\ndata: " + encoded + b"\r\n\r\n"


def is_request_id(value: object) -> TypeGuard[RequestId]:
    """A JSON-RPC request id: a string or an integer (never a bool, which JSON parsers give as an int's kin)."""
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _rate_limited(code: object, data: Any) -> tuple[int, Headers] | None:
    """A request a limit refused is refused whole: 429, and when to retry (None: not such an error). A `retryAfter`
    that is not a whole number of seconds (an error a user's handler made up) says 1."""
    if code != RATE_LIMITED or not isinstance(data, Mapping):
        return None
    after = data.get("retryAfter")
    seconds = after if isinstance(after, int) and not isinstance(after, bool) and after >= 0 else 1
    return 429, ((b"retry-after", b"%d" % seconds),)


def rate_limited_as_429(send: Send) -> Send:
    """`send` for the SDK's answer to a 2026-07-28 request, turned into `Reply`'s when a limit refused the request:
    the SDK gives a status only to the protocol's own error codes, so its 200 with a `RATE_LIMITED` error becomes
    429 with `Retry-After`. Only a JSON answer's head is held for its body (they come together); a stream's has gone
    out before its first event, and stays as it is, as `Reply`'s does."""
    held: Message | None = None

    async def sending(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            if message["status"] == 200 and (b"content-type", b"application/json") in message.get("headers", ()):
                held = message
                return
        elif held is not None:
            start, held = held, None
            body = message.get("body", b"")
            if not message.get("more_body", False) and _RATE_LIMITED_CODE in body:
                start = _as_limited(start, body)
            await send(start)
        await send(message)

    return sending


def _as_limited(start: Message, body: bytes) -> Message:
    try:
        error = pydantic_core.from_json(body).get("error")
    except (ValueError, AttributeError):
        return start
    limited = _rate_limited(error.get("code"), error.get("data")) if isinstance(error, dict) else None
    if limited is None:
        return start
    status, extra = limited
    return {**start, "status": status, "headers": [*start.get("headers", ()), *extra]}
