"""Sessions taken over from a replica that is gone: opened again here, under their own id, from the initialize request
that opened them (kept in the store), so the client goes on as if nothing happened.

What lived only in the old replica's memory is gone with it: calls in flight there (their clients got an error), the
session's resource subscriptions and its log level (the client sets them again when it wants them), its `per_client`
upstream connections (new ones are opened). The tools, prompts and resources are the same everywhere.
"""

from __future__ import annotations

import json
import logging
from collections import OrderedDict
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Final

import anyio
from mcp.server.streamable_http import MCP_SESSION_ID_HEADER
from mcp.shared.inbound import MCP_PROTOCOL_VERSION_HEADER
from starlette.types import ASGIApp, Message, Scope

__all__ = ["ADOPTED_ID", "Adoptions"]

log = logging.getLogger("lash_gateway.adopt")

ADOPTED_ID: Final[ContextVar[str | None]] = ContextVar("lash_gateway.adopted_id", default=None)
"""While a session is opened again, the id it must have (read where new sessions are named)."""
_HEADERS: Final = [(b"content-type", b"application/json"), (b"accept", b"application/json, text/event-stream")]
_INITIALIZED: Final = b'{"jsonrpc":"2.0","method":"notifications/initialized"}'
_REOPEN_TIMEOUT: Final = 10.0
"""Seconds opening a session again may take (two requests answered in this process)."""


class Adoptions:
    """Sessions this replica has claimed and opens again at their next request (`adopt`), for `expire_after` seconds
    (the sessions' idle timeout: a client that has not come back by then would have lost its session on the old
    replica too, and its request gets "Session not found")."""

    def __init__(self, expire_after: float) -> None:
        self._expire_after = expire_after
        self._pending: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        """Each session's initialize request and when its claim expires, oldest first."""
        self._opening: dict[str, anyio.Lock] = {}

    def expect(self, session: str, opening: bytes) -> None:
        """`session` is this replica's now: open it (with `opening`, its initialize request) when it is next used."""
        now = anyio.current_time()
        while self._pending:  # claims nobody came back for: memory stays bounded
            oldest, (_, deadline) = next(iter(self._pending.items()))
            if deadline > now or self.opening(oldest):
                break
            del self._pending[oldest]
        self._pending[session] = (opening, now + self._expire_after)
        self._pending.move_to_end(session)

    def pending(self, session: str) -> bool:
        entry = self._pending.get(session)
        if entry is None:
            return False
        if entry[1] <= anyio.current_time() and not self.opening(session):  # one being opened is kept till then
            del self._pending[session]
            return False
        return True

    def waiting(self) -> list[str]:
        """The sessions claimed here that wait to be opened again (expired ones left out)."""
        return [session for session in list(self._pending) if self.pending(session)]

    def forget(self, session: str) -> None:
        """`session` will not be opened here again (its client ended it, or another replica took it)."""
        self._pending.pop(session, None)

    async def settled(self, session: str) -> None:
        """Return once no request is opening `session` again (at once if none is)."""
        lock = self._opening.get(session)
        if lock is not None and lock.locked():
            log.debug(
                "a request of session %s waits while it is opened again here", session, extra={"session": session}
            )
            try:
                async with lock:
                    pass
            finally:
                self._let_go(session, lock)

    def opening(self, session: str) -> bool:
        """Whether a request is opening `session` again now (the session's other requests wait for it)."""
        lock = self._opening.get(session)
        return lock is not None and lock.locked()

    async def adopt(self, session: str, app: ASGIApp, scope: Scope, is_open: Callable[[], bool]) -> None:
        """Open `session` again through `app` (an endpoint's MCP app) if it waits for that and is not open here
        (`is_open`). Concurrent requests of the session wait for the one that opens it: the SDK knows the session
        from the start of its `initialize`, but refuses its requests until that is answered."""
        lock = self._opening.setdefault(session, anyio.Lock())
        if lock.locked():  # another request that holds a place: the first opens it
            log.debug(
                "a request of session %s waits while it is opened again here", session, extra={"session": session}
            )
        try:
            async with lock:
                opening = self._pending[session][0] if self.pending(session) else None
                if opening is not None and is_open():  # open here already (a re-opening that failed late)
                    del self._pending[session]
                    return
                # Shielded and bounded: a client that leaves meanwhile must not leave the session half open.
                with anyio.CancelScope(shield=True), anyio.move_on_after(_REOPEN_TIMEOUT):
                    if opening is not None and await _reopen(app, scope, session, opening):
                        self._pending.pop(session, None)  # it may have expired meanwhile
        finally:
            self._let_go(session, lock)

    def _let_go(self, session: str, lock: anyio.Lock) -> None:
        if not lock.locked() and not lock.statistics().tasks_waiting:  # the last request that held or awaited it
            self._opening.pop(session, None)


async def _reopen(app: ASGIApp, scope: Scope, session: str, opening: bytes) -> bool:
    """Whether the session is open again (else its next request tries again)."""
    token = ADOPTED_ID.set(session)
    try:
        status, body = await _post(app, scope, opening, [])
    finally:
        ADOPTED_ID.reset(token)
    version = _negotiated(body)
    if status != 200 or version is None:
        log.warning(
            "session %s could not be opened again here (HTTP %d); its client must start a new one",
            session,
            status,
            extra={"session": session, "status": status},
        )
        return False
    headers = [
        (MCP_SESSION_ID_HEADER.lower().encode(), session.encode()),
        (MCP_PROTOCOL_VERSION_HEADER.lower().encode(), version.encode()),
    ]
    await _post(app, scope, _INITIALIZED, headers)
    log.info("session %s taken over", session, extra={"session": session})
    return True


async def _post(app: ASGIApp, scope: Scope, body: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """POST `body` to `app` in this task, as a request of the client's own (its host and path); its status and body."""
    host = [(name, value) for name, value in scope["headers"] if name == b"host"]
    request: dict[str, Any] = {**scope, "method": "POST", "headers": [*_HEADERS, *host, *headers]}
    request["query_string"] = b""
    sent = False
    status, chunks = 500, []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await anyio.sleep_forever()  # the client of this request never leaves
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(request, receive, send)
    return status, b"".join(chunks)


def _negotiated(body: bytes) -> str | None:
    """The protocol version an initialize answer (JSON, or one SSE event) agreed on."""
    text = body.decode("utf-8", "replace")
    candidates = [line[len("data:") :] for line in text.splitlines() if line.startswith("data:")] or [text]
    for candidate in candidates:
        try:
            version = json.loads(candidate)["result"]["protocolVersion"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(version, str):
            return version
    return None
