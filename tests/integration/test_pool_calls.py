"""Tool calls through `McpConnectionPool` and a lash session, against real upstream processes on every transport.

Covers: concurrent calls on one connection, per-call timeouts, cancellation (timeout, the caller's task, the lash
`Cancellation` token) reaching the upstream, progress, result mapping of every content kind, tool errors, JSON-RPC
errors, and 16 MiB results with and without the session's output budget.
"""

from __future__ import annotations

import base64
import logging
from functools import partial

import anyio
import anyio.lowlevel
import pytest

from lash_core import (
    DEFAULT_MAX_TEXT_CHARS,
    AudioPart,
    Cancellation,
    FailureClass,
    ImagePart,
    ResourceLinkPart,
    ResourcePart,
    TextPart,
    ToolCall,
    ToolCallContext,
    ToolResult,
)
from lash_gateway import CallTimeout, McpConnectionPool, UpstreamCallError
from lash_gateway.upstream._relay import MAX_QUEUED
from lash_gateway.upstream._upstream import MAX_LOGGED_DATA, UPSTREAM_LOG_LINES_PER_SECOND
from tests.integration._helpers import ATTACHED_SERVER, TRANSPORTS, attached, session_of, wait_until
from tests.servers.launch import UpstreamFactory
from tests.servers.upstream import BLOB_BYTES, PNG_BYTES, WAV_BYTES, big_text

pytestmark = pytest.mark.anyio

SERVER = ATTACHED_SERVER
WAIT = 5.0
"""Bound on anything the upstream should do promptly."""
BIG_WAIT = 30.0
"""Bound on one 16 MiB call (generous: the SDK's HTTP clients take about a second for one)."""
BIG_SIZE = 16 * 1024 * 1024
LONG_CALL = {"seconds": 30, "steps": 300}
"""A `slow` call that never ends within a test, but reports progress every 0.1 s."""
HUGE_INT = 10**400
"""A valid JSON number that `add` cannot turn into a float: its handler raises, which the SDK server answers with a
JSON-RPC error (code 0) instead of a result."""


def tool(name: str) -> str:
    return f"mcp__{SERVER}__{name}"


async def cancelled_upstream(pool: McpConnectionPool) -> list[str]:
    """The tools whose handler the upstream saw cancelled (its `cancel_log`)."""
    result = await pool.call_tool(tool("cancel_log"), {})
    assert result.structured is not None, result
    cancelled = result.structured["cancelled"]
    assert isinstance(cancelled, list)
    return [str(name) for name in cancelled]


async def wait_upstream_cancelled(pool: McpConnectionPool, name: str) -> None:
    """Return once the upstream logged `name` as cancelled. The cancel notification travels ahead of the
    `cancel_log` request, but the handler records its cancellation in its own task: ask until it has."""
    with anyio.fail_after(WAIT):
        while name not in await cancelled_upstream(pool):
            pass  # each round trip is the wait


async def assert_still_usable(pool: McpConnectionPool, connected_since: float | None) -> None:
    """The same connection (no reconnect happened) still answers calls."""
    with anyio.fail_after(WAIT):
        echoed = await pool.call_tool(tool("echo"), {"text": "still here"})
    assert echoed.text() == "still here"
    status = pool.status(SERVER)
    assert status.state == "connected"
    assert status.connected_since == connected_since, "the connection was replaced"
    assert status.calls_in_flight == 0


class ProgressLog:
    """A progress reporter that records every report and signals the first one."""

    def __init__(self) -> None:
        self.reports: list[tuple[float, float | None, str | None]] = []
        self.first = anyio.Event()

    async def __call__(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        self.reports.append((progress, total, message))
        self.first.set()


class StalledLog:
    """A log reporter that never returns, as for a client that stopped reading its stream; `reached` is set
    once a message got to it."""

    def __init__(self) -> None:
        self.reached = anyio.Event()

    async def __call__(self, level: str, data: object, logger: str | None = None) -> None:
        self.reached.set()
        await anyio.sleep_forever()


# --- concurrency ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_concurrent_calls_to_one_server_are_in_flight_together(transport: str, upstream: UpstreamFactory) -> None:
    """`wait_for_release` only returns once `release` ran, and `release` only once the waiter is in flight: the
    pair completes only if the pool keeps both calls on the wire at the same time."""
    results: dict[str, ToolResult] = {}
    async with attached(transport, upstream) as factory:
        pool = factory.pool

        async def call(name: str) -> None:
            results[name] = await pool.call_tool(tool(name), {"key": "k"})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "wait_for_release")
                await wait_until(lambda: pool.status(SERVER).calls_in_flight == 1)
                tg.start_soon(call, "release")
        assert pool.status(SERVER).calls_in_flight == 0
    assert results["wait_for_release"].structured == {"key": "k", "in_flight": 2}
    assert results["release"].structured == {"key": "k", "in_flight": 2}


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_session_runs_many_calls_to_one_server_concurrently(transport: str, upstream: UpstreamFactory) -> None:
    """Eight waiters and their eight releases, all through one session at once: none can finish unless every
    waiter is in flight while its release runs."""
    keys = [f"k{i}" for i in range(8)]
    results: dict[tuple[str, str], ToolResult] = {}
    async with attached(transport, upstream) as factory:
        session = session_of(factory)

        async def call(name: str, key: str) -> None:
            results[name, key] = await session.call_tool(tool(name), {"key": key})

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                for key in keys:
                    tg.start_soon(call, "release", key)
                    tg.start_soon(call, "wait_for_release", key)
    assert len(results) == 2 * len(keys)
    for (name, key), result in results.items():
        assert not result.is_error, (name, key, result)
        assert isinstance(result.structured, dict) and result.structured["key"] == key
        assert result.structured["in_flight"] >= 2


# --- timeouts and cancellation -------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_call_timeout_cancels_the_upstream_call_and_keeps_the_connection(
    transport: str, upstream: UpstreamFactory
) -> None:
    async with attached(transport, upstream) as factory:
        pool = factory.pool
        connected_since = pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT), pytest.raises(CallTimeout) as caught:
            await pool.call_tool(tool("slow"), LONG_CALL, call_timeout=0.3)
        assert (caught.value.server, caught.value.tool, caught.value.timeout) == (SERVER, "slow", 0.3)
        assert "'slow' gave no answer within 0.3s" in str(caught.value)
        await wait_upstream_cancelled(pool, "slow")
        await assert_still_usable(pool, connected_since)


async def test_config_call_timeout_gives_an_upstream_timeout_failure(upstream: UpstreamFactory) -> None:
    async with attached("stdio", upstream, call_timeout=0.3) as factory:
        connected_since = factory.pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("slow"), LONG_CALL)
        assert result.failure_class is FailureClass.TIMEOUT
        assert result.code == "upstream_timeout"
        assert result.message is not None and "0.3s" in result.message
        await wait_upstream_cancelled(factory.pool, "slow")
        await assert_still_usable(factory.pool, connected_since)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancelling_the_callers_task_cancels_the_upstream_call(transport: str, upstream: UpstreamFactory) -> None:
    progress = ProgressLog()
    async with attached(transport, upstream) as factory:
        pool = factory.pool
        connected_since = pool.status(SERVER).connected_since
        session = session_of(factory)
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await session.call_tool(tool("slow"), LONG_CALL, progress=progress)
                    pytest.fail("the call returned although its task was cancelled")

                tg.start_soon(call)
                await progress.first.wait()  # the upstream handler is running
                tg.cancel_scope.cancel()
        await wait_upstream_cancelled(pool, "slow")
        await assert_still_usable(pool, connected_since)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_cancellation_token_cancels_the_upstream_call(transport: str, upstream: UpstreamFactory) -> None:
    progress = ProgressLog()
    cancellation = Cancellation()
    async with attached(transport, upstream) as factory:
        pool = factory.pool
        connected_since = pool.status(SERVER).connected_since
        session = session_of(factory)
        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    results.append(
                        await session.call_tool(tool("slow"), LONG_CALL, progress=progress, cancellation=cancellation)
                    )

                tg.start_soon(call)
                await progress.first.wait()
                cancellation.cancel("the user pressed stop")
        [result] = results
        assert result.failure_class is FailureClass.CANCELLED
        assert result.code == "cancelled"
        assert result.message is not None and "the user pressed stop" in result.message
        await wait_upstream_cancelled(pool, "slow")
        await assert_still_usable(pool, connected_since)


# --- progress -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_progress_reaches_the_callers_reporter_in_order(transport: str, upstream: UpstreamFactory) -> None:
    progress = ProgressLog()
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("slow"), {"seconds": 0.06, "steps": 3}, progress=progress)
    assert not result.is_error, result
    assert result.text() == "slept 0.06s in 3 steps"
    assert progress.reports == [(0, 3, "step 0/3"), (1, 3, "step 1/3"), (2, 3, "step 2/3"), (3, 3, "done")]


async def take_a_while() -> None:
    """Many scheduler rounds, in which an answer that has arrived is long in: a client's stream applying
    back-pressure, without a sleep."""
    for _ in range(20):
        await anyio.lowlevel.checkpoint()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_progress_is_reported_in_order_and_before_the_call_returns(
    transport: str, upstream: UpstreamFactory
) -> None:
    """The reporter takes a while over its first report only: the later ones must still wait their turn, and the
    call must not return ahead of any of them."""
    reports: list[float] = []

    async def progress(progress: float, total: float | None = None, message: str | None = None) -> None:
        if not reports:
            await take_a_while()
        reports.append(progress)

    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            await factory.pool.call_tool(tool("slow"), {"seconds": 0, "steps": 3}, progress=progress)
        assert reports == [0, 1, 2, 3]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_upstream_log_messages_reach_the_callers_log_reporter(transport: str, upstream: UpstreamFactory) -> None:
    received: list[tuple[str, object, str | None]] = []

    async def log(level: str, data: object, logger: str | None = None) -> None:
        received.append((level, data, logger))

    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("log"), {"message": "m1", "level": "warning"}, log=log)
    assert result.text() == "logged m1", result
    assert received == [("warning", {"message": "m1"}, "upstream")]


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("fail", [False, True], ids=["result", "error"])
async def test_a_log_message_sent_before_the_answer_is_reported_before_the_call_returns(
    transport: str, fail: bool, upstream: UpstreamFactory
) -> None:
    """Even when reporting it takes the caller a while, and whether the answer is a result or a JSON-RPC error: a
    client must not see the answer ahead of the log messages the server sent before it."""
    received: list[object] = []

    async def slow_log(level: str, data: object, logger: str | None = None) -> None:
        await take_a_while()
        received.append(data)

    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("log"), {"message": "m1", "fail": fail}, log=slow_log)
        assert received == [{"message": "m1"}], result
        assert result.is_error == fail, result


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_caller_that_stops_taking_log_messages_still_gets_its_call_timeout(
    transport: str, upstream: UpstreamFactory
) -> None:
    stalled = StalledLog()
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT), pytest.raises(CallTimeout):
            await factory.pool.call_tool(tool("log"), {"message": "m1"}, log=stalled, call_timeout=0.5)
        assert stalled.reached.is_set()
        assert factory.pool.status(SERVER).calls_in_flight == 0


async def test_an_upstream_that_floods_the_gateways_log_is_cut_short(
    upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Log messages no caller takes go to the gateway's log: at most `UPSTREAM_LOG_LINES_PER_SECOND` a second, with
    one warning for each second it floods, and each at most `MAX_LOGGED_DATA` characters of data."""
    caplog.set_level(logging.INFO, logger="lash_gateway.upstream")
    secret = "tok_flood_" + "0123456789" * 4  # a config's secret value: scrubbed before the data is cut
    async with attached("stdio", upstream, env={"LOG_TOKEN": secret}) as factory:
        with anyio.fail_after(WAIT):
            assert (await factory.pool.call_tool(tool("log"), {"message": "m1"})).text() == "logged m1"
            await wait_until(lambda: "log message (info)" in caplog.text)  # it comes apart from the answer
            [small] = [record for record in caplog.records if "log message (info)" in record.getMessage()]
            assert small.data == {"message": "m1"}  # type: ignore[attr-defined]  # the object, for JSON logs
            caplog.clear()
            straddling = {"message": "x" * (MAX_LOGGED_DATA - 30) + secret}
            assert (await factory.pool.call_tool(tool("log"), straddling)).text().startswith("logged x")
            await wait_until(lambda: "log message (info)" in caplog.text)
            assert secret[:12] not in caplog.text
            caplog.clear()
            flood = {"message": "x" * (MAX_LOGGED_DATA * 5), "times": 1_000}
            assert (await factory.pool.call_tool(tool("log"), flood)).text().startswith("logged x")
    written = [record for record in caplog.records if "log message (info)" in record.getMessage()]
    warned = [record for record in caplog.records if "this second's are left out" in record.getMessage()]
    assert 1 <= len(written) <= 1_000 // 4 and len(warned) >= 1
    assert len(written) <= (len(warned) + 2) * UPSTREAM_LOG_LINES_PER_SECOND  # a window may end under the limit
    assert all(len(record.getMessage()) < MAX_LOGGED_DATA + 200 for record in written)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_log_message_reaches_only_the_call_it_belongs_to(
    transport: str, upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A log line of one caller's call may say what that caller asked: no other caller gets it. Streamable HTTP
    tells which call a message belongs to; stdio and SSE do not, so with another call in flight the message goes
    to the gateway's own log instead."""
    others: list[object] = []
    received: list[object] = []

    async def other(level: str, data: object, logger: str | None = None) -> None:
        others.append(data)

    async def log(level: str, data: object, logger: str | None = None) -> None:
        received.append(data)

    caplog.set_level(logging.INFO, logger="lash_gateway.upstream")
    async with attached(transport, upstream) as factory, anyio.create_task_group() as tg:
        pool = factory.pool
        tg.start_soon(partial(pool.call_tool, tool("wait_for_release"), {"key": "held"}, log=other))
        with anyio.fail_after(WAIT):
            await wait_until(lambda: pool.status(SERVER).calls_in_flight == 1)
            result = await pool.call_tool(tool("log"), {"message": "m1"}, log=log)
        assert result.text() == "logged m1", result
        assert others == []
        if transport == "streamable_http":
            assert received == [{"message": "m1"}]
        else:
            # The message goes its own way (the SDK session's), so it may land after the call's answer.
            with anyio.fail_after(WAIT):
                await wait_until(lambda: "m1" in caplog.text)
            assert received == []
        tg.cancel_scope.cancel()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_chatty_upstream_whose_caller_stopped_reading_costs_bounded_memory(
    transport: str, upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Progress the caller does not take waits in a bounded queue: past `MAX_QUEUED` it is dropped, counted in the
    server's status (and so in /metrics), and said once in the log."""
    reached = anyio.Event()

    async def stalled(progress: float, total: float | None = None, message: str | None = None) -> None:
        reached.set()
        await anyio.sleep_forever()

    steps = MAX_QUEUED * 3
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT), pytest.raises(CallTimeout):
            await factory.pool.call_tool(
                tool("slow"), {"seconds": 0.5, "steps": steps}, progress=stalled, call_timeout=2.0
            )
        assert reached.is_set()
        dropped = factory.pool.status(SERVER).notices_dropped
        assert steps - MAX_QUEUED - 1 <= dropped <= steps, dropped
        warnings = [r for r in caplog.records if "progress and log messages dropped" in r.getMessage()]
        assert len(warnings) == 1 and f"upstream {SERVER}: tool 'slow'" in warnings[0].getMessage()


# --- result mapping -------------------------------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_content_kind_reaches_the_caller_intact(transport: str, upstream: UpstreamFactory) -> None:
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("content_kinds"), {})
    assert not result.is_error, result
    assert result.content == (
        TextPart("plain text"),
        ImagePart(b64(PNG_BYTES), "image/png"),
        AudioPart(b64(WAV_BYTES), "audio/wav"),
        ResourcePart("test://upstream/text", "text/plain", text="embedded text"),
        ResourcePart("test://upstream/blob", "application/octet-stream", blob=b64(BLOB_BYTES)),
        ResourceLinkPart("test://upstream/linked", "linked"),
    )
    assert result.structured == {"kinds": ["text", "image", "audio", "resource", "resource", "resource_link"]}
    assert result.meta is None, "the SDK's own _meta stamps must not reach the caller"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_tool_error_is_a_failure_result_not_an_exception(transport: str, upstream: UpstreamFactory) -> None:
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(WAIT):
            direct = await factory.pool.call_tool(tool("fail"), {"message": "boom"})
            through_session = await session_of(factory).call_tool(tool("fail"), {"message": "boom"})
    for result in (direct, through_session):
        assert result.is_error
        assert result.failure_class is FailureClass.TOOL_ERROR
        assert result.code == "upstream_tool_error"
        assert result.message == "boom"
        assert result.content == (TextPart("boom"),)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_json_rpc_error_is_a_failure_result(transport: str, upstream: UpstreamFactory) -> None:
    """The provider (what a session calls) turns an upstream JSON-RPC error into a failure result; the pool itself
    raises `UpstreamCallError`, as documented; either way the connection stays up."""
    async with attached(transport, upstream) as factory:
        pool = factory.pool
        connected_since = pool.status(SERVER).connected_since
        args = {"a": HUGE_INT, "b": 1}
        with anyio.fail_after(WAIT):
            result = await factory.provider.execute(ToolCall(tool("add"), args, ToolCallContext("session", "call")))
            with pytest.raises(UpstreamCallError) as caught:
                await pool.call_tool(tool("add"), args)
        assert result.is_error
        assert result.failure_class is FailureClass.TOOL_ERROR
        assert result.code == "upstream_error"
        assert result.message is not None
        assert "'add' failed with MCP error 0: int too large to convert to float" in result.message
        assert (caught.value.server, caught.value.tool, caught.value.code) == (SERVER, "add", 0)
        await assert_still_usable(pool, connected_since)


async def test_json_rpc_error_through_a_session_is_a_failure_result(upstream: UpstreamFactory) -> None:
    """`Session.call_tool` never raises for a failing call, however large the (valid JSON) numbers it is given."""
    async with attached("stdio", upstream) as factory:
        with anyio.fail_after(WAIT):
            result = await session_of(factory).call_tool(tool("add"), {"a": HUGE_INT, "b": 1})
    assert result.is_error
    assert result.code == "upstream_error"
    assert result.failure_class is FailureClass.TOOL_ERROR


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_16_mib_result_arrives_intact_and_the_session_budget_cuts_it(
    transport: str, upstream: UpstreamFactory
) -> None:
    expected = big_text(BIG_SIZE)
    async with attached(transport, upstream) as factory:
        with anyio.fail_after(BIG_WAIT):
            direct = await factory.pool.call_tool(tool("big"), {"size_bytes": BIG_SIZE})
        assert not direct.is_error
        assert len(direct.content) == 1
        assert isinstance(direct.content[0], TextPart)
        assert len(direct.content[0].text) == BIG_SIZE
        assert direct.content[0].text == expected
        del direct
        with anyio.fail_after(BIG_WAIT):
            budgeted = await session_of(factory).call_tool(tool("big"), {"size_bytes": BIG_SIZE})
    assert not budgeted.is_error
    kept, note = budgeted.content
    assert kept == TextPart(expected[:DEFAULT_MAX_TEXT_CHARS])
    cut = BIG_SIZE - DEFAULT_MAX_TEXT_CHARS
    assert isinstance(note, TextPart)
    assert f"kept {DEFAULT_MAX_TEXT_CHARS:,} of {BIG_SIZE:,} characters, cut {cut:,}" in note.text
