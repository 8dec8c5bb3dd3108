"""The hot path of streamable HTTP: the requests clients send on every turn, answered by the gateway itself.

The SDK's server transport spends about 2 ms of CPU on every request (memory streams, a task group
and an SSE response per POST, its dispatcher and tracing): most of what a gateway hop would cost.
This layer answers `tools/call`, `tools/list` and `ping` directly from the export for handshake-era
sessions (an `Mcp-Session-Id` that finished `initialize`), and cancels its own calls on
`notifications/cancelled`; 2026-07-28 requests of the hot methods go to `ModernPath`. Everything else
(initialize, other notifications, GET and DELETE, batches, unknown sessions, bad headers, anything
malformed) goes to the SDK app untouched, so protocol errors keep coming from one place.

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
from typing import Any, Final

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
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from .._sdk import holding, http_transports
from ._asking import connection_caller
from ._edge import TOKEN_ID
from ._export import REFUSED, McpExport, refusal
from ._levels import allows, level_of_connection
from ._modern_path import ModernPath
from ._reply import HANDSHAKE, Reply, is_request_id, rate_limited_as_429

log = logging.getLogger("lash_gateway.fast_path")

_SESSION_HEADER: Final = MCP_SESSION_ID_HEADER.lower().encode("latin-1")
_VERSION_HEADER: Final = MCP_PROTOCOL_VERSION_HEADER.lower().encode("latin-1")
_HANDSHAKE_VERSIONS: Final = frozenset(version.encode("latin-1") for version in HANDSHAKE_PROTOCOL_VERSIONS)
_MODERN_VERSIONS: Final = frozenset(version.encode("latin-1") for version in MODERN_PROTOCOL_VERSIONS)
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
        self._modern = ModernPath(export)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The edge hands a POST its body whole, as one message, within the size limit.
        if scope["type"] == "http" and scope["method"] == "POST":
            await self._post(scope, receive, send)
        else:
            await self._sdk(scope, receive, send)

    async def _post(self, scope: Scope, receive: Receive, send: Send) -> None:
        first = await receive()
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)  # the first of repeated headers, as Starlette (and so the SDK) reads them
        if not await self._answer(scope, headers, first.get("body", b""), receive, send):
            if headers.get(_VERSION_HEADER) in _MODERN_VERSIONS:  # its refusals as this path's: the same answers
                send = rate_limited_as_429(send)
            await self._sdk(scope, _replaying(first, receive), send)

    async def _answer(
        self, scope: Scope, headers: Mapping[bytes, bytes], body: bytes, receive: Receive, send: Send
    ) -> bool:
        """Answer the POST if it is ours to answer; False hands it to the SDK, unanswered. `headers`: the first of
        each."""
        if self._export.has_user_middleware:
            return False  # a user's middleware sees every message, and only the SDK's path runs it
        version = headers.get(_VERSION_HEADER)
        if version in _MODERN_VERSIONS:
            message = _parsed(body)
            return message is not None and await self._modern.answer(
                scope, message, receive, send, await self._headers_pass(scope, headers)
            )
        raw_session = headers.get(_SESSION_HEADER)
        if raw_session is None or (version is not None and version not in _HANDSHAKE_VERSIONS):
            return False
        session_id = raw_session.decode("latin-1")
        connection = self._export.http_connection(session_id)
        transport = _live_transport(self._manager, session_id)
        if connection is None or transport is None:
            return False
        message = _parsed(body)
        if message is None or not await self._headers_pass(scope, headers):
            return False
        method, params = message.get("method"), message.get("params", {})
        if not isinstance(params, dict):
            return False
        if "id" not in message:
            return await self._cancel(session_id, method, params, send)
        request_id = message["id"]
        if not is_request_id(request_id) or (session_id, request_id) in self._calls:
            return False
        if method not in ("ping", "tools/list") and not (method == "tools/call" and _is_call(params)):
            return False
        reply = Reply(send, request_id, HANDSHAKE, self._export.keepalive, ((_SESSION_HEADER, raw_session),))
        try:
            with holding(transport):  # a ping keeps a session alive too, as it does through the SDK
                if method == "ping":
                    await reply.result({})
                elif method == "tools/list":
                    await reply.result(self._export.list_result(await self._export.session_of(connection)))
                else:
                    await self._call(scope, (session_id, request_id), connection, params, reply)
        finally:
            reply.close()
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

    async def _call(
        self, scope: Scope, key: RequestKey, connection: Connection, params: Mapping[str, Any], reply: Reply
    ) -> None:
        token = params.get("_meta", {}).get("progressToken")

        async def report(progress: float, total: float | None = None, message: str | None = None) -> None:
            await reply.progress(token, progress, total, message)

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
                    token_id=scope.get(TOKEN_ID),
                )
            except REFUSED as exc:
                refused = refusal(exc)
                await reply.error(refused.code, refused.message, refused.data)
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
        cancel = self._calls.get((session_id, request_id)) if is_request_id(request_id) else None
        if cancel is None:
            return False
        log.debug("call %r cancelled by the client", request_id, extra={"request_id": request_id})
        cancel.cancel()
        await send({"type": "http.response.start", "status": 202, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        return True


def _is_call(params: Mapping[str, Any]) -> bool:
    """Only the plain shape is ours: anything more (task augmentation, odd types) gets the SDK's answer."""
    meta = params.get("_meta", {})
    arguments = params.get("arguments")
    return (
        params.keys() <= _CALL_PARAMS
        and isinstance(params.get("name"), str)
        and (arguments is None or isinstance(arguments, dict))
        and isinstance(meta, dict)
        and (meta.get("progressToken") is None or is_request_id(meta["progressToken"]))
    )


def _parsed(body: bytes) -> dict[str, Any] | None:
    """A JSON-RPC 2.0 message object, or None for anything else (the SDK's to answer)."""
    try:
        message = pydantic_core.from_json(body)
    except ValueError:
        return None
    return message if isinstance(message, dict) and message.get("jsonrpc") == "2.0" else None


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
