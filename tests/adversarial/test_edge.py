"""Hostile requests at the edge of the gateway, the same on every route: Host and Origin (DNS rebinding), request
heads and bodies that are too big or never finish, and more sessions than the limit. Each is answered 4xx or 503
quickly, and a canary session on the same gateway keeps working.

Regressions: `/healthz`, `/readyz` and `/metrics` skipped the Host/Origin check; an Origin of
`http://localhost:1@evil.example` passed a prefix match; a `Content-Length` larger than the bytes sent was waited
for without limit; a 1 MB header was accepted; sessions had no cap.
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import Final

import anyio
import anyio.abc
import httpx2
import pytest

from lash_gateway import GatewayConfig, GatewaySettings
from lash_gateway.admin._serving import MAX_HEAD_BYTES
from lash_gateway.export._edge import RETRY_WHEN_FULL
from tests.integration._gateway import (
    LISTEN_HEADERS,
    MCP_HEADERS,
    InProcessGateway,
    connect,
    gauge,
    initialize_body,
    listen_body,
    metrics,
    raw_session,
    reply_to,
    run_gateway_in_process,
)
from tests.integration._helpers import wait_until

pytestmark = pytest.mark.anyio

BODY_TIMEOUT: Final = 0.5
MAX_SESSIONS: Final = 4
WAIT: Final = 10.0
ROUTES: Final = ["/healthz", "/readyz", "/metrics", "/admin/servers", "/mcp", "/sse", "/messages/"]


def settings() -> GatewaySettings:
    return GatewaySettings.model_validate(
        {
            "request_timeout": BODY_TIMEOUT,
            "export": {"max_sessions": MAX_SESSIONS},
            "allowed_origins": ["https://app.example:*"],
        }
    )


@pytest.fixture(scope="module")
async def gateway() -> AsyncIterator[InProcessGateway]:
    """One gateway for the tests that leave no session open."""
    async with run_gateway_in_process(GatewayConfig(settings())) as served:
        yield served


@pytest.fixture
async def own_gateway() -> AsyncIterator[InProcessGateway]:
    async with run_gateway_in_process(GatewayConfig(settings())) as served:
        yield served


async def canary_works(gateway: InProcessGateway) -> None:
    """A fresh session on the gateway lists its tools and calls one."""
    async with raw_session(gateway.mcp_url) as session:
        listed = reply_to(await session.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), 2)
        assert [tool["name"] for tool in listed["result"]["tools"]] == ["lash_gateway_status"]
        call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "lash_gateway_status"}}
        assert reply_to(await session.post(call), 3)["result"]["isError"] is False


async def raw_exchange(gateway: InProcessGateway, request: bytes) -> bytes:
    """Send `request` on a fresh connection and read until the gateway closes it (bounded)."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(request)
        return await read_to_the_end(stream)


async def read_to_the_end(stream: anyio.abc.ByteStream) -> bytes:
    """Everything the gateway sends until it closes the connection (bounded by `WAIT`)."""
    answer = b""
    with anyio.fail_after(WAIT):
        try:
            while chunk := await stream.receive():
                answer += chunk
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionResetError):
            pass
    return answer


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "localhost:1@evil.example", "127.0.0.1:80.x"])
async def test_a_foreign_host_is_421_on_every_route(gateway: InProcessGateway, path: str, host: str) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        reply = await http.get(gateway.base_url + path, headers={"Host": host})
    assert reply.status_code == 421, (path, reply.text)
    assert "Host" in reply.json()["error"]


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize(
    "origin",
    [
        "http://evil.example",
        "http://localhost:1@evil.example",
        "http://localhost.evil.example:8765",
        "http://127.0.0.1:8765/path",
        "null",
        "http://localhost:*",
        "https://app.example.evil:443",
        "file://",
    ],
)
async def test_a_foreign_origin_is_403_on_every_route(gateway: InProcessGateway, path: str, origin: str) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        reply = await http.get(gateway.base_url + path, headers={"Origin": origin})
    assert reply.status_code == 403, (path, origin, reply.text)


@pytest.mark.parametrize(
    "origin",
    ["http://localhost:8765", "http://127.0.0.1", "http://[::1]:1234", "https://app.example", "HTTP://LOCALHOST:1"],
)
async def test_our_own_origins_pass(gateway: InProcessGateway, origin: str) -> None:
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        reply = await http.get(f"{gateway.base_url}/healthz", headers={"Origin": origin})
    assert reply.status_code == 200, reply.text


async def test_a_body_that_never_arrives_whole_is_408_after_the_timeout(gateway: InProcessGateway) -> None:
    host = gateway.base_url.removeprefix("http://").encode()
    for path in (b"/mcp", b"/admin/servers/x", b"/messages/?session_id=00"):
        started = anyio.current_time()
        answer = await raw_exchange(
            gateway,
            b"POST " + path + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{",
        )
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert anyio.current_time() - started < BODY_TIMEOUT + WAIT / 2
    await canary_works(gateway)


async def test_a_body_over_the_limit_is_413(gateway: InProcessGateway) -> None:
    host = gateway.base_url.removeprefix("http://").encode()
    declared = await raw_exchange(
        gateway,
        b"POST /mcp HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
        b"Content-Length: 5242880\r\n\r\n",
    )
    assert declared.startswith(b"HTTP/1.1 413"), declared[:200]

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(6):
            yield b"y" * (1024 * 1024)

    async with httpx2.AsyncClient(timeout=WAIT) as http:
        streamed = await http.post(f"{gateway.base_url}/mcp", content=chunks(), headers=MCP_HEADERS)
        assert streamed.status_code == 413
    await canary_works(gateway)


@pytest.mark.parametrize("size", [MAX_HEAD_BYTES + 1, 1024 * 1024])
async def test_a_head_over_the_limit_is_431_and_not_read_on(gateway: InProcessGateway, size: int) -> None:
    host = gateway.base_url.removeprefix("http://").encode()
    request = b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    answer = await raw_exchange(gateway, request)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    many = b"".join(b"X-H%d: %s\r\n" % (index, b"b" * 1000) for index in range(100))
    answer = await raw_exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\n" + many + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    await canary_works(gateway)


async def test_one_endless_header_is_431_once_the_head_passes_the_limit(gateway: InProcessGateway) -> None:
    """Regression: httptools buffers a header until it ends, so a limit counted per header never fired for one
    header value that never ended, and the gateway's memory grew with it."""
    port = int(gateway.base_url.rsplit(":", 1)[1])
    host = gateway.base_url.removeprefix("http://").encode()
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(b"GET /healthz HTTP/1.1\r\nHost: " + host + b"\r\nX-Endless: ")
        for _ in range(MAX_HEAD_BYTES // 4096 + 2):  # past the limit, in pieces, never ending the header
            await stream.send(b"a" * 4096)
        answer = await read_to_the_end(stream)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    await canary_works(gateway)


async def test_a_head_that_never_ends_is_408_after_the_timeout(gateway: InProcessGateway) -> None:
    started = anyio.current_time()
    answer = await raw_exchange(gateway, b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: wai")
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert anyio.current_time() - started < BODY_TIMEOUT + WAIT / 2
    await canary_works(gateway)


async def test_sessions_past_the_limit_are_refused_with_503_and_counted(own_gateway: InProcessGateway) -> None:
    gateway = own_gateway
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        opened = []
        for _ in range(MAX_SESSIONS):
            reply = await http.post(gateway.mcp_url, json=initialize_body(), headers=MCP_HEADERS)
            reply_to(reply, 1)
            opened.append(reply.headers["mcp-session-id"])
        refused = await http.post(gateway.mcp_url, json=initialize_body(), headers=MCP_HEADERS)
        assert refused.status_code == 503, refused.text
        assert "gateway.export.max_sessions" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"] == str(RETRY_WHEN_FULL)  # a 503 says when to try again
        async with http.stream("GET", gateway.sse_url) as sse:
            assert sse.status_code == 503
            assert sse.headers["retry-after"] == str(RETRY_WHEN_FULL)
        samples = await metrics(gateway.base_url)
        assert gauge(samples, "lash_gateway_sessions_open") == MAX_SESSIONS
        assert gauge(samples, "lash_gateway_sessions_refused_total") == 2
        # the open sessions keep working; ending one makes room for a new one
        ping = {"jsonrpc": "2.0", "id": 7, "method": "ping"}
        headers = {**MCP_HEADERS, "Mcp-Session-Id": opened[0], "MCP-Protocol-Version": "2025-11-25"}
        reply_to(await http.post(gateway.mcp_url, json=ping, headers=headers), 7)
        assert (await http.delete(gateway.mcp_url, headers=headers)).status_code == 200
    await canary_works(gateway)


def _hidden(**changed: str | None) -> list[tuple[str, str]]:
    """The listen headers with some changed (None: left out)."""
    headers = {**LISTEN_HEADERS, **changed}
    return [(name, value) for name, value in headers.items() if value is not None]


HIDDEN_LISTENS: Final[dict[str, list[tuple[str, str]]]] = {
    "another Mcp-Method": _hidden(**{"Mcp-Method": "tools/list"}),
    "no Mcp-Method": _hidden(**{"Mcp-Method": None}),
    "Mcp-Method in another case": _hidden(**{"Mcp-Method": "Subscriptions/Listen"}),
    "Mcp-Method twice, the listen second": [
        *_hidden(**{"Mcp-Method": "tools/list"}),
        ("Mcp-Method", "subscriptions/listen"),
    ],
    "a handshake-era version": _hidden(**{"MCP-Protocol-Version": "2025-11-25"}),
    "no MCP-Protocol-Version": _hidden(**{"MCP-Protocol-Version": None}),
    "MCP-Protocol-Version twice, the 2026 one second": [
        *_hidden(**{"MCP-Protocol-Version": "2025-11-25"}),
        ("MCP-Protocol-Version", "2026-07-28"),
    ],
}
"""Listens whose headers say they are something else: the edge does not count them, so they must not be served."""


async def test_listen_streams_count_as_sessions(own_gateway: InProcessGateway) -> None:
    """A 2026-07-28 client holds its `subscriptions/listen` stream open as a handshake client holds its session: the
    streams count against `max_sessions`, one past it is refused with 503, and a closed one frees its place. A
    request that hides being a listen (its headers say otherwise) is refused, so it holds nothing uncounted."""
    gateway = own_gateway
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        async with AsyncExitStack() as clients:
            for _ in range(MAX_SESSIONS):  # each SDK client in mode="auto" has its listen stream open once entered
                await clients.enter_async_context(connect(gateway.base_url, "http-auto"))
            assert gateway.gateway.open_sessions() == MAX_SESSIONS
            refused = await http.post(gateway.mcp_url, json=listen_body(), headers=LISTEN_HEADERS)
            assert refused.status_code == 503, refused.text
            assert "gateway.export.max_sessions" in refused.json()["error"]["message"]
            refused = await http.post(gateway.mcp_url, json=initialize_body(), headers=MCP_HEADERS)
            assert refused.status_code == 503, refused.text
            samples = await metrics(gateway.base_url)
            assert gauge(samples, "lash_gateway_sessions_open") == MAX_SESSIONS
        await wait_until(lambda: gateway.gateway.open_sessions() == 0)  # the clients closed their streams
        for label, headers in HIDDEN_LISTENS.items():
            lying = await http.post(gateway.mcp_url, json=listen_body(), headers=headers)
            assert lying.status_code == 400, (label, lying.text)  # answered at once: no stream held
        async with connect(gateway.base_url, "http-auto") as client:
            assert gateway.gateway.open_sessions() == 1
            assert [tool.name for tool in (await client.client.list_tools()).tools] == ["lash_gateway_status"]
    await canary_works(gateway)


def late_body_requests() -> dict[str, tuple[bytes, bytes]]:
    """(head, body) of each kind of request that opens a session: a 2026-07-28 listen, an initialize, an SSE stream
    (whose GET may carry a body too)."""
    listen, initialize = json.dumps(listen_body()).encode(), json.dumps(initialize_body()).encode()

    def post(headers: dict[str, str], body: bytes) -> tuple[bytes, bytes]:
        fields = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\n{fields}Content-Length: {len(body)}\r\n\r\n"
        return head.encode(), body

    sse = b"GET /sse HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\nContent-Length: 20\r\n\r\n"
    return {
        "listen": post(LISTEN_HEADERS, listen),
        "initialize": post(MCP_HEADERS, initialize),
        "sse": (sse, b"x" * 20),
    }


@pytest.mark.parametrize("room", [1, 2])
@pytest.mark.parametrize("kind", ["listen", "initialize", "sse"])
async def test_sessions_whose_bodies_come_late_take_the_places_there_are(
    own_gateway: InProcessGateway, kind: str, room: int
) -> None:
    """Requests that each open a session, all of whose heads came while there was room, then their bodies together:
    as many as there are places take them, the others are refused. The limit is checked again once the body is in;
    an initialize holds its place until the SDK has counted its session, and no longer (it would count twice)."""
    gateway = own_gateway
    port = int(gateway.base_url.rsplit(":", 1)[1])
    requests = late_body_requests()
    head, body = requests[kind]
    async with AsyncExitStack() as stack:
        for _ in range(MAX_SESSIONS - room):  # listen streams: the SDK's count of sessions cannot refuse for the edge
            held = await stack.enter_async_context(await anyio.connect_tcp("127.0.0.1", port))
            await held.send(b"".join(requests["listen"]))
            assert (await read_until(held, lambda seen: b"\r\n" in seen)).startswith(b"HTTP/1.1 200")
        # Plain sockets: every body's rest goes out with no turn of the event loop between, so the gateway reads them
        # all before it has served any.
        sockets = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=WAIT)) for _ in range(4)]
        for sock in sockets:
            sock.sendall(head + body[:10])
        for sock in sockets:
            sock.sendall(body[10:])
        statuses = [(await anyio.to_thread.run_sync(blocking_status_line, sock)).split(b" ")[1] for sock in sockets]
        assert sorted(statuses) == [b"200"] * room + [b"503"] * (4 - room), statuses
        assert gateway.gateway.open_sessions() == MAX_SESSIONS


def blocking_status_line(sock: socket.socket) -> bytes:
    """The first line of the gateway's answer on a plain socket (its timeout bounds the wait)."""
    received = b""
    while b"\r\n" not in received:
        chunk = sock.recv(4096)
        if not chunk:
            break
        received += chunk
    return received.split(b"\r\n", 1)[0]


async def test_two_listens_in_turn_on_one_connection_are_each_ended(own_gateway: InProcessGateway) -> None:
    """Listens pipelined on one connection: when the first ends, the second starts there, and the gateway still
    knows to end it (at shutdown, at its virtual server's removal) though both had the connection's means to."""
    gateway = own_gateway
    port = int(gateway.base_url.rsplit(":", 1)[1])
    listen = b"".join(late_body_requests()["listen"])
    acknowledged, closing = b"notifications/subscriptions/acknowledged", b'"id":1,"result"'
    async with await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(listen * 2)  # the second is served once the first's answer is complete
        received = await read_until(stream, lambda seen: seen.count(acknowledged) == 1)
        gateway.gateway.export.end_listens()  # the first ends with its result; the second starts on the connection
        received += await read_until(stream, lambda seen: seen.count(acknowledged) == 1)
        await wait_until(lambda: gateway.gateway.open_sessions() == 1)  # the first's end is counted, the second's start
        with anyio.fail_after(WAIT):
            await gateway.gateway.end_calls()  # as at the end of the drain
        received += await read_until(stream, lambda seen: closing in seen)
    assert received.count(closing) == 2, received
    assert gateway.gateway.open_sessions() == 0


async def read_until(stream: anyio.abc.ByteStream, done: Callable[[bytes], bool]) -> bytes:
    """What the gateway sends from now until `done(what came)` (bounded by `WAIT`)."""
    received = b""
    with anyio.fail_after(WAIT):
        while not done(received):
            received += await stream.receive()
    return received
