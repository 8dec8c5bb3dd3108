"""Every private part of the MCP SDK that `lash_gateway._sdk` relies on is still there, shaped as it expects, in the
installed SDK. A failure names the piece and what depends on it: read `lash_gateway/_sdk.py` for why each is used,
change it there, and only then move the `mcp` pin in pyproject.toml (the README says how).
"""

from __future__ import annotations

import inspect
import json
import sys
from importlib.metadata import version
from typing import Any, Final

import anyio
import mcp.client.stdio as sdk_stdio
import mcp.os.posix.utilities as sdk_posix
import mcp_types as types
import pytest
from mcp import Client, ClientSession
from mcp.server import Server, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from mcp.shared.message import SessionMessage
from starlette.types import Message, Receive, Scope

from lash_gateway import _sdk
from tests.integration._gateway import initialize_body

SDK: Final = f"mcp {version('mcp')}"


def moved(piece: str, user: str) -> str:
    return f"{SDK}: {piece} moved or changed; lash_gateway._sdk.{user} relies on it (see lash_gateway/_sdk.py)"


@pytest.mark.parametrize(
    ("name", "parameters", "user"),
    [
        ("_get_executable_command", ["command"], "executable_command"),
        ("_create_platform_compatible_process", ["command", "args", "env", "errlog", "cwd"], "create_process"),
        ("_stop_server_process", ["process"], "stop_process"),
    ],
)
def test_the_stdio_process_helpers_are_there(name: str, parameters: list[str], user: str) -> None:
    helper = getattr(sdk_stdio, name, None)
    assert helper is not None and inspect.iscoroutinefunction(helper), moved(f"mcp.client.stdio.{name}", user)
    assert list(inspect.signature(helper).parameters)[: len(parameters)] == parameters, moved(
        f"the parameters of mcp.client.stdio.{name}", user
    )
    assert getattr(_sdk, user) is helper


def test_the_process_group_killer_is_there() -> None:
    """`stop_process` kills the tree with it; the gateway kills what a child that exited left of its group with it."""
    helper = getattr(sdk_posix, "terminate_posix_process_tree", None)
    where = "mcp.os.posix.utilities.terminate_posix_process_tree"
    assert helper is not None and inspect.iscoroutinefunction(helper), moved(where, "terminate_process_group")
    assert list(inspect.signature(helper).parameters) == ["process", "timeout_seconds"], moved(
        f"the parameters of {where}", "terminate_process_group"
    )
    assert _sdk.terminate_process_group is helper


def test_a_client_session_stamps_and_dispatches_raw_requests() -> None:
    send, receive = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write, read = anyio.create_memory_object_stream[SessionMessage](0)
    with send, receive, write, read:
        session = ClientSession(receive, write)
        stamp = getattr(session, "_stamp", None)
        assert callable(stamp) and list(inspect.signature(stamp).parameters) == ["data", "opts"], moved(
            "ClientSession._stamp(data, opts)", "send_raw_request"
        )
        dispatcher = getattr(session, "_dispatcher", None)
        assert callable(getattr(dispatcher, "send_raw_request", None)), moved(
            "ClientSession._dispatcher.send_raw_request", "send_raw_request"
        )


@pytest.mark.anyio
async def test_raw_requests_and_the_connection_of_a_request_work_end_to_end() -> None:
    """Through the SDK's own in-memory client and server: a raw `tools/list` comes back as a plain dict, and a
    handler reaches its request's connection."""
    seen: list[Connection] = []

    async def list_tools(ctx: ServerRequestContext[Any, Any], params: Any) -> Any:
        seen.append(_sdk.connection_of(ctx))
        return {"tools": [{"name": "plain", "inputSchema": {"type": "object"}}]}

    server = Server("sdk-internals", on_list_tools=list_tools)
    async with Client(server, mode="legacy") as client:
        with anyio.fail_after(10):
            raw = await _sdk.send_raw_request(client.session, "tools/list", {}, {})
    assert isinstance(raw, dict) and raw["tools"][0]["name"] == "plain"
    assert [type(connection) for connection in seen] == [Connection], moved(
        "ServerSession._connection", "connection_of"
    )
    assert isinstance(seen[0].state, dict)


def test_the_session_manager_keeps_its_sessions_by_id() -> None:
    manager = StreamableHTTPSessionManager(app=Server("sdk-internals"))
    sessions = getattr(manager, "_server_instances", None)
    assert isinstance(sessions, dict), moved("StreamableHTTPSessionManager._server_instances", "http_transports")
    assert _sdk.http_transports(manager) is sessions


def test_the_session_manager_names_new_sessions_where_a_prefix_can_be_put() -> None:
    manager = StreamableHTTPSessionManager(app=Server("sdk-internals"))
    assert callable(getattr(manager, "_admit_session", None)), moved(
        "StreamableHTTPSessionManager._admit_session", "prefix_session_ids"
    )
    assert isinstance(getattr(manager, "_session_owners", None), dict), moved(
        "StreamableHTTPSessionManager._session_owners", "prefix_session_ids"
    )
    _sdk.prefix_session_ids(manager, "r1-")
    transport = manager._admit_session(None)
    assert transport is not None and transport.mcp_session_id is not None
    assert transport.mcp_session_id.startswith("r1-")
    assert list(_sdk.http_transports(manager)) == [transport.mcp_session_id]


@pytest.mark.anyio
async def test_the_session_manager_decides_on_a_new_session_where_the_edge_hears_of_it() -> None:
    """An initialize served by the manager: the edge hears of the decision in the request's own task, with the new
    session counted, before the answer starts; and of a refusal past `max_sessions` too."""
    manager = StreamableHTTPSessionManager(
        app=Server("sdk-internals"),
        json_response=True,
        security_settings=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        max_sessions=1,
    )
    _sdk.report_admissions(manager)
    heard: list[str] = []
    body = json.dumps(initialize_body()).encode()
    scope: Scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "headers": [(b"accept", b"application/json, text/event-stream"), (b"content-type", b"application/json")],
    }

    def request() -> Receive:
        """The body, then the client gone (once its answer is in)."""
        messages: list[Message] = [{"type": "http.disconnect"}, {"type": "http.request", "body": body}]

        async def receive() -> Message:
            return messages.pop() if len(messages) > 1 else messages[0]

        return receive

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            heard.append(f"answer {message['status']}")

    async with manager.run():
        with _sdk.admitting(lambda: heard.append(f"decided with {len(_sdk.http_transports(manager))} counted")):
            await manager.handle_request(scope, request(), send)
            await manager.handle_request(scope, request(), send)
    assert heard == ["decided with 1 counted", "answer 200", "decided with 1 counted", "answer 503"], moved(
        "StreamableHTTPSessionManager._admit_session (on the request's path)", "report_admissions"
    )


@pytest.mark.anyio
async def test_a_session_transport_has_the_idle_clock_the_fast_path_holds() -> None:
    transport = StreamableHTTPServerTransport(mcp_session_id="s", idle_timeout=30.0)
    assert getattr(transport, "_idle_timeout", None) == 30.0, moved(
        "StreamableHTTPServerTransport._idle_timeout", "holding"
    )
    assert getattr(transport, "_requests_in_flight", None) == 0, moved(
        "StreamableHTTPServerTransport._requests_in_flight", "holding"
    )
    assert hasattr(transport, "idle_scope") and hasattr(transport, "is_terminated"), moved(
        "StreamableHTTPServerTransport.idle_scope / .is_terminated", "holding"
    )
    transport.idle_scope = anyio.CancelScope()  # as the manager sets it when the session starts
    with _sdk.holding(transport):
        assert transport._requests_in_flight == 1
    assert transport._requests_in_flight == 0


def test_mcp_types_still_has_the_tool_shape_the_fixtures_use() -> None:
    assert types.Tool.model_validate({"name": "t", "inputSchema": {"type": "object"}}).name == "t"


@pytest.mark.anyio
async def test_the_stdin_of_an_anyio_process_has_the_pipe_writer_the_stdio_lane_writes_to() -> None:
    """`pipe_writer` reaches anyio's `StreamWriterWrapper._stream`, not the SDK: the lane writes a line through it and
    the child reads it. Without it the lane still works, through anyio's slower `send()`."""
    echo_line = "import sys; sys.stdout.write(sys.stdin.readline())"
    async with await anyio.open_process([sys.executable, "-c", echo_line]) as process:
        assert process.stdin is not None and process.stdout is not None
        writer = _sdk.pipe_writer(process.stdin)
        assert writer is not None, f"anyio {version('anyio')}: StreamWriterWrapper._stream moved; _sdk.pipe_writer"
        writer.write(b"one line\n")
        await writer.drain()
        with anyio.fail_after(10):
            assert await process.stdout.receive() == b"one line\n"
