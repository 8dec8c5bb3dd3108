"""Every attached server's resources, templates and prompts as one catalog, and where each request goes.

The routing rule, deterministic and documented in the README:
- a URI goes to the server that lists it; when several list it, to the one attached first, counting what each
  listed when it connected; a URI a server added later goes to it only if no other serves it (or it served it
  before, `merge`'s `later` and `before`), so an upstream cannot take another's reads at runtime;
- else to the first server, in attach order, with a template the URI matches (see `_uri_template`), the templates
  servers added later tried last; template texts are owned as URIs are;
- resources and templates are listed once per URI and template string (the serving server's entry); every
  other server that lists one is told in its status (`conflicts`);
- prompts are named like tools (`mcp__<server>__<prompt>`, unique, shortened by the export to its limit), and
  the upstream name is kept for the call.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, TypeAlias

from .._naming import ToolRef, assign_tool_names
from .._uri_template import matches
from ._catalog import Catalog

__all__ = ["Added", "MergedCatalog", "merge"]


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


Added: TypeAlias = tuple[str, Literal["uri", "template", "prompt"], str]
"""A URI, a template or a prompt a server (the first) added after its first listing."""


def merge(
    catalogs: Mapping[str, Catalog],
    parts: Mapping[str, str],
    before: MergedCatalog | None = None,
    later: Collection[Added] = (),
) -> MergedCatalog:
    """The catalogs of the servers in `catalogs` (attach order), with `parts` their part in names. What a server
    lists when it connects goes by its place; what it adds `later` takes nothing another server serves, and keeps
    what `before` (the catalog this one replaces) gave it while nobody else has it."""
    held_uris = before.uri_routes if before is not None else {}
    held_templates = dict(before.template_routes) if before is not None else {}
    uri_routes = _owners(catalogs, "uri", lambda catalog: [r["uri"] for r in catalog.resources], held_uris, later)
    template_owner = _owners(
        catalogs, "template", lambda catalog: [t["uriTemplate"] for t in catalog.templates], held_templates, later
    )
    resources: list[Mapping[str, Any]] = []
    templates: list[Mapping[str, Any]] = []
    template_routes: list[tuple[str, str]] = []
    conflicts: dict[str, list[str]] = {}
    for server, catalog in catalogs.items():
        for resource in catalog.resources:
            uri = resource["uri"]
            owner = uri_routes[uri]
            if owner == server:
                resources.append(resource)
            else:
                conflicts.setdefault(server, []).append(
                    f"resource {uri!r} is also listed by {owner!r}, which serves it"
                )
        for template in catalog.templates:
            text = template["uriTemplate"]
            owner = template_owner[text]
            if owner == server:
                templates.append(template)
                template_routes.append((text, server))
            else:
                conflicts.setdefault(server, []).append(
                    f"resource template {text!r} is also listed by {owner!r}, which serves it"
                )
    # A template a server added later is tried after all the others: it must not take the URIs another's serves.
    template_routes.sort(key=lambda route: (route[1], "template", route[0]) in later)
    names = assign_tool_names(
        {server: [p["name"] for p in catalog.prompts] for server, catalog in catalogs.items()},
        {server: parts[server] for server in catalogs},
        {ToolRef(*route): name for name, route in before.prompt_routes.items()} if before is not None else None,
        {ToolRef(server, key) for server, kind, key in later if kind == "prompt"},
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


def _owners(
    catalogs: Mapping[str, Catalog],
    kind: Literal["uri", "template"],
    keys_of: Callable[[Catalog], list[str]],
    held: Mapping[str, str],
    later: Collection[Added],
) -> dict[str, str]:
    """Who serves each URI (template) that `catalogs` list: what servers listed when they connected, in attach
    order; then what they added later, to the server that held it, else in attach order, where still free."""
    owner: dict[str, str] = {}
    listed = [(server, key) for server, catalog in catalogs.items() for key in keys_of(catalog)]
    for server, key in listed:
        if (server, kind, key) not in later:
            owner.setdefault(key, server)
    added = [(server, key) for server, key in listed if (server, kind, key) in later]
    for server, key in added:
        if held.get(key) == server:
            owner.setdefault(key, server)
    for server, key in added:
        owner.setdefault(key, server)
    return owner


MAX_CONFLICTS_SHOWN = 20
"""Conflicts a server's status lists; the rest are counted."""


def _capped(found: list[str]) -> tuple[str, ...]:
    if len(found) <= MAX_CONFLICTS_SHOWN:
        return tuple(found)
    return (*found[:MAX_CONFLICTS_SHOWN], f"... and {len(found) - MAX_CONFLICTS_SHOWN} more")
