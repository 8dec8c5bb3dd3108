"""The hot path of 2026-07-28 requests on `/mcp`: the methods clients send on every turn, served without the SDK's
single-exchange transport.

A 2026-07-28 request is a self-contained POST. The SDK serves each one with a Starlette request and response, a task
group of two tasks and a memory stream, its middleware chain (OpenTelemetry) and its kernel: more CPU than the
gateway's own work for a call. This path runs the checks the SDK runs, in its order and with its own functions:

1. the routing headers (`Mcp-Protocol-Version`, `Mcp-Method`, `Mcp-Name`; none repeated) against the body, and the
   `_meta` envelope (`classify_inbound_request`);
2. the params against the protocol's schema for the method, and the handler's own params model;
3. for `tools/call`, the `Mcp-Param-*` headers against the tool's `x-mcp-header` annotations (only tools that have
   any, known from the cached surface export).

Then it calls the export's own handler for the method with a request context it builds, and shapes the result as
the SDK's kernel does (cache hints, the protocol's result sieve, `resultType`, the `serverInfo` stamp), so both
paths give the same answer. A `tools/call`, the request clients send most, needs no request context: it goes to
the export's call in a lash session of its own (`McpExport.open_stateless`), its progress and log messages straight
to its reply. Its client's questions (when it declares it takes some) go through the export's bridges, as on the
handler path. A request that fails a check, a method not listed here, a handler someone replaced: all go to the SDK
untouched, so protocol errors keep coming from one place.

Progress and log messages ride the request's own stream (SSE from the first of them; in a call with rounds, the
stream of its latest round), input-required results come from the export's bridges, and closing the stream cancels
the request: the gateway's server says so the moment the connection is lost (`CONNECTION_EXTENSION`); under another
ASGI server a task waits for it, as in the SDK.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, cast

import anyio
import pydantic_core
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.runner import aclose_shielded, modern_error_data
from mcp.server.session import ServerSession
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import NoBackChannelError
from mcp.shared.inbound import InboundModernRoute, classify_inbound_request, validate_mcp_param_headers
from mcp.shared.transport_context import TransportContext
from mcp_types import (
    CORE_RESULT_TYPES,
    INTERNAL_ERROR,
    SERVER_INFO_META_KEY,
    CallToolRequestParams,
    ClientCapabilities,
    LoggingLevel,
    LoggingMessageNotificationParams,
    ProgressToken,
    RequestId,
    RequestParams,
)
from mcp_types import methods as protocol
from pydantic import ValidationError
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from lash_core import NO_CALLER, Caller, Session

from .._declared import ASKABLE
from ._asking import Declared, declared_kinds
from ._bridge import ANSWER_NOW, AnsweredEarly, AnswerNow, Round, reporters
from ._edge import CONNECTION_EXTENSION, TOKEN_ID
from ._export import REFUSED, McpExport, refusal
from ._levels import allows, level_of_meta
from ._reply import INVALID_RESULT, MODERN, Reply, is_request_id
from ._wire import for_era, is_plain_call_result

__all__ = ["HOT_METHODS", "Declarations", "ModernPath"]

log = logging.getLogger("lash_gateway.fast_path")

HOT_METHODS: Final = frozenset(
    {
        "tools/call",
        "tools/list",
        "resources/read",
        "resources/list",
        "resources/templates/list",
        "prompts/get",
        "prompts/list",
    }
)
_ROUTING_HEADERS: Final = frozenset({b"mcp-protocol-version", b"mcp-method", b"mcp-name"})
_TRANSPORT: Final = TransportContext(kind="streamable-http", can_send_request=False)
_DECLARATIONS_KEPT: Final = 64
_DECLARATION_KEPT_BYTES: Final = 1024


class ModernPath:
    """Serves the `HOT_METHODS` of 2026-07-28 requests for `FastPath`."""

    def __init__(self, export: McpExport) -> None:
        self._export = export
        self._server = export.server
        self._handlers = {method: export.server.get_request_handler(method) for method in HOT_METHODS}
        self._stamp = export.server.server_info_stamp
        """The `serverInfo` stamp of every result: made once (the SDK copies it per result; ours are written out at
        once, never kept)."""
        self._declared = Declarations()

    async def answer(
        self, scope: Scope, message: Mapping[str, Any], receive: Receive, send: Send, passed: bool
    ) -> bool:
        """Answer the request `message` if it is ours to answer; False hands it to the SDK, unanswered. `passed`:
        its Host, Origin, Content-Type and Accept passed the SDK's checks."""
        method, params, request_id = message.get("method"), message.get("params"), message.get("id")
        if not isinstance(method, str) or not isinstance(params, dict) or not is_request_id(request_id):
            return False
        entry = self._handlers.get(method)
        if entry is None or self._server.get_request_handler(method) is not entry or not passed:
            return False
        route = _route(scope, message)
        if route is None:
            return False
        version = route.protocol_version
        try:
            protocol.validate_client_request(method, version, params)
            typed = entry.params_type.model_validate(params, by_name=False)
        except (ValidationError, KeyError, ValueError):
            return False
        if method == "tools/call" and not self._param_headers_pass(scope, params["name"], params.get("arguments")):
            return False
        meta = cast(RequestParams, typed).meta  # every request's params model is one
        reply = Reply(send, request_id, MODERN, self._export.keepalive)
        if method == "tools/call":
            hangup = _Hangup(scope, receive, self._export.spawn)
            call = _Call(scope, request_id, version, cast(CallToolRequestParams, typed), route.client_capabilities)
            try:
                with hangup.scope:
                    await self._call(call, _Round(reply, meta), hangup)
            finally:
                hangup.release()
                reply.close()
            return True
        connection = Connection.from_envelope(version, route.client_info, route.client_capabilities)
        channel = _Channel(reply, request_id, meta.get("progress_token") if meta else None)
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=ServerSession(channel, connection, request_meta=meta),
            lifespan_context={},
            protocol_version=version,
            method=method,
            params=params,
            request_id=request_id,
            meta=meta,
            request=Request(scope),  # as the SDK's transport gives it: handlers read the client's token id off it
        )
        hangup = _Hangup(scope, receive, self._export.spawn)

        answering = ANSWER_NOW.set(self._answer_now(reply, method, version, hangup))
        try:
            with hangup.scope:
                try:
                    # The export's handlers return wire-form dicts (see `McpExport._list_tools`).
                    result = cast(dict[str, Any], await entry.handler(ctx, typed))
                except AnsweredEarly:
                    pass
                except Exception as exc:
                    await _fail(reply, exc)
                else:
                    await self._respond(reply, method, version, result)
        finally:
            ANSWER_NOW.reset(answering)
            hangup.release()
            reply.close()
            await aclose_shielded(connection)  # the request's lash session, as the SDK closes its connection
        return True

    async def _call(self, call: _Call, first: _Round, hangup: _Hangup) -> None:
        """A `tools/call`, answered as the export's handler answers it, without the SDK's connection and request
        context. A client that takes questions gets them in input-required rounds (`Bridges`), as on the handler
        path: the call runs in this task, the first round answers the request, and the call goes on for the retry."""
        export, session, reply = self._export, None, first.reply
        try:
            session = await export.open_stateless()
            run = partial(self._run, call, session, first.token is not None)
            can_ask = call.askable(self._declared)
            if can_ask is None:  # nothing can be asked, no round resumed: no bridge
                result = await run(NO_CALLER, lambda: first)
            else:
                answering = ANSWER_NOW.set(self._answer_now(reply, "tools/call", call.version, hangup))
                try:
                    result = await export.bridges.serve("tools/call", can_ask, call.params, run, first)
                finally:
                    ANSWER_NOW.reset(answering)
        except AnsweredEarly:
            pass
        except Exception as exc:
            await _fail(reply, exc)
        else:
            await self._respond(reply, "tools/call", call.version, result)
        finally:
            if session is not None:  # after the answer, as the handler path's session closes with its connection
                await export.close_stateless(session)

    async def _run(
        self, call: _Call, session: Session, wants_progress: bool, caller: Caller, current: Callable[[], Round]
    ) -> dict[str, Any]:
        """The call itself, in wire form for its era; its progress and log messages go to its latest round."""
        report, relay_log = reporters(current, wants_progress)
        params = call.params
        try:
            result = await self._export.call(
                session,
                params.name,
                params.arguments or {},
                call_id=str(call.request_id),
                progress=report,
                log=relay_log,
                caller=caller,
                token_id=call.scope.get(TOKEN_ID),
            )
        except REFUSED as exc:  # as the handler path raises it: a retry on either path may get it
            raise refusal(exc) from None
        return for_era(call.version, result)

    def _answer_now(self, reply: Reply, method: str, version: str, hangup: _Hangup) -> AnswerNow:
        """Answers the request at once (with a round) from the task of its call, which goes on for the retry."""

        async def answer_now(result: dict[str, Any]) -> None:
            hangup.release()  # answered: the call that goes on is its retry's to end
            await self._respond(reply, method, version, result)

        return answer_now

    async def _respond(self, reply: Reply, method: str, version: str, result: dict[str, Any]) -> None:
        try:
            wire = self._shaped(method, version, result)
        except Exception as exc:
            await _fail(reply, exc)
        else:
            await reply.result(wire)

    def _param_headers_pass(self, scope: Scope, name: str, arguments: Mapping[str, Any] | None) -> bool:
        """The SDK's check of `Mcp-Param-*` headers, for tools whose schema asks for them (the rest have none that
        can disagree)."""
        schema = self._export.routed_schema(name)
        if schema is None:
            return True
        return validate_mcp_param_headers(schema, arguments or {}, Headers(scope=scope)) is None

    def _shaped(self, method: str, version: str, result: dict[str, Any]) -> dict[str, Any]:
        """A handler's result as the SDK's kernel sends it on this era (`ServerRunner._serialize`)."""
        if (hint := self._server.cache_hints.get(method)) is not None and not protocol.is_input_required(result):
            result = {"ttlMs": hint.ttl_ms, "cacheScope": hint.scope, **result}
        result_type = result.get("resultType")
        # tools/list is the export's sanitised surface, which the sieve keeps as it is: sieving thousands of tools per
        # list would cost more than the list (tests/integration/test_modern_path.py compares both paths). Nor does
        # it change a plain call result, and skipping it there takes about 90 µs off a call's latency.
        if method == "tools/call" and is_plain_call_result(result):
            result = dict(result)  # stamped below: the call's record (the audit log's) keeps the export's result
        elif method != "tools/list" and (not isinstance(result_type, str) or result_type in CORE_RESULT_TYPES):
            try:
                result = protocol.serialize_server_result(method, version, result)
            except ValidationError:  # as the SDK answers it: the gateway's fault, its details in the log only
                log.exception("the answer to %s is not valid for %s", method, version, extra={"method": method})
                raise MCPError(INTERNAL_ERROR, INVALID_RESULT) from None
        if result.get("resultType") is None:
            result["resultType"] = "complete"
        meta = result.get("_meta")
        if meta is None:
            result["_meta"] = {SERVER_INFO_META_KEY: self._stamp}
        elif isinstance(meta, dict) and meta.get(SERVER_INFO_META_KEY) is None:
            result["_meta"] = {**meta, SERVER_INFO_META_KEY: self._stamp}
        return result


async def _fail(reply: Reply, exc: Exception) -> None:
    """An exception as the SDK answers it on this era (`MCPError` as it says; anything else logged, and an internal
    error)."""
    error = modern_error_data(exc)
    await reply.error(error.code, error.message, error.data)


def _route(scope: Scope, message: Mapping[str, Any]) -> InboundModernRoute | None:
    """The request's envelope, if its routing headers (none repeated) agree with its body and its version is served."""
    routing: dict[str, str] = {}
    for name, value in scope["headers"]:
        if name in _ROUTING_HEADERS:
            key = name.decode("latin-1")
            if key in routing:
                return None  # first-copy and last-copy readers would disagree: the SDK refuses it
            routing[key] = value.decode("latin-1")
    route = classify_inbound_request(message, headers=routing)
    return route if isinstance(route, InboundModernRoute) else None


class Declarations:
    """The kinds of question an envelope's client capabilities (as sent) declare, with what they say of each, read as
    the SDK reads the envelope (a mis-shaped declaration is none). A client sends the same capabilities with every
    request: the latest few readings are kept, by their JSON (those of a small size only: a client decides it), and
    each request gets a fresh copy of its reading (a caller's `declared` is handed to plugins)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[bytes, bytes] = OrderedDict()

    def __call__(self, capabilities: object) -> Declared:
        if not isinstance(capabilities, dict) or all(capabilities.get(kind) is None for kind in ASKABLE):
            return {}
        try:
            key: bytes | None = pydantic_core.to_json(capabilities)
        except ValueError:  # no JSON (a lone surrogate): read, not kept
            key = None
        if key is not None and (reading := self._kept.get(key)) is not None:
            self._kept.move_to_end(key)
            return cast(Declared, pydantic_core.from_json(reading))
        try:
            kinds = declared_kinds(ClientCapabilities.model_validate(capabilities, by_name=False))
        except ValidationError:
            kinds = {}
        if key is not None and len(key) <= _DECLARATION_KEPT_BYTES:
            self._kept[key] = pydantic_core.to_json(kinds)
            if len(self._kept) > _DECLARATIONS_KEPT:
                self._kept.popitem(last=False)
        return kinds


@dataclass(frozen=True, eq=False)
class _Call:
    """What the direct path needs of a `tools/call` request."""

    scope: Scope
    request_id: RequestId
    version: str
    params: CallToolRequestParams
    capabilities: object
    """The envelope's client capabilities, as sent."""

    def askable(self, declared: Callable[[object], Declared]) -> Declared | None:
        """Which kinds of question its client takes, with what it declared of each (`declared`, of the envelope's
        capabilities); None when none can be asked and the request resumes no round: then the call needs no bridge."""
        kinds = declared(self.capabilities)
        if not kinds and self.params.request_state is None:
            return None
        return kinds


@dataclass(eq=False)
class _Round:
    """One request of a call (a call that asked its client has one per round): where its progress and log messages
    go, as the client asked in that request."""

    reply: Reply
    meta: Mapping[str, Any] | None
    token: ProgressToken | None = field(init=False)
    level: str | None = field(init=False)

    def __post_init__(self) -> None:
        self.token = self.meta.get("progress_token") if self.meta else None
        self.level = level_of_meta(self.meta)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.token is not None:  # as the SDK's session reports it: only to a request that asked
            await self.reply.progress(self.token, progress, total, message)

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        if allows(self.level, level):  # as the SDK's session sends a log notification
            notice = LoggingMessageNotificationParams(level=cast(LoggingLevel, level), data=data, logger=logger)
            params = notice.model_dump(by_alias=True, mode="json", exclude_none=True)
            await self.reply.notify("notifications/message", params)


@dataclass(eq=False)
class _Channel:
    """The request's `DispatchContext`: its notifications ride its reply; this era has no back channel."""

    reply: Reply
    request_id: RequestId
    progress_token: ProgressToken | None
    transport: TransportContext = _TRANSPORT
    message_metadata: None = None
    can_send_request: bool = False
    _cancel_requested: anyio.Event | None = field(default=None, repr=False)

    @property
    def cancel_requested(self) -> anyio.Event:
        """Never set: a 2026-07-28 client cancels by closing the stream, which cancels the request's scope."""
        if self._cancel_requested is None:
            self._cancel_requested = anyio.Event()
        return self._cancel_requested

    async def send_raw_request(
        self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None
    ) -> dict[str, Any]:
        raise NoBackChannelError(method)

    async def notify(self, method: str, params: Mapping[str, Any] | None, opts: CallOptions | None = None) -> None:
        await self.reply.notify(method, params)

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        if self.progress_token is not None:
            await self.reply.progress(self.progress_token, progress, total, message)


class _Hangup:
    """Cancels the request's `scope` when its client closes the connection (how this era cancels a request), until
    released: once the request is answered, a call that goes on (an input-required round) is its retry's. The
    gateway's server says at once that a connection was lost (`CONNECTION_EXTENSION`); under another ASGI server a
    task of the export's waits for the disconnect until released, as the SDK's waits until its handler ends."""

    def __init__(self, scope: Scope, receive: Receive, spawn: Callable[..., object]) -> None:
        self.scope = anyio.CancelScope()
        self._watching = True
        self._watcher: anyio.CancelScope | None = None
        self._unwatch: Callable[[], None] | None = None
        on_disconnect = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {}).get("on_disconnect")
        if on_disconnect is not None:
            self._unwatch = on_disconnect(self._lost)
        else:
            self._watcher = anyio.CancelScope()
            spawn(_until_disconnect, receive, self._lost, self._watcher)

    def release(self) -> None:
        if not self._watching:
            return
        self._watching = False
        if self._unwatch is not None:
            self._unwatch()
        if self._watcher is not None:
            self._watcher.cancel()

    def _lost(self) -> None:
        if self._watching:
            log.debug("request cancelled: the client closed the connection")
            self.scope.cancel()


async def _until_disconnect(receive: Receive, lost: Callable[[], None], scope: anyio.CancelScope) -> None:
    with scope:
        while (await receive())["type"] != "http.disconnect":
            pass
        lost()
