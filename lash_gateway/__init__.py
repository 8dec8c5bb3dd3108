"""lash_gateway: external MCP servers as lash tools.

An `McpPluginFactory` owns one `McpConnectionPool` per process: it attaches and detaches upstream
MCP servers (stdio, streamable HTTP, legacy SSE) at runtime, keeps one connection each, and offers
their tools to every lash session as `mcp__<server>__<tool>`.
"""

from ._config import DEFAULT_CALL_TIMEOUT as DEFAULT_CALL_TIMEOUT
from ._config import DEFAULT_STARTUP_TIMEOUT as DEFAULT_STARTUP_TIMEOUT
from ._config import HttpServerConfig as HttpServerConfig
from ._config import McpServerConfig as McpServerConfig
from ._config import OAuthConfig as OAuthConfig
from ._config import ServerConfig as ServerConfig
from ._config import StdioServerConfig as StdioServerConfig
from ._config import load_mcp_servers as load_mcp_servers
from ._errors import CallTimeout as CallTimeout
from ._errors import ConfigError as ConfigError
from ._errors import GatewayError as GatewayError
from ._errors import PolicyError as PolicyError
from ._errors import ServerDetached as ServerDetached
from ._errors import ServerNotAttached as ServerNotAttached
from ._errors import StateError as StateError
from ._errors import StoreError as StoreError
from ._errors import UnknownPrompt as UnknownPrompt
from ._errors import UnknownResource as UnknownResource
from ._errors import UnknownTool as UnknownTool
from ._errors import UpstreamCallError as UpstreamCallError
from ._errors import UpstreamError as UpstreamError
from ._errors import UpstreamProtocolError as UpstreamProtocolError
from ._errors import UpstreamUnavailable as UpstreamUnavailable
from ._naming import export_name as export_name
from ._secrets import redacted as redacted
from ._tool_filter import ToolFilter as ToolFilter
from ._types import ServerStatus as ServerStatus
from ._types import SkippedTool as SkippedTool
from .admin._gateway import Gateway as Gateway
from .admin._policy import AdminPolicy as AdminPolicy
from .admin._postgres_store import PostgresStore as PostgresStore
from .admin._settings import AdminSettings as AdminSettings
from .admin._settings import ExportSettings as ExportSettings
from .admin._settings import GatewayConfig as GatewayConfig
from .admin._settings import GatewaySettings as GatewaySettings
from .admin._settings import load_gateway_config as load_gateway_config
from .admin._sqlite_store import StateStore as StateStore
from .admin._store import Store as Store
from .admin._store import StoredChange as StoredChange
from .export._export import McpExport as McpExport
from .export._views import ToolOverride as ToolOverride
from .export._views import View as View
from .upstream._network import NetworkGuard as NetworkGuard
from .upstream._plugin import McpPluginFactory as McpPluginFactory
from .upstream._plugin import McpSessionPlugin as McpSessionPlugin
from .upstream._plugin import McpToolProvider as McpToolProvider
from .upstream._pool import McpConnectionPool as McpConnectionPool

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_STARTUP_TIMEOUT",
    "AdminPolicy",
    "AdminSettings",
    "CallTimeout",
    "ConfigError",
    "ExportSettings",
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
    "NetworkGuard",
    "OAuthConfig",
    "PolicyError",
    "PostgresStore",
    "ServerConfig",
    "ServerDetached",
    "ServerNotAttached",
    "ServerStatus",
    "SkippedTool",
    "StateError",
    "StateStore",
    "StdioServerConfig",
    "Store",
    "StoreError",
    "StoredChange",
    "ToolFilter",
    "ToolOverride",
    "UnknownPrompt",
    "UnknownResource",
    "UnknownTool",
    "UpstreamCallError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamUnavailable",
    "View",
    "export_name",
    "load_gateway_config",
    "load_mcp_servers",
    "redacted",
]
