"""The MCP plugin: `McpPluginFactory` owns the pool; each session gets the one shared
`McpToolProvider` and the admin actions (`attach_server`, `detach_server`, `server_statuses`,
`reconnect_server`). `build` allocates one small object and does no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from functools import partial
from types import TracebackType
from typing import Any, Self

import anyio
import mcp_types as types
from pydantic import BaseModel, ConfigDict

from lash_core import (
    FailureClass,
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    SessionPlugin,
    ToolCall,
    ToolDefinition,
    ToolProvider,
    ToolResult,
    ignore_log,
    ignore_progress,
)

from .._config import McpServerConfig
from .._declared import MISSING_CAPABILITY
from .._errors import (
    CallTimeout,
    GatewayError,
    ServerDetached,
    UnknownTool,
    UpstreamCallError,
    UpstreamUnavailable,
)
from .._types import ServerStatus
from ._pool import McpConnectionPool


class McpToolProvider(ToolProvider):
    """The pool's tools as a lash provider; one instance serves every session (one more every stateless one)."""

    def __init__(self, pool: McpConnectionPool, *, per_client: bool = True) -> None:
        """With `per_client`, a call is its session's, for servers that give each client a connection of its own;
        without (stateless sessions), every call uses the shared connection."""
        self._pool = pool
        self._per_client = per_client

    def definitions(self) -> tuple[ToolDefinition, ...]:
        return self._pool.definitions()

    async def execute(self, call: ToolCall) -> ToolResult:
        context = call.context
        # Only a real reporter makes the upstream call carry a progress token / collect logs.
        progress = context.progress if context.progress is not ignore_progress else None
        log = context.log if context.log is not ignore_log else None
        try:
            return await self._pool.call_tool(
                call.name,
                call.args,
                progress=progress,
                log=log,
                caller=context.caller,
                client=context.session_id if self._per_client else None,
            )
        except UnknownTool as exc:
            return ToolResult.err(str(exc), failure_class=FailureClass.INVALID_INPUT, code="unknown_tool")
        except CallTimeout as exc:
            return ToolResult.err(str(exc), failure_class=FailureClass.TIMEOUT, code="upstream_timeout")
        except ServerDetached as exc:
            return ToolResult.err(str(exc), failure_class=FailureClass.UNAVAILABLE, code="server_detached")
        except UpstreamUnavailable as exc:
            return ToolResult.err(str(exc), failure_class=FailureClass.UNAVAILABLE, code="upstream_unavailable")
        except UpstreamCallError as exc:
            if exc.client_lacks:
                return ToolResult.err(str(exc), code=MISSING_CAPABILITY, data=exc.data)
            failure_class = FailureClass.INVALID_INPUT if exc.code == types.INVALID_PARAMS else FailureClass.TOOL_ERROR
            return ToolResult.err(str(exc), failure_class=failure_class, code="upstream_error")
        except GatewayError as exc:
            return ToolResult.err(str(exc), failure_class=FailureClass.TOOL_ERROR, code="upstream_protocol_error")


class McpPluginFactory(PluginFactory):
    """Owns one `McpConnectionPool` for the process, open for as long as `async with factory:` lasts.

    ```python
    async with McpPluginFactory({"time": McpServerConfig.stdio("uvx", ["mcp-server-time"])}) as mcp:
        await mcp.attach_server("docs", McpServerConfig.streamable_http("http://127.0.0.1:9000/mcp"))
        core = LashCore.builder().plugin(mcp).build()
    ```
    The servers given to the constructor are attached on entry, each after its first connect attempt:
    one that is down does not fail the entry, it reconnects in the background.
    """

    def __init__(
        self,
        servers: Mapping[str, McpServerConfig | Mapping[str, Any]] | None = None,
        *,
        pool: McpConnectionPool | None = None,
    ) -> None:
        self.pool = pool or McpConnectionPool()
        self._servers = dict(servers or {})
        self._provider = McpToolProvider(self.pool)
        self._stateless_provider = McpToolProvider(self.pool, per_client=False)

    async def __aenter__(self) -> Self:
        """Open the pool and attach the constructor's servers.

        Raises:
            ConfigError: a server's name or config is invalid (the pool is closed again).
        """
        await self.pool.__aenter__()
        try:
            await self.attach_servers(self._servers)
        except BaseException as exc:
            await self.pool.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.pool.__aexit__(exc_type, exc, tb)

    def id(self) -> str:
        return "mcp"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        if ctx.stateless:
            return McpSessionPlugin(self, self._stateless_provider, stateless=True)
        return McpSessionPlugin(self, self._provider)

    async def attach_server(self, name: str, config: McpServerConfig | Mapping[str, Any]) -> ServerStatus:
        """Attach (or replace) a server; see `McpConnectionPool.attach`."""
        return await self.pool.attach(name, config)

    async def attach_servers(self, servers: Mapping[str, McpServerConfig | Mapping[str, Any]]) -> None:
        """Attach several servers concurrently (each keeps its place in the naming order); returns after each
        one's first connect attempt. One that is down does not fail this: it reconnects in the background.

        Raises:
            ConfigError: a name or config is invalid; nothing is attached then.
        """
        configs = {name: McpServerConfig.parse(config, name=name) for name, config in servers.items()}
        async with anyio.create_task_group() as tg:
            for name, config in configs.items():
                tg.start_soon(partial(self.pool.attach, name, config, fail_fast=False))

    async def detach_server(self, name: str) -> None:
        await self.pool.detach(name)

    def server_statuses(self) -> list[ServerStatus]:
        return self.pool.server_statuses()

    @property
    def provider(self) -> McpToolProvider:
        return self._provider


class _AttachArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    config: dict[str, Any]
    """One server config, typed (`transport`: ...) or as an `mcpServers` entry."""


class _NameArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def status_dict(status: ServerStatus) -> dict[str, Any]:
    """A JSON-able status (already free of secrets)."""
    return dataclasses.asdict(status)


class McpSessionPlugin(SessionPlugin):
    """The pool's tools in a session, and its actions. A stateless session (one request of a 2026-07-28 client)
    gets the tools only: it never runs an action, owns no `per_client` connections, and is built for every request."""

    __slots__ = ("_factory", "_provider", "_stateless")

    def __init__(self, factory: McpPluginFactory, provider: McpToolProvider, *, stateless: bool = False) -> None:
        self._factory = factory
        self._provider = provider
        self._stateless = stateless

    def id(self) -> str:
        return "mcp"

    def register(self, reg: PluginRegistrar) -> None:
        reg.tools().provider(self._provider)
        if self._stateless:
            return
        reg.session().on_close(self._closed)
        actions = reg.actions()
        actions.register(
            "attach_server", self._attach, description="Attach or replace an MCP server.", input_model=_AttachArgs
        )
        actions.register("detach_server", self._detach, description="Detach an MCP server.", input_model=_NameArgs)
        actions.register(
            "reconnect_server", self._reconnect, description="Reconnect an MCP server now.", input_model=_NameArgs
        )
        actions.register("server_statuses", self._statuses, description="Status of every attached MCP server.")

    async def _closed(self, context: PluginSessionContext) -> None:
        """The session was the client of its own connections to `per_client` servers: they close."""
        self._factory.pool.release_client(context.session_id)

    async def _attach(self, args: Any) -> Any:
        return status_dict(await self._factory.attach_server(args.name, args.config))

    async def _detach(self, args: Any) -> Any:
        await self._factory.detach_server(args.name)
        return {"detached": args.name}

    async def _reconnect(self, args: Any) -> Any:
        self._factory.pool.reconnect(args.name)
        return {"reconnecting": args.name}

    async def _statuses(self, args: Any) -> Any:
        return [status_dict(s) for s in self._factory.server_statuses()]
