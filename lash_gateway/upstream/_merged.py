"""Every attached server's resources, templates and prompts as one catalog, and where each request goes.

The routing rule, deterministic and documented in the README:
- a URI goes to the server that lists it; when several list it, to the one that served it before (`merge`'s
  `before`), else to the one attached first;
- else to the first server, in attach order, with a template the URI matches (see `_uri_template`), a template
  text staying with the server that served it before as a URI does;
- resources and templates are listed once per URI and template string (the serving server's entry); every
  other server that lists one is told in its status (`conflicts`);
- prompts are named like tools (`mcp__<server>__<prompt>`, unique, shortened by the export to its limit), and
  the upstream name is kept for the call.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from .._naming import ToolRef, assign_tool_names
from .._uri_template import matches
from ._catalog import Catalog

__all__ = ["MergedCatalog", "merge"]


@dataclass(frozen=True, slots=True)
class MergedCatalog:
    resources: tuple[Mapping[str, Any], ...] = ()
    templates: tuple[Mapping[str, Any], ...] = ()
    prompts: tuple[Mapping[str, Any], ...] = ()
    """Each upstream prompt with `name` replaced by its lash name."""
    prompt_routes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    """Lash prompt name -> (server, upstream prompt name)."""
    uri_routes: Mapping[str, str] = field(default_factory=dict)
    """Listed URI -> the server that serves it."""
    template_routes: tuple[tuple[str, str], ...] = ()
    """(template, server) in attach order: the first that matches a URI serves it."""
    conflicts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Server -> what it lists that another server serves."""

    def server_for_uri(self, uri: str) -> str | None:
        server = self.uri_routes.get(uri)
        if server is not None:
            return server
        return next((server for template, server in self.template_routes if matches(template, uri)), None)

    def template_for_uri(self, uri: str) -> str | None:
        """The template a read of an unlisted `uri` is served through (None: it is listed, or nothing matches)."""
        if uri in self.uri_routes:
            return None
        return next((template for template, server in self.template_routes if matches(template, uri)), None)

    def server_for_template(self, template: str) -> str | None:
        return next((server for listed, server in self.template_routes if listed == template), None)


def merge(
    catalogs: Mapping[str, Catalog],
    parts: Mapping[str, str],
    before: MergedCatalog | None = None,
    newcomers: Collection[str] = (),
) -> MergedCatalog:
    """The catalogs of the servers in `catalogs` (attach order), with `parts` their part in names. What `before`,
    the catalog this one replaces, gave a server stays its own while it lists it: a URI or a template it serves,
    a prompt's name. An earlier server that lists them later does not take its reads, subscriptions or prompts,
    unless that is its first listing (`newcomers`: it just connected, and gets what its place gives it)."""
    resources: list[Mapping[str, Any]] = []
    uri_routes: dict[str, str] = {}
    templates: list[Mapping[str, Any]] = []
    template_routes: list[tuple[str, str]] = []
    template_owner: dict[str, str] = {}
    if before is not None:
        order = {server: index for index, server in enumerate(catalogs)}
        uris = {server: {r["uri"] for r in catalog.resources} for server, catalog in catalogs.items()}
        texts = {server: {t["uriTemplate"] for t in catalog.templates} for server, catalog in catalogs.items()}

        def kept(key: str, owner: str, listing: Mapping[str, set[str]]) -> bool:
            """Whether `owner` still lists `key` and no newcomer attached before it does."""
            ahead = (new for new in newcomers if new in order and order[new] < order.get(owner, -1))
            return key in listing.get(owner, ()) and not any(key in listing[new] for new in ahead)

        uri_routes = {uri: owner for uri, owner in before.uri_routes.items() if kept(uri, owner, uris)}
        template_owner = {text: owner for text, owner in before.template_routes if kept(text, owner, texts)}
    conflicts: dict[str, list[str]] = {}
    for server, catalog in catalogs.items():
        for resource in catalog.resources:
            uri = resource["uri"]
            owner = uri_routes.setdefault(uri, server)
            if owner == server:
                resources.append(resource)
            else:
                conflicts.setdefault(server, []).append(
                    f"resource {uri!r} is also listed by {owner!r}, which serves it"
                )
        for template in catalog.templates:
            text = template["uriTemplate"]
            owner = template_owner.setdefault(text, server)
            if owner == server:
                templates.append(template)
                template_routes.append((text, server))
            else:
                conflicts.setdefault(server, []).append(
                    f"resource template {text!r} is also listed by {owner!r}, which serves it"
                )
    names = assign_tool_names(
        {server: [p["name"] for p in catalog.prompts] for server, catalog in catalogs.items()},
        {server: parts[server] for server in catalogs},
        {ToolRef(*route): name for name, route in before.prompt_routes.items()} if before is not None else None,
        newcomers,
    )
    by_server = {server: {p["name"]: p for p in catalog.prompts} for server, catalog in catalogs.items()}
    prompts = [{**by_server[ref.server][ref.tool], "name": name} for name, ref in names.tools.items()]
    return MergedCatalog(
        tuple(resources),
        tuple(templates),
        tuple(prompts),
        MappingProxyType({name: (ref.server, ref.tool) for name, ref in names.tools.items()}),
        MappingProxyType(uri_routes),
        tuple(template_routes),
        MappingProxyType({server: _capped(found) for server, found in conflicts.items()}),
    )


MAX_CONFLICTS_SHOWN = 20
"""Conflicts a server's status lists; the rest are counted."""


def _capped(found: list[str]) -> tuple[str, ...]:
    if len(found) <= MAX_CONFLICTS_SHOWN:
        return tuple(found)
    return (*found[:MAX_CONFLICTS_SHOWN], f"... and {len(found) - MAX_CONFLICTS_SHOWN} more")
