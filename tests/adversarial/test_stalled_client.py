"""A client that stops reading holds up nobody else: `tools/list_changed` reaches every other client at once, and
the stalled one is dropped after `export.notify_timeout`.

Regression: a legacy-SSE client whose socket buffer was full of a large result stopped `list_changed` from reaching
every other client until it disconnected: notifications went out one connection after another, waiting on each.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final

import anyio
import httpx2
import pytest
from starlette.types import ASGIApp, Message

from lash_gateway import GatewayConfig, GatewaySettings, McpServerConfig, StdioServerConfig
from lash_gateway.export._edge import RETRY_BRIEF
from lash_gateway.export._endpoint import LISTEN_END_GRACE
from tests.integration._gateway import (
    LISTEN_HEADERS,
    InProcessGateway,
    connect,
    initialize_body,
    listen_body,
    run_gateway_in_process,
)
from tests.integration._helpers import wait_until
from tests.servers.launch import PROJECT_ROOT, stdio_command

pytestmark = pytest.mark.anyio

BIG: Final = 32 * 1024 * 1024
"""A result no socket buffer holds: the gateway's writer blocks on the stalled client."""
STALLED_AT: Final = 1024 * 1024
"""Bytes queued in the gateway's socket to the client that prove its writer is stuck there."""
WAIT: Final = 15.0
CHANGES: Final = 5
"""Tool-list changes made while a client is stalled. Its pipeline (SDK writer, SSE response) takes two
notifications; the third waits on its socket, and with notifications sent one connection after another the
fourth would never go out to anybody."""


def stdio_server() -> StdioServerConfig:
    command, args = stdio_command()
    return McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT), startup_timeout=30)


@asynccontextmanager
async def gateway_with(notify_timeout: float) -> AsyncIterator[InProcessGateway]:
    settings = GatewaySettings.model_validate({"export": {"notify_timeout": notify_timeout}})
    async with run_gateway_in_process(GatewayConfig(settings)) as served:
        with anyio.fail_after(WAIT * 2):
            await served.gateway.factory.attach_server("up", stdio_server())
        yield served


def send_queue(local_port: int, remote_port: int) -> int:
    """Bytes waiting in this process's socket from `local_port` to `remote_port` (the gateway's side)."""
    with open("/proc/self/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            local, remote = int(fields[1].split(":")[1], 16), int(fields[2].split(":")[1], 16)
            if (local, remote) == (local_port, remote_port):
                return int(fields[4].split(":")[0], 16)
    return 0


SPELLINGS: Final[dict[str, Callable[[str], str]]] = {
    "as-given": lambda endpoint: endpoint,
    "upper-case": lambda endpoint: endpoint.upper().replace("/MESSAGES/?SESSION_ID=", "/messages/?session_id="),
    "repeated": lambda endpoint: endpoint.replace("session_id=", "session_id=nonsense&session_id="),
}
"""Ways a client may spell its session in the message URL that the SDK takes alike (it reads the last value, as a
UUID): the gateway must know the connection by each."""


class StalledSseClient:
    """A legacy-SSE client that initializes, asks for a huge result and never reads its stream again; it posts to
    its endpoint as `spelling` has it."""

    def __init__(self, served: InProcessGateway, spelling: str = "as-given") -> None:
        self._served = served
        self._spell = SPELLINGS[spelling]

    @asynccontextmanager
    async def stalled(self) -> AsyncIterator[AsyncIterator[str]]:
        """Yields the stream's lines, not read any further."""
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(WAIT, read=None)) as http:
            async with http.stream("GET", self._served.sse_url) as stream:
                lines = stream.aiter_lines()
                endpoint = await _data_of(lines, "endpoint")
                post = self._served.base_url + self._spell(endpoint)

                async def send(message: dict[str, object]) -> None:
                    assert (await http.post(post, json=message)).status_code == 202

                await send(initialize_body())
                assert "result" in json.loads(await _data_of(lines, "message"))
                await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                big = {"name": "up__big", "arguments": {"size_bytes": BIG}}
                await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": big})
                client_port = _local_port(stream)
                gateway_port = int(self._served.base_url.rsplit(":", 1)[1])
                await wait_until(lambda: send_queue(gateway_port, client_port) >= STALLED_AT, WAIT)
                yield lines


async def _data_of(lines: AsyncIterator[str], event: str) -> str:
    current = None
    async for line in lines:
        if line.startswith("event:"):
            current = line.partition(":")[2].strip()
        elif line.startswith("data:") and current == event:
            return line.partition(":")[2].strip()
    raise AssertionError(f"the stream ended before a {event!r} event")


def _local_port(stream: httpx2.Response) -> int:
    network = stream.extensions["network_stream"]
    address = network.get_extra_info("client_addr")
    return int(address[1])


async def test_a_stalled_client_holds_up_no_other_clients_list_changed() -> None:
    async with gateway_with(notify_timeout=60) as served:
        async with connect(served.base_url, "http-legacy") as healthy, connect(served.base_url, "sse-legacy") as other:
            async with StalledSseClient(served).stalled():
                for index in range(CHANGES):
                    seen = (healthy.tools_changed, other.tools_changed)
                    with anyio.fail_after(WAIT):
                        await served.gateway.factory.attach_server(f"more{index}", stdio_server())
                        await healthy.wait_tools_changed(seen[0])
                        await other.wait_tools_changed(seen[1])
                assert f"more{CHANGES - 1}__echo" in await healthy.tool_names()


@pytest.mark.parametrize("spelling", list(SPELLINGS))
async def test_a_client_that_takes_no_notification_in_time_is_dropped(
    caplog: pytest.LogCaptureFixture, spelling: str
) -> None:
    async with gateway_with(notify_timeout=0.5) as served:
        async with connect(served.base_url, "http-legacy") as healthy:
            async with StalledSseClient(served, spelling).stalled() as stalled:
                for index in range(CHANGES):
                    seen = healthy.tools_changed
                    with anyio.fail_after(WAIT):
                        await served.gateway.factory.attach_server(f"more{index}", stdio_server())
                        await healthy.wait_tools_changed(seen)
                await wait_until(lambda: served.gateway.export.connected_clients == 1, WAIT)
                assert "dropped" in caplog.text and "list_changed" in caplog.text
                # Its connection was closed: the stream ends once the bytes already sent are read.
                with anyio.fail_after(WAIT), contextlib.suppress(httpx2.RemoteProtocolError, httpx2.ReadError):
                    async for _ in stalled:
                        pass
            assert f"more{CHANGES - 1}__echo" in await healthy.tool_names()  # the healthy client is still served


async def test_a_client_that_reads_slowly_is_not_dropped(caplog: pytest.LogCaptureFixture) -> None:
    """Regression: a client reading a large result steadily but slowly was dropped as stalled, since its
    notification waited behind the result for longer than `notify_timeout`."""
    size = 16 * 1024 * 1024
    rate = 4e6  # bytes per second: the result takes 4 s, eight times the notify timeout
    async with gateway_with(notify_timeout=0.5) as served:
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(WAIT, read=None)) as http:
            async with http.stream("GET", served.sse_url) as stream:
                raw = stream.aiter_raw()
                seen = b""
                while (found := re.search(rb"data: (/messages/\S+)\r?\n", seen)) is None:
                    seen += await anext(raw)
                post = served.base_url + found.group(1).decode()

                async def send(message: dict[str, object]) -> None:
                    assert (await http.post(post, json=message)).status_code == 202

                params = {
                    "protocolVersion": "2025-11-25",
                    "capabilities": {},
                    "clientInfo": {"name": "slow", "version": "0"},
                }
                await send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": params})
                while b'"protocolVersion"' not in seen:
                    seen += await anext(raw)
                await send({"jsonrpc": "2.0", "method": "notifications/initialized"})
                big = {"name": "up__big", "arguments": {"size_bytes": size}}
                await send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": big})

                async def change_tools() -> None:
                    pool = served.gateway.factory.pool
                    for index in range(CHANGES):  # quick changes, while the result is being read
                        generation = pool.generation
                        await pool.call_tool("mcp__up__add_tool", {"name": f"added{index}"})
                        await pool.wait_for_change(generation)

                received, tail = 0, b""
                with anyio.fail_after(WAIT * 3):
                    async with anyio.create_task_group() as tg:
                        started = False
                        async for chunk in raw:
                            if not started and received > size // 8:
                                started = True
                                tg.start_soon(change_tools)
                            received += len(chunk)
                            tail = (tail + chunk)[-4096:]
                            if received > size and b"notifications/tools/list_changed" in tail:
                                break  # the whole result, and a notification after it
                            await anyio.sleep(len(chunk) / rate)  # reading all along, at its own pace
                assert "dropped" not in caplog.text
                assert served.gateway.export.connected_clients == 1


LISTEN: Final = json.dumps(listen_body()).encode()
BURST: Final = 1500
"""List changes in a row: more than the 1,024 events a listen stream may fall behind by."""


async def stalled_listener(app: ASGIApp, host: str, listening: anyio.Event) -> None:
    """A 2026-07-28 client's `subscriptions/listen` request, played as an ASGI server would: once its stream is
    acknowledged, the client stops reading, so the server's `send` never returns again."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "headers": [
            (b"host", host.encode()),
            (b"content-type", b"application/json"),
            (b"accept", b"application/json, text/event-stream"),
            (b"mcp-protocol-version", b"2026-07-28"),
            (b"mcp-method", b"subscriptions/listen"),
            (b"content-length", str(len(LISTEN)).encode()),
        ],
    }
    body = [{"type": "http.request", "body": LISTEN, "more_body": False}]

    async def receive() -> Message:
        if body:
            return body.pop()
        await anyio.sleep_forever()  # the client is still there: it just does not read
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        if b"notifications/subscriptions/acknowledged" in message.get("body", b""):
            listening.set()
        elif listening.is_set():
            await anyio.sleep_forever()  # the socket is full: the write waits for a reader that never comes

    await app(scope, receive, send)


async def test_a_listen_stream_that_stops_reading_holds_up_no_change_and_no_other_listener(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Changes fan out to 2026-07-28 listeners without waiting on any: a stream whose client stopped reading falls
    behind, is ended when 1,024 events behind, and every change meanwhile is published at once and reaches the
    listener that reads."""
    async with run_gateway_in_process() as served, connect(served.base_url, "http-auto") as healthy:
        async with anyio.create_task_group() as tg:
            listening = anyio.Event()
            tg.start_soon(stalled_listener, served.app, served.base_url.removeprefix("http://"), listening)
            with anyio.fail_after(WAIT):
                await listening.wait()
                seen = healthy.tools_changed
                for _ in range(BURST):
                    await served.gateway.export.tools_changed()
                await wait_until(lambda: "backlog full; ending the stream" in caplog.text, WAIT)
                await healthy.wait_tools_changed(seen)
                seen = healthy.tools_changed
                await served.gateway.export.tools_changed()
                await healthy.wait_tools_changed(seen)  # still listening: the stream ended was the stalled one
            tg.cancel_scope.cancel()


@pytest.mark.parametrize("deadline", [None, LISTEN_END_GRACE / 2])
async def test_a_listen_stream_that_stops_reading_is_cut_when_the_gateway_stops(deadline: float | None) -> None:
    """When the drain is over every listen stream is closed with its result; one whose client stopped reading never
    takes it, and is cut after `LISTEN_END_GRACE` seconds rather than holding the shutdown up, or at once when the
    shutdown's own deadline for ending calls (`serve` has one) comes first."""
    async with run_gateway_in_process() as served:
        listening = anyio.Event()
        with anyio.fail_after(WAIT + LISTEN_END_GRACE):
            async with anyio.create_task_group() as tg:  # exits once the stalled request has returned
                tg.start_soon(stalled_listener, served.app, served.base_url.removeprefix("http://"), listening)
                await listening.wait()
                assert served.gateway.open_sessions() == 1
                with anyio.move_on_after(math.inf if deadline is None else deadline):
                    await served.gateway.end_calls()
        assert served.gateway.open_sessions() == 0


async def test_a_listen_that_comes_while_the_gateway_stops_is_refused_at_once() -> None:
    """A listen that begins while the listen streams are being ended (a stalled one holds that up for
    `LISTEN_END_GRACE` seconds) missed their close: it is refused at once with 503, never served and then cut."""
    async with run_gateway_in_process() as served, httpx2.AsyncClient(timeout=WAIT) as http:
        listening = anyio.Event()
        with anyio.fail_after(WAIT + LISTEN_END_GRACE):
            async with anyio.create_task_group() as tg:
                tg.start_soon(stalled_listener, served.app, served.base_url.removeprefix("http://"), listening)
                await listening.wait()
                tg.start_soon(served.gateway.end_calls)
                await wait_until(lambda: served.gateway.export.listens_refused, WAIT)  # the end has begun
                late = await http.post(served.mcp_url, json=listen_body(), headers=LISTEN_HEADERS)
                assert late.status_code == 503, late.text
                assert "closing" in late.json()["error"]["message"] and late.headers["retry-after"] == str(RETRY_BRIEF)
        assert served.gateway.open_sessions() == 0


async def test_a_listen_still_subscribing_when_the_gateway_stops_is_answered_not_cut(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A listen that came before the end began, but was still subscribing to its resources upstream then, would open
    after the close went out: it is answered with an error saying to listen again, never served and then cut."""
    async with run_gateway_in_process() as served, httpx2.AsyncClient(timeout=WAIT) as http:
        subscribing, release = anyio.Event(), anyio.Event()

        async def slow_subscribe(uri: str) -> None:
            subscribing.set()
            await release.wait()

        monkeypatch.setattr(served.gateway.factory.pool, "subscribe", slow_subscribe)
        body = listen_body()
        body["params"]["notifications"]["resourceSubscriptions"] = ["test://watched"]
        answers: list[httpx2.Response] = []

        async def listen() -> None:
            answers.append(await http.post(served.mcp_url, json=body, headers=LISTEN_HEADERS))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(listen)
                await subscribing.wait()
                tg.start_soon(served.gateway.end_calls)
                await wait_until(lambda: served.gateway.export.listens_refused, WAIT)  # the end has begun
                release.set()
        [late] = answers
        assert late.status_code == 200, late.text
        assert "closing its listen streams; listen again" in late.json()["error"]["message"]
        assert served.gateway.open_sessions() == 0
