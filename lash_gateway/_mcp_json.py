"""The `mcpServers` JSON that Claude Desktop, Claude Code, Cursor, Cline and Windsurf write: reading the file
strictly (a repeated key is an error, not the last one silently), and one entry translated into the typed
shape of a server config (`{"transport": ...}`), which `McpServerConfig.parse` then validates."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal, TypeAlias

from ._errors import ConfigError
from ._schema import json_kind as _kind

__all__ = ["Transport", "load_json", "typed_shape"]

Transport: TypeAlias = Literal["stdio", "streamable_http", "sse"]
"""The `transport` tag of a server config."""

# Keys of an `mcpServers` entry that other clients write for their own UI and that change nothing about
# how the server is started or called: Cline's and Roo Code's per-tool auto-approval lists.
_IGNORED_ENTRY_KEYS: Final = frozenset({"autoApprove", "alwaysAllow"})

# `"type"` values in `mcpServers` entries: Claude Code writes stdio/http/sse, Cline writes streamableHttp.
_TRANSPORT_BY_TYPE: Final[Mapping[str, Transport]] = {
    "stdio": "stdio",
    "sse": "sse",
    "http": "streamable_http",
    "streamable_http": "streamable_http",
    "streamable-http": "streamable_http",
    "streamableHttp": "streamable_http",
}


def typed_shape(entry: Mapping[str, object], name: str | None) -> dict[str, object]:
    """`entry` in the typed shape (with `transport`), translated from the `mcpServers` shape if needed."""
    data = {key: value for key, value in entry.items() if key not in _IGNORED_ENTRY_KEYS}
    if "serverUrl" in data:  # Windsurf's name for a remote server's URL
        if "url" in data:
            raise ConfigError(name, "has both 'url' and 'serverUrl'; keep one", field="serverUrl")
        data["url"] = data.pop("serverUrl")
    if "type" in data:
        kind = data.pop("type")
        if not isinstance(kind, str) or kind not in _TRANSPORT_BY_TYPE:
            expected = ", ".join(repr(key) for key in _TRANSPORT_BY_TYPE)
            raise ConfigError(name, f"must be one of {expected} (got {_short(kind)})", field="type")
        transport = _TRANSPORT_BY_TYPE[kind]
        if data.setdefault("transport", transport) != transport:
            raise ConfigError(name, f"{kind!r} conflicts with transport {_short(data['transport'])}", field="type")
    elif "transport" not in data:
        if "command" in data and "url" in data:
            raise ConfigError(name, "has both 'command' (stdio) and 'url' (HTTP); keep one")
        if "command" in data:
            data["transport"] = "stdio"
        elif "url" in data:
            data["transport"] = "streamable_http"
        else:
            raise ConfigError(name, "needs 'command' (stdio) or 'url' (HTTP)")
    if data["transport"] not in ("stdio", "streamable_http", "sse"):
        got = _short(data["transport"])
        raise ConfigError(name, f"must be 'stdio', 'streamable_http' or 'sse' (got {got})", field="transport")
    return data


def load_json(source: str | os.PathLike[str]) -> object:
    if isinstance(source, str):
        text, origin = source, "JSON text"
    else:
        try:
            text, origin = Path(source).read_text(encoding="utf-8-sig"), os.fspath(source)
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(None, f"cannot read {os.fspath(source)}: {exc}") from exc
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except json.JSONDecodeError as exc:
        hint = "" if text.lstrip().startswith("{") else "; to read a file, pass a pathlib.Path"
        raise ConfigError(None, f"{origin} is not valid JSON: {exc}{hint}") from exc


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A JSON object hook that refuses repeated keys, which `json` would otherwise keep the last of."""
    obj: dict[str, object] = {}
    for key, value in pairs:
        if key in obj:
            raise ConfigError(None, f"the key {key!r} appears twice in one JSON object")
        obj[key] = value
    return obj


def _short(value: object) -> str:
    """`value` quoted for a message when it is a short string (a type or transport tag), else its kind."""
    return repr(value) if isinstance(value, str) and len(value) <= 40 else _kind(value)
