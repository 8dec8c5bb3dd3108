"""This replica's part in a cluster that shares a PostgreSQL store: it says it is alive (and how it sees its servers)
every `HEARTBEAT` seconds, knows where the others are, and applies the registry changes the others make.

Changes arrive by `NOTIFY` within milliseconds of their commit. A replica applies a row only if it is newer than the
one it holds, under the same per-name lock as the admin API, so two changes of one name (here and elsewhere) end in
the same state everywhere: the newest row's. Its own writes are applied where they are made. After a lost
connection, or at start, it catches up from the rows themselves (`PostgresStore.registry`), never from what it heard.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import anyio
from anyio.abc import ObjectReceiveStream

from .._config import ServerConfig
from .._errors import StoreError
from ..export._forward import DEAD_AFTER
from ._http import RegistryLocks
from ._postgres_store import SERVERS, PostgresStore, RegistryRow, ReplicaRow
from ._store import StoredChange
from ._virtual_settings import VirtualServerConfig

__all__ = ["HEARTBEAT", "Appliers", "Replication"]

log = logging.getLogger("lash_gateway.replicas")

HEARTBEAT: Final = 1.0
"""Seconds between heartbeats."""
FORGET_AFTER: Final = 600.0
"""A replica silent this long leaves the list (and `status`)."""
RECONCILE_EVERY: Final = 30.0
"""Seconds between two catch-ups from the rows while the change feed seems alive."""
PRUNE_EVERY: Final = 30
"""Heartbeats between two prunings of the store's session records."""
_BACKLOG: Final = 10_000
"""Changes heard and not yet applied; past it they are dropped, and the replica catches up from the rows instead."""


@dataclass(frozen=True, slots=True)
class Appliers:
    """How a change made elsewhere is applied here (None: the server was detached, the virtual server removed)."""

    server: Callable[[str, ServerConfig | None], Awaitable[None]]
    virtual_server: Callable[[str, VirtualServerConfig | None], Awaitable[None]]
    locks: RegistryLocks
    """Held while a name changes, as the admin API holds them."""


class Replication:
    """Heartbeats, the list of replicas, and the registry changes of others applied through `appliers`."""

    def __init__(
        self,
        store: PostgresStore,
        appliers: Appliers,
        *,
        url: str | None,
        servers: Callable[[], list[dict[str, Any]]],
        sessions: Callable[[], list[str]] = list,
        session_idle_timeout: float = 1800.0,
        close_session: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """`url` is where other replicas reach this one (None: it serves no HTTP); `servers` is its view of its
        servers, as `status` shows them; `sessions` the handshake-era sessions it holds (the store forgets the others
        it recorded, and those of replicas gone longer than `session_idle_timeout`)."""
        self.store = store
        self.url = url
        self._appliers = appliers
        self._servers = servers
        self._sessions = sessions
        self._idle = session_idle_timeout
        self._close_session = close_session
        self._beating = anyio.Lock()
        self._left = False
        self._read_at = 0.0
        """When `_peers` was read (this process's clock): their ages grow from there while the store cannot be read."""
        self._peers: dict[str, ReplicaRow] = {}
        self.caught_up = anyio.Event()
        """Set once the replica has caught up with the store the first time (and is hearing changes)."""

    @property
    def id(self) -> str:
        return self.store.replica

    async def heartbeats(self) -> None:
        """Say this replica is alive every `HEARTBEAT` seconds, and read the others' (until cancelled); at the end,
        leave, so others stop counting on it at once."""
        try:
            for beat in itertools.count():
                try:
                    async with self._beating:
                        if self._left:
                            return
                        await self._fence()
                        await self.store.heartbeat(self.url, self._servers())
                    self._peers = {row.id: row for row in await self.store.replicas(FORGET_AFTER)}
                    self._read_at = anyio.current_time()
                    if beat % PRUNE_EVERY == PRUNE_EVERY - 1:
                        await self.store.prune_sessions(self._sessions(), self._idle)
                except StoreError as exc:
                    log.warning("heartbeat failed: %s", exc, extra={"replica": self.id, "reason": str(exc)})
                await anyio.sleep(HEARTBEAT)  # a period, not a wait for something
        finally:
            with anyio.CancelScope(shield=True):
                await self.leave()

    async def leave(self) -> None:
        """Stop beating and leave the list now (the process is stopping): other replicas take this one's sessions
        over at their next request, while its calls in flight finish."""
        async with self._beating:
            if self._left:
                return
            self._left = True
            with anyio.move_on_after(2):
                try:
                    await self.store.leave()
                except StoreError as exc:
                    log.warning("could not leave the cluster: %s", exc, extra={"replica": self.id})

    async def _fence(self) -> None:
        """Close the sessions another replica took over while this one seemed gone (a stalled loop, a lost link to
        the store): one session is never served by two replicas for longer than a heartbeat."""
        held = self._sessions()
        if self._close_session is None or not held:
            return
        for session in await self.store.sessions_elsewhere(held):
            log.warning(
                "session %s was taken over by another replica; closed here", session, extra={"session": session}
            )
            await self._close_session(session)

    def address(self, replica: str) -> str | None:
        """Where a live replica is reached; None if it is unknown, silent past `DEAD_AFTER`, or serves no HTTP."""
        row = self._peers.get(replica)
        if row is None:
            return None
        age = row.age + anyio.current_time() - self._read_at
        return row.url if age < DEAD_AFTER else None

    async def replicas(self) -> list[dict[str, Any]]:
        """Every replica's view of its servers, read from the store now."""
        rows = await self.store.replicas(FORGET_AFTER)
        return [
            {
                "id": row.id,
                "url": row.url,
                "alive": row.age < DEAD_AFTER,
                "seconds_since_heartbeat": round(row.age, 3),
                "this": row.id == self.id,
                "servers": row.servers,
            }
            for row in rows
        ]

    async def follow(self) -> None:
        """Apply the changes other replicas make, until cancelled; reconnects with back-off when the store goes."""
        delay = 0.1
        while True:
            try:
                await self._follow_once()
                delay = 0.1
                log.warning("the store's change feed was lost; catching up", extra={"replica": self.id})
            except StoreError as exc:
                log.warning(
                    "cannot hear the store's changes (retrying in %.1fs): %s",
                    delay,
                    exc,
                    extra={"replica": self.id, "reason": str(exc)},
                )
                await anyio.sleep(delay)  # back-off before reconnecting
                delay = min(delay * 2, 5.0)

    async def _follow_once(self) -> None:
        """Listen, catch up, then apply what is heard until the feed is lost (or floods)."""
        lost = anyio.Event()
        send, receive = anyio.create_memory_object_stream[RegistryRow](max_buffer_size=_BACKLOG)

        def heard(row: RegistryRow) -> None:
            try:
                send.send_nowait(row)
            except anyio.WouldBlock:  # catching up from the rows is the answer to a flood
                lost.set()

        with send, receive:  # closed even when listening fails
            async with self.store.listening(heard, lost.set):
                await self._catch_up()
                self.caught_up.set()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._apply_heard, receive)
                    tg.start_soon(self._reconcile)
                    await lost.wait()
                    tg.cancel_scope.cancel()

    async def _reconcile(self) -> None:
        """Catch up from the rows every `RECONCILE_EVERY` seconds as well: a link that died without a word (no reset
        from a failed-over database) leaves the listener deaf, and nothing else would say so."""
        while True:
            await anyio.sleep(RECONCILE_EVERY)  # a period, not a wait for something
            await self._catch_up()

    async def _apply_heard(self, receive: ObjectReceiveStream[RegistryRow]) -> None:
        async for row in receive:
            await self._applied(row)

    async def _catch_up(self) -> None:
        for row in await self.store.registry():
            await self._applied(row)

    async def _applied(self, row: RegistryRow) -> None:
        """`_apply`, and a change that cannot be applied here is said in the log: the next ones still are."""
        try:
            await self._apply(row)
        except StoreError:
            raise  # the store is gone: the follower reconnects and catches up
        except Exception:
            log.exception(
                "a change of %s made on replica %s could not be applied here",
                row.name,
                row.origin,
                extra={"registry_name": row.name, "origin": row.origin},
            )

    async def _apply(self, row: RegistryRow) -> None:
        store = self.store
        if store.seen(row):
            return
        if row.origin == self.id:  # applied where it was written: here
            store.mark(row.table, row.name, row.version)
            return
        servers = row.table == SERVERS
        locks = self._appliers.locks.servers if servers else self._appliers.locks.virtual
        async with locks.hold(row.name):
            try:  # the row as it is now: a newer change of the name may have come since
                version, change = await (store.server(row.name) if servers else store.virtual_server(row.name))
            except StoreError as exc:
                log.warning(
                    "a change of %s could not be read: %s",
                    row.name,
                    exc,
                    extra={"registry_name": row.name, "reason": str(exc)},
                )
                return
            if store.versions.get((row.table, row.name), 0) >= version:
                return
            if isinstance(change, StoredChange):
                await self._appliers.server(row.name, change.config)
            elif change is not None:
                await self._appliers.virtual_server(*change)
            # Held once applied: a change whose applying failed is tried again at the next catch-up.
            store.mark(row.table, row.name, version)
        log.info(
            "applied a change of %s made on replica %s",
            row.name,
            row.origin,
            extra={"registry_name": row.name, "origin": row.origin, "version": version},
        )
