"""A plugin tool that lets a model (or a first-time user) see what the gateway is connected to."""

from __future__ import annotations

from typing import Any

from lash_core import (
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    SessionPlugin,
    ToolCall,
    ToolDefinition,
    ToolProvider,
    ToolResult,
)

from ._plugin import status_dict
from ._pool import McpConnectionPool

STATUS_TOOL = "lash_gateway_status"


class _StatusTool(ToolProvider):
    def __init__(self, pool: McpConnectionPool) -> None:
        self._pool = pool
        self._definitions = (
            ToolDefinition.raw(
                STATUS_TOOL,
                "List the MCP servers attached to this lash gateway: transport, connection state, "
                "tool count and last error of each.",
                {"type": "object", "properties": {}},
            ),
        )

    def definitions(self) -> tuple[ToolDefinition, ...]:
        return self._definitions

    async def execute(self, call: ToolCall) -> ToolResult:
        servers = [_shown(status_dict(s)) for s in self._pool.server_statuses()]
        return ToolResult.ok({"servers": servers})


class GatewayStatusPluginFactory(PluginFactory):
    def __init__(self, pool: McpConnectionPool) -> None:
        self._tool = _StatusTool(pool)

    def id(self) -> str:
        return "gateway_status"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return _StatusPlugin(self._tool)


class _StatusPlugin(SessionPlugin):
    __slots__ = ("_tool",)

    def __init__(self, tool: _StatusTool) -> None:
        self._tool = tool

    def register(self, reg: PluginRegistrar) -> None:
        reg.tools().provider(self._tool)


def _shown(status: dict[str, Any]) -> dict[str, Any]:
    """A status as any MCP client may see it: no config, and of an OAuth server's authorization its state and expiry
    only (an authorization URL is the operator's: whoever approves it binds the server to their own account)."""
    shown = {key: value for key, value in status.items() if key != "config"}
    if shown.get("authorization") is not None:
        shown["authorization"] = {
            key: value for key, value in shown["authorization"].items() if key in ("state", "expires_in")
        }
    return shown
