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

from mcp import ClientSession

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
    """`old` with the `kinds` the server offers (by its capabilities) listed afresh.

    Raises:
        UpstreamProtocolError, mcp.MCPError: as `list_pages`.
    """
    catalog = old
    if "resources" in kinds and getattr(capabilities, "resources", None) is not None:
        resources = await list_pages(session, server, "resources/list", "resources")
        templates = await list_pages(session, server, "resources/templates/list", "resourceTemplates")
        catalog = replace(
            catalog,
            resources=_kept(server, "resource", resources, ("uri", "name")),
            templates=_kept(server, "resource template", templates, ("uriTemplate", "name")),
        )
    if "prompts" in kinds and getattr(capabilities, "prompts", None) is not None:
        prompts = await list_pages(session, server, "prompts/list", "prompts")
        catalog = replace(catalog, prompts=_kept(server, "prompt", prompts, ("name",)))
    return catalog


def _kept(server: str, what: str, items: list[Any], required: tuple[str, ...]) -> tuple[Entry, ...]:
    """The well-formed entries, once each by their first required key (the first listing wins)."""
    kept: dict[str, Entry] = {}
    for item in items:
        if isinstance(item, Mapping) and all(isinstance(item.get(key), str) for key in required):
            kept.setdefault(item[required[0]], item)
            continue
        fields = " and ".join(f"a string {key!r}" for key in required)
        log.warning(
            "upstream %s: a %s skipped: it has not %s",
            server,
            what,
            fields,
            extra={"server": server, "reason": f"{what} without {fields}"},
        )
    return tuple(kept.values())
