"""Telling handshake-era clients what changed (a tool, resource or prompt list; a subscribed resource), each on
its own.

Every connected client has a notifier task of its own while a notification is on its way, so one that
stopped reading holds up nobody else. A client that takes no notification for `notify_timeout` seconds,
while nothing else reaches it either, has its connection closed through its `ClientLink`; one that reads
slowly (a large result ahead of the notification) is waited for, and so is one without a link (stdio,
where it is the only client). Changes while a notification is on its way make one more of each kind, not one
each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from contextlib import AsyncExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final, Literal, Self, TypeAlias

import anyio
from anyio.abc import TaskGroup
from mcp.server.connection import Connection

__all__ = ["DEFAULT_NOTIFY_TIMEOUT", "ClientLink", "Closer", "ListKind", "Notifier", "linked"]

log = logging.getLogger("lash_gateway.export")

DEFAULT_NOTIFY_TIMEOUT: Final = 5.0
Closer = Callable[[], Awaitable[None]]
"""Closes one client's connection."""
ListKind: TypeAlias = Literal["tools", "resources", "prompts"]
_Notice: TypeAlias = tuple[ListKind | None, str | None]
"""(list kind, None): that list changed; (None, uri): the resource at `uri` changed."""


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
        self._pending: dict[int, dict[_Notice, None]] = {}
        """Connections with a notifier running -> what it has still to send, in order."""
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
        or for a streamable-HTTP session, the end of that session. Again for the same connection (a client that
        repeats `notifications/initialized`): nothing."""
        key = id(connection)
        if key in self._connections:
            return
        self._connections[key] = connection
        connection.exit_stack.callback(self._connections.pop, key, None)
        link = _LINK.get()
        if link is None and connection.session_id is not None and self.close_http_session is not None:
            link = ClientLink(partial(self.close_http_session, connection.session_id))
        if link is not None:
            self._links[key] = link
            connection.exit_stack.callback(self._links.pop, key, None)

    @property
    def running(self) -> bool:
        """Whether the notifier was entered and not left: only then can it tell anyone anything."""
        return self._tg is not None

    def start_soon(self, func: Callable[..., Coroutine[Any, Any, object]], *args: object) -> None:
        """Run `func(*args)` in the notifier's task group (work that a synchronous caller may not await).

        Raises:
            RuntimeError: the notifier was not entered.
        """
        if self._tg is None:
            raise RuntimeError("enter the export (`async with export:`) before telling clients about changes")
        self._tg.start_soon(func, *args)

    def changed(self, kind: ListKind) -> None:
        """Tell every connection that a list changed.

        Raises:
            RuntimeError: the notifier was not entered.
        """
        for key, connection in list(self._connections.items()):
            self._queue(key, connection, (kind, None))

    def updated(self, connection: Connection, uri: str) -> None:
        """Tell one connection that the resource at `uri` changed (it subscribed to it)."""
        key = id(connection)
        if self._connections.get(key) is connection:
            self._queue(key, connection, (None, uri))

    def _queue(self, key: int, connection: Connection, notice: _Notice) -> None:
        if self._tg is None:
            raise RuntimeError("enter the export (`async with export:`) before telling clients about changes")
        pending = self._pending.get(key)
        if pending is not None:
            pending[notice] = None  # its notifier sends it, once, whatever came before
        else:
            self._pending[key] = {notice: None}
            self._tg.start_soon(self._notify, key, connection)

    async def _notify(self, key: int, connection: Connection) -> None:
        pending = self._pending[key]
        try:
            while pending:
                notice = next(iter(pending))
                del pending[notice]
                if not await self._notify_once(key, connection, notice):
                    return
        finally:
            self._pending.pop(key, None)

    async def _notify_once(self, key: int, connection: Connection, notice: _Notice) -> bool:
        """Send one notice; False when the client was dropped for not reading."""
        link = self._links.get(key)
        if link is None:
            await _send(connection, notice)
            return True
        while True:
            sent = link.sent() if link.sent is not None else None
            with anyio.move_on_after(self._timeout) as waited:
                await _send(connection, notice)
            if not waited.cancelled_caught:
                return True
            if sent is None or link.sent is None or link.sent() <= sent:
                await self._drop(key, connection, link, notice)
                return False
            # It reads, slowly (a large result ahead of the notification): it is not stalled.

    async def _drop(self, key: int, connection: Connection, link: ClientLink, notice: _Notice) -> None:
        self._connections.pop(key, None)
        self._links.pop(key, None)
        log.warning(
            "client %s dropped: in %gs it took no %s, nor anything else (it stopped reading)",
            connection.session_id or f"#{key}",
            self._timeout,
            _describe(notice),
            extra={"session": connection.session_id, "timeout": self._timeout},
        )
        await link.close()


async def _send(connection: Connection, notice: _Notice) -> None:
    kind, uri = notice
    if uri is not None:
        await connection.send_resource_updated(uri)
    elif kind == "tools":
        await connection.send_tool_list_changed()
    elif kind == "resources":
        await connection.send_resource_list_changed()
    else:
        await connection.send_prompt_list_changed()


def _describe(notice: _Notice) -> str:
    kind, uri = notice
    return f"resources/updated of {uri}" if uri is not None else f"{kind}/list_changed"
