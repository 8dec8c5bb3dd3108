"""Calls over the gateway's own stdio transport (`lash_gateway.upstream._stdio`) to an upstream that breaks the
protocol.

`tests.servers.liar` answers `tools/call` wrongly in each of the ways a sloppy or hostile server might: a response
with no result and no error, an error or a result that is not an object, noise around the answer. Each must end the
call with a clear error (or with the answer, where one came) and leave the connection usable; a log message the
server wrote before its answer must reach the caller before the call returns, a caller that stops taking log
messages must hold up no other call, and a server that stops reading its stdin must hold a call no longer than its
timeout. A server that writes a line over the message limit, or floods requests whose answers it does not read, is
dropped and reconnected while other servers answer; one that floods requests and reads the answers keeps its
connection.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, Final

import anyio
import pytest

from lash_gateway import CallTimeout, McpConnectionPool, McpServerConfig, UpstreamCallError, UpstreamUnavailable
from lash_gateway.upstream._limits import MAX_MESSAGE_BYTES
from lash_gateway.upstream._stdio import StdioLane
from tests.integration._helpers import wait_until
from tests.servers.launch import PROJECT_ROOT
from tests.servers.liar import REFUSE_CODE, REFUSE_MESSAGE

pytestmark = pytest.mark.anyio

SERVER: Final = "liar"
WAIT: Final = 10.0
"""Bound on starting the liar and on each call (it answers at once)."""


def tool(name: str) -> str:
    return f"mcp__{SERVER}__{name}"


def liar_config() -> McpServerConfig:
    return McpServerConfig.stdio(sys.executable, ["-m", "tests.servers.liar"], cwd=str(PROJECT_ROOT))


@asynccontextmanager
async def liar() -> AsyncIterator[McpConnectionPool]:
    async with McpConnectionPool() as pool:
        with anyio.fail_after(WAIT):
            await pool.attach(SERVER, liar_config())
        yield pool


async def still_answers(pool: McpConnectionPool, server: str = SERVER) -> None:
    with anyio.fail_after(WAIT):
        result = await pool.call_tool(f"mcp__{server}__noise_then_answer", {})
    assert result.text() == "answered"
    assert pool.status(server).connected


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("no_answer_fields", "malformed response"),
        ("error_not_an_object", "malformed response"),
        ("result_not_an_object", "malformed response"),
        ("refuse", REFUSE_MESSAGE),
    ],
)
async def test_a_bad_answer_fails_the_call_and_keeps_the_connection(name: str, problem: str) -> None:
    async with liar() as pool:
        connected_since = pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT), pytest.raises(UpstreamCallError) as caught:
            await pool.call_tool(tool(name), {})
        assert (caught.value.server, caught.value.tool) == (SERVER, name)
        assert problem in str(caught.value)
        if name == "refuse":
            assert caught.value.code == REFUSE_CODE
        await still_answers(pool)
        assert pool.status(SERVER).connected_since == connected_since


async def test_noise_around_an_answer_does_not_disturb_the_call() -> None:
    async with liar() as pool:
        await still_answers(pool)
        await still_answers(pool)


async def test_a_log_message_written_before_the_answer_arrives_before_the_call_returns() -> None:
    received: list[tuple[str, Any, str | None]] = []

    async def sink(level: str, data: Any, logger: str | None = None) -> None:
        received.append((level, data, logger))

    async with liar() as pool:
        with anyio.fail_after(WAIT):
            result = await pool.call_tool(tool("log_then_answer"), {}, log=sink)
            answered_with: list[Any] = list(received)
            malformed = await pool.call_tool(tool("bad_log_then_answer"), {}, log=sink)
    assert result.text() == "answered"
    assert answered_with == [("warning", {"before": "answer"}, "liar")]
    # A log message at a level MCP does not have is not relayed (a client would reject it); the call is unharmed.
    assert malformed.text() == "answered"
    assert received == answered_with


async def test_a_caller_that_stops_taking_messages_holds_up_no_other_call() -> None:
    stuck = anyio.Event()

    async def stuck_sink(level: str, data: Any, logger: str | None = None) -> None:
        stuck.set()
        await anyio.sleep_forever()  # a client that stopped reading its stream

    async with liar() as pool, anyio.create_task_group() as tg:
        tg.start_soon(partial(pool.call_tool, tool("log_then_answer"), {}, log=stuck_sink))
        with anyio.fail_after(WAIT):
            await stuck.wait()
            result = await pool.call_tool(tool("noise_then_answer"), {})
        assert result.text() == "answered"
        tg.cancel_scope.cancel()


async def test_a_server_that_stops_reading_holds_a_call_no_longer_than_its_timeout() -> None:
    """The lane writes to the pipe itself: once the pipe and its buffer are full, a call waits for room, and its
    timeout ends that wait (and the wait to tell the server it was cancelled), while other servers answer."""
    deaf_one = McpServerConfig.stdio(sys.executable, ["-m", "tests.servers.liar"], cwd=str(PROJECT_ROOT))
    deaf = anyio.Event()

    async def on_log(level: str, data: Any, logger: str | None = None) -> None:
        deaf.set()

    async with liar() as pool, anyio.create_task_group() as tg:
        with anyio.fail_after(WAIT):
            await pool.attach("deaf", deaf_one)
            tg.start_soon(partial(pool.call_tool, "mcp__deaf__deaf", {}, call_timeout=WAIT, log=on_log))
            await deaf.wait()  # it reads nothing from now on
            with pytest.raises(CallTimeout):  # 4 MB: more than the pipe and the transport's buffer take
                await pool.call_tool("mcp__deaf__deaf", {"pad": "x" * 4_000_000}, call_timeout=1)
            await still_answers(pool)
        tg.cancel_scope.cancel()


async def test_a_call_cancelled_before_its_request_is_written_sends_nothing() -> None:
    """A call whose time ran out before its request was written (no checkpoint since) does not reach the server."""
    process = await anyio.open_process([sys.executable, "-c", "import sys; sys.stdout.write(sys.stdin.read())"])
    async with process:
        assert process.stdin is not None and process.stdout is not None
        lane = StdioLane(process.stdin)
        with anyio.CancelScope() as scope:
            scope.cancel()
            await lane.write_line(b"cancelled\n")
        await lane.write_line(b"sent\n")
        await process.stdin.aclose()
        with anyio.fail_after(WAIT):
            received = b"".join([chunk async for chunk in process.stdout])
    assert received == b"sent\n"


FLOOD: Final = 20_000
"""Pings a flooding server sends: more than the pipe, the transport's buffer and `MAX_UNWRITTEN` together hold."""


async def dropped_and_back(
    pool: McpConnectionPool, caplog: pytest.LogCaptureFixture, since: float | None, reason: str
) -> None:
    """The liar's connection was dropped with `reason` in the log, it is connected again, and both servers answer."""
    await wait_until(lambda: pool.status(SERVER).connected and pool.status(SERVER).connected_since != since, WAIT)
    # The supervisor logs why before it reconnects.
    (record,) = [r for r in caplog.records if r.name == "lash_gateway.upstream" and reason in r.getMessage()]
    assert record.getMessage().startswith(f"upstream {SERVER}: ")
    assert record.levelno == logging.WARNING
    await still_answers(pool)
    await still_answers(pool, "other")


async def test_a_line_over_the_message_limit_drops_the_connection_and_the_server_reconnects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: the line buffer had no cap, so a server writing without a newline grew the gateway's memory
    without limit while it still showed as connected."""
    caplog.set_level(logging.WARNING, logger="lash_gateway.upstream")
    async with liar() as pool:
        with anyio.fail_after(WAIT):
            await pool.attach("other", liar_config())
        since = pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable) as caught:
            await pool.call_tool(tool("unterminated"), {"size": MAX_MESSAGE_BYTES + 1024 * 1024}, call_timeout=WAIT)
        assert caught.value.server == SERVER
        await dropped_and_back(pool, caplog, since, "sent a message over 64 MiB without a newline")


async def test_a_server_flooding_requests_whose_answers_it_does_not_read_is_dropped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Regression: each request left a task waiting to write its answer to a pipe nobody read, without limit (until
    the health ping, 30 s on)."""
    caplog.set_level(logging.WARNING, logger="lash_gateway.upstream")
    async with liar() as pool:
        with anyio.fail_after(WAIT):
            await pool.attach("other", liar_config())
        since = pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable):
            await pool.call_tool(tool("flood"), {"count": FLOOD, "read": False}, call_timeout=WAIT)
        await dropped_and_back(pool, caplog, since, "stopped reading its input")


async def test_a_server_flooding_requests_and_reading_the_answers_keeps_its_connection() -> None:
    async with liar() as pool:
        since = pool.status(SERVER).connected_since
        with anyio.fail_after(WAIT):
            result = await pool.call_tool(tool("flood"), {"count": FLOOD, "read": True}, call_timeout=WAIT)
        assert result.structured == {"answered": FLOOD}
        assert pool.status(SERVER).connected_since == since
        await still_answers(pool)
