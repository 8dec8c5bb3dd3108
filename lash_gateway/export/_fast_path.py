"""The hot path of streamable HTTP: `tools/call`, `tools/list` and `ping` on established sessions.

The SDK's server transport spends about 2 ms of CPU on every request (memory streams, a task group
and an SSE response per POST, its dispatcher and tracing): most of what a gateway hop would cost.
This layer answers those three methods directly from the export for handshake-era sessions (an
`Mcp-Session-Id` that finished `initialize`), and cancels its own calls on `notifications/cancelled`.
Everything else (initialize, other notifications, GET and DELETE, 2026-07-28 requests, batches,
unknown sessions, bad headers, anything malformed) goes to the SDK app untouched, so protocol errors
keep coming from one place.

A call is answered with plain JSON unless something has to go before its result (progress, relayed
log messages): the answer then becomes an SSE stream that carries those and ends with the result,
as the SDK's would.

The SDK's private parts this path needs (the session manager's transports: a session the SDK
terminated is not served; each transport's idle clock: a session busy only on this path must not be
reaped as idle) are reached through `_sdk`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

import anyio
import pydantic_core
from mcp.server.connection import Connection
from mcp.server.streamable_http import (
    MCP_SESSION_ID_HEADER,
    REQUEST_CANCELLED,
    StreamableHTTPServerTransport,
    check_accept_headers,
)
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import (
    TransportSecurityMiddleware,
    TransportSecuritySettings,
)
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from .._sdk import holding, http_transports
from ._asking import connection_caller
from ._export import CALLS_ENDED, CallsEnded, McpExport
from ._levels import allows, level_of_connection

log = logging.getLogger("lash_gateway.fast_path")

_SESSION_HEADER: Final = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_VERSION_HEADER: Final = MCP_PROTOCOL_VERSION_HEADER.lower().encode("latin-1")
_CALL_PARAMS: Final = frozenset({"name", "arguments", "_meta"})
_CHECKED_HEADERS: Final = (b"content-type", b"host", b"origin", b"accept")
_PASSED_HEADERS_KEPT: Final = 64

RequestKey = tuple[str, int | str]
"""(session id, JSON-RPC request id) of a call in flight on this path."""


class FastPath:
    """ASGI app for the MCP endpoint: the SDK's streamable-HTTP app with the hot methods answered first."""

    def __init__(
        self, export: McpExport, manager: StreamableHTTPSessionManager, security: TransportSecuritySettings
    ) -> None:
        self._export = export
        self._manager = manager
        self._sdk = StreamableHTTPASGIApp(manager)
        self._security = TransportSecurityMiddleware(security)
        self._calls: dict[RequestKey, anyio.CancelScope] = {}
        self._passed_headers: set[tuple[bytes | None, ...]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The edge hands a POST its body whole, as one message, within the size limit.
        if scope["type"] == "http" and scope["method"] == "POST":
            await self._post(scope, receive, send)
        else:
            await self._sdk(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        if not await self._answer(scope, first.get("body", b""), send):
            await self._sdk(scope, _replaying(first, receive), send)

    async def _answer(self, scope: Scope, body: bytes, send: Send) -> bool:
        """Answer the POST if it is ours to answer; False hands it to the SDK, unanswered."""
        if self._export.has_user_middleware:
            return False  # a user's middleware sees every message, and only the SDK's path runs it
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette (and so the SDK) reads them
        raw_session = headers.get(_SESSION_HEADER)
        version = headers.get(_VERSION_HEADER)
        if raw_session is None or (
            version is not None and version.decode("latin-1") not in HANDSHAKE_PROTOCOL_VERSIONS
        ):
            return False
        session_id = raw_session.decode("latin-1")
        connection = self._export.http_connection(session_id)
        transport = _live_transport(self._manager, session_id)
        if connection is None or transport is None:
            return False
        try:
            message = pydantic_core.from_json(body)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            return False
        if not await self._headers_pass(scope, headers):
            return False
        method, params = message.get("method"), message.get("params", {})
        if not isinstance(params, dict):
            return False
        if "id" not in message:
            return await self._cancel(session_id, method, params, send)
        request_id = message["id"]
        if not _is_request_id(request_id) or (session_id, request_id) in self._calls:
            return False
        reply = _Reply(send, raw_session, request_id)
        with holding(transport):  # a ping keeps a session alive too, as it does through the SDK
            if method == "ping":
                await reply.result({})
            elif method == "tools/list":
                await reply.result(self._export.list_result(await self._export.session_of(connection)))
            elif method == "tools/call" and _is_call(params):
                await self._call((session_id, request_id), connection, params, reply)
            else:
                return False
        return True

    async def _headers_pass(self, scope: Scope, headers: Mapping[bytes, bytes]) -> bool:
        """The SDK's own Content-Type, Host, Origin and Accept checks. A client sends the same headers on
        every request, so each combination that passed is remembered (a few; a failure is never cached)."""
        key = tuple(headers.get(name) for name in _CHECKED_HEADERS)
        if key in self._passed_headers:
            return True
        request = Request(scope)
        if await self._security.validate_request(request, is_post=True) is not None:
            return False
        if check_accept_headers(request) != (True, True):
            return False
        if len(self._passed_headers) < _PASSED_HEADERS_KEPT:
            self._passed_headers.add(key)
        return True

    async def _call(self, key: RequestKey, connection: Connection, params: Mapping[str, Any], reply: _Reply) -> None:
        token = params.get("_meta", {}).get("progressToken")

        async def report(progress: float, total: float | None = None, message: str | None = None) -> None:
            notice: dict[str, Any] = {"progressToken": token, "progress": progress}
            if total is not None:
                notice["total"] = total
            if message is not None:
                notice["message"] = message
            await reply.notify("notifications/progress", notice)

        async def relay_log(level: str, data: Any, logger: str | None = None) -> None:
            if not allows(level_of_connection(connection), level):  # a setLevel during the call applies at once
                return
            notice: dict[str, Any] = {"level": level, "data": data}
            if logger is not None:
                notice["logger"] = logger
            await reply.notify("notifications/message", notice)

        session = await self._export.session_of(connection)
        result: dict[str, Any] | None = None
        with anyio.CancelScope() as cancel:
            self._calls[key] = cancel
            try:
                result = await self._export.call(
                    session,
                    params["name"],
                    params.get("arguments") or {},
                    call_id=str(key[1]),
                    progress=report if token is not None else None,
                    log=relay_log,
                    caller=connection_caller(connection),
                )
            except CallsEnded as exc:
                await reply.error(CALLS_ENDED, str(exc))
                return
            finally:
                del self._calls[key]
        if result is None:
            # Like the SDK on this era: a cancelled request still ends its stream, with an error.
            await reply.error(REQUEST_CANCELLED, "Request cancelled")
        else:
            await reply.result(result)

    async def _cancel(self, session_id: str, method: Any, params: Mapping[str, Any], send: Send) -> bool:
        """`notifications/cancelled` for a call of this path; any other notification is the SDK's."""
        if method != "notifications/cancelled":
            return False
        request_id = params.get("requestId")
        cancel = self._calls.get((session_id, request_id)) if _is_request_id(request_id) else None
        if cancel is None:
            return False
        log.debug("call %r cancelled by the client", request_id, extra={"request_id": request_id})
        cancel.cancel()
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return True


class _Reply:
    """One POST's answer: plain JSON when the result is all there is to send, an SSE stream as soon as
    a notification has to go first. Notifications come from other tasks (the upstream's); a lock,
    made by the first of them, keeps events whole and in order, the result last."""

    def __init__(self, send: Send, session_id: bytes, request_id: int | str) -> None:
        self._send = send
        self._session_id = session_id
        self._request_id = request_id
        self._lock: anyio.Lock | None = None
        self._streaming = False
        self._done = False

    async def notify(self, method: str, params: Mapping[str, Any]) -> None:
        if self._done:
            return  # the answer is complete: nowhere left to send it
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:
            if not self._streaming:
                self._streaming = True
                await self._start(b"text/event-stream", [(b"cache-control", b"no-cache, no-transform")])
            event = _event(_notification(method, params))
            await self._send({"type": "http.response.body", "body": event, "more_body": True})

    async def result(self, result: Mapping[str, Any]) -> None:
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "result": result})

    async def error(self, code: int, message: str) -> None:
        await self._finish({"jsonrpc": "2.0", "id": self._request_id, "error": {"code": code, "message": message}})

    async def _finish(self, message: Mapping[str, Any]) -> None:
        self._done = True  # before any await: notifications that begin after this are dropped
        if self._lock is None:
            body = pydantic_core.to_json(message)
            await self._start(b"application/json", [(b"content-length", str(len(body)).encode("latin-1"))])
            await self._send({"type": "http.response.body", "body": body})
            return
        async with self._lock:  # after the notifications that began before the result
            await self._send({"type": "http.response.body", "body": _event(message)})

    async def _start(self, content_type: bytes, extra: list[tuple[bytes, bytes]]) -> None:
        headers = [(b"content-type", content_type), (_SESSION_HEADER, self._session_id), *extra]
        await self._send({"type": "http.response.start", "status": 200, "headers": headers})


def _notification(method: str, params: Mapping[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def _event(message: Mapping[str, Any]) -> bytes:
    return b"event: message\r\ndata: " + pydantic_core.to_json(message) + b"\r\n\r\n"


def _is_request_id(value: object) -> TypeGuard[int | str]:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _is_call(params: Mapping[str, Any]) -> bool:
    """Only the plain shape is ours: anything more (task augmentation, odd types) gets the SDK's answer."""
    meta = params.get("_meta", {})
    arguments = params.get("arguments")
    return (
        params.keys() <= _CALL_PARAMS
        and isinstance(params.get("name"), str)
        and (arguments is None or isinstance(arguments, dict))
        and isinstance(meta, dict)
        and (meta.get("progressToken") is None or _is_request_id(meta["progressToken"]))
    )


def _replaying(first: Message, receive: Receive) -> Receive:
    """`receive` with the already-read body message handed out once more first."""
    pending = [first]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


def open_http_sessions(manager: StreamableHTTPSessionManager) -> int:
    """Sessions the SDK's manager holds now (its own count of them, against `max_sessions`)."""
    return len(http_transports(manager))


async def close_http_session(manager: StreamableHTTPSessionManager, session_id: str) -> None:
    """End a session as a client's DELETE would: its streams close, and its id answers 404 from now on."""
    transport = http_transports(manager).get(session_id)
    if transport is not None:
        await transport.terminate()


def _live_transport(manager: StreamableHTTPSessionManager, session_id: str) -> StreamableHTTPServerTransport | None:
    """The SDK transport of a session it still serves (not terminated, not expiring)."""
    transport = http_transports(manager).get(session_id)
    if transport is None or transport.is_terminated:
        return None
    if transport.idle_scope is not None and transport.idle_scope.cancel_called:
        return None
    return transport
