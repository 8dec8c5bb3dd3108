"""An upstream's whole tool list: every page, each tool sanitised on its own, the server's filter applied.

The SDK's `list_tools()` validates a page as a whole, so one tool with a schema it rejects would hide
every other tool of the server; here a tool is skipped (and said, with why) while the rest are kept.
A server that repeats a cursor or never stops paginating is answering nonsense.
"""

from __future__ import annotations

import logging

from mcp import ClientSession

from .._schema import SanitizedTool, sanitize_tool
from .._tool_filter import ToolFilter
from .._types import SkippedTool
from ._catalog import list_pages

__all__ = ["list_tools"]

log = logging.getLogger("lash_gateway.upstream")


async def list_tools(
    session: ClientSession, server: str, allowed: ToolFilter
) -> tuple[tuple[SanitizedTool, ...], tuple[SkippedTool, ...]]:
    """The tools `server` offers that `allowed` lets through (once each), and those skipped for their schema.

    Raises:
        UpstreamProtocolError: a page without a tool list, a repeated cursor, or no end within `MAX_PAGES`.
        mcp.MCPError: the server answered `tools/list` with an error, or the connection closed.
    """
    tools: list[SanitizedTool] = []
    skipped: list[SkippedTool] = []
    for raw in await list_pages(session, server, "tools/list", "tools"):
        outcome = sanitize_tool(raw)
        if isinstance(outcome, SanitizedTool):
            if outcome.warnings:
                log.warning(
                    "upstream %s: tool %r repaired: %s",
                    server,
                    outcome.name,
                    "; ".join(outcome.warnings),
                    extra={"server": server, "tool": outcome.name, "warnings": outcome.warnings},
                )
            if allowed.allows(outcome.name):
                tools.append(outcome)
        else:
            skipped.append(SkippedTool(outcome.name or "<unnamed>", outcome.reason))
            log.warning(
                "upstream %s: tool %r skipped: %s",
                server,
                outcome.name,
                outcome.reason,
                extra={"server": server, "tool": outcome.name, "reason": outcome.reason},
            )
    unique = {tool.name: tool for tool in tools}
    return tuple(unique.values()), tuple(skipped)
