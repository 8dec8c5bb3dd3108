"""The gateway's own answers on `/mcp` (`lash_gateway.export._fast_path`), seen on the wire by a hand-built client.

On an established session, `tools/call`, `tools/list` and `ping` are answered by the gateway itself: plain JSON,
or an SSE stream once progress or log messages have to go before the result. These tests pin that wire shape, and
that nothing the SDK guards is skipped on the way: Host/Origin, Accept, unknown sessions, the bearer token,
cancellation, and the idle expiry of sessions.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Final

import anyio
import pytest

from lash_gateway import McpServerConfig
from lash_gateway.admin._settings import GatewaySettings
from lash_gateway.export import _reply as reply_module
from tests.integration._gateway import (
    AUTH_TOKEN,
    STDIO_SERVER,
    GatewayProcess,
    GatewayStarter,
    RawSession,
    ServiceGateway,
    connected_gateway,
    gauge,
    metrics,
    poll,
    raw_session,
    sse_message,
    sse_messages,
    stdio_upstream,
    wait_servers_connected,
    write_config,
)
from tests.servers.launch import PROJECT_ROOT, stdio_command

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
"""Bound on anything that should happen promptly."""
REQUEST_CANCELLED: Final = -32800
LONG_CALL: Final = {"seconds": 60, "steps": 600}
"""A `slow` call that never ends within a test, but reports progress every 0.1 s."""
IDLE_TIMEOUT: Final = 1.0
"""`session_idle_timeout` of the gateway in the expiry test."""
BUSY_FOR: Final = 3 * IDLE_TIMEOUT
"""How long that test keeps its session busy with calls alone, then with pings alone."""


def call(request_id: int, tool: str, arguments: dict[str, Any], progress_token: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"name": f"{STDIO_SERVER}__{tool}", "arguments": arguments}
    if progress_token is not None:
        params["_meta"] = {"progressToken": progress_token}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


async def cancelled_upstream(session: RawSession) -> list[str]:
    reply = await session.post(call(90, "cancel_log", {}))
    cancelled: list[str] = sse_messages(reply)[-1]["result"]["structuredContent"]["cancelled"]
    return cancelled


async def test_plain_answers_are_json(service_gateway: ServiceGateway) -> None:
    async with raw_session(service_gateway.process.mcp_url) as session:
        with anyio.fail_after(WAIT):
            called = await session.post(call(2, "echo", {"text": "fast"}))
            listed = await session.post({"jsonrpc": "2.0", "id": 3, "method": "tools/list"})
            pinged = await session.post({"jsonrpc": "2.0", "id": 4, "method": "ping"})
            unknown = await session.post({"jsonrpc": "2.0", "id": 5, "method": "no/such/method"})
    for reply in (called, listed, pinged):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/json"
        assert reply.headers["mcp-session-id"] == session.headers["Mcp-Session-Id"]
    answer = called.json()
    assert (answer["jsonrpc"], answer["id"]) == ("2.0", 2)
    assert answer["result"]["content"] == [{"type": "text", "text": "fast"}]
    assert answer["result"]["structuredContent"] == {"text": "fast"}
    assert answer["result"]["isError"] is False
    assert f"{STDIO_SERVER}__echo" in {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert pinged.json() == {"jsonrpc": "2.0", "id": 4, "result": {}}
    # Methods the gateway does not answer itself still get the SDK's answer.
    assert sse_messages(unknown)[-1]["error"]["code"] == -32601


async def test_progress_and_log_messages_go_before_the_result_on_an_event_stream(
    service_gateway: ServiceGateway,
) -> None:
    async with raw_session(service_gateway.process.mcp_url) as session:
        with anyio.fail_after(WAIT):
            slow = await session.post(call(2, "slow", {"seconds": 0, "steps": 3}, progress_token="p-1"))
            logged = await session.post(call(3, "log", {"message": "first"}))
    assert slow.headers["content-type"].startswith("text/event-stream")
    *progress, result = sse_messages(slow)
    assert [(m["method"], m["params"]["progressToken"]) for m in progress] == [("notifications/progress", "p-1")] * 4
    assert [m["params"]["progress"] for m in progress] == [0, 1, 2, 3]
    assert result["id"] == 2
    assert result["result"]["content"] == [{"type": "text", "text": "slept 0s in 3 steps"}]

    assert logged.headers["content-type"].startswith("text/event-stream")
    log, result = sse_messages(logged)
    assert log == {
        "jsonrpc": "2.0",
        "method": "notifications/message",
        "params": {"level": "info", "data": {"message": "first"}, "logger": "upstream"},
    }
    assert result["id"] == 3
    assert result["result"]["content"] == [{"type": "text", "text": "logged first"}]


async def test_a_cancelled_call_is_answered_as_cancelled_and_cancelled_upstream(
    service_gateway: ServiceGateway,
) -> None:
    async with raw_session(service_gateway.process.mcp_url) as session:
        with anyio.fail_after(WAIT):
            before = (await cancelled_upstream(session)).count("slow")
            messages: list[dict[str, Any]] = []
            async with session.stream(call(7, "slow", LONG_CALL, progress_token="c-1")) as reply:
                async for line in reply.aiter_lines():
                    if (message := sse_message(line)) is None:
                        continue
                    messages.append(message)
                    if len(messages) == 1:  # the first progress: the call is running upstream
                        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 7}}
                        assert (await session.post(notice)).status_code == 202
            assert messages[-1] == {
                "jsonrpc": "2.0",
                "id": 7,
                "error": {"code": REQUEST_CANCELLED, "message": "Request cancelled"},
            }

            async def upstream_saw_it() -> bool | None:
                return True if (await cancelled_upstream(session)).count("slow") > before else None

            await poll(upstream_saw_it, WAIT)


async def test_calls_on_a_session_still_pass_the_sdk_checks(service_gateway: ServiceGateway) -> None:
    port = service_gateway.process.port
    async with raw_session(service_gateway.process.mcp_url) as session:
        echo = call(2, "echo", {"text": "refused"})
        with anyio.fail_after(WAIT):
            assert (await session.post(echo, {"Origin": "http://evil.example"})).status_code == 403
            assert (await session.post(echo, {"Host": f"evil.example:{port}"})).status_code == 421
            assert (await session.post(echo, {"Accept": "application/json"})).status_code == 406
            assert (await session.post(echo, {"Content-Type": "text/plain"})).status_code == 400
            assert (await session.post(echo, {"Mcp-Session-Id": "no-such-session"})).status_code == 404
            assert (await session.post(echo)).status_code == 200
            # Of repeated headers the first counts, as in the SDK's check: what passed must not vouch for the other.
            origins = [("Origin", f"http://localhost:{port}"), ("Origin", "http://evil.example")]
            doubled = await session.http.post(session.url, json=echo, headers=[*session.headers.items(), *origins])
            assert doubled.status_code == 200, doubled.text
            assert (await session.post(echo, {"Origin": "http://evil.example"})).status_code == 403


async def test_calls_need_the_bearer_token_too(secured_gateway: GatewayProcess) -> None:
    auth = {"Authorization": f"Bearer {AUTH_TOKEN}"}
    async with raw_session(secured_gateway.mcp_url, headers=auth) as session:
        ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
        with anyio.fail_after(WAIT):
            assert (await session.post(ping)).status_code == 200
            assert (await session.post(ping, {"Authorization": "Bearer wrong"})).status_code == 401


async def test_a_session_busy_with_calls_or_pings_alone_does_not_expire(
    gateway_process: GatewayStarter, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "config.json", {STDIO_SERVER: stdio_upstream()}, {"export": {"session_idle_timeout": IDLE_TIMEOUT}}
    )
    process = gateway_process(config)
    await wait_servers_connected(process.base_url, [STDIO_SERVER])
    async with raw_session(process.mcp_url) as session:
        with anyio.fail_after(2 * BUSY_FOR + WAIT):
            request_id = 2
            busy_until = anyio.current_time() + BUSY_FOR
            while anyio.current_time() < busy_until:
                reply = await session.post(call(request_id, "echo", {"text": "busy"}))
                assert reply.status_code == 200, f"call {request_id}: {reply.status_code} {reply.text}"
                request_id += 1
            busy_until = anyio.current_time() + BUSY_FOR
            while anyio.current_time() < busy_until:  # pings alone keep it too
                reply = await session.post({"jsonrpc": "2.0", "id": request_id, "method": "ping"})
                assert reply.status_code == 200, f"ping {request_id}: {reply.status_code} {reply.text}"
                request_id += 1

        # Once idle, it does expire; watched on /metrics, since a request to /mcp would keep it.
        async def expired() -> bool | None:
            return True if gauge(await metrics(process.base_url), "lash_gateway_clients_connected") == 0 else None

        await poll(expired, WAIT)
        assert (await session.post({"jsonrpc": "2.0", "id": 0, "method": "ping"})).status_code == 404


async def test_sigterm_with_a_call_in_flight_stops_the_gateway_after_the_drain_period(
    gateway_process: GatewayStarter, tmp_path: Path
) -> None:
    process = gateway_process(write_config(tmp_path / "config.json", {STDIO_SERVER: stdio_upstream()}))
    await wait_servers_connected(process.base_url, [STDIO_SERVER])
    async with raw_session(process.mcp_url) as session:
        with anyio.fail_after(WAIT):
            async with session.stream(call(2, "slow", LONG_CALL, progress_token="s-1")) as reply:
                async for line in reply.aiter_lines():
                    if sse_message(line) is not None:
                        break  # the first progress: the call is running upstream
                process.process.send_signal(signal.SIGTERM)
                with anyio.fail_after(GatewaySettings().shutdown_drain + WAIT):
                    await anyio.to_thread.run_sync(process.process.wait)


async def test_a_call_silent_for_long_becomes_a_stream_kept_alive_until_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the SDK's answers: after `KEEPALIVE` seconds of silence an SSE stream, with a comment line every
    `KEEPALIVE` seconds, so a proxy does not take a long call for an idle connection."""
    monkeypatch.setattr(reply_module, "KEEPALIVE", 0.1)
    command, args = stdio_command()
    servers = {STDIO_SERVER: McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT))}
    async with connected_gateway(servers) as served, raw_session(served.mcp_url) as session:
        with anyio.fail_after(WAIT):
            reply = await session.post(call(2, "slow", {"seconds": 0.5, "steps": 1}))
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    assert reply.text.count(": ping") >= 2
    assert sse_messages(reply)[-1]["result"]["content"] == [{"type": "text", "text": "slept 0.5s in 1 steps"}]
