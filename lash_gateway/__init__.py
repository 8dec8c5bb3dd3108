"""lash_gateway: external MCP servers as lash tools.

An `McpPluginFactory` owns one `McpConnectionPool` per process: it attaches and detaches upstream
MCP servers (stdio, streamable HTTP, legacy SSE) at runtime, keeps one connection each, and offers
their tools to every lash session as `mcp__<server>__<tool>`.
"""

from ._app import Gateway as Gateway
from ._config import DEFAULT_CALL_TIMEOUT as DEFAULT_CALL_TIMEOUT
from ._config import DEFAULT_STARTUP_TIMEOUT as DEFAULT_STARTUP_TIMEOUT
from ._config import HttpServerConfig as HttpServerConfig
from ._config import McpServerConfig as McpServerConfig
from ._config import ServerConfig as ServerConfig
from ._config import StdioServerConfig as StdioServerConfig
from ._config import ToolFilter as ToolFilter
from ._config import load_mcp_servers as load_mcp_servers
from ._config import redacted as redacted
from ._errors import CallTimeout as CallTimeout
from ._errors import ConfigError as ConfigError
from ._errors import GatewayError as GatewayError
from ._errors import ServerDetached as ServerDetached
from ._errors import ServerNotAttached as ServerNotAttached
from ._errors import UnknownTool as UnknownTool
from ._errors import UpstreamCallError as UpstreamCallError
from ._errors import UpstreamError as UpstreamError
from ._errors import UpstreamProtocolError as UpstreamProtocolError
from ._errors import UpstreamUnavailable as UpstreamUnavailable
from ._export import McpExport as McpExport
from ._naming import export_name as export_name
from ._plugin import McpPluginFactory as McpPluginFactory
from ._plugin import McpSessionPlugin as McpSessionPlugin
from ._plugin import McpToolProvider as McpToolProvider
from ._pool import McpConnectionPool as McpConnectionPool
from ._settings import GatewayConfig as GatewayConfig
from ._settings import GatewaySettings as GatewaySettings
from ._settings import load_gateway_config as load_gateway_config
from ._store import StateStore as StateStore
from ._upstream import ServerStatus as ServerStatus
from ._upstream import SkippedTool as SkippedTool

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "CallTimeout",
    "ConfigError",
    "Gateway",
    "GatewayConfig",
    "GatewayError",
    "GatewaySettings",
    "HttpServerConfig",
    "McpConnectionPool",
    "McpExport",
    "McpPluginFactory",
    "McpServerConfig",
    "McpSessionPlugin",
    "McpToolProvider",
    "ServerConfig",
    "ServerDetached",
    "ServerNotAttached",
    "ServerStatus",
    "SkippedTool",
    "StateStore",
    "StdioServerConfig",
    "ToolFilter",
    "UnknownTool",
    "UpstreamCallError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamUnavailable",
    "export_name",
    "load_gateway_config",
    "load_mcp_servers",
    "redacted",
]
