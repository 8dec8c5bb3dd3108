"""What one client sees of the export's tools: a view (the tools of a virtual server, issue 14).

A view picks tools, prompts and resources by the server they come from and by their exported names or URIs (globs:
`docs__*`, `file:///docs/*`), rewrites a tool's
name, title, description and annotations, and fixes argument values: the gateway sets them, and the client never
sees them in the tool's schema. In search mode the client lists two tools, `search_tools` and `call_tool`, and the
pinned ones (`_search`); every tool of the view stays callable through `call_tool`.

Every pattern and override names a tool by the name the plain export gives it, so one config reads the same
whatever the view renames. It fails closed: a tool whose rewrite cannot be made as asked (a new name taken, an
argument fixed in a schema too intricate to take it out of, or one its schema sends as an `Mcp-Param-*` header) is
left out, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from typing import Any, Final, Literal

from mcp.shared.inbound import x_mcp_header_map

from .._errors import ConfigError
from .._naming import is_valid_tool_name
from .._tool_filter import ToolFilter
from ._search import CALL_TOOL, SEARCH_TOOLS
from ._wire import Surface

__all__ = ["ToolOverride", "View"]

log = logging.getLogger("lash_gateway.export")

_SEARCH_NAMES: Final = frozenset({SEARCH_TOOLS["name"], CALL_TOOL["name"]})
_INTRICATE: Final = frozenset(
    {
        "allOf",
        "anyOf",
        "oneOf",
        "not",
        "if",
        "then",
        "else",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "patternProperties",
        "$ref",
        "$defs",
        "definitions",
        "propertyNames",
        "unevaluatedProperties",
    }
)
"""Schema keywords that may name or constrain a property outside `properties`: a fixed argument cannot be taken out
of such a schema by removing it from `properties` and `required` alone."""


@dataclass(frozen=True, slots=True)
class ToolOverride:
    """How a view shows one tool. `arguments` are fixed: set by the gateway on every call, out of the schema.

    Raises:
        ConfigError: a field of the wrong type, or a name clients would refuse.
    """

    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: Mapping[str, Any] | None = None
    arguments: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name is not None and not (isinstance(self.name, str) and is_valid_tool_name(self.name)):
            raise ConfigError(
                None, f"{self.name!r} is not a tool name: 1 to 64 of A-Z, a-z, 0-9, _ and -", field="name"
            )
        for label, value in (("title", self.title), ("description", self.description)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(None, f"a string, not {type(value).__name__}", field=label)
        if self.annotations is not None and not isinstance(self.annotations, Mapping):
            raise ConfigError(None, "an object", field="annotations")
        if not isinstance(self.arguments, Mapping) or not all(isinstance(key, str) for key in self.arguments):
            raise ConfigError(None, "an object of argument names to values", field="arguments")


@dataclass(frozen=True, slots=True)
class View:
    """A client's view of the tools. `servers` are globs a tool's upstream server must match (tools of no server, a
    plugin's, pass only through `*`); `tools` filters their exported names, as a server's `tools` filters the names
    its upstream lists.

    Raises:
        ConfigError: a field of the wrong type (a string where a list of globs belongs, an unknown mode).
    """

    servers: tuple[str, ...] = ("*",)
    tools: ToolFilter = ToolFilter()
    overrides: Mapping[str, ToolOverride] = field(default_factory=dict)
    mode: Literal["full", "search"] = "full"
    pinned: tuple[str, ...] = ()
    """Tools listed as usual in search mode (by their plain exported names)."""
    prompts: ToolFilter = ToolFilter()
    """Filters the prompts of its servers, by their exported names (`docs__greet`)."""
    resources: ToolFilter = ToolFilter()
    """Filters the resources and resource templates of its servers, by URI and URI template."""

    def __post_init__(self) -> None:
        _check_names("servers", self.servers)
        _check_names("pinned", self.pinned)
        for label, value in (("tools", self.tools), ("prompts", self.prompts), ("resources", self.resources)):
            if not isinstance(value, ToolFilter):
                raise ConfigError(None, "a ToolFilter (allow and deny globs)", field=label)
        if self.mode not in ("full", "search"):
            raise ConfigError(None, f"{self.mode!r}: 'full' or 'search'", field="mode")
        if not all(isinstance(override, ToolOverride) for override in self.overrides.values()):
            raise ConfigError(None, "ToolOverride values, by plain exported tool name", field="overrides")

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
            shown = self._shown(tool)
            if shown is None:
                continue
            name = shown["name"]
            if name in lash_names or (self.mode == "search" and name in _SEARCH_NAMES):
                log.warning("tool %s left out of a view: %s is taken there", exported, name, extra={"tool": exported})
                continue
            tools.append(shown)
            lash_names[name] = lash_name
            override = self.overrides.get(exported)
            if override is not None and override.arguments:
                fixed[name] = override.arguments
            if exported in self.pinned:
                pinned.append(shown)
        self._warn_unmatched({tool["name"] for tool in surface.tools})
        schemas = {tool["name"]: tool["inputSchema"] for tool in tools}
        routed = frozenset(name for name, schema in schemas.items() if x_mcp_header_map(schema))
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
            searchable=tuple(tools),
        )

    def shows(self, kind: Literal["prompt", "resource", "template"], name: str, server: str | None) -> bool:
        """Whether the view shows a prompt (by exported name), a resource (by URI) or a resource template, of
        `server` (None: no server serves it, and the view shows it only if it shows every server)."""
        return self._in_servers(server) and (self.prompts if kind == "prompt" else self.resources).allows(name)

    def _shows(self, exported: str, server: str | None) -> bool:
        return self._in_servers(server) and self.tools.allows(exported)

    def _in_servers(self, server: str | None) -> bool:
        if server is None:
            return "*" in self.servers
        return any(fnmatchcase(server, pattern) for pattern in self.servers)

    def _shown(self, tool: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """`tool` as the view shows it; None when its arguments cannot be fixed as asked."""
        override = self.overrides.get(tool["name"])
        if override is None:
            return tool
        shown = dict(tool)
        rewritten = {"name": override.name, "title": override.title, "description": override.description}
        shown.update({key: value for key, value in rewritten.items() if value is not None})
        if override.annotations is not None:
            shown["annotations"] = dict(override.annotations)
        if override.arguments:
            schema = tool["inputSchema"]
            intricate = _INTRICATE & schema.keys()
            routed = {path[0] for path in x_mcp_header_map(schema)} & override.arguments.keys()
            if intricate or routed:
                why = (
                    f"a schema with {', '.join(sorted(intricate))}"
                    if intricate
                    else f"{', '.join(sorted(routed))}, which its schema sends as Mcp-Param headers too"
                )
                log.warning(
                    "tool %s left out of a view: its arguments cannot be fixed in %s",
                    tool["name"],
                    why,
                    extra={"tool": tool["name"]},
                )
                return None
            shown["inputSchema"] = _without(schema, override.arguments.keys())
        return shown

    def _warn_unmatched(self, names: set[str]) -> None:
        """Overrides and pins that name no tool: a config naming a tool that was renamed (a name collision, a new
        server) must not go unnoticed, least of all a fixed argument that no longer applies."""
        for name in [*self.overrides, *self.pinned]:
            if name not in names:
                log.warning("a view names tool %s, which no server offers now", name, extra={"tool": name})


def _check_names(label: str, names: Any) -> None:
    if not isinstance(names, tuple) or not all(isinstance(name, str) for name in names):
        raise ConfigError(None, f"a tuple of strings, not {type(names).__name__}", field=label)


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
