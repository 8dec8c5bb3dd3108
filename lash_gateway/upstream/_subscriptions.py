"""The resources the gateway's clients subscribe to on one upstream server, subscribed there on every connection.

A handshake-era server takes `resources/subscribe` and `resources/unsubscribe`, sent at once and again after a
reconnect. A 2026-07-28 server has neither: a resource's updates arrive on a `subscriptions/listen` stream that
names it, and a stream's URIs are fixed, so the stream is opened again whenever the URIs change. Either way the
updates reach the connection's message handler (which tells the pool); a listen stream is only drained. A
server that refuses is said in the log and changes nothing else.
"""

from __future__ import annotations

from collections.abc import Callable

import anyio
from mcp import Client
from mcp.client.subscriptions import Subscription
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from ._wire import send_raw

__all__ = ["ResourceSubscriptions"]

Warn = Callable[[str, Exception], None]


class ResourceSubscriptions:
    """One server's subscribed URIs. `timeout` bounds each (un)subscribe request; `warn` logs a refusal."""

    def __init__(self, timeout: float, warn: Warn) -> None:
        self._timeout = timeout
        self._warn = warn
        self._uris: set[str] = set()
        self._changed = anyio.Event()
        """Set when the URIs change: a 2026-07-28 connection listens again."""

    def __contains__(self, uri: object) -> bool:
        return uri in self._uris

    async def add(self, client: Client | None, uri: str) -> None:
        """Keep `uri` subscribed: now on `client` (the live connection, if any), and on every later one."""
        self._uris.add(uri)
        self._changed.set()
        if client is not None:
            await self._send(client, "resources/subscribe", uri)

    async def remove(self, client: Client | None, uri: str) -> None:
        self._uris.discard(uri)
        self._changed.set()
        if client is not None:
            await self._send(client, "resources/unsubscribe", uri)

    async def restore(self, client: Client) -> None:
        """A new connection: subscribe every URI on it (handshake era; 2026-07-28 connections `listen`)."""
        for uri in sorted(self._uris):
            await self._send(client, "resources/subscribe", uri)

    async def listen(self, client: Client) -> None:
        """Keep a 2026-07-28 connection's listen stream naming the URIs; runs until cancelled."""
        while True:
            changed = self._changed = anyio.Event()
            uris = sorted(self._uris)
            if uris:
                try:
                    async with client.listen(resource_subscriptions=uris) as stream, anyio.create_task_group() as tg:
                        tg.start_soon(drain, stream)
                        await changed.wait()
                        tg.cancel_scope.cancel()
                    continue
                except Exception as exc:
                    self._warn("resource subscription refused", exc)
            await changed.wait()

    async def _send(self, client: Client, method: str, uri: str) -> None:
        resources = getattr(client.server_capabilities, "resources", None)
        if not getattr(resources, "subscribe", False) or client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return  # nothing to subscribe to, or a 2026-07-28 server (`listen`)
        try:
            with anyio.fail_after(self._timeout):
                await send_raw(client.session, method, {"uri": uri})
        except Exception as exc:
            self._warn(f"{method} {uri!r} failed", exc)


async def drain(subscription: Subscription) -> None:
    """Read a listen stream to its end: its events reach the connection's message handler too."""
    async for _ in subscription:
        pass
