"""Attaching, detaching and shutting down upstream servers: real processes and loopback HTTP, the SDK on both sides.

Covers: eager connect with a definitive status; failed attaches that leave the pool untouched; replacing a server;
servers that are down at `McpPluginFactory.new` and come up later; detach and shutdown ending in-flight calls and
reaping children; session builds that do no I/O; a real PyPI server (`mcp-server-time`); the admin actions; and
secrets kept out of statuses and errors.
"""

from __future__ import annotations

import contextlib
import gc
import json
import socket
import sys
import threading
import warnings
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime
from typing import Any, Final

import anyio
import pytest

from lash_core import FailureClass, LashCore, ToolResult
from lash_gateway import (
    ConfigError,
    McpConnectionPool,
    McpPluginFactory,
    McpServerConfig,
    ServerDetached,
    ServerNotAttached,
    UpstreamUnavailable,
)
from tests.integration._helpers import (
    TRANSPORTS,
    call_in_background,
    established_connections,
    http_config,
    server_config,
    session_of,
    stdio_server_pids,
    wait_until,
)
from tests.servers.launch import PROJECT_ROOT, HttpTransport, UpstreamFactory, stdio_command
from tests.servers.upstream import TOOL_NAMES

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_garbage")]

BUILTIN_TOOL_COUNT: Final = len(TOOL_NAMES)
"""Tools `tests.servers.upstream` offers without behaviours."""
WAIT: Final = 20.0
"""Bound on waits for things that should happen promptly (generous: the machine may be loaded)."""
SECRET: Final = "s3cr3t-value"


def free_port() -> int:
    """A loopback port nothing listens on (bound by the OS, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def tool_names(factory: McpPluginFactory) -> set[str]:
    return {definition.name for definition in factory.pool.definitions()}


@contextlib.asynccontextmanager
async def built_with(servers: Mapping[str, McpServerConfig]) -> AsyncIterator[McpPluginFactory]:
    """`async with McpPluginFactory(servers)`: its entry attaches them, each bounded by its `startup_timeout`."""
    async with McpPluginFactory(servers) as factory:
        yield factory


# -- (1) attach --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_attach_connects_eagerly_and_returns_a_definitive_status(
    transport: str, upstream: UpstreamFactory
) -> None:
    config = server_config(transport, upstream, startup_timeout=15)
    async with McpPluginFactory() as factory:
        generation = factory.pool.generation
        with anyio.fail_after(WAIT):
            status = await factory.attach_server("srv", config)
        # The status is the outcome of the connect, not "connecting".
        assert status.name == "srv"
        assert status.transport == transport
        assert status.state == "connected"
        assert status.connected is True
        assert status.tool_count == BUILTIN_TOOL_COUNT
        assert status.connected_since is not None
        assert status.last_error is None
        assert status.server_name == "upstream"
        assert factory.pool.generation == generation + 1
        assert "mcp__srv__echo" in tool_names(factory)
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__srv__echo", {"text": "hello"})
        assert not result.is_error, result.message
        assert result.structured == {"text": "hello"}


def _missing_command(upstream: UpstreamFactory) -> tuple[McpServerConfig, str]:
    return McpServerConfig.stdio("/nonexistent/lash-no-such-command", startup_timeout=2), "command not found"


def _refused_streamable_http(upstream: UpstreamFactory) -> tuple[McpServerConfig, str]:
    port = free_port()
    return McpServerConfig.streamable_http(f"http://127.0.0.1:{port}/mcp", startup_timeout=2), f"127.0.0.1:{port}"


def _refused_sse(upstream: UpstreamFactory) -> tuple[McpServerConfig, str]:
    port = free_port()
    return McpServerConfig.sse(f"http://127.0.0.1:{port}/sse", startup_timeout=2), f"127.0.0.1:{port}"


def _hanging_tools_list(upstream: UpstreamFactory) -> tuple[McpServerConfig, str]:
    # Over HTTP the handshake is fast, so the 0.5 s are spent waiting for tools/list.
    return server_config("streamable_http", upstream, "--behaviour", "hang-list", startup_timeout=0.5), "0.5s"


@pytest.mark.parametrize(
    "failing",
    [_missing_command, _refused_streamable_http, _refused_sse, _hanging_tools_list],
    ids=["command-not-found", "streamable_http-refused", "sse-refused", "tools-list-hangs"],
)
async def test_failed_attach_raises_and_leaves_the_pool_unchanged(failing: Any, upstream: UpstreamFactory) -> None:
    bad_config, expected_in_message = failing(upstream)
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", server_config("stdio", upstream, startup_timeout=15))
        pool = factory.pool
        before = pool.status("srv")
        definitions, generation = pool.definitions(), pool.generation
        children = stdio_server_pids()

        for name in ("new", "srv"):  # a new name, and an attempt to replace the working server
            with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable) as caught:
                await factory.attach_server(name, bad_config)
            message = str(caught.value)
            assert message.startswith(f"{name}: "), message
            assert expected_in_message in message

            assert [s.name for s in pool.server_statuses()] == ["srv"]
            assert pool.definitions() is definitions
            assert pool.generation == generation
            after = pool.status("srv")
            assert after.connected and after.connected_since == before.connected_since
            assert stdio_server_pids() == children  # the working server's child was not touched
        with pytest.raises(ServerNotAttached):
            pool.status("new")
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__srv__echo", {"text": "still here"})
        assert result.structured == {"text": "still here"}


async def test_refused_sse_connect_leaves_no_unclosed_stream() -> None:
    """Bug: `_sse_transport` created its four memory streams before the GET, so every refused connect (attach, and
    each background retry) left them unclosed, reported as ResourceWarnings when collected."""
    config = McpServerConfig.sse(f"http://127.0.0.1:{free_port()}/sse", startup_timeout=2)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        async with McpPluginFactory() as factory:
            for _ in range(2):
                with anyio.fail_after(WAIT), contextlib.suppress(UpstreamUnavailable):
                    await factory.attach_server("sse", config)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_attaching_an_existing_name_replaces_it_and_reaps_the_old_child(upstream: UpstreamFactory) -> None:
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", server_config("stdio", upstream, startup_timeout=15))
        (old_child,) = stdio_server_pids() - unrelated
        generation = factory.pool.generation
        assert "mcp__srv__t0" not in tool_names(factory)

        with anyio.fail_after(WAIT):
            status = await factory.attach_server(
                "srv", server_config("stdio", upstream, "--behaviour", "many-tools=3", startup_timeout=15)
            )
        assert status.connected and status.tool_count == BUILTIN_TOOL_COUNT + 3
        assert {"mcp__srv__t0", "mcp__srv__t1", "mcp__srv__t2"} <= tool_names(factory)
        assert factory.pool.generation > generation
        assert [s.name for s in factory.pool.server_statuses()] == ["srv"]
        # attach returns only once the replaced connection is closed and its child reaped.
        (new_child,) = stdio_server_pids() - unrelated
        assert new_child != old_child
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__srv__t1", {})
        assert result.text() == "t1 called"


# -- (2) servers that are down at construction -------------------------------------------------------------------


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_a_server_down_at_construction_connects_once_it_comes_up(
    transport: HttpTransport, upstream: UpstreamFactory
) -> None:
    server = upstream(transport=transport)
    server.kill()  # the port is known now, and nothing listens on it
    down = http_config(server, startup_timeout=2)
    async with built_with({"down": down}) as factory:
        pool = factory.pool
        status = pool.status("down")
        assert not status.connected
        assert status.state == "reconnecting"
        assert status.last_error is not None and f"cannot connect to {server.url}" in status.last_error
        assert status.reconnect_attempts >= 1
        assert not any(name.startswith("mcp__down__") for name in tool_names(factory))

        # The pool keeps trying in the background.
        await wait_until(lambda: pool.status("down").reconnect_attempts >= 2, timeout=WAIT)
        assert "cannot connect" in (pool.status("down").last_error or "")

        generation = pool.generation
        await anyio.to_thread.run_sync(server.restart)  # same port
        with anyio.fail_after(WAIT):
            await pool.wait_for_change(generation)  # the tools of "down" arrive
        await wait_until(lambda: pool.status("down").connected, timeout=WAIT)
        status = pool.status("down")
        assert status.last_error is None and status.reconnect_attempts == 0
        assert status.tool_count == BUILTIN_TOOL_COUNT
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__down__echo", {"text": "up now"})
        assert result.structured == {"text": "up now"}


async def test_the_constructors_servers_are_attached_and_one_that_is_down_does_not_fail_it(
    upstream: UpstreamFactory,
) -> None:
    servers = {
        "up1": server_config("stdio", upstream, startup_timeout=15),
        "down": McpServerConfig.streamable_http(f"http://127.0.0.1:{free_port()}/mcp", startup_timeout=2),
        "up2": server_config("stdio", upstream, "--behaviour", "many-tools=1", startup_timeout=15),
    }
    async with built_with(servers) as factory:
        statuses = {status.name: status for status in factory.pool.server_statuses()}
        assert set(statuses) == set(servers)
        assert statuses["up1"].connected and statuses["up2"].connected
        assert not statuses["down"].connected and "cannot connect" in (statuses["down"].last_error or "")
        assert {"mcp__up1__echo", "mcp__up2__t0"} <= tool_names(factory)
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__up2__t0", {})
        assert result.text() == "t0 called"


# -- (10) detach and shutdown ------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_detach_ends_in_flight_calls_and_closes_the_connection(transport: str, upstream: UpstreamFactory) -> None:
    config = server_config(transport, upstream, startup_timeout=15, call_timeout=30)
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", config)
        assert len(stdio_server_pids() - unrelated) == (1 if transport == "stdio" else 0)
        session = session_of(factory)
        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_in_background, session, "mcp__srv__wait_for_release", {"key": "k"}, results)
                await wait_until(lambda: factory.pool.status("srv").calls_in_flight == 1)
                await session.invoke_action("detach_server", {"name": "srv"})
        (result,) = results
        assert result.code == "server_detached"
        assert result.failure_class is FailureClass.UNAVAILABLE
        assert result.message is not None and "srv" in result.message and "detached" in result.message

        assert factory.pool.server_statuses() == []
        assert factory.pool.definitions() == ()
        assert session.tools() == ()
        with pytest.raises(ServerNotAttached):
            factory.pool.status("srv")
        # Gone before detach returned: no child (not even a zombie), no open connection.
        assert stdio_server_pids() <= unrelated
        if transport != "stdio":
            assert established_connections(upstream_port(config)) == []


async def test_leaving_the_factory_ends_in_flight_calls_and_leaves_no_child_or_connection(
    upstream: UpstreamFactory,
) -> None:
    configs = {transport: server_config(transport, upstream, startup_timeout=15) for transport in TRANSPORTS}
    http_ports = [upstream_port(config) for name, config in configs.items() if name != "stdio"]
    children_before = stdio_server_pids()
    errors: dict[str, BaseException] = {}

    async def call(pool: McpConnectionPool, server: str) -> None:
        try:
            await pool.call_tool(f"mcp__{server}__wait_for_release", {"key": "never"})
        except ServerDetached as exc:
            errors[server] = exc

    with anyio.fail_after(WAIT):
        async with anyio.create_task_group() as tg:
            async with McpPluginFactory(configs) as factory:
                pool = factory.pool
                assert len(stdio_server_pids() - children_before) == 1
                for server in configs:
                    tg.start_soon(call, pool, server)
                await wait_until(lambda: all(s.calls_in_flight == 1 for s in pool.server_statuses()))
    assert set(errors) == set(configs)
    for server, error in errors.items():
        assert str(error).startswith(f"{server}: ")
        assert "shut down" in str(error)
    assert pool.server_statuses() == []
    assert stdio_server_pids() <= children_before
    for port in http_ports:
        assert established_connections(port) == []
    with pytest.raises(RuntimeError, match="the pool is closed"):
        await pool.attach("late", configs["stdio"])


async def test_a_pool_that_was_not_entered_says_how_to_use_it(upstream: UpstreamFactory) -> None:
    """Bug: without `async with`, the first attach started a detached asyncio task owning the connections, whose
    errors surfaced only at shutdown and which did not work on other event loops."""
    with pytest.raises(RuntimeError, match="async with McpConnectionPool"):
        await McpPluginFactory().attach_server("x", server_config("stdio", upstream))


def upstream_port(config: McpServerConfig) -> int:
    url = str(config.model_dump()["url"])
    return int(url.rsplit(":", 1)[1].split("/", 1)[0])


# -- (11) session builds are cheap -------------------------------------------------------------------------------

_AUDIT_PREFIXES: Final = ("socket.", "subprocess.", "os.")
_audit_recording = False
_audit_thread: int | None = None
_audit_events: list[str] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if not _audit_recording or threading.get_ident() != _audit_thread:
        return
    if event == "open" or event.startswith(_AUDIT_PREFIXES):
        _audit_events.append(event)


_audit_installed = False


@pytest.fixture
def io_audit() -> Iterator[list[str]]:
    """Audit events of kinds that mean I/O, recorded from this thread while the `recording` context is on."""
    global _audit_installed
    if not _audit_installed:
        sys.addaudithook(_audit)  # cannot be removed; it stays off outside `recording`
        _audit_installed = True
    _audit_events.clear()
    yield _audit_events
    _audit_events.clear()


class recording:
    """Turn the audit hook on for this thread inside a `with` block."""

    def __enter__(self) -> None:
        global _audit_recording, _audit_thread
        _audit_thread, _audit_recording = threading.get_ident(), True

    def __exit__(self, *exc_info: object) -> None:
        global _audit_recording
        _audit_recording = False


async def test_session_build_does_no_io_and_reuses_the_pool_definitions(
    upstream: UpstreamFactory, io_audit: list[str]
) -> None:
    per_server = 2500
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for name in ("many1", "many2"):
                    config = server_config(
                        "stdio", upstream, "--behaviour", f"many-tools={per_server}", startup_timeout=15
                    )
                    tg.start_soon(factory.attach_server, name, config)
        pool = factory.pool
        definitions, generation = pool.definitions(), pool.generation
        assert len(definitions) == 2 * (per_server + BUILTIN_TOOL_COUNT)
        core = LashCore.builder().plugin(factory).build()

        with recording():  # the hook checks itself works
            open("/proc/self/stat").close()  # noqa: ASYNC230 - a deliberate, tiny sync open
        assert io_audit == ["open"]
        io_audit.clear()

        with recording():
            sessions = [core.session() for _ in range(1000)]
            first_tools = [session.tools() for session in sessions[:20]]
        assert io_audit == [], f"session build did I/O: {sorted(set(io_audit))}"

        assert pool.definitions() is definitions and pool.generation == generation  # nothing was rebuilt
        for tools in first_tools:
            assert len(tools) == len(definitions)
            assert all(mine is pools for mine, pools in zip(tools, definitions, strict=True))
        session = sessions[-1]
        assert session.tools() is session.tools()  # the surface is cached until the pool changes


# -- a real third-party server ------------------------------------------------------------------------------------


async def test_mcp_server_time_from_pypi_answers_get_current_time() -> None:
    config = McpServerConfig.stdio(
        sys.executable, ["-m", "mcp_server_time", "--local-timezone", "UTC"], startup_timeout=15
    )
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            status = await factory.attach_server("time", config)
        assert status.connected and status.server_name == "mcp-time"
        assert {"mcp__time__get_current_time", "mcp__time__convert_time"} <= tool_names(factory)
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool("mcp__time__get_current_time", {"timezone": "UTC"})
        assert not result.is_error, result.message
        answer = result.structured or json.loads(result.text())
        assert answer["timezone"] == "UTC"
        now = datetime.fromisoformat(str(answer["datetime"]))
        assert now.utcoffset() is not None and now.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
        assert isinstance(answer["is_dst"], bool)


# -- admin actions -----------------------------------------------------------------------------------------------


async def test_admin_actions_attach_list_reconnect_and_detach(upstream: UpstreamFactory) -> None:
    command, args = stdio_command()
    entry = {"command": command, "args": args, "cwd": str(PROJECT_ROOT), "startup_timeout": 15}
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        session = session_of(factory)
        assert session.tools() == ()
        with anyio.fail_after(WAIT):
            status = await session.invoke_action("attach_server", {"name": "srv", "config": entry})
        assert isinstance(status, dict)
        assert status["name"] == "srv" and status["connected"] is True
        assert status["tool_count"] == BUILTIN_TOOL_COUNT
        assert "mcp__srv__echo" in {tool.name for tool in session.tools()}

        statuses = await session.invoke_action("server_statuses")
        assert isinstance(statuses, list) and [s["name"] for s in statuses] == ["srv"]
        json.dumps(statuses)  # JSON-able as returned

        since = factory.pool.status("srv").connected_since
        (child,) = stdio_server_pids() - unrelated
        assert await session.invoke_action("reconnect_server", {"name": "srv"}) == {"reconnecting": "srv"}
        await wait_until(lambda: factory.pool.status("srv").connected_since not in (None, since), timeout=WAIT)
        assert child not in stdio_server_pids()

        assert await session.invoke_action("detach_server", {"name": "srv"}) == {"detached": "srv"}
        assert session.tools() == ()
        assert await session.invoke_action("server_statuses") == []
        assert stdio_server_pids() <= unrelated
        with pytest.raises(ServerNotAttached):
            await session.invoke_action("detach_server", {"name": "srv"})
        with pytest.raises(ServerNotAttached):
            await session.invoke_action("reconnect_server", {"name": "srv"})


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"command": "python", "startup_timeout": -1}, "startup_timeout"),
        ({"transport": "carrier-pigeon", "url": "http://127.0.0.1:1/mcp"}, "transport"),
        ({"url": "ftp://127.0.0.1/mcp"}, "url"),
        ({"command": "python", "args": "-m server"}, "args"),
    ],
    ids=["negative-timeout", "unknown-transport", "bad-url-scheme", "args-not-a-list"],
)
async def test_attach_server_action_rejects_an_invalid_config_naming_the_field(
    config: dict[str, Any], field: str
) -> None:
    async with McpPluginFactory() as factory:
        session = session_of(factory)
        with pytest.raises(ConfigError) as caught:
            await session.invoke_action("attach_server", {"name": "bad", "config": config})
        assert caught.value.server == "bad"
        assert caught.value.field == field
        assert f"field {field!r}" in str(caught.value)
        assert factory.pool.server_statuses() == []


# -- secrets -----------------------------------------------------------------------------------------------------


async def test_statuses_and_errors_never_contain_env_or_header_values(upstream: UpstreamFactory) -> None:
    secret_env = {"SECRET_TOKEN": SECRET}
    secret_headers = {"Authorization": f"Bearer {SECRET}"}
    http = upstream(transport="streamable_http")
    command, args = stdio_command()
    texts: list[str] = []
    async with McpPluginFactory() as factory:
        session = session_of(factory)
        with anyio.fail_after(WAIT):
            texts.append(
                repr(
                    await factory.attach_server(
                        "env",
                        McpServerConfig.stdio(command, args, env=secret_env, cwd=str(PROJECT_ROOT), startup_timeout=15),
                    )
                )
            )
            texts.append(
                repr(
                    await factory.attach_server(
                        "hdr", McpServerConfig.streamable_http(http.url, headers=secret_headers, startup_timeout=15)
                    )
                )
            )
        # Failures that carry the same secrets.
        failing: dict[str, McpServerConfig] = {
            "env-missing": McpServerConfig.stdio("/nonexistent/lash-no-such-command", env=secret_env),
            "hdr-refused": McpServerConfig.streamable_http(
                f"http://127.0.0.1:{free_port()}/mcp?token={SECRET}", headers=secret_headers, startup_timeout=2
            ),
        }
        for name, config in failing.items():
            with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable) as caught:
                await factory.attach_server(name, config)
            texts += [str(caught.value), repr(caught.value)]
            with anyio.fail_after(WAIT):
                await factory.pool.attach(f"{name}-bg", config, fail_fast=False)  # down, retried in the background
        http.kill()  # a call that fails on the connection with the secret header
        with anyio.fail_after(WAIT):
            result = await session.call_tool("mcp__hdr__echo", {"text": "x"})
            assert result.failure_class is FailureClass.UNAVAILABLE
            texts += [repr(result)]
            statuses = factory.pool.server_statuses()
            texts += [repr(statuses), str(statuses), repr(await session.invoke_action("server_statuses"))]
            texts += [str(s.last_error) for s in statuses]
        assert {s.name for s in statuses} == {"env", "hdr", "env-missing-bg", "hdr-refused-bg"}
        assert all(s.last_error for s in statuses if s.name.endswith("-bg"))
    for text in texts:
        assert SECRET not in text, text


async def test_a_slow_replacement_holds_up_no_detach_or_call_of_that_name(upstream: UpstreamFactory) -> None:
    """Bug: the pool held a per-name lock across a whole connect, so while a replacement of `srv` hung in its
    handshake, a detach of `srv` waited for it (and a lock was created, and kept, for any name ever detached)."""
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT):
            await factory.attach_server("srv", server_config("stdio", upstream, startup_timeout=15))
        hanging = server_config("stdio", upstream, "--behaviour", "hang-list", startup_timeout=15)
        async with anyio.create_task_group() as tg:
            tg.start_soon(factory.pool.attach, "srv", hanging)  # cancelled below, long before it could end
            with anyio.fail_after(5):  # well inside the replacement's startup timeout
                result = await session_of(factory).call_tool("mcp__srv__echo", {"text": "still here"})
                assert result.structured == {"text": "still here"}
                await factory.detach_server("srv")
            assert "srv" not in {status.name for status in factory.pool.server_statuses()}
            tg.cancel_scope.cancel()
        with pytest.raises(ServerNotAttached):
            await factory.detach_server("never-attached")
