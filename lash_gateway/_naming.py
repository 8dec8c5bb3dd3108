"""Tool naming: lash names for upstream tools, and the names exported to MCP clients and LLM APIs.

Inside a lash session an upstream tool is `mcp__<server>__<tool>`, each part `normalize`d. Names are
unique across every attached server, and collisions resolve deterministically (same inputs, same
names) with a suffix `_` + 6 hex digits of the sha256 of the original name:

- servers, in attach order: the first server to claim a normalised name keeps it; a later server
  whose name normalises alike ("My-Docs" after "my_docs") gets the suffix. Attaching a server never
  renames the tools of a server attached before it.
- tools of one server, in sorted order of their original names, a name already in normal form
  first: "get_file" keeps `get_file` and "Get-File" gets the suffix, whatever order the upstream lists
  them in.
- whole names: a normalised server name may contain `__` ("a__b" + tool "c" meets "a" + tool
  "b__c"); the server with the longer part keeps the name, as it spells more of it (between parts
  of one length, the server attached first), so that a server's tools cannot take the names of a
  server whose name extends its own.
- tools added later: what a server lists when it connects is named by the rules above, so which
  server connects first changes no name. A tool a server adds after that (a pool passes them as
  `later`) is named after all of those, keeping the name it held (`held`) while that is free: it
  never takes a name a client already knows for another tool, and gets the suffix instead.

A server whose part is empty (`prefix: false`) names its tools `mcp__<tool>`: by their own names once exported,
colliding with other names like any tool. Exported names drop the `mcp__` prefix (an MCP client adds its own)
and fit the 64-character, `[A-Za-z0-9_-]` rule of the Claude and OpenAI APIs.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from lash_core import unique_name

from ._errors import ConfigError

__all__ = [
    "MAX_SERVER_NAME_LENGTH",
    "MAX_TOOL_NAME_LENGTH",
    "MCP_PREFIX",
    "SEPARATOR",
    "TOOL_NAME_PATTERN",
    "ToolNames",
    "ToolRef",
    "assign_server_parts",
    "assign_tool_names",
    "claim_server_part",
    "export_name",
    "export_names",
    "is_valid_tool_name",
    "normalize",
    "validate_server_name",
]

MCP_PREFIX: Final = "mcp__"
"""Prefix of every lash name of an upstream MCP tool."""
SEPARATOR: Final = "__"
"""Between the server and the tool part of a lash name."""
MAX_SERVER_NAME_LENGTH: Final = 64
"""Longest server name accepted (in characters)."""
MAX_TOOL_NAME_LENGTH: Final = 64
"""Longest tool name the Claude and OpenAI APIs accept."""
TOOL_NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Tool names the Claude and OpenAI APIs accept (use with `fullmatch`)."""

_COLLISION_DIGITS: Final = 6
"""Hex digits of the suffix that tells colliding server or tool names apart."""
_SHORTEN_DIGITS: Final = 8
"""Hex digits of the suffix of a name shortened to fit a length limit."""
_MIN_EXPORT_LIMIT: Final = _SHORTEN_DIGITS + 2
"""A limit must leave room for one character, `_` and the digest."""

_NOT_NORMAL: Final = re.compile(r"[^a-z0-9]")
_NOT_EXPORTABLE: Final = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True, slots=True)
class ToolRef:
    """An upstream tool: the server's name and the tool's name as the upstream lists it."""

    server: str
    tool: str


@dataclass(frozen=True, slots=True)
class ToolNames:
    """The outcome of `assign_tool_names`: every lash name and what it calls."""

    tools: Mapping[str, ToolRef]
    """Lash name -> upstream tool, ordered by server (attach order), then by upstream listing order."""
    by_ref: Mapping[ToolRef, str]
    """Upstream tool -> lash name: the reverse of `tools`."""
    server_parts: Mapping[str, str]
    """Server name -> its part in lash names (`mcp__<part>__...`)."""

    def name_of(self, server: str, tool: str) -> str:
        """The lash name of `tool` (its upstream name) on `server`.

        Raises:
            KeyError: `server` or `tool` was not among the inputs.
        """
        return self.by_ref[ToolRef(server, tool)]


def validate_server_name(name: str) -> str:
    """Return `name` if it is a valid server name.

    A valid name is 1-64 characters with no control or invisible formatting characters and no
    whitespace at either end. Names are otherwise free: tool names use a normalised form of them.

    Raises:
        ConfigError: the name is not a string or breaks one of the rules.
    """
    if not isinstance(name, str):
        raise ConfigError(None, f"server name must be a string (got {type(name).__name__})")
    if not name:
        raise ConfigError(name, "server name must not be empty")
    if len(name) > MAX_SERVER_NAME_LENGTH:
        raise ConfigError(name, f"server name is {len(name)} characters long; the limit is {MAX_SERVER_NAME_LENGTH}")
    for char in name:
        if unicodedata.category(char) in ("Cc", "Cf", "Cs", "Zl", "Zp"):
            raise ConfigError(name, f"server name contains the control character U+{ord(char):04X}")
    if name != name.strip():
        raise ConfigError(name, "server name must not start or end with whitespace")
    return name


def normalize(part: str) -> str:
    """`part` lowercased, with every character outside [a-z0-9] replaced by `_`; `_` if empty.

    Runs are not collapsed: "a--b" becomes "a__b", so different names collide only when they differ
    in case or in which non-alphanumeric characters they use.
    """
    return _NOT_NORMAL.sub("_", part.lower()) or "_"


def assign_server_parts(servers: Iterable[str]) -> dict[str, str]:
    """The server part of lash names for each server, `servers` given in attach order.

    Same inputs, same result; a server keeps its part when servers are added after it.
    """
    taken: set[str] = set()
    parts: dict[str, str] = {}
    for server in servers:
        if server not in parts:
            parts[server] = _claim(normalize(server), server, taken)
    return parts


def claim_server_part(server: str, taken: Iterable[str]) -> str:
    """The part a server attached after the holders of `taken` gets: its normal form, or that with a
    digest suffix when it is taken. A pool keeps the part for the server's whole life, so neither
    attaching nor detaching another server renames its tools."""
    return _claim(normalize(server), server, set(taken))


def assign_tool_names(
    servers: Mapping[str, Sequence[str]],
    server_parts: Mapping[str, str] | None = None,
    held: Mapping[ToolRef, str] | None = None,
    later: Collection[ToolRef] = (),
) -> ToolNames:
    """Lash names for the tools of every server, unique across all of them.

    `servers` maps each server name to its tools' upstream names; its iteration order is the attach
    order. A tool listed twice by one server gets one name. `later`: the tools a server added after its
    first listing (a pool knows), named after every other and keeping the name they `held` (the last
    result's `by_ref`) while it is free. The rules are in the module docstring.
    """
    if server_parts is None:
        server_parts = assign_server_parts(servers)
    listed = {server: list(dict.fromkeys(tool_names)) for server, tool_names in servers.items()}
    rank = {server: (-len(server_parts[server]), index) for index, server in enumerate(listed)}
    # Servers by the rules, and each one's tools in sorted order, canonical names first, so that the upstream's
    # listing order changes nothing.
    ordered = [
        ToolRef(server, tool)
        for server in sorted(listed, key=rank.__getitem__)
        for tool in sorted(listed[server], key=lambda tool: (normalize(tool) != tool, tool))
    ]

    def base(ref: ToolRef) -> str:
        part = server_parts[ref.server]
        return f"{MCP_PREFIX}{part}{SEPARATOR}{normalize(ref.tool)}" if part else f"{MCP_PREFIX}{normalize(ref.tool)}"

    taken: set[str] = set()
    claimed = {ref: _claim(base(ref), ref.tool, taken) for ref in ordered if ref not in later}
    added = [ref for ref in ordered if ref in later]
    for ref in added:
        name = held.get(ref) if held is not None else None
        if name is not None and name not in taken:
            claimed[ref] = name
            taken.add(name)
    for ref in added:
        if ref not in claimed:
            claimed[ref] = _claim(base(ref), ref.tool, taken)
    tools = {
        claimed[ToolRef(server, tool)]: ToolRef(server, tool) for server, unique in listed.items() for tool in unique
    }
    by_ref = {ref: name for name, ref in tools.items()}
    return ToolNames(MappingProxyType(tools), MappingProxyType(by_ref), MappingProxyType(server_parts))


def export_name(lash_name: str, limit: int = MAX_TOOL_NAME_LENGTH) -> str:
    """The name a tool is exported under: `mcp__` dropped, at most `limit` characters of [A-Za-z0-9_-].

    `mcp__time__now` becomes `time__now`; a name without the prefix (a plugin tool) is kept. A
    name that is too long becomes a prefix of it, `_` and 8 hex digits of the sha256 of `lash_name`;
    so does a name with characters outside [A-Za-z0-9_-], after they are replaced by `_`, so that
    replacing never makes two names equal.

    Raises:
        ValueError: `lash_name` is empty or `limit` is below 10.
    """
    if not lash_name:
        raise ValueError("a tool name must not be empty")
    if limit < _MIN_EXPORT_LIMIT:
        raise ValueError(f"limit must be at least {_MIN_EXPORT_LIMIT} (got {limit})")
    stem = _export_stem(lash_name)
    if len(stem) <= limit and not _NOT_EXPORTABLE.search(stem):
        return stem
    return _shortened(lash_name, limit, set())


def export_names(lash_names: Iterable[str], limit: int = MAX_TOOL_NAME_LENGTH) -> dict[str, str]:
    """`export_name` of each name, made unique: lash name -> exported name, in input order.

    Dropping `mcp__` can make an upstream tool's name equal a plugin tool's (`mcp__time__now` and
    `time__now`): names without the prefix keep theirs, and the others, in sorted order, take a
    digest suffix on collision. Same names in, same result, whatever their order.

    Raises:
        ValueError: a name is empty or `limit` is below 10.
    """
    names = list(dict.fromkeys(lash_names))
    taken: set[str] = set()
    exported: dict[str, str] = {}
    for name in sorted(names, key=lambda name: (name.startswith(MCP_PREFIX), name)):
        candidate = export_name(name, limit)
        if candidate in taken:
            candidate = _shortened(name, limit, taken)
        taken.add(candidate)
        exported[name] = candidate
    return {name: exported[name] for name in names}


def is_valid_tool_name(name: str) -> bool:
    """Whether `name` is 1-64 characters of [A-Za-z0-9_-], as the Claude and OpenAI APIs require."""
    return TOOL_NAME_PATTERN.fullmatch(name) is not None


def _claim(base: str, original: str, taken: set[str]) -> str:
    """`base` if free, else `base` + a digest suffix of `original`; the result is added to `taken`."""
    candidate = base if base not in taken else unique_name(base, original, taken, digits=_COLLISION_DIGITS)
    taken.add(candidate)
    return candidate


def _export_stem(lash_name: str) -> str:
    if lash_name.startswith(MCP_PREFIX) and len(lash_name) > len(MCP_PREFIX):
        return lash_name[len(MCP_PREFIX) :]
    return lash_name


def _shortened(lash_name: str, limit: int, taken: set[str]) -> str:
    """A prefix of the exported stem (characters outside [A-Za-z0-9_-] folded to `_`), `_` and a digest of
    `lash_name`, longer while that is taken."""
    stem = _NOT_EXPORTABLE.sub("_", _export_stem(lash_name))
    return unique_name(stem, lash_name, taken, limit=limit, digits=_SHORTEN_DIGITS)
