"""Log levels per client: a handshake-era client sets one for its connection (`logging/setLevel`), a 2026-07-28
client asks per request (`_meta`), and each gets only the messages at or above its level.

A handshake-era client that never set a level gets every message (what the upstreams send is what they
decided to send); a 2026-07-28 request that asked for no level gets none, as that era prescribes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, get_args

import mcp_types as types
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from .._sdk import connection_of

__all__ = ["LEVEL_KEY", "allows", "level_of_connection", "level_of_meta", "level_of_request", "set_level"]

LEVEL_KEY: Final = "lash_gateway.log_level"
"""Where a connection's level lives in its `state`."""

_RANK: Final = {level: rank for rank, level in enumerate(get_args(types.LoggingLevel))}
_EVERYTHING: Final = "debug"


def allows(requested: str | None, level: str) -> bool:
    """Whether a message at `level` goes to a client that asked for `requested` (None: nothing)."""
    if requested is None:
        return False
    return _RANK.get(level, len(_RANK)) >= _RANK.get(requested, 0)


def level_of_connection(connection: Connection) -> str:
    level = connection.state.get(LEVEL_KEY)
    return level if isinstance(level, str) else _EVERYTHING


def level_of_request(ctx: ServerRequestContext[Any, Any]) -> str | None:
    """The level a request's messages are filtered at: the 2026-07-28 request's own, or its connection's."""
    if ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
        return level_of_meta(ctx.meta)
    return level_of_connection(connection_of(ctx))


def level_of_meta(meta: Mapping[str, Any] | None) -> str | None:
    """The level a 2026-07-28 request asked for in its `_meta` (None: it asked for no log messages)."""
    level = (meta or {}).get(LOG_LEVEL_META_KEY)
    return level if isinstance(level, str) and level in _RANK else None


async def set_level(ctx: ServerRequestContext[Any, Any], params: types.SetLevelRequestParams) -> types.EmptyResult:
    """`logging/setLevel`: from now on this connection gets messages at `params.level` and above."""
    connection_of(ctx).state[LEVEL_KEY] = params.level
    return types.EmptyResult()
