"""Run the lash gateway for integration tests, and connect the official SDK's clients to it.

- `GatewayProcess` (from `tests.servers.launch`): the real `lash-gateway serve` process (`python -m lash_gateway`,
  port 0, the address read back from its banner), stopped with SIGTERM.
- `write_config` / `stdio_upstream` / `http_upstream`: the `mcpServers` config file the process reads.
- `serve_app` / `run_gateway_in_process`: a `Gateway` (or any ASGI app) under uvicorn in this process, on a
  127.0.0.1 port 0 socket, for tests that attach and detach servers at runtime through `gateway.factory`.
- `connect`: an SDK `Client` on `/mcp` or `/sse` in either protocol era, counting `tools/list_changed` the way that
  era delivers it (`message_handler` on handshake connections, `subscriptions/listen` on 2026-07-28 ones).
"""

from __future__ import annotations

import contextlib
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal, TextIO, TypeVar

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskStatus
from mcp import Client, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import ToolsListChanged
from prometheus_client.parser import text_string_to_metric_families
from starlette.types import ASGIApp

from lash_core import PluginFactory
from lash_gateway import Gateway, GatewayConfig, ServerConfig, Store
from lash_gateway.admin._serving import DEFAULT_HEAD_TIMEOUT, http_server, listening_socket
from tests.servers.launch import (
    BANNER_PREFIX,
    CONSOLE_SCRIPT,
    GATEWAY_COMMAND,
    GATEWAY_STARTUP_TIMEOUT,
    PROJECT_ROOT,
    GatewayProcess,
    GatewayStartError,
    HttpTransport,
    UpstreamProcess,
    stdio_command,
    write_config,
)

__all__ = [
    "AUTH_TOKEN",
    "MCP_HEADERS",
    "BANNER_PREFIX",
    "CLIENT_MODES",
    "CONSOLE_SCRIPT",
    "EXTRA_ALLOWED_HOST",
    "EXTRA_ALLOWED_ORIGIN",
    "GATEWAY_COMMAND",
    "HTTP_SERVER",
    "LISTEN_HEADERS",
    "STATE_DIR_ENV",
    "STDIO_SERVER",
    "ClientMode",
    "GatewayClient",
    "GatewayProcess",
    "GatewayStartError",
    "GatewayStarter",
    "InProcessGateway",
    "RawSession",
    "ServiceGateway",
    "connect",
    "connect_stdio",
    "connected_gateway",
    "gauge",
    "http_upstream",
    "initialize_body",
    "listen_body",
    "listening",
    "metrics",
    "poll",
    "raw_session",
    "reply_to",
    "run_gateway_in_process",
    "serve_app",
    "sse_message",
    "sse_messages",
    "stdio_upstream",
    "text_of",
    "wait_servers_connected",
    "write_config",
]

STATE_DIR_ENV: Final = "LASH_GATEWAY_STATE_DIR"
"""Where the gateway keeps its store and admin token; tests point it into their tmp dir."""
STARTUP_TIMEOUT: Final = GATEWAY_STARTUP_TIMEOUT
"""Seconds for the process to print its banner, or for its configured servers to connect."""
POLL_INTERVAL: Final = 0.05
"""Seconds between two probes of `poll`."""

STDIO_SERVER: Final = "local"
"""The stdio upstream of the `service_gateway` fixture (its tools are exported as `local__<tool>`)."""
HTTP_SERVER: Final = "remote"
"""The streamable-HTTP upstream of the `service_gateway` fixture (`remote__<tool>`)."""
AUTH_TOKEN: Final = "t0ken"
"""The `gateway.auth_token` of the `secured_gateway` fixture."""
EXTRA_ALLOWED_HOST: Final = "gw.example"
"""A host name the `secured_gateway` config allows (`gateway.allowed_hosts`, any port)."""
EXTRA_ALLOWED_ORIGIN: Final = "http://gw.example"
"""An origin the `secured_gateway` config allows (`gateway.allowed_origins`, any port)."""

JsonObject = dict[str, Any]
T = TypeVar("T")


# --- config files -------------------------------------------------------------------------------------------------


def stdio_upstream(*args: str) -> JsonObject:
    """An `mcpServers` entry that spawns `tests.servers.upstream` over stdio (with `args`)."""
    command, stdio_args = stdio_command(*args)
    return {"command": command, "args": stdio_args, "cwd": str(PROJECT_ROOT)}


def http_upstream(url: str, transport: HttpTransport = "streamable_http") -> JsonObject:
    """An `mcpServers` entry for an HTTP server at `url` (Claude Code's `"type"` spelling)."""
    return {"type": "sse" if transport == "sse" else "http", "url": url}


@dataclass(frozen=True, slots=True)
class ServiceGateway:
    """What the `service_gateway` fixture yields: a running `lash-gateway serve` whose two upstreams connected."""

    process: GatewayProcess
    http_upstream: UpstreamProcess
    """The streamable-HTTP upstream (`HTTP_SERVER`); the stdio one (`STDIO_SERVER`) is the gateway's child."""

    @property
    def base_url(self) -> str:
        return self.process.base_url


GatewayStarter = Callable[..., GatewayProcess]
"""What the `gateway_process` fixture yields: ``start(config=None, *, global_args=()) -> GatewayProcess``
(its state directory is under the test's tmp dir)."""


# --- bounded polling ----------------------------------------------------------------------------------------------


# ASYNC109: the timeout is this helper's API and is applied with anyio.fail_after just below.
async def poll(probe: Callable[[], Awaitable[T | None]], timeout: float = 10.0) -> T:  # noqa: ASYNC109
    """The first non-None value `probe()` returns, probing every `POLL_INTERVAL` seconds.

    For observables that have no event to wait on (an HTTP endpoint, a server that is reconnecting).

    Raises:
        TimeoutError: `probe()` still returned None after `timeout` seconds.
    """
    with anyio.fail_after(timeout):
        # ASYNC110: what is polled here has no event to wait on; the poll is bounded by fail_after.
        while (value := await probe()) is None:  # noqa: ASYNC110
            await anyio.sleep(POLL_INTERVAL)
        return value


async def wait_servers_connected(
    base_url: str,
    servers: Sequence[str],
    *,
    headers: Mapping[str, str] | None = None,
    timeout: float = STARTUP_TIMEOUT,  # noqa: ASYNC109 (passed to poll, which bounds the wait)
) -> JsonObject:
    """Wait until `/readyz` answers 200 with every one of `servers` connected; returns that body."""
    async with httpx2.AsyncClient(headers=dict(headers or {}), timeout=5.0) as http:

        async def probe() -> JsonObject | None:
            reply = await http.get(f"{base_url}/readyz")
            if reply.status_code != 200:
                return None
            body: JsonObject = reply.json()
            known = body.get("servers", {})
            return body if all(known.get(name, {}).get("connected") for name in servers) else None

        return await poll(probe, timeout)


# --- in-process serving -------------------------------------------------------------------------------------------


@asynccontextmanager
async def serve_app(
    app: ASGIApp,
    *,
    health_path: str | None = "/healthz",
    head_timeout: float = DEFAULT_HEAD_TIMEOUT,
    sock: socket.socket | None = None,
) -> AsyncIterator[str]:
    """Serve `app` with uvicorn, configured as `serve` does, on `sock` (default: 127.0.0.1, port 0); yields the base
    URL once it answers.

    Readiness is `GET health_path` answering 200, or uvicorn reporting it started when `health_path` is None.
    On exit uvicorn is told to stop and awaited (open streams get 2 seconds).
    """
    sock = sock or listening_socket("127.0.0.1", 0)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = http_server(app, drain=0.5, head_timeout=head_timeout)
    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(partial(server.serve, sockets=[sock]))
            try:
                async with httpx2.AsyncClient(timeout=5.0) as http:

                    async def answers() -> bool | None:
                        if health_path is None:
                            return True if server.started else None
                        if not server.started:
                            return None
                        return True if (await http.get(base_url + health_path)).status_code == 200 else None

                    await poll(answers, STARTUP_TIMEOUT)
                yield base_url
            finally:
                server.should_exit = True
    finally:
        sock.close()


@dataclass(frozen=True, slots=True)
class InProcessGateway:
    gateway: Gateway
    base_url: str
    app: ASGIApp
    """The ASGI app being served (for tests that play an ASGI server's part in a request)."""

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base_url}/sse"


@asynccontextmanager
async def run_gateway_in_process(
    config: GatewayConfig | None = None,
    *,
    store: Store | None = None,
    admin_token: str | None = None,
    request_state_key: bytes | None = None,
    port: int = 0,
    plugins: Sequence[PluginFactory] = (),
) -> AsyncIterator[InProcessGateway]:
    """`Gateway(config, store=..., admin_token=..., plugins=...).http_app()` served by `serve_app` (on `port`: 0 picks
    a free one); its lifespan enters (and at exit closes) the gateway. The admin API is there when both `store` and
    `admin_token` are given."""
    gateway = Gateway(
        config or GatewayConfig(),
        store=store,
        admin_token=admin_token,
        request_state_key=request_state_key,
        plugins=plugins,
    )
    app = gateway.http_app()
    sock = listening_socket("127.0.0.1", port)  # bound first: OAuth flows need the gateway's address from the start
    gateway.factory.pool.authorizations.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    if gateway.replication is not None:  # where the other replicas reach this one
        gateway.replication.url = gateway.factory.pool.authorizations.base_url
    async with serve_app(app, head_timeout=gateway.config.settings.request_timeout, sock=sock) as base_url:
        yield InProcessGateway(gateway, base_url, app)


@asynccontextmanager
async def connected_gateway(
    servers: Mapping[str, ServerConfig], *, request_state_key: bytes | None = None, wait: float = STARTUP_TIMEOUT
) -> AsyncIterator[InProcessGateway]:
    """`run_gateway_in_process` with `servers` configured, yielded once every one of them is connected (within
    `wait` seconds for the start, and as many for the connections)."""
    config = GatewayConfig(servers=dict(servers))
    async with run_gateway_in_process(config, request_state_key=request_state_key) as served:
        pool = served.gateway.factory.pool

        async def connected() -> bool | None:
            return True if all(pool.status(name).connected for name in servers) else None

        with anyio.fail_after(wait):
            await served.gateway.ready.wait()
        await poll(connected, wait)
        yield served


# --- the admin API ------------------------------------------------------------------------------------------------


@asynccontextmanager
async def admin_client(
    base_url: str, token: str | None, http_timeout: float | httpx2.Timeout = 30.0
) -> AsyncIterator[httpx2.AsyncClient]:
    """An HTTP client of the admin API at `base_url` that presents `token` (None: none)."""
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx2.AsyncClient(base_url=base_url, headers=headers, timeout=http_timeout) as http:
        yield http


# --- service routes -----------------------------------------------------------------------------------------------


async def metrics(base_url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """`/metrics`, parsed as the Prometheus text format: (sample name, labels) -> value."""
    async with httpx2.AsyncClient(timeout=5.0) as http:
        reply = await http.get(f"{base_url}/metrics")
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(reply.text)
        for sample in family.samples
    }


def gauge(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str) -> float:
    return samples[(name, frozenset())]


# --- hand-built HTTP exchanges -------------------------------------------------------------------------------------

MCP_HEADERS: Final = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def initialize_body(version: str = "2025-11-25") -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}},
    }


LISTEN_HEADERS: Final = {**MCP_HEADERS, "MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "subscriptions/listen"}
"""The headers of a 2026-07-28 `subscriptions/listen` request (`listen_body`)."""


def listen_body() -> dict[str, Any]:
    """A 2026-07-28 `subscriptions/listen` request for tool list changes, from a client that declares nothing."""
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "subscriptions/listen",
        "params": {
            "notifications": {"toolsListChanged": True},
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {},
            },
        },
    }


@asynccontextmanager
async def listening(
    http: httpx2.AsyncClient, url: str, headers: Mapping[str, str]
) -> AsyncIterator[AsyncIterator[str]]:
    """A 2026-07-28 `subscriptions/listen` stream (`listen_body`) on `url`, acknowledged; yields its later lines."""
    async with http.stream("POST", url, json=listen_body(), headers={**LISTEN_HEADERS, **headers}) as stream:
        assert stream.status_code == 200, await stream.aread()
        lines = stream.aiter_lines()
        async for line in lines:
            if "notifications/subscriptions/acknowledged" in line:
                break
        yield lines


def sse_messages(reply: httpx2.Response) -> list[dict[str, Any]]:
    """The JSON-RPC messages of a POST reply, whether it came as JSON or as an SSE stream."""
    if reply.headers["content-type"].startswith("application/json"):
        body = reply.json()
        return body if isinstance(body, list) else [body]
    return [message for line in reply.text.splitlines() if (message := sse_message(line)) is not None]


def sse_message(line: str) -> dict[str, Any] | None:
    """The JSON-RPC message of one SSE `data:` line; None for any other line."""
    return json.loads(line[len("data:") :]) if line.startswith("data:") else None


def reply_to(reply: httpx2.Response, request_id: int) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    for message in sse_messages(reply):
        if message.get("id") == request_id:
            return message
    raise AssertionError(f"no reply to request {request_id} in {reply.text!r}")


@dataclass
class RawSession:
    """An initialized streamable-HTTP session driven by hand: `headers` carry its id and protocol version."""

    http: httpx2.AsyncClient
    url: str
    headers: dict[str, str]

    async def post(self, message: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> httpx2.Response:
        return await self.http.post(self.url, json=dict(message), headers={**self.headers, **(headers or {})})

    def stream(self, message: Mapping[str, Any]) -> AbstractAsyncContextManager[httpx2.Response]:
        """POST `message` and read the reply as it arrives (an SSE answer, line by line)."""
        return self.http.stream("POST", self.url, json=dict(message), headers=self.headers)


@asynccontextmanager
async def raw_session(
    url: str, version: str = "2025-11-25", headers: Mapping[str, str] | None = None
) -> AsyncIterator[RawSession]:
    """`initialize` and `notifications/initialized` at `version` on `url` (a `/mcp` endpoint), every request with
    `headers` too; DELETE at exit (if the gateway is still there). Each HTTP request may take 10 seconds."""
    async with httpx2.AsyncClient(timeout=10.0) as http:
        init = await http.post(url, json=initialize_body(version), headers={**MCP_HEADERS, **(headers or {})})
        reply_to(init, 1)
        session_headers = {
            **MCP_HEADERS,
            **(headers or {}),
            "Mcp-Session-Id": init.headers["mcp-session-id"],
            "MCP-Protocol-Version": version,
        }
        session = RawSession(http, url, session_headers)
        initialized = await session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
        assert initialized.status_code == 202, initialized.text
        yield session
        with contextlib.suppress(httpx2.TransportError):  # a test may have stopped the gateway
            await http.delete(url, headers=session_headers)


# --- SDK clients --------------------------------------------------------------------------------------------------

ClientMode = Literal["http-legacy", "http-auto", "sse-legacy", "sse-auto", "stdio-legacy", "stdio-auto"]
"""`<transport>-<negotiation>`: `/mcp`, `/sse` or stdio; `mode="legacy"` (2025-11-25) or `mode="auto"` (2026-07-28)."""
CLIENT_MODES: Final[tuple[ClientMode, ...]] = ("http-legacy", "http-auto", "sse-legacy", "sse-auto")
"""The modes of the HTTP service: both endpoints, both protocol eras."""


@dataclass(eq=False)
class GatewayClient:
    """An entered SDK `Client` and what the gateway told it.

    `tools_changed` counts `tools/list_changed` as the negotiated era delivers it: `ToolListChangedNotification`s
    through `message_handler` on handshake connections, `ToolsListChanged` events of a `subscriptions/listen`
    stream on 2026-07-28 ones (where the listen frames teed to `message_handler` are not counted again).
    """

    mode: ClientMode
    client: Client = field(init=False)
    tools_changed: int = 0
    transport_errors: list[Exception] = field(default_factory=list)
    logs: list[types.LoggingMessageNotificationParams] = field(default_factory=list)
    notices: list[Any] = field(default_factory=list)
    """Every other notification `message_handler` got (resources updated, resource and prompt list changes)."""
    _changed: anyio.Event = field(default_factory=anyio.Event)
    _noticed: anyio.Event = field(default_factory=anyio.Event)

    @property
    def modern(self) -> bool:
        return self.mode.endswith("-auto")

    def _note_change(self) -> None:
        self.tools_changed += 1
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def _on_log(self, params: types.LoggingMessageNotificationParams) -> None:
        self.logs.append(params)

    async def _on_message(self, message: Any) -> None:
        if isinstance(message, Exception):
            self.transport_errors.append(message)
        elif isinstance(message, types.ToolListChangedNotification) and not self.modern:
            self._note_change()
        elif not isinstance(message, types.ToolListChangedNotification):
            self.notices.append(message)
            noticed, self._noticed = self._noticed, anyio.Event()
            noticed.set()

    async def wait_notice(self, wanted: Callable[[Any], bool]) -> Any:
        """The first notification in `notices` that is `wanted`, waiting for it (bound it with `anyio.fail_after`)."""
        while True:
            found = next((notice for notice in self.notices if wanted(notice)), None)
            if found is not None:
                return found
            await self._noticed.wait()

    async def _listen(self, *, task_status: TaskStatus[None]) -> None:
        async with self.client.listen(tools_list_changed=True) as subscription:
            task_status.started()
            async for event in subscription:
                if isinstance(event, ToolsListChanged):
                    self._note_change()

    async def wait_tools_changed(self, seen: int) -> int:
        """Wait until more than `seen` list_changed arrived (bound it with `anyio.fail_after`); returns the count."""
        while self.tools_changed <= seen:
            await self._changed.wait()
        return self.tools_changed

    async def list_tools(self) -> list[types.Tool]:
        """Every page, bypassing any cache."""
        tools: list[types.Tool] = []
        cursor: str | None = None
        while True:
            page = await self.client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(page.tools)
            if not page.next_cursor:
                return tools
            cursor = page.next_cursor

    async def tool_names(self) -> set[str]:
        return {tool.name for tool in await self.list_tools()}


@asynccontextmanager
async def connect(
    base_url: str,
    mode: ClientMode,
    *,
    headers: Mapping[str, str] | None = None,
    virtual_server: str | None = None,
    fresh_connections: bool = False,
    **client_options: Any,
) -> AsyncIterator[GatewayClient]:
    """An SDK client on the gateway at `base_url`, over the HTTP transport and era `mode` names (on a virtual server's
    own path with `virtual_server`); `client_options` go to `Client` (callbacks for sampling, elicitation and roots).
    With `fresh_connections`, every request opens a connection of its own (a balancer then spreads them).

    2026-07-28 clients have a `subscriptions/listen` stream open (acknowledged) before this yields.
    """
    transport_kind, _, negotiation = mode.partition("-")
    suffix = f"/{virtual_server}" if virtual_server is not None else ""
    async with AsyncExitStack() as stack:
        if transport_kind == "http":
            # httpx2's own default limits, unless each request is to open a connection of its own.
            limits = httpx2.Limits(max_connections=100, max_keepalive_connections=0 if fresh_connections else 20)
            http = await stack.enter_async_context(
                httpx2.AsyncClient(headers=dict(headers or {}), timeout=httpx2.Timeout(10.0, read=None), limits=limits)
            )
            # No event size limit: a 16 MiB result is the gateway's to carry, not the test client's to refuse.
            transport: Any = streamable_http_client(
                f"{base_url}/mcp{suffix}", http_client=http, max_sse_event_size=None
            )
        elif transport_kind == "sse":
            transport = sse_client(f"{base_url}/sse{suffix}", headers=dict(headers or {}), timeout=10.0)
        else:
            raise ValueError(f"{mode!r} is not an HTTP mode; use connect_stdio")
        yield await stack.enter_async_context(_client(transport, mode, **client_options))


@asynccontextmanager
async def connect_stdio(
    params: StdioServerParameters,
    mode: Literal["stdio-legacy", "stdio-auto"],
    *,
    errlog: TextIO,
    **client_options: Any,
) -> AsyncIterator[GatewayClient]:
    """An SDK client that starts the gateway as `params` and talks to it over stdio; its stderr goes to `errlog`;
    `client_options` go to `Client`."""
    async with _client(stdio_client(params, errlog=errlog), mode, **client_options) as handle:
        yield handle


@asynccontextmanager
async def _client(transport: Any, mode: ClientMode, **client_options: Any) -> AsyncIterator[GatewayClient]:
    handle = GatewayClient(mode)
    async with AsyncExitStack() as stack:
        handle.client = await stack.enter_async_context(
            Client(
                transport,
                mode="auto" if handle.modern else "legacy",
                message_handler=handle._on_message,
                logging_callback=handle._on_log,
                # 2026-07-28 log delivery is a per-request opt-in; handshake clients get every level.
                log_level="debug" if handle.modern else None,
                cache=None,
                **client_options,
            )
        )
        if handle.modern:
            tg = await stack.enter_async_context(anyio.create_task_group())
            stack.callback(tg.cancel_scope.cancel)  # runs before the task group's exit waits for the listener
            await tg.start(handle._listen)
        yield handle


def text_of(result: types.CallToolResult) -> str:
    """The text of a tool result's text content blocks, joined."""
    return "".join(block.text for block in result.content if isinstance(block, types.TextContent))
