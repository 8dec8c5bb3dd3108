"""`McpConnectionPool`: every attached upstream MCP server, one long-lived connection each.

Contract: a server that is down never fails the pool; calls to it fail at once while a background
loop reconnects. Tool definitions are built once per change (attach, detach, an upstream's
`list_changed`) and returned as the same tuple until the next change, with a generation number that
goes up by one per change so sessions and downstream clients can tell.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from types import MappingProxyType, TracebackType
from typing import Any, Literal, Self, TypeAlias

import anyio
import httpx2
from anyio.abc import TaskGroup

from lash_core import NO_CALLER, Caller, LogReporter, ProgressReporter, ToolDefinition, ToolResult

from .._config import HttpServerConfig, McpServerConfig, ServerConfig
from .._errors import ServerNotAttached, UnknownPrompt, UnknownResource, UnknownTool, UpstreamUnavailable
from .._naming import ToolRef, assign_tool_names, claim_server_part, validate_server_name
from .._types import ServerStatus
from ._arrivals import Arrivals
from ._catalog import Catalog, CatalogKind
from ._merged import MergedCatalog, merge
from ._network import NetworkGuard, guarded_transport
from ._oauth import Authorizations, MemoryVault, TokenVault, UpstreamAuth
from ._per_client import PerClient
from ._upstream import Upstream

log = logging.getLogger("lash_gateway.pool")

SHUTDOWN_GRACE = 10.0
"""Seconds shutdown waits for upstreams to close (stdio children get SIGTERM, then SIGKILL)."""
REVOKE_TIMEOUT = 5.0
"""Seconds a detach waits for an authorization server to revoke the server's tokens."""

CatalogListener: TypeAlias = Callable[[CatalogKind | None, str | None], None]
"""Told of catalog changes: `(kind, None)` when the resource or prompt list changed, `(None, uri)` when the
resource at `uri` changed (for subscribers). Called synchronously: schedule work, do not do it."""


class McpConnectionPool:
    """Owns the upstream connections, for as long as `async with McpConnectionPool() as pool:` lasts: every
    supervisor task runs in the pool's task group, and leaving the block stops them all."""

    def __init__(self) -> None:
        self._servers: dict[str, Upstream] = {}
        self._routes: Mapping[str, tuple[Upstream, str]] = MappingProxyType({})
        self._tool_names: Mapping[ToolRef, str] = MappingProxyType({})
        """The name each tool was given, which it keeps while listed (`assign_tool_names`' `held`)."""
        self._tool_arrivals = Arrivals[str](lambda upstream: upstream.tools_listed)
        self._catalog_arrivals = Arrivals[tuple[Literal["uri", "template", "prompt"], str]](
            lambda upstream: upstream.catalog_listed
        )
        self._definitions: tuple[ToolDefinition, ...] = ()
        self._generation = 0
        self._changed = anyio.Event()
        self._catalog = MergedCatalog()
        self._listeners: list[CatalogListener] = []
        self.vault: TokenVault = MemoryVault()
        self.authorizations = Authorizations()
        """Authorization-code flows waiting for an operator, and the gateway's address for their callback."""
        """Where OAuth servers' tokens are kept (the gateway sets its state store's; this process only by default)."""
        self._subscriptions: dict[str, int] = {}
        """Subscribed URI -> how many subscribers; subscribed upstream while above zero."""
        self._parts: dict[str, str] = {}
        """Server name -> its part of tool names, claimed when attach is called (so concurrent
        attaches name in call order) and kept until detach (so no other server's tools get renamed)."""
        self._per_client = PerClient(self._task_group)
        self._state: Literal["new", "open", "closed"] = "new"
        self._exit_stack = AsyncExitStack()
        self._tg: TaskGroup | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError(f"the pool is {self._state}; create a new McpConnectionPool")
        self._tg = await self._exit_stack.enter_async_context(anyio.create_task_group())
        self._tg.start_soon(self._per_client.reap_idle, name="mcp-per-client-reaper")
        self._state = "open"
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        """Close every connection and reap every child process; in-flight calls end with `ServerDetached`."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(SHUTDOWN_GRACE):
            servers, self._servers = [*self._servers.values(), *self._per_client.all()], {}
            self._rebuild()
            async with anyio.create_task_group() as tg:
                for upstream in servers:
                    tg.start_soon(upstream.stop, f"the gateway shut down while calling server {upstream.name!r}")
        self._state = "closed"
        if self._tg is not None:
            self._tg.cancel_scope.cancel()  # the idle reaper; every supervisor has stopped
        self._tg = None
        await self._exit_stack.aclose()

    def _task_group(self) -> TaskGroup:
        if self._tg is None:
            raise RuntimeError(
                f"the pool is {self._state}: attach servers inside `async with McpConnectionPool() as pool:` "
                "(or `async with McpPluginFactory() as factory:`)"
            )
        return self._tg

    # -- servers -------------------------------------------------------------------------------

    async def attach(
        self,
        name: str,
        config: McpServerConfig | Mapping[str, Any],
        *,
        fail_fast: bool = True,
        guard: NetworkGuard | None = None,
        wanted: Callable[[], bool] | None = None,
        on_authorization: Callable[[str], None] | None = None,
    ) -> ServerStatus:
        """Connect to a server and take its tools; an existing server of that name is replaced once
        the new connection works.

        With `fail_fast` (the default) this returns only once the server is connected and its tools
        are listed; if that fails, the pool is unchanged. Without it, this returns after the first
        attempt whatever its outcome, and failures are retried in the background. With `guard`, every
        HTTP connection to the server must pass it (the admin API's deny-list). `wanted` is asked once the new
        connection works, right before it replaces anything: False drops it (a later change of the name superseded
        this attach). `on_authorization` hears the URL an operator must approve, if the server's OAuth asks for one.

        Raises:
            ConfigError: bad name or config.
            UpstreamUnavailable: `fail_fast` and the first connect failed (the message says why), or `wanted()` was
                False.
        """
        validate_server_name(name)
        config = McpServerConfig.parse(config, name=name)
        tg = self._task_group()
        claimed = name not in self._parts
        if claimed:  # claimed now, before any await, so concurrent attaches name in call order
            self._parts[name] = self._claim_part(name, config)
        try:
            auth = None
            if isinstance(config, HttpServerConfig) and config.oauth is not None:
                auth = UpstreamAuth(name, config, config.oauth, self.vault, self.authorizations, on_authorization)
            upstream = Upstream(name, config, self, guard, auth)
            await tg.start(partial(upstream.supervise, fail_fast=fail_fast), name=f"mcp-upstream:{name}")
        except BaseException:
            if claimed and name not in self._servers:
                self._parts.pop(name, None)
            raise
        if wanted is not None and not wanted():
            if claimed and name not in self._servers:
                self._parts.pop(name, None)
            tg.start_soon(upstream.stop, "the attach was superseded")
            raise UpstreamUnavailable(name, "a later change of this server superseded the attach")
        # The swap has no await: of concurrent attaches of one name, the last to connect is the one kept.
        old = self._servers.get(name)
        self._servers[name] = upstream
        if name not in self._parts or (self._parts[name] == "") == config.prefix:
            # a detach ran while this attach connected, or the replacement changed `prefix`
            self._parts[name] = self._claim_part(name, config)
        self._rebuild()
        self._rebuild_catalog()
        status = upstream.status()
        facts = {"server": name, "transport": config.transport, "tools": status.tool_count}
        if status.connected:
            log.info("server %s attached (%s): %d tools", name, config.transport, status.tool_count, extra=facts)
        else:
            log.warning(
                "server %s attached (%s) but not connected: %s; retrying in the background",
                name,
                config.transport,
                status.last_error,
                extra={**facts, "reason": status.last_error},
            )
        if old is not None:
            self._per_client.close_server(name)
            await old.stop(f"server {name!r} was replaced while the call was in flight")
        await self._resubscribe(upstream)
        return status

    async def detach(self, name: str, *, revoke: bool = False) -> None:
        """Remove a server: its tools disappear, in-flight calls end with `ServerDetached`, its
        connection closes and any child process is reaped before this returns (a cancelled caller gets its
        cancellation once they are, and no revocation). With `revoke`, an OAuth server's
        tokens are then revoked at its authorization server (best effort, within `REVOKE_TIMEOUT` seconds).

        Raises:
            ServerNotAttached: no server has this name.
        """
        upstream = self._servers.pop(name, None)
        if upstream is None:
            raise ServerNotAttached(name)
        del self._parts[name]
        self._rebuild()
        self._rebuild_catalog()
        self._per_client.close_server(name)
        try:
            await upstream.stop(f"server {name!r} was detached while the call was in flight")
        finally:
            log.info("server %s detached", name, extra={"server": name})  # also when the caller was cancelled
        if revoke and upstream.auth is not None:
            transport = guarded_transport(upstream.guard) if upstream.guard is not None else None
            with anyio.move_on_after(REVOKE_TIMEOUT):
                async with httpx2.AsyncClient(
                    transport=transport, follow_redirects=False, timeout=REVOKE_TIMEOUT
                ) as http:
                    await upstream.auth.revoke(http)

    def _claim_part(self, name: str, config: ServerConfig) -> str:
        """A server's part of tool and prompt names: its own, or none (`prefix: false`)."""
        if not config.prefix:
            return ""
        return claim_server_part(name, (part for other, part in self._parts.items() if other != name))

    def reconnect(self, name: str) -> None:
        """Drop a server's connection and connect again now (its tools stay advertised meanwhile).

        Raises:
            ServerNotAttached: no server has this name.
        """
        self._server(name).reconnect()

    def config(self, name: str) -> ServerConfig:
        """A server's config, secrets included (as `SecretStr`): what a host needs to restore it.

        Raises:
            ServerNotAttached: no server has this name.
        """
        return self._server(name).config

    def attachment(self, name: str) -> tuple[ServerConfig, NetworkGuard | None] | None:
        """What it takes to attach a server again as it is (config and guard); None when it is not attached."""
        upstream = self._servers.get(name)
        return None if upstream is None else (upstream.config, upstream.guard)

    def server_statuses(self) -> list[ServerStatus]:
        return [self._status(upstream) for upstream in self._servers.values()]

    def status(self, name: str) -> ServerStatus:
        """Raises `ServerNotAttached` for an unknown name."""
        return self._status(self._server(name))

    def _status(self, upstream: Upstream) -> ServerStatus:
        status = upstream.status()
        if not upstream.config.per_client:
            return status
        return dataclasses.replace(status, clients=self._per_client.count(upstream.name))

    def release_client(self, client: str) -> None:
        """The session `client` ended: its own connections to `per_client` servers close (once idle)."""
        self._per_client.release(client)

    async def roots_changed(self, client: str) -> None:
        """Tell the server sessions that serve `client` that its roots changed: its own connections to `per_client`
        servers, and every shared connection (which serves every client; a `roots/list` it sends then goes to the
        call it belongs to, as any question)."""
        shared = [upstream for upstream in self._servers.values() if not upstream.config.per_client]
        for upstream in [*self._per_client.upstreams(client), *shared]:
            await upstream.roots_changed()

    def _server(self, name: str) -> Upstream:
        upstream = self._servers.get(name)
        if upstream is None:
            raise ServerNotAttached(name)
        return upstream

    # -- tools ---------------------------------------------------------------------------------

    def definitions(self) -> tuple[ToolDefinition, ...]:
        """Every server's tools as `mcp__<server>__<tool>`; the same tuple until the next change."""
        return self._definitions

    @property
    def generation(self) -> int:
        """Goes up by one each time `definitions()` changes."""
        return self._generation

    async def wait_for_change(self, generation: int) -> int:
        """Wait until the generation differs from `generation`; returns the new one."""
        while self._generation == generation:
            await self._changed.wait()
        return self._generation

    def route(self, tool: str) -> tuple[str, str]:
        """`(server, upstream tool name)` for a lash tool name.

        Raises:
            UnknownTool: no attached server offers it.
        """
        upstream, original = self._route(tool)
        return upstream.name, original

    def _route(self, tool: str) -> tuple[Upstream, str]:
        route = self._routes.get(tool)
        if route is None:
            raise UnknownTool(tool)
        return route

    async def call_tool(
        self,
        tool: str,
        args: Mapping[str, Any],
        *,
        progress: ProgressReporter | None = None,
        call_timeout: float | None = None,
        log: LogReporter | None = None,
        caller: Caller = NO_CALLER,
        client: str | None = None,
    ) -> ToolResult:
        """Call a tool by its lash name. A tool that reports an error is a failure result; everything
        that keeps the call from an answer raises.

        Raises:
            UnknownTool: no attached server offers `tool`.
            UpstreamUnavailable: the server is not connected or the connection dropped mid-call.
            ServerDetached: the server was detached or replaced during the call.
            CallTimeout: no answer within `call_timeout` (default: the server's `call_timeout`).
            UpstreamCallError: the server answered with a JSON-RPC error.
        """
        upstream, original = self._route(tool)
        if client is None or not upstream.config.per_client:  # the hot path: no context manager to enter
            return await upstream.call(
                original, args, progress=progress, call_timeout=call_timeout, log_to=log, caller=caller
            )
        async with self._per_client.using(upstream, client) as target:
            return await target.call(
                original, args, progress=progress, call_timeout=call_timeout, log_to=log, caller=caller
            )

    # -- resources and prompts ------------------------------------------------------------------

    def resources(self) -> tuple[Mapping[str, Any], ...]:
        """Every server's resources (wire form), once per URI; see `_merged` for who serves which."""
        return self._catalog.resources

    def resource_templates(self) -> tuple[Mapping[str, Any], ...]:
        return self._catalog.templates

    def prompts(self) -> tuple[Mapping[str, Any], ...]:
        """Every server's prompts (wire form), named like tools: `mcp__<server>__<prompt>`."""
        return self._catalog.prompts

    def watch(self, listener: CatalogListener) -> None:
        """Tell `listener` of every catalog change from now on (see `CatalogListener`), until `unwatch(listener)`."""
        self._listeners.append(listener)

    def unwatch(self, listener: CatalogListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def template_of(self, uri: str) -> str | None:
        """The resource template a read of `uri` goes through: None when `uri` is listed, or nothing matches it."""
        return self._catalog.template_for_uri(uri)

    def server_of(self, kind: Literal["resource", "template", "prompt"], key: str) -> str | None:
        """The server that serves a resource URI (listed, or matched by a template), a resource template (as listed)
        or a prompt (by its lash name); None if none does."""
        catalog = self._catalog
        if kind == "resource":
            server = catalog.server_for_uri(key)
        elif kind == "template":
            server = catalog.server_for_template(key)
        else:
            server = route[0] if (route := catalog.prompt_routes.get(key)) is not None else None
        return server if server in self._servers else None

    def resource_server(self, uri: str) -> str:
        """The server a read of `uri` goes to.

        Raises:
            UnknownResource: no server lists `uri` or has a template it matches.
        """
        server = self._catalog.server_for_uri(uri)
        if server is None or server not in self._servers:
            raise UnknownResource(uri)
        return server

    async def read_resource(
        self,
        uri: str,
        *,
        progress: ProgressReporter | None = None,
        log: LogReporter | None = None,
        caller: Caller = NO_CALLER,
        client: str | None = None,
    ) -> dict[str, Any]:
        """A `resources/read` result (wire form) from the server that serves `uri` (`client`'s own connection to
        it, when it is `per_client`).

        Raises:
            UnknownResource, and as `call_tool`.
        """
        upstream = self._servers[self.resource_server(uri)]
        async with self._per_client.using(upstream, client) as target:
            return await target.request(
                "resources/read", {"uri": uri}, uri, progress=progress, log_to=log, caller=caller
            )

    async def get_prompt(
        self,
        name: str,
        arguments: Mapping[str, str] | None = None,
        *,
        progress: ProgressReporter | None = None,
        log: LogReporter | None = None,
        caller: Caller = NO_CALLER,
        client: str | None = None,
    ) -> dict[str, Any]:
        """A `prompts/get` result (wire form) for a prompt by its lash name.

        Raises:
            UnknownPrompt: no attached server offers it; and as `call_tool`.
        """
        upstream, original = self._prompt_route(name)
        params = {"name": original, "arguments": dict(arguments or {})}
        async with self._per_client.using(upstream, client) as target:
            return await target.request("prompts/get", params, original, progress=progress, log_to=log, caller=caller)

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context: Mapping[str, Any] | None = None,
        *,
        client: str | None = None,
    ) -> dict[str, Any]:
        """A `completion/complete` result from the server that owns `ref`: a prompt (`ref/prompt`, its lash name)
        or a resource template (`ref/resource`, the template as listed). `context` holds the arguments already
        chosen.

        Raises:
            UnknownPrompt, UnknownResource: no attached server owns `ref`; and as `call_tool`.
        """
        if ref.get("type") == "ref/prompt":
            upstream, original = self._prompt_route(str(ref.get("name")))
            ref = {**ref, "name": original}
        else:
            template = str(ref.get("uri"))
            server = self._catalog.server_for_template(template) or self._catalog.server_for_uri(template)
            if server is None or server not in self._servers:
                raise UnknownResource(template)
            upstream, original = self._servers[server], template
        params: dict[str, Any] = {"ref": dict(ref), "argument": dict(argument)}
        if context:
            params["context"] = {"arguments": dict(context)}
        async with self._per_client.using(upstream, client) as target:
            return await target.request("completion/complete", params, original)

    async def subscribe(self, uri: str) -> None:
        """Count one more subscriber of `uri`; the first subscribes upstream (and again on every reconnect).

        Raises:
            UnknownResource: no server serves `uri`.
        """
        upstream = self._servers[self.resource_server(uri)]
        self._subscriptions[uri] = self._subscriptions.get(uri, 0) + 1
        if self._subscriptions[uri] == 1:
            await upstream.subscribe(uri)

    async def unsubscribe(self, uri: str) -> None:
        """Count one subscriber of `uri` fewer; the last unsubscribes upstream."""
        count = self._subscriptions.get(uri, 0) - 1
        if count > 0:
            self._subscriptions[uri] = count
            return
        self._subscriptions.pop(uri, None)
        for upstream in list(self._servers.values()):
            if upstream.subscribed(uri):  # no other server hears of a URI it does not serve
                await upstream.unsubscribe(uri)

    async def _resubscribe(self, upstream: Upstream) -> None:
        """A server attached (or replaced): the subscribed URIs it now serves are subscribed on it."""
        for uri in list(self._subscriptions):
            if self._catalog.server_for_uri(uri) == upstream.name and not upstream.subscribed(uri):
                await upstream.subscribe(uri)

    def _prompt_route(self, name: str) -> tuple[Upstream, str]:
        route = self._catalog.prompt_routes.get(name)
        if route is None or route[0] not in self._servers:
            raise UnknownPrompt(name)
        return self._servers[route[0]], route[1]

    # -- told by upstreams ---------------------------------------------------------------------

    def tools_changed(self, upstream: Upstream) -> None:
        if self._servers.get(upstream.name) is upstream:
            self._rebuild()

    def catalog_changed(self, upstream: Upstream, kind: CatalogKind) -> None:
        if self._servers.get(upstream.name) is upstream:
            self._rebuild_catalog(kind)

    def resource_updated(self, upstream: Upstream, uri: str) -> None:
        if self._servers.get(upstream.name) is upstream:
            self._tell(None, uri)

    def _tell(self, kind: CatalogKind | None, uri: str | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, uri)
            except Exception:  # a listener's bug must not fail an attach or a connection
                log.exception("a catalog listener failed", extra={"uri": uri, "kind": kind})

    def _rebuild_catalog(self, kind: CatalogKind | None = None) -> None:
        """Merge the catalogs again; tell listeners what changed (`kind`, or whatever differs)."""
        attached = [name for name in self._parts if name in self._servers]
        old = self._catalog
        upstreams = [self._servers[name] for name in attached]
        later = self._catalog_arrivals.later({upstream: _catalog_keys(upstream.catalog) for upstream in upstreams})
        new = self._catalog = merge(
            {upstream.name: upstream.catalog for upstream in upstreams},
            {name: self._parts[name] for name in attached},
            old,
            {(server, kind, key) for server, (kind, key) in later},  # a set: `merge` asks it for every item
        )
        for name in attached:
            self._servers[name].conflicts = new.conflicts.get(name, ())
        changed: list[CatalogKind] = []
        if (new.resources, new.templates) != (old.resources, old.templates):
            changed.append("resources")
        if new.prompts != old.prompts:
            changed.append("prompts")
        for what in changed:
            self._tell(what, None)

    def _rebuild(self) -> None:
        attached = [name for name in self._parts if name in self._servers]
        upstreams = [self._servers[name] for name in attached]
        listed = {upstream: [t.name for t in upstream.tools] for upstream in upstreams}
        names = assign_tool_names(
            {upstream.name: tools for upstream, tools in listed.items()},
            {name: self._parts[name] for name in attached},
            self._tool_names,
            {ToolRef(server, tool) for server, tool in self._tool_arrivals.later(listed)},
        )
        self._tool_names = names.by_ref
        routes: dict[str, tuple[Upstream, str]] = {}
        definitions: list[ToolDefinition] = []
        by_server = {name: {t.name: t for t in u.tools} for name, u in self._servers.items()}
        for lash_name, ref in names.tools.items():
            tool = by_server[ref.server][ref.tool]
            definitions.append(
                ToolDefinition(
                    lash_name,
                    tool.description or "",
                    tool.input_schema,
                    tool.output_schema,
                    tool.title,
                    tool.annotations,
                )
            )
            routes[lash_name] = (self._servers[ref.server], ref.tool)
        self._routes = MappingProxyType(routes)
        new = tuple(definitions)
        if new != self._definitions:
            self._definitions = new
            self._generation += 1
            changed, self._changed = self._changed, anyio.Event()
            changed.set()


def _catalog_keys(catalog: Catalog) -> list[tuple[Literal["uri", "template", "prompt"], str]]:
    """What a catalog lists, each with its kind, as `Arrivals` tells first listings from later additions."""
    return [
        *(("uri", resource["uri"]) for resource in catalog.resources),
        *(("template", template["uriTemplate"]) for template in catalog.templates),
        *(("prompt", prompt["name"]) for prompt in catalog.prompts),
    ]
