"""A configurable MCP server for the gateway's tests, built on the official SDK's low-level `Server`.

One module covers all three transports and both protocol eras::

    python -m tests.servers.upstream --transport stdio|streamable_http|sse [--port 0] [--name NAME]
                                     [--behaviour bad-schema|hang-list|garbage|paginate|many-tools=N]...

HTTP transports bind 127.0.0.1 (port 0: the OS picks) and, once uvicorn listens, write exactly one line
``LISTENING http://127.0.0.1:<port>`` to stderr. Streamable HTTP is served statefully at ``/mcp`` (SSE responses,
``tools.listChanged`` advertised); legacy HTTP+SSE at ``/sse`` with POSTs to ``/messages/``.

Tools (input errors come back as ``is_error`` results, never as JSON-RPC errors):

- ``echo(text)``: text content and structured ``{"text": text}``.
- ``route(region, text)``: as ``echo``, with ``region`` too; its schema asks 2026-07-28 clients to send ``region``
  as the ``Mcp-Param-Region`` header (``x-mcp-header``), which servers check against the argument.
- ``add(a, b)``: structured ``{"sum": a + b}`` (declared output schema) and text.
- ``slow(seconds, steps=10)``: reports progress ``0..steps`` of ``steps`` while sleeping ``seconds`` in total.
- ``wait_for_release(key)`` / ``release(key)``: the first blocks until ``release`` is called with the same key;
  ``release`` blocks until a ``wait_for_release`` on that key is in flight. Neither can finish unless both calls
  run concurrently, so a completed pair proves concurrency. Both return ``{"key", "in_flight"}``, where
  ``in_flight`` is the number of ``tools/call`` handlers running at the moment of release (both included).
- ``content_kinds()``: text, image (``PNG_BYTES``), audio (``WAV_BYTES``), embedded text and blob resources,
  a resource link, and structured content.
- ``big(size_bytes)``: one text content equal to ``big_text(size_bytes)``.
- ``log(message, level="info", times=1)``: sends ``{"message": message}`` as a log message (logger ``upstream``)
  to the caller, ``times`` times, then answers ``logged <message>``.
- ``fail(message)``: ``CallToolResult(is_error=True)`` with ``message`` as its text.
- ``add_tool(name)`` / ``remove_tool(name)``: change the tool list and announce it to every connected client
  (``notifications/tools/list_changed`` on legacy connections, the listen bus for 2026-07-28 clients). An added
  tool answers with text ``"<name> called"``.
- ``cancel_log()``: ``{"cancelled": [...]}``, the tool names whose handler was cancelled in this process.
- ``crash()``: the process exits at once with status 1, mid-call.

Behaviours (``--behaviour``, repeatable):

- ``bad-schema``: the first ``tools/list`` page also carries ``bad_schema`` whose ``inputSchema`` is
  ``{"type": "string"}``. The SDK refuses to send that, so a middleware adds it after the result sieve.
- ``hang-list``: ``tools/list`` never answers (the handler sleeps until cancelled).
- ``garbage`` (stdio only): a non-JSON line is written to stdout at startup and before every message.
- ``paginate``: ``tools/list`` answers in pages of 2 with ``next_cursor``.
- ``many-tools=N``: adds ``N`` trivial tools ``t0..tN-1`` answering with text ``"t<i> called"``.
- ``many-resources=N``: lists ``N`` resources ``test://<name>/many/<i>`` instead, in pages of 100.
- ``no-templates``: resources, but no ``resources/templates/list`` method (``-32601``), as many servers.

State (tool list, cancel log, release gates) is per process, shared by all connections.

SDK client note: after every successful call to a tool whose output schema it has not cached, `ClientSession.call_tool`
sends its own ``tools/list`` (first page only). Under ``hang-list`` such a call hangs and under ``bad-schema`` it
raises, although the tool ran; list the tools first, or talk to these modes with raw requests.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import json
import os
import struct
import sys
import wave
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import TextIOWrapper
from typing import Any, Final, Literal, cast

import anyio
import mcp_types as types
import uvicorn
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.models import InitializationOptions
from mcp.server.session import ServerSession
from mcp.server.sse import SseServerTransport
from mcp.server.stdio import stdio_server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.subscriptions import InMemorySubscriptionBus, ListenHandler, ToolsListChanged
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.exceptions import MCPError
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.types import Receive, Scope, Send

from tests.servers.surface import INPUT_RESPONSES, NeedInput, Surface

Transport = Literal["stdio", "streamable_http", "sse"]
TRANSPORTS: Final[tuple[Transport, ...]] = ("stdio", "streamable_http", "sse")
HOST: Final = "127.0.0.1"
LISTENING_PREFIX: Final = "LISTENING "
MCP_PATH: Final = "/mcp"
SSE_PATH: Final = "/sse"
MESSAGES_PATH: Final = "/messages/"
PAGE_SIZE: Final = 2
DEFAULT_SLOW_STEPS: Final = 10
MAX_BIG_BYTES: Final = 256 * 1024 * 1024
BIG_BLOCK: Final = 4096
BAD_SCHEMA_TOOL: Final = "bad_schema"
GARBAGE_LINE: Final = "this line is not JSON-RPC\n"

JsonObject = dict[str, Any]
ServerCtx = ServerRequestContext[Any, Any]
ToolHandler = Callable[[ServerCtx, Mapping[str, Any]], Awaitable[types.CallToolResult]]


def big_text(size: int) -> str:
    """The deterministic ``big`` payload of exactly ``size`` ASCII characters.

    4 KiB blocks, each opening with its index in hex (15 digits and a newline) and padded with a fixed filler, so a
    truncated or reordered payload shows where it went wrong; cheap enough to build at 16 MiB.
    """
    blocks = -(-size // BIG_BLOCK)
    filler = ("lash-big-payload" * (BIG_BLOCK // 16))[16:]
    return "".join(f"{i:015x}\n{filler}" for i in range(blocks))[:size]


def _png_1x1() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # 1x1, 8-bit RGB
    pixels = zlib.compress(b"\x00\xff\x80\x00")  # filter byte 0, one orange pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def _wav_silence() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(b"\x00\x00" * 80)  # 10 ms
    return buffer.getvalue()


PNG_BYTES: Final = _png_1x1()
WAV_BYTES: Final = _wav_silence()
BLOB_BYTES: Final = bytes(range(32))


# --- options ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Options:
    """Parsed command line."""

    transport: Transport = "stdio"
    port: int = 0
    name: str = "upstream"
    bad_schema: bool = False
    hang_list: bool = False
    garbage: bool = False
    paginate: bool = False
    many_tools: int = 0
    no_templates: bool = False
    many_resources: int = 0


def parse_args(argv: Sequence[str] | None = None) -> Options:
    """Parse the command line; exits with status 2 on bad input (argparse)."""
    parser = argparse.ArgumentParser(prog="python -m tests.servers.upstream", description=__doc__.splitlines()[0])
    parser.add_argument("--transport", choices=TRANSPORTS, default="stdio")
    parser.add_argument("--port", type=int, default=0, help="HTTP transports only; 0 lets the OS pick")
    parser.add_argument("--name", default="upstream", help="serverInfo.name")
    parser.add_argument(
        "--behaviour",
        action="append",
        default=[],
        metavar="B",
        help="bad-schema | hang-list | garbage | paginate | many-tools=N | no-templates (repeatable)",
    )
    ns = parser.parse_args(argv)
    flags: dict[str, Any] = {}
    for raw in ns.behaviour:
        key, _, value = raw.partition("=")
        if key in ("many-tools", "many-resources"):
            if not value.isdigit():
                parser.error(f"--behaviour {key}=N needs a non-negative integer, got {raw!r}")
            flags[key.replace("-", "_")] = int(value)
        elif key in ("bad-schema", "hang-list", "garbage", "paginate", "no-templates") and not value:
            flags[key.replace("-", "_")] = True
        else:
            parser.error(f"unknown --behaviour {raw!r}")
    if flags.get("garbage") and ns.transport != "stdio":
        parser.error("--behaviour garbage needs --transport stdio")
    if not 0 <= ns.port <= 65535:
        parser.error(f"--port must be 0..65535, got {ns.port}")
    return Options(transport=ns.transport, port=ns.port, name=ns.name, **flags)


# --- tool helpers -------------------------------------------------------------------------------------------------


class _BadArguments(Exception):
    """A tool's arguments do not match its input schema; reported as an ``is_error`` result."""


def _schema(properties: Mapping[str, JsonObject] | None = None, required: Sequence[str] = ()) -> JsonObject:
    schema: JsonObject = {"type": "object", "properties": dict(properties or {})}
    if required:
        schema["required"] = list(required)
    return schema


def _text(text: str) -> types.TextContent:
    return types.TextContent(type="text", text=text)


def _error(message: str) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(message)], is_error=True)


def _structured(data: JsonObject) -> types.CallToolResult:
    return types.CallToolResult(content=[_text(json.dumps(data))], structured_content=data)


def _arg_str(args: Mapping[str, Any], name: str) -> str:
    value = args.get(name)
    if not isinstance(value, str):
        raise _BadArguments(f"argument {name!r} must be a string")
    return value


def _arg_number(args: Mapping[str, Any], name: str) -> float:
    value = args.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _BadArguments(f"argument {name!r} must be a number")
    return value


def _arg_int(args: Mapping[str, Any], name: str, default: int | None = None) -> int:
    value = args.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _BadArguments(f"argument {name!r} must be an integer")
    return value


@dataclass(slots=True)
class _Gate:
    """Rendezvous for one ``wait_for_release`` key."""

    waiting: int = 0
    in_flight: int = 0
    arrived: anyio.Event = field(default_factory=anyio.Event)
    released: anyio.Event = field(default_factory=anyio.Event)


# --- the server ---------------------------------------------------------------------------------------------------


class UpstreamServer(Server[Any]):
    """Low-level `Server` that advertises ``tools.listChanged`` by default.

    The streamable-HTTP session manager calls `create_initialization_options()` without arguments, which would
    advertise ``listChanged: false`` to HTTP clients.
    """

    def create_initialization_options(
        self,
        notification_options: NotificationOptions | None = None,
        experimental_capabilities: dict[str, dict[str, Any]] | None = None,
        extensions: dict[str, dict[str, Any]] | None = None,
    ) -> InitializationOptions:
        return super().create_initialization_options(
            notification_options or NotificationOptions(tools_changed=True), experimental_capabilities, extensions
        )


class Upstream:
    """Tool registry, per-process test state and the MCP handlers of one server process."""

    def __init__(self, options: Options) -> None:
        self.options = options
        self.bus = InMemorySubscriptionBus()
        self.cancelled: list[str] = []
        self.in_flight = 0
        self._gates: dict[str, _Gate] = {}
        # Legacy connections, keyed by id(connection); 2026-07-28 clients are reached through self.bus instead.
        self._legacy_sessions: dict[int, ServerSession] = {}
        self.tools: dict[str, types.Tool] = {}
        self._handlers: dict[str, ToolHandler] = {}
        self._register_builtin_tools()
        for i in range(options.many_tools):
            self._add_trivial_tool(f"t{i}", f"trivial tool {i}")
        self.server = UpstreamServer(
            options.name,
            version="1.0.0",
            on_list_tools=self.list_tools,
            on_call_tool=self.call_tool,
            on_subscriptions_listen=ListenHandler(self.bus),
        )
        self.server.middleware.append(self._track_legacy_sessions)
        if options.bad_schema:
            self.server.middleware.append(self._inject_bad_schema)
            self._handlers[BAD_SCHEMA_TOOL] = self._bad_schema_called
        self.surface = Surface(self)

    # -- registry

    def add_tool(
        self,
        name: str,
        handler: ToolHandler,
        description: str,
        input_schema: JsonObject,
        output_schema: JsonObject | None = None,
    ) -> None:
        self.tools[name] = types.Tool(
            name=name, description=description, input_schema=input_schema, output_schema=output_schema
        )
        self._handlers[name] = handler

    def _register_builtin_tools(self) -> None:
        string, number = {"type": "string"}, {"type": "number"}
        self.add_tool("echo", self._echo, "Echo the text back.", _schema({"text": string}, ["text"]))
        self.add_tool(
            "route",
            self._route,
            "Echo the text back, with the region it was routed by.",
            _schema({"region": {**string, "x-mcp-header": "Region"}, "text": string}, ["region", "text"]),
        )
        self.add_tool(
            "add",
            self._add,
            "Add two numbers.",
            _schema({"a": number, "b": number}, ["a", "b"]),
            output_schema=_schema({"sum": number}, ["sum"]),
        )
        self.add_tool(
            "slow",
            self._slow,
            "Sleep for `seconds`, reporting progress in `steps`.",
            _schema(
                {"seconds": {"type": "number", "minimum": 0}, "steps": {"type": "integer", "minimum": 1}}, ["seconds"]
            ),
        )
        self.add_tool(
            "wait_for_release",
            self._wait_for_release,
            "Block until release(key) is called.",
            _schema({"key": string}, ["key"]),
        )
        self.add_tool(
            "release",
            self._release,
            "Release the wait_for_release(key) call, waiting for it to arrive first.",
            _schema({"key": string}, ["key"]),
        )
        self.add_tool("content_kinds", self._content_kinds, "One content block of every kind.", _schema())
        self.add_tool(
            "big",
            self._big,
            "One text content of exactly size_bytes characters.",
            _schema({"size_bytes": {"type": "integer", "minimum": 0}}, ["size_bytes"]),
        )
        self.add_tool("fail", self._fail, "Return a tool error.", _schema({"message": string}, ["message"]))
        self.add_tool(
            "log",
            self._log,
            "Send a log message (notifications/message) to the caller, `times` times (once by default), then answer; "
            "with `fail`, answer with a JSON-RPC error instead.",
            _schema(
                {"message": string, "level": string, "fail": {"type": "boolean"}, "times": {"type": "integer"}},
                ["message"],
            ),
        )
        self.add_tool(
            "add_tool", self._add_tool, "Add a tool and announce the change.", _schema({"name": string}, ["name"])
        )
        self.add_tool(
            "remove_tool",
            self._remove_tool,
            "Remove a tool and announce the change.",
            _schema({"name": string}, ["name"]),
        )
        self.add_tool("cancel_log", self._cancel_log, "Tool calls whose handler was cancelled.", _schema())
        self.add_tool("crash", self._crash, "Exit the server process at once.", _schema())

    def _add_trivial_tool(self, name: str, description: str) -> None:
        async def trivial(ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
            return types.CallToolResult(content=[_text(f"{name} called")])

        self.add_tool(name, trivial, description, _schema())

    def legacy_sessions(self) -> list[ServerSession]:
        """The handshake-era connections' sessions (2026-07-28 clients are reached through `bus`)."""
        return list(self._legacy_sessions.values())

    async def announce_tools_changed(self) -> None:
        """Tell every connected client that the tool list changed, in both protocol eras."""
        for session in list(self._legacy_sessions.values()):
            await session.send_tool_list_changed()  # dropped by the SDK if that stream is gone
        await self.bus.publish(ToolsListChanged())

    # -- middleware

    async def _track_legacy_sessions(self, ctx: ServerCtx, call_next: CallNext) -> HandlerResult:
        result = await call_next(ctx)
        if ctx.method == "notifications/initialized":
            # The SDK has no public registry of connections: reach the private Connection to key the session and to
            # drop it when the connection closes (Connection.exit_stack is public).
            connection = ctx.session._connection
            key = id(connection)
            self._legacy_sessions[key] = ctx.session
            connection.exit_stack.callback(self._legacy_sessions.pop, key, None)
        return result

    async def _inject_bad_schema(self, ctx: ServerCtx, call_next: CallNext) -> HandlerResult:
        # The runner validates handler results against the protocol schema before they reach this point and would
        # answer -32603 for this tool; a middleware's return value is only copied, so the bad tool goes out as is.
        result = await call_next(ctx)
        first_page = not (ctx.params or {}).get("cursor")
        if ctx.method == "tools/list" and first_page and isinstance(result, dict):
            tools = list(result.get("tools", []))
            tools.append(
                {"name": BAD_SCHEMA_TOOL, "description": "invalid inputSchema", "inputSchema": {"type": "string"}}
            )
            result = {**result, "tools": tools}
        return result

    # -- protocol handlers

    async def list_tools(self, ctx: ServerCtx, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        if self.options.hang_list:
            await anyio.sleep_forever()
        tools = list(self.tools.values())
        if not self.options.paginate:
            return types.ListToolsResult(tools=tools)
        cursor = params.cursor if params is not None else None
        try:
            start = int(cursor) if cursor else 0
        except ValueError:
            raise MCPError(types.INVALID_PARAMS, f"invalid cursor {cursor!r}") from None
        end = start + PAGE_SIZE
        return types.ListToolsResult(tools=tools[start:end], next_cursor=str(end) if end < len(tools) else None)

    async def call_tool(self, ctx: ServerCtx, params: types.CallToolRequestParams) -> types.CallToolResult:
        handler = self._handlers.get(params.name)
        if handler is None or (params.name not in self.tools and params.name != BAD_SCHEMA_TOOL):
            return _error(f"unknown tool {params.name!r}")
        self.in_flight += 1
        token = INPUT_RESPONSES.set(params.input_responses)
        try:
            return await handler(ctx, params.arguments or {})
        except NeedInput as asking:
            needed = types.InputRequiredResult(input_requests={asking.key: asking.request}, request_state="round")
            return needed  # type: ignore[return-value]  # the SDK's handler type allows it; ours says less
        except _BadArguments as exc:
            return _error(f"{params.name}: {exc}")
        except anyio.get_cancelled_exc_class():
            self.cancelled.append(params.name)
            raise
        finally:
            INPUT_RESPONSES.reset(token)
            self.in_flight -= 1

    # -- tools

    async def _echo(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        text = _arg_str(args, "text")
        return types.CallToolResult(content=[_text(text)], structured_content={"text": text})

    async def _route(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        region, text = _arg_str(args, "region"), _arg_str(args, "text")
        return types.CallToolResult(content=[_text(f"{region}: {text}")], structured_content={"region": region})

    async def _add(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        total = _arg_number(args, "a") + _arg_number(args, "b")
        return types.CallToolResult(content=[_text(f"{total:g}")], structured_content={"sum": total})

    async def _slow(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        seconds = _arg_number(args, "seconds")
        steps = _arg_int(args, "steps", DEFAULT_SLOW_STEPS)
        if seconds < 0 or steps < 1:
            raise _BadArguments("seconds must be >= 0 and steps >= 1")
        for step in range(steps):
            await ctx.session.report_progress(step, steps, f"step {step}/{steps}")
            await anyio.sleep(seconds / steps)
        await ctx.session.report_progress(steps, steps, "done")
        return types.CallToolResult(content=[_text(f"slept {seconds:g}s in {steps} steps")])

    async def _wait_for_release(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        key = _arg_str(args, "key")
        gate = self._gates.setdefault(key, _Gate())
        gate.waiting += 1
        gate.arrived.set()
        try:
            await gate.released.wait()
        finally:
            gate.waiting -= 1
            if not gate.waiting and not gate.released.is_set() and self._gates.get(key) is gate:
                del self._gates[key]  # the only waiter was cancelled: a later release() must wait afresh
        return _structured({"key": key, "in_flight": gate.in_flight})

    async def _release(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        key = _arg_str(args, "key")
        while True:
            gate = self._gates.setdefault(key, _Gate())
            await gate.arrived.wait()
            if gate.waiting and self._gates.get(key) is gate:
                break
        del self._gates[key]
        gate.in_flight = self.in_flight
        gate.released.set()
        return _structured({"key": key, "in_flight": gate.in_flight})

    async def _content_kinds(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        kinds = ["text", "image", "audio", "resource", "resource", "resource_link"]
        return types.CallToolResult(
            content=[
                _text("plain text"),
                types.ImageContent(type="image", data=base64.b64encode(PNG_BYTES).decode(), mime_type="image/png"),
                types.AudioContent(type="audio", data=base64.b64encode(WAV_BYTES).decode(), mime_type="audio/wav"),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.TextResourceContents(
                        uri="test://upstream/text", mime_type="text/plain", text="embedded text"
                    ),
                ),
                types.EmbeddedResource(
                    type="resource",
                    resource=types.BlobResourceContents(
                        uri="test://upstream/blob",
                        mime_type="application/octet-stream",
                        blob=base64.b64encode(BLOB_BYTES).decode(),
                    ),
                ),
                types.ResourceLink(type="resource_link", name="linked", uri="test://upstream/linked"),
            ],
            structured_content={"kinds": kinds},
        )

    async def _big(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        size = _arg_int(args, "size_bytes")
        if not 0 <= size <= MAX_BIG_BYTES:
            raise _BadArguments(f"size_bytes must be 0..{MAX_BIG_BYTES}")
        return types.CallToolResult(content=[_text(big_text(size))])

    async def _fail(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        return _error(_arg_str(args, "message"))

    async def _log(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        message = _arg_str(args, "message")
        level = cast(types.LoggingLevel, args.get("level", "info"))
        for _ in range(int(args.get("times", 1))):
            await ctx.session.send_log_message(
                level, {"message": message}, "upstream", related_request_id=ctx.request_id
            )
        if args.get("fail"):
            raise RuntimeError(f"failed after logging {message}")  # the SDK answers with a JSON-RPC error
        return types.CallToolResult(content=[_text(f"logged {message}")])

    async def _add_tool(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        name = _arg_str(args, "name")
        if name in self.tools:
            return _error(f"tool {name!r} exists")
        self._add_trivial_tool(name, "added at runtime")
        await self.announce_tools_changed()
        return types.CallToolResult(content=[_text(f"added {name}")])

    async def _remove_tool(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        name = _arg_str(args, "name")
        if self.tools.pop(name, None) is None:
            return _error(f"no tool {name!r}")
        await self.announce_tools_changed()
        return types.CallToolResult(content=[_text(f"removed {name}")])

    async def _cancel_log(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        return _structured({"cancelled": list(self.cancelled)})

    async def _bad_schema_called(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        return types.CallToolResult(content=[_text(f"{BAD_SCHEMA_TOOL} called")])

    async def _crash(self, ctx: ServerCtx, args: Mapping[str, Any]) -> types.CallToolResult:
        os._exit(1)


TOOL_NAMES: Final = frozenset(Upstream(Options()).tools)
"""The names of the tools the server offers without behaviours: its built-in tool table."""


# --- transports ---------------------------------------------------------------------------------------------------


class _GarbageWriter(TextIOWrapper):
    """stdout for ``--behaviour garbage``: a non-JSON line precedes every message."""

    def write(self, s: str) -> int:
        super().write(GARBAGE_LINE)
        return super().write(s)


async def serve_stdio(upstream: Upstream) -> None:
    """Serve one stdio connection until stdin closes."""
    stdout: anyio.AsyncFile[str] | None = None
    if upstream.options.garbage:
        # An explicit stdout keeps stdio_server from diverting fd 1, so the garbage reaches the wire.
        writer = _GarbageWriter(os.fdopen(os.dup(sys.stdout.fileno()), "wb"), encoding="utf-8")
        writer.write("")  # the startup garbage line, before any message
        writer.flush()
        stdout = anyio.wrap_file(writer)
    async with stdio_server(stdout=stdout) as (read_stream, write_stream):
        await upstream.server.run(read_stream, write_stream, upstream.server.create_initialization_options())


class _SseEndpoint:
    """Raw ASGI endpoint for ``GET /sse``: each connection runs its own `Server.run`."""

    def __init__(self, transport: SseServerTransport, server: Server[Any]) -> None:
        self._transport, self._server = transport, server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            async with self._transport.connect_sse(scope, receive, send) as (read_stream, write_stream):
                await self._server.run(read_stream, write_stream, self._server.create_initialization_options())
        except ValueError:
            pass  # connect_sse already answered 421/403 for a rejected Host/Origin


def http_app(upstream: Upstream, transport: Literal["streamable_http", "sse"]) -> Starlette:
    """The Starlette app for one HTTP transport."""
    security = TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=[f"{HOST}:*", "localhost:*"],
        allowed_origins=[f"http://{HOST}:*", "http://localhost:*"],
    )
    if transport == "sse":
        sse = SseServerTransport(MESSAGES_PATH, security_settings=security)
        return Starlette(
            routes=[
                Route(SSE_PATH, endpoint=_SseEndpoint(sse, upstream.server), methods=["GET"]),
                Mount(MESSAGES_PATH, app=sse.handle_post_message),
            ]
        )
    manager = StreamableHTTPSessionManager(app=upstream.server, security_settings=security)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with manager.run():
            yield

    return Starlette(routes=[Route(MCP_PATH, endpoint=StreamableHTTPASGIApp(manager))], lifespan=lifespan)


class _AnnouncingServer(uvicorn.Server):
    """uvicorn server that reports its bound address on stderr once it accepts connections."""

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            port = self.servers[0].sockets[0].getsockname()[1]
            print(f"{LISTENING_PREFIX}http://{HOST}:{port}", file=sys.stderr, flush=True)


def serve_http(upstream: Upstream, transport: Literal["streamable_http", "sse"], port: int) -> None:
    """Serve until SIGINT/SIGTERM; open streams get one second to finish."""
    config = uvicorn.Config(
        http_app(upstream, transport),
        host=HOST,
        port=port,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    _AnnouncingServer(config).run()


def main(argv: Sequence[str] | None = None) -> None:
    options = parse_args(argv)
    upstream = Upstream(options)
    if options.transport == "stdio":
        anyio.run(serve_stdio, upstream)
    else:
        serve_http(upstream, options.transport, options.port)


if __name__ == "__main__":
    main()
