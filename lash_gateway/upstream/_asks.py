"""An upstream's questions (sampling, elicitation, roots) answered by the caller whose request caused them.

MCP ties a server-to-client request to one of the client's requests only by the stream it rides, and the SDK
client does not say which: its callbacks get the server's own request id. The owner is found, in order:

1. the calling task's context: the request was sent from a task that set `_CURRENT` (`Asks.asking`), and the SDK
   ran the callback in a copy of that context. This holds on streamable HTTP, where a request riding a POST's
   stream is handled in the context of the task that sent the POST, and for a 2026-07-28 server's input-required
   rounds, which the gateway answers in the calling task itself (`answer_input_requests`);
2. the only request in flight on this connection, when the context names none: nothing else in flight can have
   caused it (a server's background job that asks on its own is the one case this misjudges; such servers
   belong behind `per_client`);
3. otherwise nobody: with several requests in flight on a shared stdio or SSE connection the owner is not
   knowable, and asking the wrong client would leak one client's question to another. The server gets an error
   that says so (and how to avoid it: `per_client`, or a streamable-HTTP upstream).

The server gets an error too when the owner cannot answer (its client did not declare the capability).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Final

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.client.context import ClientRequestContext
from pydantic import BaseModel, ValidationError

from lash_core import ASKED_AS, Caller, CallerRequest, CallerUnsupported

from .._declared import unwelcome
from .._errors import UpstreamCallError
from ._describe import describe_error

__all__ = ["MAX_INPUT_ROUNDS", "Asks", "answer_input_requests", "paused"]

MAX_INPUT_ROUNDS: Final = 10
"""Input-required rounds one request may take before the gateway gives up on the server."""


@dataclass(frozen=True, eq=False, slots=True)
class _Asking:
    """A request in flight: who to ask, and its time limit, which stops while its caller answers (a person
    filling in a form must not use up the call's time)."""

    caller: Caller
    scope: anyio.CancelScope


_CURRENT: ContextVar[_Asking | None] = ContextVar("lash_gateway_upstream_caller", default=None)

_METHODS: Final[Mapping[str, CallerRequest]] = {
    "sampling/createMessage": "sampling",
    "elicitation/create": "elicitation",
    "roots/list": "roots",
}


class Asks:
    """The callers of one connection's requests in flight, and the SDK client callbacks that reach them."""

    def __init__(self, server: str) -> None:
        self._server = server
        self._in_flight: list[_Asking] = []

    @contextmanager
    def asking(self, caller: Caller, scope: anyio.CancelScope) -> Iterator[None]:
        """While this lasts, a request sent from this task is in flight for `caller`, its time limit `scope`'s."""
        asking = _Asking(caller, scope)
        token = _CURRENT.set(asking)
        self._in_flight.append(asking)
        try:
            yield
        finally:
            self._in_flight.remove(asking)
            _CURRENT.reset(token)

    async def sampling(
        self, context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        result_type: type[BaseModel] = (
            types.CreateMessageResultWithTools if params.tools or params.tool_choice else types.CreateMessageResult
        )
        return await self._ask("sampling", _wire(params), result_type)  # type: ignore[return-value]

    async def elicitation(
        self, context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        return await self._ask("elicitation", _wire(params), types.ElicitResult)  # type: ignore[return-value]

    async def roots(self, context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        return await self._ask("roots", {}, types.ListRootsResult)  # type: ignore[return-value]

    async def _ask(
        self, request: CallerRequest, params: dict[str, Any], result_type: type[BaseModel]
    ) -> BaseModel | types.ErrorData:
        owner = self._owner(request)
        if isinstance(owner, str):
            return types.ErrorData(code=types.INVALID_REQUEST, message=owner)
        try:
            with paused(owner.scope):
                answer = await owner.caller.ask(request, params)
            return result_type.model_validate(answer, by_name=False)
        except CallerUnsupported as exc:
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"lash-gateway: {exc}")
        except MCPError as exc:
            return types.ErrorData(code=exc.code, message=exc.message, data=exc.data)
        except ValidationError as exc:
            return types.ErrorData(
                code=types.INTERNAL_ERROR, message=f"lash-gateway: the client answered {request} malformed: {exc}"
            )
        except Exception as exc:  # the client went away mid-question, and the like: the server hears why
            return types.ErrorData(
                code=types.INTERNAL_ERROR, message=f"lash-gateway: {request} not answered: {describe_error(exc)}"
            )

    def _owner(self, request: CallerRequest) -> _Asking | str:
        """The request whose caller to ask, or why there is none."""
        current = _CURRENT.get()
        if current is not None:
            if any(asking is current for asking in self._in_flight):
                return current
            # It names its call, and that call is over: whoever is in flight now did not cause it.
            return f"lash-gateway: {request} refused: the request of server {self._server!r} it belongs to is over"
        if len(self._in_flight) == 1:
            return self._in_flight[0]
        if not self._in_flight:
            return (
                f"lash-gateway: {request} refused: no request to server {self._server!r} is in flight, so no client "
                "can be asked"
            )
        return (
            f"lash-gateway: {request} refused: {len(self._in_flight)} requests are in flight on the shared "
            f"connection to server {self._server!r} and nothing tells which one this belongs to; asking a client "
            "that did not cause it would leak the question. Give the server its own connection per client "
            '("per_client": true) or serve it over streamable HTTP'
        )


async def answer_input_requests(server: str, caller: Caller, requests: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's answers to a 2026-07-28 server's input requests (`inputRequests` of an input-required result),
    asked all at once: a caller that relays them as one round (a 2026-07-28 client) gets them together.

    Raises:
        UpstreamCallError: a request is malformed, or the caller cannot or will not answer it.
    """
    asked: dict[str, tuple[CallerRequest, Mapping[str, Any]]] = {}
    for key, request in requests.items():
        method = request.get("method") if isinstance(request, Mapping) else None
        kind = _METHODS.get(method) if isinstance(method, str) else None
        if kind is None:
            raise UpstreamCallError(server, "input request", types.INVALID_PARAMS, f"unknown input request {method!r}")
        params = request.get("params")
        asked[key] = (kind, params if isinstance(params, Mapping) else {})
    for kind, params in asked.values():  # a round the caller refuses in part is refused before anyone is asked
        if (refused := unwelcome(caller, kind, params)) is not None:
            raise UpstreamCallError(server, "input request", types.INVALID_REQUEST, refused)
    answers: dict[str, Any] = {}
    refusals: list[UpstreamCallError] = []

    async def ask(key: str, kind: CallerRequest, params: Mapping[str, Any]) -> None:
        token = ASKED_AS.set(key)  # a caller that relays it in rounds of its own keeps the server's name
        try:
            answers[key] = dict(await caller.ask(kind, params))
        except CallerUnsupported as exc:
            refusals.append(UpstreamCallError(server, "input request", types.INVALID_REQUEST, str(exc)))
        except MCPError as exc:
            refusals.append(UpstreamCallError(server, "input request", exc.code, exc.message))
        finally:
            ASKED_AS.reset(token)

    async with anyio.create_task_group() as tg:
        for key, (kind, params) in asked.items():
            tg.start_soon(ask, key, kind, params)
    if refusals:
        raise refusals[0]
    return answers


_PAUSED: dict[anyio.CancelScope, tuple[int, float]] = {}
"""Scopes whose clock is stopped -> (how many pauses hold it, the time they had left)."""


@contextmanager
def paused(scope: anyio.CancelScope) -> Iterator[None]:
    """While this lasts, `scope`'s clock stops: the time it had left is what it has when the last pause ends.
    (Each question has a time limit of its own, so a caller that never answers still ends.)"""
    holders, left = _PAUSED.get(scope, (0, scope.deadline - anyio.current_time()))
    _PAUSED[scope] = (holders + 1, left)
    scope.deadline = math.inf
    try:
        yield
    finally:
        holders, left = _PAUSED.pop(scope)
        if holders > 1:
            _PAUSED[scope] = (holders - 1, left)
        else:
            scope.deadline = anyio.current_time() + left


def _wire(params: BaseModel) -> dict[str, Any]:
    return params.model_dump(by_alias=True, exclude_none=True, mode="json")
