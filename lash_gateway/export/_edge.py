"""What every HTTP request passes before any route: the same rules for `/mcp`, `/sse`, `/admin`, `/healthz`,
`/readyz` and `/metrics`.

- `Host` and `Origin` must be the gateway's (`_hosts`): 421 and 403 otherwise, so a DNS-rebinding page
  cannot read server and tool names from `/readyz` either.
- A body arrives whole within `body_timeout` seconds and `max_body` bytes (408, 413): a request whose
  `Content-Length` promises more than is sent holds nothing for longer than that.
- A new session (an `initialize` POST without a session id, a `GET /sse`, a 2026-07-28 `subscriptions/listen`
  stream, which a client holds open as a session's stream, a session taken over from a gone replica) past
  `max_sessions` gets 503.

Then the MCP paths (`/mcp`, `/sse`, `/messages/`, and a virtual server's under each) go straight to the router
(`_router`), past Starlette's router and middleware (every tool call goes there, and those layers wrap each request
once more), and everything else to the Starlette app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import anyio
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._hosts import HostRules
from .._sdk import admitting

FORWARDED: Final = b"x-lash-forwarded"
"""Set on a request one replica hands to another (`_forward`; its value: the replica that handed it on). Such a
request is served where it arrives, never handed on again."""
HOLDS_PLACE: Final = "lash_gateway.holds_place"
"""In a request's scope: it holds a place among `max_sessions`, for the session it opens (a session taken over from
a gone replica is opened again only by such a request)."""

NOT_HELD: Final = "x-lash-not-held"
"""On a 404 from a replica that was handed a request of a session it does not hold (any more): the replica that
handed it asks the store where the session went."""

if TYPE_CHECKING:
    from ._endpoint import HttpEndpoint
    from ._forward import Forwarder
    from ._router import Route, Router

__all__ = ["CONNECTION_EXTENSION", "RETRY_BRIEF", "RETRY_WHEN_FULL", "TOKEN_ID", "Edge", "reply"]

log = logging.getLogger("lash_gateway.edge")

_MODERN_VERSIONS: Final = frozenset(version.encode() for version in MODERN_PROTOCOL_VERSIONS)
_LISTEN: Final = b"subscriptions/listen"
_READ: Final = frozenset(
    {
        b"host",
        b"origin",
        b"content-length",
        b"transfer-encoding",
        b"mcp-session-id",
        b"mcp-protocol-version",
        b"mcp-method",
        FORWARDED,
    }
)
"""The headers the edge reads."""
_PASSED_KEPT: Final = 64
"""(Host, Origin) pairs remembered as passing; clients send the same pair on every request."""
RETRY_BRIEF: Final = 1
"""Seconds a 503 for a passing state (an endpoint closing, a session's replica on its way) asks its client to wait."""
RETRY_WHEN_FULL: Final = 5
"""Seconds a 503 for want of room (a limit on sessions or streams) asks its client to wait: a place frees only as a
session or a stream ends, and every refusal is logged."""
CONNECTION_EXTENSION: Final = "lash_gateway.connection"
"""An ASGI scope extension of the gateway's own server (`_serving`), in `scope["extensions"][CONNECTION_EXTENSION]`:
`abort()` resets the connection without flushing what is buffered for it, `buffered()` says how many bytes wait in
that buffer (so whether a client still reads), and `on_disconnect(callback)` has `callback()` called the moment the
client's connection is lost (no task has to wait on `receive()` for it); it returns the function that takes the
callback back, which a request calls once it is done; `received()` says whether the request's body has arrived whole
(so reading it cannot wait)."""
TOKEN_ID: Final = "lash_gateway.token_id"
"""Where the router (`_router`) leaves the id of the client token a request carried, in its ASGI scope: limits and
the audit log count calls by it (the token itself goes no further than the router)."""


class Edge:
    """The outermost ASGI app of the gateway."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        router: Router,
        rules: HostRules,
        max_body: int,
        body_timeout: float,
        max_sessions: int,
        open_sessions: Callable[[], int],
        on_refused: Callable[[], None],
        forwarder: Forwarder | None = None,
    ) -> None:
        """`forwarder` hands a request of a session another replica holds to that replica (replicas only)."""
        self._app, self._router = app, router
        self._forwarder = forwarder
        self._rules = rules
        self._max_body, self._body_timeout = max_body, body_timeout
        self._max_sessions, self._open_sessions, self._on_refused = max_sessions, open_sessions, on_refused
        self._opening = 0
        """Initializes past the session limit's check whose sessions are not counted yet (see `_open_session`)."""
        self._passed: set[tuple[bytes | None, bytes | None]] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":  # no route takes one, and none would be checked: refuse them here
            await send({"type": "websocket.close", "code": 1008})
            return
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        read: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            if name in _READ:
                read.setdefault(name, value)  # the first of repeated headers, as Starlette (and so the SDK) reads them
        host, origin, length = read.get(b"host"), read.get(b"origin"), read.get(b"content-length")
        session, version, forwarded = (
            read.get(b"mcp-session-id"),
            read.get(b"mcp-protocol-version"),
            read.get(FORWARDED),
        )
        if (host, origin) not in self._passed:
            if not self._rules.host_allowed(_text(host)):
                await reply(send, 421, "the Host header names no host this gateway serves (DNS rebinding check)")
                return
            if not self._rules.origin_allowed(_text(origin)):
                await reply(send, 403, "requests from this Origin are not allowed (gateway.allowed_origins)")
                return
            if len(self._passed) < _PASSED_KEPT:
                self._passed.add((host, origin))
        route = self._router.route(scope)
        opens = self._opens_session(route, scope["method"], session, version)
        if opens and self._full():  # before the body is read
            await self._refuse_session(send)
            return
        body: Message | None = None
        inner = receive
        if length not in (None, b"0") or b"transfer-encoding" in read:
            body = await self._read_body(scope, inner, send, length)
            if body is None:
                return
            receive = _replaying(body, inner)
        if route is None:
            await self._app(scope, receive, send)
            return
        endpoint = await self._router.admit(route, scope, send)  # who the client is first: nothing for a stranger
        if endpoint is None:
            return
        forwarder = self._forwarder
        if forwarder is not None and forwarded is not None and session is not None and route[0] == "mcp":
            if not forwarder.holds(session):  # taken over from here: the replica that sent it asks the store again
                await reply(send, 404, "Session not found", rpc=True, headers=[(NOT_HELD.encode(), b"1")])
                return
            opens = forwarder.adopting(session, scope["method"])  # as below: sent here to be taken over
        elif forwarder is not None and forwarded is None and route[0] == "mcp" and version not in _MODERN_VERSIONS:
            if session is not None:  # a 2026-07-28 request has none that counts: any replica answers it
                if body is None:  # a GET's or DELETE's empty body, taken now: the forwarder listens past it
                    body = await inner()
                    if body["type"] != "http.request":
                        return  # the client went away
                    receive = _replaying(body, inner)
                # Taking a gone replica's session over needs a place, held from the claim on: never claimed here to
                # be refused here (a DELETE, which only ends the claim, needs none).
                place = self._place if scope["method"] != "DELETE" else _no_place_needed
                if await forwarder.serve(session, scope, body.get("body", b""), inner, send, place):
                    return
                opens = forwarder.adopting(session, scope["method"])  # a session taken over counts as a new one
            elif scope["method"] == "POST":  # an initialize, if it succeeds
                send = forwarder.remembering(body["body"] if body is not None else b"", send)
        # A listen the SDK serves says so in its Mcp-Method header: it refuses a header that is not the body's method.
        listen = route[0] == "mcp" and _listens(scope["method"], version, read.get(b"mcp-method"))
        if (opens or listen) and self._full():  # again, with the body in: requests that came together are each seen
            await self._refuse_session(send)
            return
        # From here until the new session is counted (or holds a place), nothing awaits.
        if listen:
            await endpoint.listen(scope, receive, send)  # counted as it starts
        elif opens and route[0] == "mcp":
            scope[HOLDS_PLACE] = True
            await self._open_session(route, endpoint, scope, receive, send)
        else:  # an SSE stream is counted as it starts
            if session is None and route[0] == "mcp" and version not in _MODERN_VERSIONS:
                send = _when_full(send)  # a GET or DELETE without a session: the SDK's manager may refuse it one
            await self._router.dispatch(route, endpoint, scope, receive, send)

    async def _open_session(
        self, route: Route, endpoint: HttpEndpoint, scope: Scope, receive: Receive, send: Send
    ) -> None:
        """Serve an initialize (or whatever else would open a session), holding a place until the SDK has decided on
        its session (made and counted it, or refused it), or has answered without deciding."""
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                self._opening -= 1

        refusable = _when_full(send)

        async def answering(message: Message) -> None:
            if message["type"] == "http.response.start":
                release()
            await refusable(message)

        self._opening += 1
        try:
            with admitting(release):
                await self._router.dispatch(route, endpoint, scope, receive, answering)
        finally:
            release()

    def _full(self) -> bool:
        return self._open_sessions() + self._opening >= self._max_sessions

    @contextmanager
    def _place(self) -> Iterator[bool]:
        """A place among `max_sessions`, held while this lasts (False: there is none). Whoever holds it takes the next
        one at once (`_open_session`), with no await between."""
        if self._full():
            yield False
            return
        self._opening += 1
        try:
            yield True
        finally:
            self._opening -= 1

    async def _refuse_session(self, send: Send) -> None:
        self._on_refused()
        log.warning(
            "new session refused: %d sessions are open or opening, the limit is gateway.export.max_sessions=%d",
            self._open_sessions() + self._opening,
            self._max_sessions,
            extra={"limit": self._max_sessions},
        )
        await reply(
            send,
            503,
            f"the gateway has {self._max_sessions} open sessions, its limit (gateway.export.max_sessions); "
            "try again when idle sessions have expired",
            rpc=True,
            retry_after=RETRY_WHEN_FULL,
        )

    def _opens_session(self, route: Route | None, method: str, session: bytes | None, version: bytes | None) -> bool:
        """A `GET` of an SSE stream, or a POST to an MCP path without a session id that is not a (stateless)
        2026-07-28 request: an initialize, or something the SDK refuses anyway."""
        if route is None or route[0] == "messages":
            return False
        if route[0] == "sse":
            return method == "GET"
        return method == "POST" and session is None and version not in _MODERN_VERSIONS

    async def _read_body(self, scope: Scope, receive: Receive, send: Send, length: bytes | None) -> Message | None:
        """The whole body as one message, or None once an error was answered."""
        try:
            declared = int(length) if length is not None else 0
        except ValueError:
            declared = 0
        if declared > self._max_body:  # not read at all: the connection closes
            await reply(send, 413, f"the request body is over {self._max_body} bytes", close=True)
            return None
        received = scope.get("extensions", {}).get(CONNECTION_EXTENSION, {}).get("received")
        if received is not None and received():  # the usual small POST: a timer would cost more than the read
            return await self._gather(receive, send)
        with anyio.move_on_after(self._body_timeout):
            return await self._gather(receive, send)
        await reply(send, 408, f"the request body did not arrive within {self._body_timeout:g}s", close=True)
        return None

    async def _gather(self, receive: Receive, send: Send) -> Message | None:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self._max_body:  # uvicorn reads the rest and drops it, so the client can read this
                await reply(send, 413, f"the request body is over {self._max_body} bytes")
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}


@contextmanager
def _no_place_needed() -> Iterator[bool]:
    """As `Edge._place`, for a request that opens no session."""
    yield True


def _listens(method: str, version: bytes | None, rpc_method: bytes | None) -> bool:
    """A 2026-07-28 `subscriptions/listen` POST: its answer is a stream the client holds open."""
    return method == "POST" and rpc_method == _LISTEN and version in _MODERN_VERSIONS


def _text(value: bytes | None) -> str | None:
    return value.decode("latin-1") if value is not None else None


def _replaying(body: Message, receive: Receive) -> Receive:
    """`receive` with the body handed out once first."""
    pending = [body]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def reply(
    send: Send,
    status: int,
    message: str,
    *,
    rpc: bool = False,
    close: bool = False,
    headers: Sequence[tuple[bytes, bytes]] = (),
    retry_after: int = RETRY_BRIEF,
) -> None:
    """A JSON error answer; `rpc`: shaped as a JSON-RPC error, for MCP clients; `close`: the connection ends;
    `retry_after`: the seconds a 503 asks its client to wait before it tries again."""
    payload = (
        {"jsonrpc": "2.0", "id": None, "error": {"code": -32000, "message": message}} if rpc else {"error": message}
    )
    body = json.dumps(payload).encode()
    fields = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers]
    if status == 503:
        fields = _retry_later(fields, retry_after)
    if close:
        fields.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": fields})
    await send({"type": "http.response.body", "body": body})


def _retry_later(headers: Iterable[tuple[bytes, bytes]], seconds: int) -> list[tuple[bytes, bytes]]:
    """A 503's headers with `Retry-After` (unless they have one): a client told nothing may retry at once."""
    fields = list(headers)
    if not any(name.lower() == b"retry-after" for name, _ in fields):
        fields.append((b"retry-after", b"%d" % seconds))
    return fields


def _when_full(send: Send) -> Send:
    """`send` for a request the SDK's session manager may refuse a session (503, past a virtual server's
    `max_sessions`): its refusal says when to retry, as the gateway's own do."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start" and message["status"] == 503:
            message = {**message, "headers": _retry_later(message.get("headers", ()), RETRY_WHEN_FULL)}
        await send(message)

    return sending
