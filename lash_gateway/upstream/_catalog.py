"""An upstream's resources, resource templates and prompts: every page, each entry checked on its own.

Entries are kept in wire form (what the client is sent is what the server listed): a resource needs a string
`uri` and `name`, a template a string `uriTemplate` and `name`, a prompt a string `name`; anything else is skipped
and said, and the rest of the list is kept, as for tools.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import mcp_types as types
from mcp import ClientSession, MCPError

from .._errors import UpstreamProtocolError
from ._wire import send_raw

__all__ = ["MAX_PAGES", "Catalog", "CatalogKind", "list_catalog", "list_pages"]

log = logging.getLogger("lash_gateway.upstream")

MAX_PAGES: Final = 1000
"""A server that paginates past this is lying about its cursor."""

CatalogKind = Literal["resources", "prompts"]
"""What a `list_changed` refreshes: resources (with their templates) or prompts."""

Entry = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a server offers besides tools, as it listed it."""

    resources: tuple[Entry, ...] = ()
    templates: tuple[Entry, ...] = ()
    prompts: tuple[Entry, ...] = ()


async def list_pages(session: ClientSession, server: str, method: str, key: str) -> list[Any]:
    """Every item of a paginated list (`key` of each page of `method`), in the server's order.

    Raises:
        UpstreamProtocolError: a page without the list, a repeated cursor, or no end within `MAX_PAGES`.
        mcp.MCPError: the server answered with an error, or the connection closed.
    """
    items: list[Any] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        page = await send_raw(session, method, {"cursor": cursor} if cursor else None)
        listed = page.get(key)
        if not isinstance(listed, list):
            raise UpstreamProtocolError(server, f"{method} result has no {key!r} list")
        items.extend(listed)
        next_cursor = page.get("nextCursor")
        if not next_cursor:
            return items
        if next_cursor == cursor:
            raise UpstreamProtocolError(server, f"{method} returned the same cursor {cursor!r} twice")
        cursor = str(next_cursor)
    raise UpstreamProtocolError(server, f"{method} did not end within {MAX_PAGES} pages")


async def list_catalog(
    session: ClientSession, server: str, capabilities: Any, old: Catalog, kinds: frozenset[CatalogKind]
) -> Catalog:
    """`old` with the `kinds` the server offers (by its capabilities) listed afresh. A list the server does not
    answer is empty when it has no such method and kept as it was otherwise (said in the log): a server's tools
    must not be lost to its prompts."""
    catalog = old
    if "resources" in kinds and getattr(capabilities, "resources", None) is not None:
        resources = await _listed(session, server, "resources/list", "resources", old.resources, ("uri", "name"))
        templates = await _listed(
            session, server, "resources/templates/list", "resourceTemplates", old.templates, ("uriTemplate", "name")
        )
        catalog = replace(catalog, resources=resources, templates=templates)
    if "prompts" in kinds and getattr(capabilities, "prompts", None) is not None:
        prompts = await _listed(session, server, "prompts/list", "prompts", old.prompts, ("name",))
        catalog = replace(catalog, prompts=prompts)
    return catalog


async def _listed(
    session: ClientSession, server: str, method: str, key: str, old: tuple[Entry, ...], required: tuple[str, ...]
) -> tuple[Entry, ...]:
    try:
        return _kept(server, method, await list_pages(session, server, method, key), required)
    except MCPError as exc:
        if exc.code == types.METHOD_NOT_FOUND:
            return ()
        reason = f"MCP error {exc.code}: {exc.message}"
    except UpstreamProtocolError as exc:
        reason = str(exc)
    log.warning(
        "upstream %s: %s failed, the last list is kept: %s",
        server,
        method,
        reason,
        extra={"server": server, "method": method, "reason": reason},
    )
    return old


def _kept(server: str, method: str, items: list[Any], required: tuple[str, ...]) -> tuple[Entry, ...]:
    """The well-formed entries, once each by their first required key (the first listing wins)."""
    kept: dict[str, Entry] = {}
    for item in items:
        if isinstance(item, Mapping) and all(isinstance(item.get(key), str) for key in required):
            kept.setdefault(item[required[0]], item)
            continue
        fields = " and ".join(f"a string {key!r}" for key in required)
        log.warning(
            "upstream %s: an entry of %s skipped: it has not %s",
            server,
            method,
            fields,
            extra={"server": server, "method": method, "reason": f"entry without {fields}"},
        )
    return tuple(kept.values())
