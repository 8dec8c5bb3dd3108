"""Telling handshake-era clients that the tool list changed, each on its own.

Every connected client has a notifier task of its own while a notification is on its way, so one that
stopped reading holds up nobody else. A client that takes no notification for `notify_timeout` seconds,
while nothing else reaches it either, has its connection closed through its `ClientLink`; one that reads
slowly (a large result ahead of the notification) is waited for, and so is one without a link (stdio,
where it is the only client). Changes while a notification is on its way make one more, not one each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Final, Self

import anyio
from anyio.abc import TaskGroup
from mcp.server.connection import Connection

__all__ = ["DEFAULT_NOTIFY_TIMEOUT", "ClientLink", "Closer", "Notifier", "linked"]

log = logging.getLogger("lash_gateway.export")

DEFAULT_NOTIFY_TIMEOUT: Final = 5.0
Closer = Callable[[], Awaitable[None]]
"""Closes one client's connection."""


@dataclass(frozen=True, slots=True)
class ClientLink:
    """How the export reaches one client's connection from outside its server loop."""

    close: Closer
    sent: Callable[[], int] | None = None
    """Bytes that left for the client so far, where the transport can tell: a client that reads slowly makes
    it grow, one that stopped reading does not."""


_LINK: ContextVar[ClientLink | None] = ContextVar("lash_gateway_client_link", default=None)
"""Set by whatever serves a connection (see `linked`), read when that connection finishes its handshake."""


@contextmanager
def linked(link: ClientLink) -> Iterator[None]:
    """Handle a connection's messages within this block to let the export reach it through `link` (to drop a
    client that stopped reading). The SDK runs a message's handler in the context of whoever delivered it."""
    token = _LINK.set(link)
    try:
        yield
    finally:
        _LINK.reset(token)


class Notifier:
    """The handshake-era connections, and a notifier task per connection, owned by `async with notifier:`."""

    def __init__(self, notify_timeout: float = DEFAULT_NOTIFY_TIMEOUT) -> None:
        self._timeout = notify_timeout
        self._connections: dict[int, Connection] = {}
        self._links: dict[int, ClientLink] = {}
        self._again: dict[int, bool] = {}
        """Connections with a notifier running -> whether a change came after its notification went out."""
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self.close_http_session: Callable[[str], Awaitable[None]] | None = None
        """Ends a streamable-HTTP session by its id (the serving app sets it), for clients that stop reading."""

    def __len__(self) -> int:
        return len(self._connections)

    async def __aenter__(self) -> Self:
        self._tg = await self._stack.enter_async_context(anyio.create_task_group())
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._tg is not None:
            self._tg.cancel_scope.cancel()
        self._tg = None
        await self._stack.aclose()

    def add(self, connection: Connection) -> None:
        """Notify `connection` from now until it closes; its link is the one its handshake ran under (`linked`),
        or for a streamable-HTTP session, the end of that session."""
        key = id(connection)
        self._connections[key] = connection
        connection.exit_stack.callback(self._connections.pop, key, None)
        link = _LINK.get()
        if link is None and connection.session_id is not None and self.close_http_session is not None:
            link = ClientLink(partial(self.close_http_session, connection.session_id))
        if link is not None:
            self._links[key] = link
            connection.exit_stack.callback(self._links.pop, key, None)

    def tools_changed(self) -> None:
        """Start (or extend) every connection's notification.

        Raises:
            RuntimeError: the notifier was not entered.
        """
        if self._tg is None:
            raise RuntimeError("enter the export (`async with export:`) before telling clients about changes")
        for key, connection in list(self._connections.items()):
            if key in self._again:
                self._again[key] = True  # its notifier sends once more
            else:
                self._again[key] = False
                self._tg.start_soon(self._notify, key, connection)

    async def _notify(self, key: int, connection: Connection) -> None:
        try:
            while True:
                await self._notify_once(key, connection)
                if not self._again.get(key):
                    return
                self._again[key] = False
        finally:
            self._again.pop(key, None)

    async def _notify_once(self, key: int, connection: Connection) -> None:
        link = self._links.get(key)
        if link is None:
            await connection.send_tool_list_changed()
            return
        while True:
            sent = link.sent() if link.sent is not None else None
            with anyio.move_on_after(self._timeout) as waited:
                await connection.send_tool_list_changed()
            if not waited.cancelled_caught:
                return
            if sent is None or link.sent is None or link.sent() <= sent:
                await self._drop(key, connection, link)
                return
            # It reads, slowly (a large result ahead of the notification): it is not stalled.

    async def _drop(self, key: int, connection: Connection, link: ClientLink) -> None:
        self._connections.pop(key, None)
        self._links.pop(key, None)
        log.warning(
            "client %s dropped: in %gs it took no tools/list_changed, nor anything else (it stopped reading)",
            connection.session_id or f"#{key}",
            self._timeout,
            extra={"session": connection.session_id, "timeout": self._timeout},
        )
        await link.close()
