"""Handshake-era sessions across replicas: a request of a session another replica holds is handed to that replica,
and a session whose replica is gone is taken over. A load balancer then needs no affinity.

- **Where a session lives.** Replicas name their streamable-HTTP sessions `<replica>-<uuid>`
  (`_sdk.prefix_session_ids`), so the replica a request lands on reads the holder from the `Mcp-Session-Id` and its
  address from the replicas' heartbeats, with no lookup. A session taken over lives elsewhere than its name says:
  the store knows where (`SessionDirectory`), and each replica remembers what it looked up.
- **Handing over.** The request goes to the holder as it came (the client's token included: the holder checks it as
  its own clients'), and the answer streams back as it is written, so progress, the client's answers to the holder's
  questions, the GET stream and a session's DELETE work wherever they land. A client that goes away closes the
  forwarded request too, which ends its call on the holder. A request is handed on once at most (`FORWARDED`).
- **Taking over.** When the holder is gone (its heartbeat is stale, or its port refuses connections), the first
  replica that gets a request of the session claims it in the store and opens it again under its id (`_adopt`); the
  others hand the session's requests to that one from then on. An answer that was streaming from the gone replica
  ends with a JSON-RPC error for its call, so its client does not wait for what will never come.
"""

from __future__ import annotations

import enum
import json
import logging
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import AbstractContextManager, asynccontextmanager
from functools import partial
from typing import Any, Final, Protocol

import anyio
import httpx2
from starlette.types import Message, Receive, Scope, Send

from .._errors import StoreError
from ._adopt import Adoptions
from ._edge import FORWARDED, NOT_HELD, reply

__all__ = ["DEAD_AFTER", "Forwarder", "SessionDirectory"]

log = logging.getLogger("lash_gateway.forward")

_NOT_PASSED: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"transfer-encoding", b"upgrade"}
)
"""Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, not the request."""
_CONNECT_TIMEOUT: Final = 5.0
_KEEPALIVE: Final = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1),
    *(
        (socket.IPPROTO_TCP, getattr(socket, name), value)
        for name, value in (("TCP_KEEPIDLE", 5), ("TCP_KEEPINTVL", 2), ("TCP_KEEPCNT", 3))
        if hasattr(socket, name)  # Linux; elsewhere the system's defaults
    ),
]
"""A connection to a replica that stops answering at the TCP level is dropped after about 11 s of silence."""
_UNREACHABLE_FOR: Final = 10.0
"""Seconds a replica whose port refused a connection is taken for gone, whatever its last heartbeat says."""
_CLAIM_RETRY: Final = 0.25
"""Seconds between two claims of a session whose holder refuses connections but still beats."""
DEAD_AFTER: Final = 3.0
"""Seconds without a heartbeat after which a replica is taken for gone (three beats missed)."""
_MOVED_KEPT: Final = 10_000
"""Sessions taken over elsewhere whose holder this replica remembers."""
_GONE: Final = "lash-gateway: the replica serving this call stopped before it ended; call it again"
MAX_OPENING_BYTES: Final = 64 * 1024
"""Largest initialize request kept in the store (a real one is a few hundred bytes): a session opened with a larger
one cannot be taken over, so that clients cannot fill the store."""


class _Outcome(enum.Enum):
    ANSWERED = enum.auto()
    REFUSED = enum.auto()
    """The replica refused the connection: nothing was sent to the client."""
    NOT_HELD = enum.auto()
    """The replica does not hold the session (any more): nothing was sent to the client."""


class _NotNow(Exception):
    """The request cannot be served now (503, retry): its session's holder refuses this replica's connections yet
    beats in the store, or the holder is gone and this replica has no room to take the session over."""


class SessionDirectory(Protocol):
    """Which replica holds which session (the shared store)."""

    async def remember_session(self, session: str, opening: bytes) -> None: ...

    async def session_holder(self, session: str) -> str | None: ...

    async def claim_session(self, session: str, holder: str) -> bytes | None:
        """Take `session` from `holder` if its heartbeat is stale; its initialize request, or None."""


class Forwarder:
    """Sends each request of a session to the replica that holds it, while `running()`."""

    def __init__(
        self,
        replica: str,
        address: Callable[[str], str | None],
        directory: SessionDirectory,
        spawn: Callable[[Callable[[], Coroutine[Any, Any, object]]], None],
        holds: Callable[[str], bool],
        session_idle_timeout: float,
    ) -> None:
        """`address(replica)` is where a live replica is reached (None: unknown, or silent too long); `spawn` runs
        the store's writes that no answer waits for; `holds(session)` says whether this replica serves it now; a
        session taken over and not used within `session_idle_timeout` seconds is let go."""
        self.replica = replica
        self.prefix = replica + "-"
        self.adoptions = Adoptions(session_idle_timeout)
        """Sessions this replica took over, opened again by the endpoint their next request reaches."""
        self._address = address
        self._directory = directory
        self._spawn = spawn
        self._holds = holds
        self._client: httpx2.AsyncClient | None = None
        self._unreachable: dict[str, float] = {}
        self._moved: OrderedDict[str, str] = OrderedDict()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        timeout = httpx2.Timeout(_CONNECT_TIMEOUT, read=None)  # a session's GET stream stays open for hours
        limits = httpx2.Limits(max_connections=None, max_keepalive_connections=64)
        # No read timeout, so TCP keepalive is what notices a holder whose machine vanished without a reset: its
        # answers in flight then end with an error for their calls instead of waiting for ever.
        transport = httpx2.AsyncHTTPTransport(limits=limits, socket_options=_KEEPALIVE)
        async with httpx2.AsyncClient(timeout=timeout, transport=transport) as client:
            self._client = client
            try:
                yield
            finally:
                self._client = None

    def remembering(self, opening: bytes, send: Send) -> Send:
        """`send` of an initialize request (`opening`): once its answer names the new session, the store learns
        that this replica holds it, and how to open it again."""

        async def remember(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                for name, value in message.get("headers", ()):
                    if name.lower() == b"mcp-session-id":
                        self._spawn(partial(self._remember, value.decode("latin-1"), opening))
            await send(message)

        return remember

    async def _remember(self, session: str, opening: bytes) -> None:
        if len(opening) > MAX_OPENING_BYTES:
            log.warning(
                "session %s is not in the store: its initialize request is over %d bytes; it cannot be taken over",
                session,
                MAX_OPENING_BYTES,
                extra={"session": session},
            )
            return
        try:
            await self._directory.remember_session(session, opening)
        except StoreError as exc:
            log.warning(
                "session %s is not in the store: no other replica can take it over: %s",
                session,
                exc,
                extra={"session": session, "reason": str(exc)},
            )

    async def serve(
        self,
        session: bytes,
        scope: Scope,
        body: bytes,
        receive: Receive,
        send: Send,
        place: Callable[[], AbstractContextManager[bool]],
    ) -> bool:
        """Hand the request (its `body` read already) to the replica that holds `session`; False: it is (now) this
        replica's to serve. `receive` is only listened to for the client's leaving: it must not hand out the body.
        A session whose holder is gone is claimed only with a `place()` here (among the sessions this replica may
        hold), held until the claim is made: else a replica with room may take it."""
        text = session.decode("latin-1")
        ask_store = False
        for _ in range(3):  # a holder that refuses the connection, or no longer holds the session: ask again
            try:
                holder = await self._destination(text, place, ask_store)
            except _NotNow as exc:
                await reply(send, 503, str(exc), rpc=True)
                return True
            if holder is None:
                return False
            log.debug(
                "session %s: %s %s handed to replica %s",
                text,
                scope["method"],
                scope["path"],
                holder[0],
                extra={"replica": holder[0]},
            )
            outcome = await self._forward(holder[1], scope, body, receive, send)
            if outcome is _Outcome.ANSWERED:
                return True
            if outcome is _Outcome.REFUSED:
                self._unreachable[holder[0]] = anyio.current_time() + _UNREACHABLE_FOR
                log.warning(
                    "replica %s refuses connections: taken for gone",
                    holder[0],
                    extra={"replica": holder[0], "replica_url": holder[1]},
                )
            self._moved.pop(text, None)
            ask_store = True  # not where its name or this replica's memory says: the store knows where it went
        await reply(send, 503, "the replica holding this session cannot be found; retry", rpc=True)
        return True

    def _live(self, replica: str) -> str | None:
        until = self._unreachable.get(replica)
        if until is not None:
            if anyio.current_time() < until:
                return None
            del self._unreachable[replica]
        return self._address(replica)

    def holds(self, session: bytes) -> bool:
        """Whether this replica serves `session` now, or opens it at its next request (taken over)."""
        text = session.decode("latin-1")
        return self._holds(text) or self.adoptions.pending(text)

    def adopting(self, session: bytes, method: str) -> bool:
        """Whether a request (by its HTTP `method`) of `session`, taken over from a gone replica, opens the session
        again here: not a DELETE (which ends it), nor a request that waits while another opens it."""
        text = session.decode("latin-1")
        return method != "DELETE" and self.adoptions.pending(text) and not self.adoptions.opening(text)

    async def _destination(
        self, session: str, place: Callable[[], AbstractContextManager[bool]], ask_store: bool = False
    ) -> tuple[str, str] | None:
        """The replica that holds `session` and its address, if another live one does; None: serve it here (taken
        over now, if its holder is gone).

        Raises:
            _NotNow: its holder refuses this replica's connections, yet goes on beating in the store; or the holder
                is gone and this replica has no `place()` for it.
        """
        named, dash, _ = session.partition("-")
        if not dash:
            return None
        if named == self.replica:
            if self._holds(session):
                return None
        elif not ask_store and session not in self._moved and (address := self._live(named)) is not None:
            return named, address
        deadline = anyio.current_time() + DEAD_AFTER + 1
        try:
            while True:
                holder = self._moved.get(session) or await self._directory.session_holder(session)
                if holder is None or holder == self.replica:
                    return None
                address = self._live(holder)
                if address is not None:
                    self._note_moved(session, holder)
                    return holder, address
                with place() as room:
                    if not room:
                        raise _NotNow("this replica is at its session limit (gateway.export.max_sessions); retry")
                    opening = await self._directory.claim_session(session, holder)
                if opening is not None:
                    self._moved.pop(session, None)
                    self.adoptions.expect(session, opening)
                    log.info(
                        "taking over session %s from replica %s, which is gone",
                        session,
                        holder,
                        extra={"session": session, "replica": holder},
                    )
                    return None
                self._moved.pop(session, None)
                if await self._directory.session_holder(session) != holder:
                    continue  # another replica claimed it first: ask again who
                if anyio.current_time() >= deadline:
                    raise _NotNow(f"replica {holder}, which holds this session, cannot be reached; retry")
                # It refused us, but its heartbeat is fresh: taking the session now could leave it on two replicas.
                # Nothing announces a heartbeat going stale, so the claim is tried again shortly.
                await anyio.sleep(_CLAIM_RETRY)
        except StoreError as exc:
            log.warning("cannot find the holder of session %s: %s", session, exc, extra={"session": session})
        return None

    def _note_moved(self, session: str, holder: str) -> None:
        self._moved[session] = holder
        self._moved.move_to_end(session)
        if len(self._moved) > _MOVED_KEPT:
            self._moved.popitem(last=False)

    async def _forward(self, address: str, scope: Scope, body: bytes, receive: Receive, send: Send) -> _Outcome:
        """Hand the request to `address` and stream its answer back (or say why nothing was answered)."""
        client = self._client
        if client is None:
            await reply(send, 503, "the gateway is not running", rpc=True)
            return _Outcome.ANSWERED
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
            except httpx2.ConnectError:
                tg.cancel_scope.cancel()
                return _Outcome.REFUSED
            except httpx2.HTTPError as exc:
                log.warning(
                    "a request could not be handed to the replica at %s: %s",
                    address,
                    type(exc).__name__,
                    extra={"replica_url": address, "reason": type(exc).__name__},
                )
                await reply(send, 502, "the replica that holds this session did not answer", rpc=True)
                tg.cancel_scope.cancel()
                return _Outcome.ANSWERED
            try:
                if response.status_code == 404 and response.headers.get(NOT_HELD) is not None:
                    return _Outcome.NOT_HELD  # it was taken over from there: the store says where it is
                await self._stream(response, body, send)
            finally:
                await response.aclose()
                tg.cancel_scope.cancel()
        return _Outcome.ANSWERED

    async def _stream(self, response: httpx2.Response, body: bytes, send: Send) -> None:
        fields = [(k, v) for k, v in response.headers.raw if k.lower() not in _NOT_PASSED]
        await send({"type": "http.response.start", "status": response.status_code, "headers": fields})
        try:
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx2.HTTPError:  # the holder went away mid-answer
            log.warning(
                "an answer from the replica at %s was cut", response.url, extra={"replica_url": str(response.url)}
            )
            ending = (
                _call_ended(body) if response.headers.get("content-type", "").startswith("text/event-stream") else b""
            )
            await send({"type": "http.response.body", "body": ending, "more_body": False})
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _call_ended(body: bytes) -> bytes:
    """The last SSE event of an answer cut short: an error for the request it answered (nothing if none)."""
    try:
        request = json.loads(body)
    except ValueError:
        return b""
    if not isinstance(request, dict) or "id" not in request or "method" not in request:
        return b""
    error = {"jsonrpc": "2.0", "id": request["id"], "error": {"code": -32603, "message": _GONE}}
    return b"event: message\ndata: " + json.dumps(error).encode() + b"\n\n"


async def _cancel_when_gone(receive: Receive, scope: anyio.CancelScope) -> None:
    """Cancel `scope` when the client disconnects (its request body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    scope.cancel()
