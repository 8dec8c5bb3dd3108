"""The virtual servers a gateway serves: for each, an export of the same lash core through its own view, with its own
limiter and, over HTTP, its own endpoint; and the digests of its client tokens, for the router.

A virtual server is changed in place (`put` on a name being served): its view, limits and tokens change from the next
request on, its sessions stay open and are told to list their tools again. Removing one ends its sessions. Each
served virtual server lives in a task of the registry (its export and session manager are entered there), so it
starts and stops with the gateway's own lifetime.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from types import TracebackType
from typing import Final, Self

import anyio
from anyio.abc import TaskGroup, TaskStatus

from .._errors import ConfigError
from ..export._endpoint import HttpEndpoint
from ..export._export import McpExport
from ..export._limits import Limiter, LimitExceeded
from ._virtual_settings import VirtualServerConfig

__all__ = ["EndpointMaker", "ExportMaker", "VirtualServer", "VirtualServers"]

log = logging.getLogger("lash_gateway.virtual")

END_CALLS_WAIT: Final = 5.0
"""Seconds the calls of a virtual server being removed get to end (they are cancelled upstream at once)."""
ExportMaker = Callable[[str, VirtualServerConfig, Limiter], McpExport]
"""Makes the export of a virtual server (name, config, its limiter)."""
EndpointMaker = Callable[[str, McpExport], HttpEndpoint]
"""Makes the HTTP endpoint of a virtual server (name, export)."""


@dataclass(eq=False)
class VirtualServer:
    name: str
    config: VirtualServerConfig
    export: McpExport
    limiter: Limiter
    endpoint: HttpEndpoint | None
    stop: anyio.Event = field(default_factory=anyio.Event)
    stopped: anyio.Event = field(default_factory=anyio.Event)


class VirtualServers:
    """The registry; `async with` it to serve (it owns every virtual server's task)."""

    def __init__(
        self,
        make_export: ExportMaker,
        on_refused: Callable[[str, LimitExceeded], None],
        reserved: frozenset[str] = frozenset(),
    ) -> None:
        """`on_refused` hears of every call a limit refused (virtual server name, why); `reserved` are digests no
        virtual server's token may have (the gateway's own `auth_token`)."""
        self._make_export = make_export
        self._reserved = reserved
        self._on_refused = on_refused
        self.http: EndpointMaker | None = None
        """Makes each virtual server's HTTP endpoint; None: the exports only (stdio). Set it before entering."""
        self._served: dict[str, VirtualServer] = {}
        self._leaving: set[VirtualServer] = set()
        """Removed, no longer routed to, but not stopped yet: their sessions still count (`open_sessions`)."""
        self._tokens: dict[str, tuple[VirtualServer, str]] = {}
        self._stack = AsyncExitStack()
        self._tg: TaskGroup | None = None
        self._changing = anyio.Lock()
        """One `put` or `remove` at a time: a token's owner is checked and indexed as one step."""

    async def __aenter__(self) -> Self:
        async with AsyncExitStack() as stack:
            self._tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(self._stop_all)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._stack.__aexit__(exc_type, exc, tb)
        self._tg = None

    def _stop_all(self) -> None:
        for served in self._served.values():
            served.stop.set()

    def __contains__(self, name: str) -> bool:
        return name in self._served

    def get(self, name: str) -> VirtualServer | None:
        return self._served.get(name)

    def configs(self) -> Mapping[str, VirtualServerConfig]:
        return {name: served.config for name, served in self._served.items()}

    async def put(self, name: str, config: VirtualServerConfig) -> bool:
        """Serve `config` as virtual server `name`; True if it is new, False if one was changed in place.

        Raises:
            ConfigError: the config's view cannot be made, or one of its tokens is another virtual server's or the
                gateway's.
            RuntimeError: the registry is not entered.
        """
        async with self._changing:
            return await self._put(name, config)

    async def _put(self, name: str, config: VirtualServerConfig) -> bool:
        view = config.view()
        for digest in (record.sha256 for record in config.token_hashes):
            if digest in self._reserved:
                raise ConfigError(None, f"a token of {name} is the gateway's auth_token", field="tokens")
            owner = self._tokens.get(digest)
            if owner is not None and owner[0].name != name:
                raise ConfigError(
                    None,
                    f"a token of {name} is one of {owner[0].name}'s: a token belongs to one virtual server",
                    field="tokens",
                )
        served = self._served.get(name)
        if served is not None:
            served.config = config
            served.limiter.limits = config.limits.limits()
            if served.endpoint is not None:
                served.endpoint.max_sessions = config.max_sessions
            served.export.view = view
            self._index_tokens()
            await served.export.view_changed()
            log.info("virtual server %s changed", name, extra={"virtual_server": name})
            return False
        if self._tg is None:
            raise RuntimeError("the virtual servers are not being served (enter the registry first)")
        limiter = Limiter(config.limits.limits(), name, partial(self._on_refused, name))
        export = self._make_export(name, config, limiter)
        endpoint = self.http(name, export) if self.http is not None else None
        if endpoint is not None:
            endpoint.max_sessions = config.max_sessions
        served = VirtualServer(name, config, export, limiter, endpoint)
        await self._tg.start(self._serve, served)
        self._served[name] = served
        self._index_tokens()
        log.info("virtual server %s served (%s mode)", name, config.mode, extra={"virtual_server": name})
        return True

    async def remove(self, name: str) -> bool:
        """Stop serving `name` (its sessions end); False if there was none."""
        async with self._changing:
            return await self._remove(name)

    async def _remove(self, name: str) -> bool:
        served = self._served.pop(name, None)
        if served is None:
            return False
        self._leaving.add(served)  # until its sessions have ended, which may take `END_CALLS_WAIT` seconds and more
        try:
            self._index_tokens()
            with anyio.move_on_after(END_CALLS_WAIT):
                await served.export.end_calls(f"virtual server {name} was removed; the call was cancelled")
            served.stop.set()
            await served.stopped.wait()
        finally:
            self._leaving.discard(served)
        log.info("virtual server %s removed", name, extra={"virtual_server": name})
        return True

    async def _serve(self, served: VirtualServer, *, task_status: TaskStatus[None]) -> None:
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(served.export)
                if served.endpoint is not None:
                    await stack.enter_async_context(served.endpoint.running())
                task_status.started()
                await served.stop.wait()
        finally:
            served.stopped.set()

    def _index_tokens(self) -> None:
        self._tokens = {
            record.sha256: (served, record.id)
            for served in self._served.values()
            for record in served.config.token_hashes
        }

    async def tools_changed(self) -> None:
        """Tell every virtual server's clients to list their tools again."""
        for served in list(self._served.values()):
            if not served.stop.is_set():  # one removed meanwhile has no clients left to tell
                await served.export.tools_changed()

    def endpoints(self) -> list[HttpEndpoint]:
        """The HTTP endpoints of the virtual servers served now."""
        return [served.endpoint for served in self._served.values() if served.endpoint is not None]

    def open_sessions(self) -> int:
        """Sessions of every virtual server, those being removed included: they hold their places until they end."""
        every = (*self._served.values(), *self._leaving)
        return sum(served.endpoint.open_sessions() for served in every if served.endpoint is not None)

    @property
    def connected_clients(self) -> int:
        return sum(served.export.connected_clients for served in self._served.values())

    async def end_calls(self, reason: str) -> None:
        async with anyio.create_task_group() as tg:
            for served in list(self._served.values()):
                tg.start_soon(served.export.end_calls, reason)

    # The router's view of them (`export._router.VirtualEndpoints`).

    @property
    def any_served(self) -> bool:
        return bool(self._served)

    def endpoint(self, name: str) -> tuple[HttpEndpoint, bool] | None:
        served = self._served.get(name)
        if served is None or served.endpoint is None:
            return None
        return served.endpoint, bool(served.config.token_hashes)

    def by_token(self, digest: str) -> tuple[HttpEndpoint, str] | None:
        found = self._tokens.get(digest)
        if found is None or found[0].endpoint is None:
            return None
        return found[0].endpoint, found[1]
