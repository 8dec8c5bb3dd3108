"""The downstream client as a lash `Caller`: an upstream's questions (sampling, elicitation, roots) asked of the
client whose request caused them.

A handshake-era request served by the SDK asks on that request's own stream (`related_request_id`), so the
client's SDK knows which of its calls the question belongs to; a call answered by the fast path asks on the
client's standing stream (the GET stream of streamable HTTP), which any client that takes server requests keeps
open. A handler is given only for what the client declared: for the rest the upstream hears "not supported".
Every question waits at most `timeout` seconds: a client that never answers must not pin the call for ever.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final

import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.shared.message import ServerMessageMetadata
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from lash_core import NO_CALLER, Caller, CallerRequest, CallerUnsupported

from .._declared import ASKABLE, undeclared
from .._sdk import connection_of

__all__ = [
    "DEFAULT_ASK_TIMEOUT",
    "Declared",
    "caller_of",
    "connection_caller",
    "declared",
    "declared_kinds",
    "request_caller",
]

DEFAULT_ASK_TIMEOUT: Final = 300.0
"""Seconds a client gets to answer one question (a person may be answering a form)."""

_CALLER_KEY: Final = "lash_gateway.caller"
"""Where a connection's `Caller` lives in its `state`."""
_Send = Callable[[types.ServerRequest, type[BaseModel]], Awaitable[BaseModel]]
Declared = Mapping[CallerRequest, dict[str, Any]]
"""The kinds of question a client declared it takes, each with what it declared of it (`{"form": {}}`), in wire form."""
Ask = Callable[[CallerRequest, Mapping[str, Any]], Awaitable[Mapping[str, Any]]]
"""Sends a client one question (its kind, its params) and returns the client's answer."""


def request_caller(ctx: ServerRequestContext[Any, Any], timeout: float = DEFAULT_ASK_TIMEOUT) -> Caller:
    """Ask the client that made the request `ctx`, on that request's stream."""
    session = ctx.session
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS or not session.can_send_request:
        return NO_CALLER  # no back channel: 2026-07-28 requests are asked through input-required rounds (`_bridge`)
    metadata = ServerMessageMetadata(related_request_id=ctx.request_id)

    async def send(request: types.ServerRequest, result_type: type[BaseModel]) -> BaseModel:
        return await session.send_request(request, result_type, request_read_timeout_seconds=timeout, metadata=metadata)

    return _caller(send, declared(ctx))


def connection_caller(connection: Connection, timeout: float = DEFAULT_ASK_TIMEOUT) -> Caller:
    """Ask a handshake-era client on its standing stream (for calls the fast path answers). Made once per
    connection: what a client declared does not change after its handshake."""
    caller: Caller | None = connection.state.get(_CALLER_KEY)
    if caller is not None:
        return caller
    if not connection.has_standalone_channel:
        return NO_CALLER

    async def send(request: types.ServerRequest, result_type: type[BaseModel]) -> BaseModel:
        return await connection.send_request(request, result_type=result_type, opts={"timeout": timeout})

    caller = connection.state[_CALLER_KEY] = _caller(send, declared_kinds(connection.client_capabilities))
    return caller


def declared(ctx: ServerRequestContext[Any, Any]) -> Declared:
    """The kinds of question the client of `ctx` declared it takes (on 2026-07-28: in the request itself)."""
    return declared_kinds(connection_of(ctx).client_capabilities)


def declared_kinds(capabilities: types.ClientCapabilities | None) -> Declared:
    """The kinds of question `capabilities` say a client takes, each with what they say of it, in wire form."""
    if capabilities is None:
        return {}
    return {
        kind: value.model_dump(by_alias=True, exclude_none=True, mode="json")
        for kind in ASKABLE
        if (value := getattr(capabilities, kind)) is not None
    }


def caller_of(kinds: Declared, ask: Ask) -> Caller:
    """The caller that asks a client what it declared (`kinds`) with `ask(kind, params)`, and refuses the rest: a
    kind it did not declare, and what it did not declare of a kind (a URL to open, tools to sample with), which a
    server must not send it (one that heard the gateway's own capabilities may)."""
    if not kinds:
        return NO_CALLER

    def handler(kind: CallerRequest) -> Callable[[Mapping[str, Any]], Awaitable[Mapping[str, Any]]] | None:
        declared = kinds.get(kind)
        if declared is None:
            return None

        async def asking(params: Mapping[str, Any]) -> Mapping[str, Any]:
            refused = undeclared(kind, params, declared)
            if refused is not None:
                raise CallerUnsupported(kind, refused)
            return await ask(kind, params)

        return asking

    return Caller(
        on_sampling=handler("sampling"),
        on_elicitation=handler("elicitation"),
        on_roots=handler("roots"),
        declared=kinds,
    )


def _caller(send: _Send, kinds: Declared) -> Caller:
    return caller_of(kinds, partial(_ask, send))


async def _ask(send: _Send, kind: str, params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Send one question and return the client's answer in wire form.

    Raises:
        MCPError: the question is malformed (`INVALID_PARAMS`), or the client refused or did not answer in time.
    """
    request: types.ServerRequest
    result_type: type[BaseModel]
    try:
        if kind == "sampling":
            request = types.CreateMessageRequest.model_validate({"method": "sampling/createMessage", "params": params})
            with_tools = request.params.tools or request.params.tool_choice
            result_type = types.CreateMessageResultWithTools if with_tools else types.CreateMessageResult
        elif kind == "elicitation":
            request = types.ElicitRequest.model_validate({"method": "elicitation/create", "params": params})
            result_type = types.ElicitResult
        else:
            request, result_type = types.ListRootsRequest(), types.ListRootsResult
    except ValidationError as exc:
        raise MCPError(types.INVALID_PARAMS, f"lash-gateway: malformed {kind} request: {exc}") from None
    result = await send(request, result_type)
    return result.model_dump(by_alias=True, exclude_none=True, mode="json")
