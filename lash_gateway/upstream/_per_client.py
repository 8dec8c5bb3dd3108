"""Connections of their own, per client, to the servers marked `per_client`.

A client's connection to such a server opens on its first request there (a child process, for stdio) and
closes when the client's session ends (`release`) or has used it for nothing during `idle_timeout` seconds. A
connection a request is using is never closed under it: a released one closes when its last request ends. At
most `max_clients` clients have one at a time, per server; the next gets `UpstreamUnavailable` saying so.

What a per-client connection lists is not advertised (the server's shared connection lists for everyone), and
its changes are not announced: its own tools are those of the shared connection.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Final

import anyio
from anyio.abc import TaskGroup

from .._errors import UpstreamUnavailable
from ._catalog import CatalogKind
from ._upstream import Upstream

__all__ = ["DEFAULT_IDLE_TIMEOUT", "PerClient"]

log = logging.getLogger("lash_gateway.pool")

DEFAULT_IDLE_TIMEOUT: Final = 600.0
"""Seconds a client's own connection stays open with nothing to do."""


@dataclass(eq=False)
class _Own:
    ready: anyio.Event = field(default_factory=anyio.Event)
    upstream: Upstream | None = None
    in_flight: int = 0
    last_used: float = field(default_factory=time.monotonic)
    released: bool = False


class _Unannounced:
    """The owner of a per-client connection: its lists are the shared connection's business."""

    def tools_changed(self, upstream: Upstream) -> None:
        pass

    def catalog_changed(self, upstream: Upstream, kind: CatalogKind) -> None:
        pass

    def resource_updated(self, upstream: Upstream, uri: str) -> None:
        pass


class PerClient:
    """Every per-client connection of a pool, its supervisors in the pool's task group."""

    def __init__(self, task_group: Callable[[], TaskGroup], idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        self._task_group = task_group
        self._idle = idle_timeout
        self._own: dict[tuple[str, str], _Own] = {}

    def count(self, server: str) -> int:
        return sum(1 for name, _ in self._own if name == server)

    @asynccontextmanager
    async def using(self, shared: Upstream, client: str | None) -> AsyncIterator[Upstream]:
        """The connection a request of `client` to `shared`'s server goes to, held open while the block runs.

        Raises:
            UpstreamUnavailable: the client's own connection could not be opened, or `max_clients` are open.
        """
        if client is None or not shared.config.per_client:
            yield shared
            return
        key = (shared.name, client)
        own = self._own.get(key)
        if own is None:
            own = await self._open(shared, key)
        else:
            await own.ready.wait()
        if own.upstream is None or self._own.get(key) is not own:
            raise UpstreamUnavailable(shared.name, "the client's own connection could not be opened")
        own.in_flight += 1
        try:
            yield own.upstream
        finally:
            own.in_flight -= 1
            own.last_used = time.monotonic()
            if own.released and not own.in_flight:
                self._close(key, own, "the client's session ended")

    async def _open(self, shared: Upstream, key: tuple[str, str]) -> _Own:
        config = shared.config
        if self.count(shared.name) >= config.max_clients:
            raise UpstreamUnavailable(
                shared.name,
                f"it serves at most {config.max_clients} clients at once with a connection of their own "
                "(max_clients); try again when one has left, or raise max_clients",
            )
        own = self._own[key] = _Own()
        try:
            upstream = Upstream(shared.name, config, _Unannounced(), shared.guard, shared.auth)
            await self._task_group().start(
                partial(upstream.supervise, fail_fast=True), name=f"mcp-upstream:{shared.name}:client"
            )
            if self._own.get(key) is not own:  # released or detached while it connected: it is not wanted
                self._task_group().start_soon(upstream.stop, "the client's session ended")
                raise UpstreamUnavailable(shared.name, "the client's session ended while its connection opened")
            own.upstream = upstream
            log.info(
                "server %s: a client's own connection opened (%d open)",
                shared.name,
                self.count(shared.name),
                extra={"server": shared.name, "clients": self.count(shared.name)},
            )
        except BaseException:
            if self._own.get(key) is own:
                del self._own[key]
            raise
        finally:
            own.ready.set()
        return own

    def release(self, client: str) -> None:
        """The client's session ended: its connections close, each once no request of it is running."""
        for key, own in list(self._own.items()):
            if key[1] == client:
                own.released = True
                if not own.in_flight:
                    self._close(key, own, "the client's session ended")

    def close_server(self, server: str) -> None:
        """The server was detached or replaced: every client's connection to it closes."""
        for key, own in list(self._own.items()):
            if key[0] == server:
                self._close(key, own, f"server {server!r} was detached while the call was in flight")

    async def reap_idle(self) -> None:
        """Close connections left unused for the idle timeout; runs until cancelled."""
        while True:
            await anyio.sleep(min(self._idle / 4, 30.0))
            now = time.monotonic()
            for key, own in list(self._own.items()):
                if not own.in_flight and own.upstream is not None and now - own.last_used > self._idle:
                    self._close(key, own, "idle")

    def all(self) -> list[Upstream]:
        """Every open per-client connection (for shutdown)."""
        return [own.upstream for own in self._own.values() if own.upstream is not None]

    def upstreams(self, client: str) -> list[Upstream]:
        """The client's open connections."""
        return [own.upstream for key, own in self._own.items() if key[1] == client and own.upstream is not None]

    def _close(self, key: tuple[str, str], own: _Own, reason: str) -> None:
        if self._own.get(key) is not own:
            return
        del self._own[key]
        if own.upstream is not None:
            log.info("server %s: a client's own connection closed (%s)", key[0], reason, extra={"server": key[0]})
            self._task_group().start_soon(own.upstream.stop, reason)
