"""The rest of the MCP surface on the export: resources, resource templates, prompts, completion and resource
subscriptions, served from a `Catalog` (the pool: every attached server's, merged).

URIs pass unchanged, so a client reads exactly the URI a tool result or an MCP App gave it. Prompts are named
as tools are (`<server>__<prompt>`, within the name limit). Lists are served in pages of `PAGE_SIZE` with an
offset cursor; a cursor from an older list still pages (the list may have changed in between, as with any
server). Subscriptions are kept per connection (handshake era) or per listen stream (2026-07-28), counted in
the catalog (one upstream subscription per URI however many clients), and released when the connection or
stream ends.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, cast

import anyio
import mcp_types as types
from mcp import MCPError
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import Caller, LogReporter, ProgressReporter

from .._errors import GatewayError, UnknownPrompt, UnknownResource, UpstreamCallError
from .._naming import export_names
from .._sdk import connection_of
from ._views import View
from ._wire import for_era

__all__ = ["PAGE_SIZE", "RESOURCE_NOT_FOUND", "Catalog", "CatalogExport"]

log = logging.getLogger("lash_gateway.export")

PAGE_SIZE: Final = 500
"""Entries per page of `resources/list`, `resources/templates/list` and `prompts/list`."""
RESOURCE_NOT_FOUND: Final = -32002
"""The JSON-RPC error code MCP gives a read of a URI no server offers, before 2026-07-28 (then `INVALID_PARAMS`)."""

Listen = Callable[
    [ServerRequestContext[Any, Any], types.SubscriptionsListenRequestParams], Awaitable[types.SubscriptionsListenResult]
]
"""The export's `subscriptions/listen` handler (the SDK's, refusing streams once its endpoint ends)."""

_SUBSCRIPTIONS: Final = "lash_gateway.subscriptions"
"""Where a connection's subscribed URIs live in its `state`."""
MAX_SUBSCRIPTIONS: Final = 1024
"""Resources one client (a connection, or a listen stream) may subscribe to."""

Answer = Callable[..., Awaitable[dict[str, Any]]]
"""`McpExport.answer`: serves a request whose upstream may ask its client."""


class Catalog(Protocol):
    """What the export serves beyond tools (`McpConnectionPool` is one)."""

    def resources(self) -> tuple[Mapping[str, Any], ...]: ...

    def resource_templates(self) -> tuple[Mapping[str, Any], ...]: ...

    def prompts(self) -> tuple[Mapping[str, Any], ...]: ...

    def watch(self, listener: Callable[[Any, str | None], None]) -> None: ...

    def unwatch(self, listener: Callable[[Any, str | None], None]) -> None: ...

    def template_of(self, uri: str) -> str | None: ...

    async def read_resource(
        self,
        uri: str,
        *,
        progress: ProgressReporter | None,
        log: LogReporter | None,
        caller: Caller,
        client: str | None,
    ) -> dict[str, Any]: ...

    async def get_prompt(
        self,
        name: str,
        arguments: Mapping[str, str] | None,
        *,
        progress: ProgressReporter | None,
        log: LogReporter | None,
        caller: Caller,
        client: str | None,
    ) -> dict[str, Any]: ...

    async def complete(
        self,
        ref: Mapping[str, Any],
        argument: Mapping[str, Any],
        context: Mapping[str, Any] | None,
        *,
        client: str | None,
    ) -> dict[str, Any]: ...

    async def roots_changed(self, client: str) -> None: ...

    async def subscribe(self, uri: str) -> None: ...

    async def unsubscribe(self, uri: str) -> None: ...

    def server_of(self, kind: Literal["resource", "template", "prompt"], key: str) -> str | None: ...


@dataclass(eq=False)
class _Held:
    """One connection's subscriptions."""

    uris: set[str] = field(default_factory=set)
    lock: anyio.Lock = field(default_factory=anyio.Lock)
    closed: bool = False


@dataclass(frozen=True, slots=True)
class _Prompts:
    key: tuple[Mapping[str, Any], ...]
    wire: tuple[Mapping[str, Any], ...]
    lash_names: Mapping[str, str]
    view: View | None


class CatalogExport:
    """The handlers of the catalog's methods, and its changes on their way to clients."""

    def __init__(
        self,
        catalog: Catalog,
        bus: InMemorySubscriptionBus,
        name_limit: int,
        answer: Answer,
        client_of: Callable[[ServerRequestContext[Any, Any]], Awaitable[str | None]],
        listens: Listen,
        view: Callable[[], View | None] = lambda: None,
    ) -> None:
        """`client_of` names the client of a request (its session), for servers that give each its own connection.
        `view` is the export's view (read on every request: it may change); what it does not show is neither listed
        nor served, as if no server offered it."""
        self._catalog = catalog
        self._view = view
        self._shown: dict[str, tuple[object, View | None, tuple[Mapping[str, Any], ...]]] = {}
        self._client_of = client_of
        self._bus = bus
        self._limit = name_limit
        self._answer = answer
        self._prompts: _Prompts | None = None
        self._subscribers: dict[str, dict[int, Connection]] = {}
        self.listen = _TrackingListen(catalog, listens, self.shows_uri)

    # -- lists ---------------------------------------------------------------------------------

    async def list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        shown = self._shown_of("resources", self._catalog.resources(), lambda r: self.shows_uri(r["uri"]))
        return cast(types.ListResourcesResult, _page(ctx, shown, "resources", params))

    async def list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        shown = self._shown_of("templates", self._catalog.resource_templates(), lambda t: self._shows_template(t))
        page = _page(ctx, shown, "resourceTemplates", params)
        return cast(types.ListResourceTemplatesResult, page)

    async def list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        return cast(types.ListPromptsResult, _page(ctx, self._exported_prompts().wire, "prompts", params))

    def _exported_prompts(self) -> _Prompts:
        """The prompts this export shows, under their exported names (named as on the plain export: a view only
        leaves some out)."""
        prompts = self._catalog.prompts()
        view = self._view()
        cached = self._prompts
        if cached is None or cached.key is not prompts or cached.view is not view:
            names = export_names([p["name"] for p in prompts], self._limit)
            if view is not None:
                server_of = self._catalog.server_of
                prompts_shown = [
                    p for p in prompts if view.shows("prompt", names[p["name"]], server_of("prompt", p["name"]))
                ]
            else:
                prompts_shown = list(prompts)
            wire = tuple({**p, "name": names[p["name"]]} for p in prompts_shown)
            lash_names = {names[p["name"]]: p["name"] for p in prompts_shown}
            cached = self._prompts = _Prompts(prompts, wire, lash_names, view)
        return cached

    def shows_uri(self, uri: str) -> bool:
        """Whether a client of this export may read, subscribe to or hear of the resource at `uri`.

        Under a view that filters resources, a URI must be in plain form: an upstream decodes percent-escapes and
        may resolve dot segments after the gateway matched the URI against the view's globs (`%70rivate/key`,
        `public/../private/key`), so a URI with either is hidden. A URI read through a template is shown only if
        the template is too."""
        view = self._view()
        if view is None:
            return True
        if (view.resources.allow or view.resources.deny) and not _plain_uri(uri):
            return False
        if not view.shows("resource", uri, self._catalog.server_of("resource", uri)):
            return False
        template = self._catalog.template_of(uri)
        return template is None or view.shows("template", template, self._catalog.server_of("template", template))

    def _shows_template(self, template: Mapping[str, Any]) -> bool:
        view = self._view()
        uri_template = str(template.get("uriTemplate", ""))
        return view is None or view.shows("template", uri_template, self._catalog.server_of("template", uri_template))

    def _shows_ref(self, uri: str) -> bool:
        """Whether a completion's resource ref is shown: a template as listed, or else a URI, as a read of it is."""
        if self._catalog.server_of("template", uri) is not None:
            return self._shows_template({"uriTemplate": uri})
        return self.shows_uri(uri)

    def _shown_of(
        self, kind: str, items: tuple[Mapping[str, Any], ...], shown: Callable[[Mapping[str, Any]], bool]
    ) -> tuple[Mapping[str, Any], ...]:
        """`items` the view shows, kept while the list and the view last (a list is read far more often than it
        changes)."""
        view = self._view()
        if view is None:
            return items
        cached = self._shown.get(kind)
        if cached is None or cached[0] is not items or cached[1] is not view:
            cached = self._shown[kind] = (items, view, tuple(item for item in items if shown(item)))
        return cached[2]

    # -- reads, prompts, completion ------------------------------------------------------------

    async def read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult:
        uri = str(params.uri)
        if not self.shows_uri(uri):
            raise _error(UnknownResource(uri), ctx.protocol_version)
        client = await self._client_of(ctx)

        async def run(progress: ProgressReporter | None, relay_log: LogReporter, caller: Caller) -> dict[str, Any]:
            try:
                return await self._catalog.read_resource(
                    uri, progress=progress, log=relay_log, caller=caller, client=client
                )
            except GatewayError as exc:
                raise _error(exc, ctx.protocol_version) from None

        return cast(types.ReadResourceResult, await self._answer(ctx, "resources/read", params, run))

    async def get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult:
        lash_name = self._exported_prompts().lash_names.get(params.name)
        if lash_name is None:
            raise MCPError(types.INVALID_PARAMS, f"unknown prompt {params.name!r}: it is not in this gateway's prompts")

        client = await self._client_of(ctx)

        async def run(progress: ProgressReporter | None, relay_log: LogReporter, caller: Caller) -> dict[str, Any]:
            try:
                return await self._catalog.get_prompt(
                    lash_name, params.arguments, progress=progress, log=relay_log, caller=caller, client=client
                )
            except GatewayError as exc:
                raise _error(exc, ctx.protocol_version) from None

        return cast(types.GetPromptResult, await self._answer(ctx, "prompts/get", params, run))

    async def complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        ref = params.ref.model_dump(by_alias=True, exclude_none=True, mode="json")
        if ref.get("type") == "ref/prompt":
            lash_name = self._exported_prompts().lash_names.get(ref.get("name", ""))
            if lash_name is None:
                raise MCPError(types.INVALID_PARAMS, f"unknown prompt {ref.get('name')!r}")
            ref["name"] = lash_name
        elif ref.get("type") == "ref/resource" and not self._shows_ref(str(ref.get("uri", ""))):
            raise _error(UnknownResource(str(ref.get("uri"))), ctx.protocol_version)
        argument = params.argument.model_dump(by_alias=True, exclude_none=True, mode="json")
        context = params.context.arguments if params.context is not None else None
        try:
            result = await self._catalog.complete(ref, argument, context, client=await self._client_of(ctx))
        except GatewayError as exc:
            raise _error(exc, ctx.protocol_version) from None
        return cast(types.CompleteResult, for_era(ctx.protocol_version, result))

    async def roots_changed(self, ctx: ServerRequestContext[Any, Any], params: types.NotificationParams | None) -> None:
        """`notifications/roots/list_changed`: to the servers that serve this client alone."""
        client = await self._client_of(ctx)
        if client is not None:
            await self._catalog.roots_changed(client)

    # -- subscriptions -------------------------------------------------------------------------

    async def subscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        connection = connection_of(ctx)
        uri = str(params.uri)
        if not self.shows_uri(uri):
            raise _error(UnknownResource(uri), ctx.protocol_version)
        held: _Held | None = connection.state.get(_SUBSCRIPTIONS)
        if held is None:
            held = connection.state[_SUBSCRIPTIONS] = _Held()
            connection.exit_stack.push_async_callback(self._release, connection, held)
        async with held.lock:  # one change at a time per connection: the counts stay right whatever the order
            if held.closed or uri in held.uris:
                return types.EmptyResult()
            if len(held.uris) >= MAX_SUBSCRIPTIONS:
                raise MCPError(
                    types.INVALID_REQUEST, f"a client may subscribe to {MAX_SUBSCRIPTIONS} resources at most"
                )
            try:
                await self._catalog.subscribe(uri)
            except GatewayError as exc:
                raise _error(exc, ctx.protocol_version) from None
            held.uris.add(uri)
            self._subscribers.setdefault(uri, {})[id(connection)] = connection
        return types.EmptyResult()

    async def unsubscribe(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        connection = connection_of(ctx)
        uri = str(params.uri)
        held: _Held | None = connection.state.get(_SUBSCRIPTIONS)
        if held is None:
            return types.EmptyResult()
        async with held.lock:
            if uri in held.uris:
                held.uris.discard(uri)
                self._forget(uri, connection)
                await self._catalog.unsubscribe(uri)
        return types.EmptyResult()

    async def _release(self, connection: Connection, held: _Held) -> None:
        """The connection closed: its subscriptions end, upstream too when it was the last subscriber."""
        async with held.lock:
            held.closed = True
            for uri in sorted(held.uris):
                self._forget(uri, connection)
                try:
                    await self._catalog.unsubscribe(uri)
                except Exception as exc:  # a closing connection must close whatever an upstream does
                    log.warning("unsubscribe of %s failed: %s", uri, exc, extra={"uri": uri, "reason": str(exc)})
            held.uris.clear()

    def _forget(self, uri: str, connection: Connection) -> None:
        holders = self._subscribers.get(uri)
        if holders is not None:
            holders.pop(id(connection), None)
            if not holders:
                del self._subscribers[uri]

    def subscribers(self, uri: str) -> list[Connection]:
        """The handshake-era connections subscribed to `uri`."""
        return list(self._subscribers.get(uri, {}).values())

    async def publish(self, kind: str | None, uri: str | None) -> None:
        """Hand a change to the 2026-07-28 listen streams (the handshake era's notifier is the export's)."""
        if uri is not None:
            await self._bus.publish(ResourceUpdated(uri=uri))
        elif kind == "resources":
            await self._bus.publish(ResourcesListChanged())
        elif kind == "prompts":
            await self._bus.publish(PromptsListChanged())


class _TrackingListen:
    """`subscriptions/listen`, with the stream's resource URIs subscribed in the catalog while it lasts (the SDK's
    handler does not say which URIs its streams want)."""

    def __init__(self, catalog: Catalog, listens: Listen, shows: Callable[[str], bool]) -> None:
        self._catalog = catalog
        self._inner = listens
        self._shows = shows

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        catalog = self._catalog
        held: list[str] = []
        try:
            wanted = list(dict.fromkeys(params.notifications.resource_subscriptions or ()))
            if len(wanted) > MAX_SUBSCRIPTIONS:
                raise MCPError(types.INVALID_REQUEST, f"a stream may name {MAX_SUBSCRIPTIONS} resources at most")
            for uri in wanted:
                if not self._shows(uri):
                    continue  # not this client's to hear of: as if no server offered it
                try:
                    await catalog.subscribe(uri)
                except GatewayError:
                    continue  # no server offers it: nothing will change it, the stream just never says so
                held.append(uri)
            return await self._inner(ctx, params)
        finally:
            for uri in held:
                try:
                    await catalog.unsubscribe(uri)
                except Exception as exc:
                    log.warning("unsubscribe of %s failed: %s", uri, exc, extra={"uri": uri, "reason": str(exc)})


def _page(
    ctx: ServerRequestContext[Any, Any],
    items: tuple[Mapping[str, Any], ...],
    key: str,
    params: types.PaginatedRequestParams | None,
) -> dict[str, Any]:
    cursor = params.cursor if params is not None else None
    start = 0
    if cursor:
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 12):
            raise MCPError(types.INVALID_PARAMS, f"invalid cursor {cursor[:40]!r}: pass back a nextCursor as given")
        start = int(cursor)
    end = start + PAGE_SIZE
    page: dict[str, Any] = {key: list(items[start:end])}
    if end < len(items):
        page["nextCursor"] = str(end)
    return for_era(ctx.protocol_version, page)


def _plain_uri(uri: str) -> bool:
    """No percent-escape, and no `.` or `..` path segment."""
    if "%" in uri:
        return False
    path = uri.split("?", 1)[0].split("#", 1)[0]
    return not any(segment in (".", "..") for segment in path.split("/"))


def _error(exc: GatewayError, version: str) -> MCPError:
    """A catalog failure as a client of protocol `version` should see it: its code where the upstream gave one, the
    message always. A resource that is not there is `RESOURCE_NOT_FOUND` to a handshake-era client and
    `INVALID_PARAMS` to a 2026-07-28 one (SEP-2164), when the gateway says so and when a handshake-era upstream's
    read does (a 2026-07-28 upstream says `INVALID_PARAMS` itself)."""
    if isinstance(exc, UnknownResource):
        return MCPError(_not_found(version), str(exc), {"uri": exc.uri})
    if isinstance(exc, UnknownPrompt):
        return MCPError(types.INVALID_PARAMS, str(exc))
    if isinstance(exc, UpstreamCallError):
        not_found = exc.kind == "resource" and exc.code == RESOURCE_NOT_FOUND
        return MCPError(_not_found(version) if not_found else exc.code, str(exc))
    return MCPError(types.INTERNAL_ERROR, str(exc))


def _not_found(version: str) -> int:
    return types.INVALID_PARAMS if version in MODERN_PROTOCOL_VERSIONS else RESOURCE_NOT_FOUND
