"""How much of one upstream message the gateway holds, whatever the transport (a stdio line, an SSE event)."""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_MESSAGE_BYTES", "MAX_MESSAGE_MIB"]

MAX_MESSAGE_MIB: Final = 64
"""`MAX_MESSAGE_BYTES` in MiB, as messages about it say."""
MAX_MESSAGE_BYTES: Final = MAX_MESSAGE_MIB * 1024 * 1024
"""Bytes one message from an upstream may take: a longer stdio line or SSE event drops the connection (the server
reconnects as after a crash; on streamable HTTP the request whose response carried it fails first). Four times the
16 MiB results the gateway is meant to carry, for the JSON escaping and the structured copy a result may hold besides
its text."""
