"""What one client sees of the export's tools: a view (the tools of a virtual server, issue 14).

A view picks tools by the server they come from and by their exported names (globs: `docs__*`), rewrites a tool's
name, title, description and annotations, and fixes argument values: the gateway sets them, and the client never
sees them in the tool's schema. In search mode the client lists two tools, `search_tools` and `call_tool`, and the
pinned ones (`_search`); every tool of the view stays callable through `call_tool`.

Every pattern and override names a tool by the name the plain export gives it, so one config reads the same
whatever the view renames.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from ._search import CALL_TOOL, SEARCH_TOOLS, ToolIndex
from ._wire import Surface

__all__ = ["ToolOverride", "View"]

log = logging.getLogger("lash_gateway.export")

_SEARCH_NAMES: Final = frozenset({SEARCH_TOOLS["name"], CALL_TOOL["name"]})


@dataclass(frozen=True, slots=True)
class ToolOverride:
    """How a view shows one tool. `arguments` are fixed: set by the gateway on every call, out of the schema."""

    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: Mapping[str, Any] | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class View:
    """A client's view of the tools. `servers` and `allow` are globs a tool must match (its upstream server's name;
    its exported name), `deny` globs it must not; tools of no server (a plugin's) pass `servers` only through `*`."""

    servers: tuple[str, ...] = ("*",)
    allow: tuple[str, ...] = ("*",)
    deny: tuple[str, ...] = ()
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)
    mode: Literal["full", "search"] = "full"
    pinned: tuple[str, ...] = ()
    """Tools listed as usual in search mode (by their plain exported names)."""

    def apply(self, surface: Surface, server_of: Callable[[str], str | None]) -> Surface:
        """The part of `surface` this view shows, as it shows it. `server_of` names a lash tool's upstream server."""
        tools: list[Mapping[str, Any]] = []
        lash_names: dict[str, str] = {}
        fixed: dict[str, Mapping[str, Any]] = {}
        pinned: list[Mapping[str, Any]] = []
        for tool in surface.tools:
            exported = tool["name"]
            lash_name = surface.lash_names[exported]
            if not self._shows(exported, server_of(lash_name)):
                continue
            override = self.overrides.get(exported)
            shown = _overridden(tool, override) if override is not None else tool

            def taken(name: str) -> bool:
                return name in lash_names or (self.mode == "search" and name in _SEARCH_NAMES)

            if taken(shown["name"]):
                if shown["name"] == exported or taken(exported):
                    log.warning("tool %s left out: its name is taken in the view", exported, extra={"tool": exported})
                    continue
                log.warning("tool %s keeps its name: another has %s", exported, shown["name"], extra={"tool": exported})
                shown = {**shown, "name": exported}
            tools.append(shown)
            lash_names[shown["name"]] = lash_name
            if override is not None and override.arguments:
                fixed[shown["name"]] = override.arguments
            if exported in self.pinned:
                pinned.append(shown)
        schemas = {tool["name"]: tool["inputSchema"] for tool in tools}
        routed = frozenset(name for name in surface.routed if name in schemas)
        if self.mode == "full":
            return replace(
                surface, tools=tuple(tools), lash_names=lash_names, input_schemas=schemas, routed=routed, fixed=fixed
            )
        listed = (SEARCH_TOOLS, CALL_TOOL, *pinned)
        return replace(
            surface,
            tools=listed,
            lash_names=lash_names,
            input_schemas={**schemas, **{tool["name"]: tool["inputSchema"] for tool in listed}},
            routed=routed,
            fixed=fixed,
            index=ToolIndex.of(tools),
        )

    def _shows(self, exported: str, server: str | None) -> bool:
        if server is None:
            in_servers = "*" in self.servers
        else:
            in_servers = any(fnmatchcase(server, pattern) for pattern in self.servers)
        return (
            in_servers
            and any(fnmatchcase(exported, pattern) for pattern in self.allow)
            and not any(fnmatchcase(exported, pattern) for pattern in self.deny)
        )


def _overridden(tool: Mapping[str, Any], override: ToolOverride) -> Mapping[str, Any]:
    shown = dict(tool)
    rewritten = {"name": override.name, "title": override.title, "description": override.description}
    shown.update({key: value for key, value in rewritten.items() if value is not None})
    if override.annotations is not None:
        shown["annotations"] = dict(override.annotations)
    if override.arguments:
        shown["inputSchema"] = _without(tool["inputSchema"], override.arguments.keys())
    return shown


def _without(schema: Mapping[str, Any], names: Any) -> Mapping[str, Any]:
    """`schema` without the properties `names` (and without them in `required`)."""
    gone = set(names)
    trimmed = dict(schema)
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        trimmed["properties"] = {key: value for key, value in properties.items() if key not in gone}
    required = schema.get("required")
    if isinstance(required, list):
        trimmed["required"] = [key for key in required if key not in gone]
    return trimmed
