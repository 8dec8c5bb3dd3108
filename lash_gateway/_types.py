"""Values that cross the sides of the gateway: what an operator sees of an upstream server.

Plain frozen dataclasses, cheap to build on every status request; they never hold a header or env
value, only the config's redacted view.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

__all__ = ["ServerStatus", "SkippedTool", "State"]

State: TypeAlias = Literal["connecting", "connected", "reconnecting", "detached"]
"""Where a server's supervisor is: its first connect, connected, between attempts, or stopped."""


@dataclass(frozen=True, slots=True)
class SkippedTool:
    """A tool an upstream lists that the gateway does not offer, and why (its schema is one the SDK rejects)."""

    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What an operator needs to know about one server; never contains header or env values."""

    name: str
    transport: str
    state: State
    connected: bool
    tool_count: int
    skipped_tools: tuple[SkippedTool, ...]
    last_error: str | None
    protocol_version: str | None
    server_name: str | None
    server_version: str | None
    reconnect_attempts: int
    connected_since: float | None
    """Unix time of the current connection, None while disconnected."""
    calls_in_flight: int
    notices_dropped: int
    """Progress and log messages dropped, since attach, for callers that did not read them."""
    resource_count: int = 0
    resource_template_count: int = 0
    prompt_count: int = 0
    clients: int = 0
    """`per_client` servers: clients with a connection of their own now."""
    conflicts: tuple[str, ...] = ()
    """Resource URIs and templates this server lists that another server serves (see the pool's routing rule)."""
    config: Mapping[str, Any] = field(default_factory=dict)
    """The server's config with header and env values replaced by `***`."""
    authorization: Mapping[str, Any] | None = None
    """OAuth servers: `state` (`authorized`, `unauthorized`, `failed`), `expires_in` seconds, `error`; no token."""
