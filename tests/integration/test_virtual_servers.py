"""Virtual servers, served: each client sees the view its token names, on one URL or on the virtual server's own path,
over streamable HTTP and legacy SSE in both eras and over stdio; fixed arguments reach the upstream; search mode
finds and calls; limits refuse and admit again; the admin API makes, changes, rotates and removes them, and what it
made survives a restart; the audit log holds every call once, across a restart.

The upstream is `tests.servers.upstream` over stdio, attached as `docs`; the gateway runs in this process.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import MCPError, StdioServerParameters
from mcp_types import CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY, PROTOCOL_VERSION_META_KEY

from lash_gateway import StateStore, load_gateway_config
from lash_gateway.export._catalog import RESOURCE_NOT_FOUND
from lash_gateway.export._edge import RETRY_WHEN_FULL
from lash_gateway.export._limits import RATE_LIMITED
from tests.integration._gateway import (
    CLIENT_MODES,
    LISTEN_HEADERS,
    MCP_HEADERS,
    STATE_DIR_ENV,
    ClientMode,
    GatewayClient,
    InProcessGateway,
    admin_client,
    connect,
    connect_stdio,
    initialize_body,
    listen_body,
    listening,
    metrics,
    poll,
    raw_session,
    run_gateway_in_process,
    sse_message,
    stdio_upstream,
    text_of,
    write_config,
)
from tests.integration._helpers import wait_until
from tests.servers.launch import GATEWAY_COMMAND, PROJECT_ROOT

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
STARTUP: Final = 30.0
"""A stdio upstream (a Python process) may take long to start on a loaded 2-core machine."""
ADMIN_TOKEN: Final = "admin-t0ken"
RESEARCH_TOKEN: Final = "research-secret-0123"
OPS_TOKEN: Final = "ops-secret-0123456789"
GATEWAY_TOKEN: Final = "the-gateways-own-token"
VIRTUAL_SERVERS: Final[dict[str, Any]] = {
    "research": {
        "servers": ["docs"],
        "tools": {"allow": ["docs__echo", "docs__add", "docs__slow"], "deny": ["*slow*"]},
        "overrides": {
            "docs__echo": {"name": "say", "description": "Say the house phrase.", "arguments": {"text": "fixed"}}
        },
        "tokens": [RESEARCH_TOKEN],
    },
    "ops": {
        "servers": ["d*"],
        "tools": {"allow": ["*__echo", "*__add", "*__wait_for_release", "*__release"]},
        "tokens": [OPS_TOKEN],
    },
}
RESEARCH_TOOLS: Final = {"say", "docs__add"}
FINDER_TOKEN: Final = "finder-secret-0123456"
FINDER: Final = {"servers": ["docs"], "mode": "search", "pinned": ["docs__echo"], "tokens": [FINDER_TOKEN]}
OPS_TOOLS: Final = {"docs__echo", "docs__add", "docs__wait_for_release", "docs__release"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def gateway(
    tmp_path: Path, virtual_servers: Mapping[str, Any] = VIRTUAL_SERVERS, **settings: Any
) -> AsyncIterator[InProcessGateway]:
    """A gateway with `docs` attached and connected, the admin API on, its store in `tmp_path`."""
    config = load_gateway_config(
        {"mcpServers": {"docs": stdio_upstream()}, "gateway": {"virtual_servers": virtual_servers, **settings}}
    )
    store = StateStore(tmp_path / "state.sqlite3")
    async with run_gateway_in_process(config, store=store, admin_token=ADMIN_TOKEN) as served:
        pool = served.gateway.factory.pool

        async def connected() -> bool | None:
            return True if pool.server_statuses() and pool.status("docs").connected else None

        await poll(connected, STARTUP)
        yield served


def admin(base_url: str) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
    return admin_client(base_url, ADMIN_TOKEN, WAIT)


async def audit(base_url: str, **query: str) -> list[dict[str, Any]]:
    async with admin(base_url) as http:
        reply = await http.get("/admin/audit", params=query)
    assert reply.status_code == 200, reply.text
    records: list[dict[str, Any]] = reply.json()["records"]
    return records


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_one_url_serves_each_token_its_view_with_overrides_and_fixed_arguments(
    tmp_path: Path, mode: ClientMode
) -> None:
    async with gateway(tmp_path) as served:
        async with (
            connect(served.base_url, mode, headers=bearer(RESEARCH_TOKEN)) as research,
            connect(served.base_url, mode, headers=bearer(OPS_TOKEN)) as ops,
            connect(served.base_url, mode) as everything,
        ):
            with anyio.fail_after(WAIT):
                tools = {tool.name: tool for tool in await research.list_tools()}
                assert set(tools) == RESEARCH_TOOLS
                assert tools["say"].description == "Say the house phrase."
                assert "text" not in tools["say"].input_schema.get("properties", {})
                assert await ops.tool_names() == OPS_TOOLS
                assert {"docs__echo", "docs__slow", "docs__crash"} <= await everything.tool_names()

                said = await research.client.call_tool("say", {})
                assert text_of(said) == "fixed"  # the upstream got the argument the client never sent
                hidden = await research.client.call_tool("docs__slow", {"seconds": 0})
                assert hidden.is_error and "unknown tool" in text_of(hidden)
                added = await ops.client.call_tool("docs__add", {"a": 2, "b": 3})
                assert added.structured_content == {"sum": 5}


@pytest.mark.parametrize("mode", ["http-legacy", "http-auto", "sse-legacy"])
async def test_a_virtual_servers_own_path_takes_its_tokens_and_refuses_anothers(
    tmp_path: Path, mode: ClientMode
) -> None:
    async with gateway(tmp_path) as served:
        async with connect(served.base_url, mode, headers=bearer(RESEARCH_TOKEN), virtual_server="research") as client:
            with anyio.fail_after(WAIT):
                assert await client.tool_names() == RESEARCH_TOOLS
        async with httpx2.AsyncClient(timeout=WAIT) as http:
            for path in ("/mcp/research", "/sse/research"):
                for headers in (bearer(OPS_TOKEN), {}, bearer("made-up-token-0123456")):
                    method = http.post if path.startswith("/mcp") else http.get
                    refused = await method(f"{served.base_url}{path}", headers={**MCP_HEADERS, **headers})
                    assert refused.status_code == 401, (path, headers, refused.text)
            # A made-up token is refused on the plain path too, once virtual servers have tokens.
            refused = await http.post(
                f"{served.base_url}/mcp", headers={**MCP_HEADERS, **bearer("made-up-token-0123456")}
            )
            assert refused.status_code == 401


@pytest.mark.parametrize(
    ("mode", "virtual_server"), [("stdio-legacy", "research"), ("stdio-auto", "research"), ("stdio-auto", "finder")]
)
async def test_stdio_serves_a_virtual_server(tmp_path: Path, mode: Any, virtual_server: str) -> None:
    virtual_servers = {**VIRTUAL_SERVERS, "finder": FINDER}
    config = write_config(tmp_path / "config.json", {"docs": stdio_upstream()}, {"virtual_servers": virtual_servers})
    params = StdioServerParameters(
        command=GATEWAY_COMMAND[0],
        args=[*GATEWAY_COMMAND[1:], "stdio", "--config", str(config), "--virtual-server", virtual_server],
        cwd=str(PROJECT_ROOT),
        env={**os.environ, STATE_DIR_ENV: str(tmp_path / "state")},
    )
    with (tmp_path / "stderr.log").open("w+", encoding="utf-8") as errlog:
        async with connect_stdio(params, mode, errlog=errlog) as client:

            async def listed() -> set[str] | None:  # the upstream's tools come once it connected
                names = await client.tool_names()
                return names if names & {"say", "docs__echo"} else None

            await poll(listed, STARTUP)
            if virtual_server == "finder":
                await search_and_call(client)
                return
            assert await client.tool_names() == RESEARCH_TOOLS
            with anyio.fail_after(WAIT):
                assert text_of(await client.client.call_tool("say", {})) == "fixed"


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_search_mode_finds_and_calls_a_tool(tmp_path: Path, mode: ClientMode) -> None:
    async with gateway(tmp_path, {"finder": FINDER}) as served:
        async with connect(served.base_url, mode, headers=bearer(FINDER_TOKEN)) as client:
            await search_and_call(client)


async def search_and_call(client: GatewayClient) -> None:
    with anyio.fail_after(WAIT):
        assert await client.tool_names() == {"search_tools", "call_tool", "docs__echo"}
        found = await client.client.call_tool("search_tools", {"query": "add two numbers", "limit": 5})
        names = [tool["name"] for tool in (found.structured_content or {})["tools"]]
        assert names[0] == "docs__add"
        called = await client.client.call_tool("call_tool", {"name": "docs__add", "arguments": {"a": 1, "b": 2}})
        assert called.structured_content == {"sum": 3}


async def test_limits_refuse_with_429_and_admit_again(tmp_path: Path) -> None:
    """One call at a time for a token, two per minute for a tool: a 2026-07-28 request over either gets HTTP 429 with
    `Retry-After`; a handshake client gets the JSON-RPC error; the call is admitted once the first one ended."""
    limited = {
        **VIRTUAL_SERVERS["ops"],
        "limits": {"per_token": {"concurrent_calls": 1}, "tools": {"docs__add": {"calls_per_minute": 2}}},
    }
    async with gateway(tmp_path, {"ops": limited}) as served:
        async with (
            connect(served.base_url, "http-auto", headers=bearer(OPS_TOKEN)) as modern,
            connect(served.base_url, "http-legacy", headers=bearer(OPS_TOKEN)) as legacy,
            connect(served.base_url, "sse-auto", headers=bearer(OPS_TOKEN)) as sse,
            anyio.create_task_group() as tg,
        ):
            held = anyio.Event()

            async def hold() -> None:
                while True:  # the probe below may take the token's one slot first
                    try:
                        await modern.client.call_tool("docs__wait_for_release", {"key": "k"})
                    except MCPError as exc:
                        assert exc.error.code == RATE_LIMITED
                        continue
                    held.set()
                    return

            tg.start_soon(hold)
            with anyio.fail_after(WAIT):

                async def refused() -> httpx2.Response | None:
                    reply = await raw_call(served.base_url, "docs__echo", {"text": "probe"})
                    return reply if reply.status_code == 429 else None

                reply = await poll(refused, WAIT)  # once the held call is in flight
                assert int(reply.headers["retry-after"]) >= 1
                error = reply.json()["error"]
                assert error["code"] == RATE_LIMITED
                assert error["data"]["limit"] == "concurrent_calls" and error["data"]["scope"] == "token"
                assert "1 calls at once" in error["message"]
                for other in (legacy, sse):  # a JSON-RPC error where the call is not a whole HTTP request
                    with pytest.raises(MCPError) as raised:
                        await other.client.call_tool("docs__add", {"a": 1, "b": 1})
                    assert raised.value.error.code == RATE_LIMITED and "retry in 1 s" in raised.value.error.message

                released = await raw_call(served.base_url, "docs__release", {"key": "k"}, token=None)
                assert released.status_code == 200, released.text
                await held.wait()
                for _ in range(2):  # admitted again, up to the tool's own limit
                    assert (await legacy.client.call_tool("docs__add", {"a": 1, "b": 1})).structured_content == {
                        "sum": 2
                    }
                over = await raw_call(served.base_url, "docs__add", {"a": 1, "b": 1})
                assert over.status_code == 429 and over.json()["error"]["data"]["limit"] == "calls_per_minute"
                assert 1 <= int(over.headers["retry-after"]) <= 30
        samples = await metrics(served.base_url)
        key = (
            "lash_gateway_calls_limited_total",
            frozenset({("virtual_server", "ops"), ("scope", "token"), ("limit", "concurrent_calls")}),
        )
        assert samples[key] >= 2


async def raw_call(
    base_url: str, tool: str, arguments: Mapping[str, Any], token: str | None = OPS_TOKEN
) -> httpx2.Response:
    """A stateless 2026-07-28 `tools/call` with `token` (None: on the plain endpoint)."""
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {
            "name": tool,
            "arguments": dict(arguments),
            "_meta": {
                PROTOCOL_VERSION_META_KEY: "2026-07-28",
                CLIENT_INFO_META_KEY: {"name": "raw", "version": "0"},
                CLIENT_CAPABILITIES_META_KEY: {},
            },
        },
    }
    headers = {
        **MCP_HEADERS,
        **(bearer(token) if token is not None else {}),
        "Mcp-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": tool,
    }
    async with httpx2.AsyncClient(timeout=WAIT) as http:
        return await http.post(f"{base_url}/mcp", json=body, headers=headers)


async def test_the_admin_api_makes_changes_rotates_and_removes_a_virtual_server_and_it_survives_a_restart(
    tmp_path: Path,
) -> None:
    async with gateway(tmp_path, {}) as served, admin(served.base_url) as http:
        made = await http.put("/admin/virtual-servers/team", json={"servers": ["docs"], "tools": {"allow": ["*__add"]}})
        assert made.status_code == 201, made.text
        first = made.json()["token"]
        assert made.json()["token_ids"] == [made.json()["token_ids"][0]] and made.json()["token_ids"][0].startswith("k")
        shown = (await http.get("/admin/virtual-servers/team")).json()
        assert shown["tools"] == ["docs__add"] and first not in str(shown) and "sha256" not in str(shown)

        async with connect(served.base_url, "http-legacy", headers=bearer(first)) as client:
            with anyio.fail_after(WAIT):
                assert await client.tool_names() == {"docs__add"}
                seen = client.tools_changed
                changed = await http.put(
                    "/admin/virtual-servers/team",
                    json={"servers": ["docs"], "tools": {"allow": ["*__add", "*__echo"]}},
                )
                assert changed.status_code == 200 and "token" not in changed.json()
                await client.wait_tools_changed(seen)  # the change reached the connected client
                await client.wait_notice(lambda notice: isinstance(notice, types.ResourceListChangedNotification))
                await client.wait_notice(lambda notice: isinstance(notice, types.PromptListChangedNotification))
                assert await client.tool_names() == {"docs__add", "docs__echo"}

        rotated = await http.post("/admin/virtual-servers/team/tokens", json={"replace": True})
        assert rotated.status_code == 201 and rotated.json()["token_ids"] == [rotated.json()["id"]]
        second = rotated.json()["token"]
        async with httpx2.AsyncClient(timeout=WAIT) as plain:
            old = await plain.post(f"{served.base_url}/mcp/team", headers={**MCP_HEADERS, **bearer(first)})
            assert old.status_code == 401
        extra = (await http.post("/admin/virtual-servers/team/tokens")).json()
        assert (await http.delete(f"/admin/virtual-servers/team/tokens/{extra['id']}")).status_code == 200
        gone = await http.delete("/admin/virtual-servers/team/tokens/nope")
        assert gone.status_code == 404
        bad = await http.put("/admin/virtual-servers/team", json={"mode": "fast", "limits": {"calls_per_minute": 0}})
        assert bad.status_code == 422
        assert "mode" in bad.json()["error"] and "limits.calls_per_minute" in bad.json()["error"]
        assert (await http.put("/admin/virtual-servers/bad%20name", json={})).status_code == 422
        bodies: list[dict[str, Any]] = [{"tokens": ["short"]}, {"token_ids": ["t1"]}, {"token_hashes": []}]
        for body in bodies:
            refused = await http.put("/admin/virtual-servers/other", json=body)
            assert refused.status_code == 422, (body, refused.text)
        shared = await http.put("/admin/virtual-servers/other", json={"tokens": [second]})
        assert shared.status_code == 422 and "a token belongs to one virtual server" in shared.text
        assert second not in shared.text

    async with gateway(tmp_path, {}) as served:  # the same store: what the API made is back, with its token
        async with connect(served.base_url, "http-auto", headers=bearer(second)) as client:
            with anyio.fail_after(WAIT):
                assert await client.tool_names() == {"docs__add", "docs__echo"}
        async with admin(served.base_url) as http:
            assert (await http.delete("/admin/virtual-servers/team")).status_code == 200
            assert (await http.get("/admin/virtual-servers")).json() == {"virtual_servers": []}
        async with httpx2.AsyncClient(timeout=WAIT) as plain:
            removed = await plain.post(f"{served.base_url}/mcp/team", headers={**MCP_HEADERS, **bearer(second)})
            assert removed.status_code == 404

    store = (tmp_path / "state.sqlite3").read_bytes()
    assert first.encode() not in store and second.encode() not in store  # tokens are kept as digests only


async def test_the_audit_log_holds_every_call_once_across_a_restart(tmp_path: Path) -> None:
    audit_settings = {"audit": {"arguments": True}}
    async with gateway(tmp_path, **audit_settings) as served:
        async with (
            connect(served.base_url, "http-legacy", headers=bearer(RESEARCH_TOKEN)) as research,
            connect(served.base_url, "sse-auto", headers=bearer(OPS_TOKEN)) as ops,
            connect(served.base_url, "http-auto") as everything,
        ):
            with anyio.fail_after(WAIT):
                await research.client.call_tool("say", {})
                await ops.client.call_tool("docs__add", {"a": 1, "b": 2})
                await everything.client.call_tool("docs__fail", {"message": "no"})
                secrets = {"Api_Key": "sk-0", "nested": [{"password": "p", "ok": 1}], "text": "kept"}
                await everything.client.call_tool("docs__nothing", secrets)
                records = await audit(served.base_url)
        assert [(r["virtual_server"], r["token_id"], r["tool"], r["outcome"]) for r in records] == [
            (None, None, "docs__nothing", "unknown_tool"),
            (None, None, "docs__fail", "tool_error"),
            ("ops", "t1", "docs__add", "ok"),
            ("research", "t1", "say", "ok"),
        ]
        assert records[0]["arguments"] == {
            "Api_Key": "[redacted]",
            "nested": [{"password": "[redacted]", "ok": 1}],
            "text": "kept",
        }
        say = records[-1]
        assert say["server"] == "docs" and say["upstream_tool"] == "echo"
        assert say["arguments"] == {} and say["argument_bytes"] == 2  # the fixed `text` is the operator's: not recorded
        add = records[2]
        assert add["arguments"] == {"a": 1, "b": 2} and add["argument_bytes"] == len('{"a":1,"b":2}')
        assert say["result_bytes"] > 0 and say["duration_ms"] > 0 and say["session"]
        assert [r["tool"] for r in await audit(served.base_url, virtual_server="ops")] == ["docs__add"]
        assert [r["outcome"] for r in await audit(served.base_url, tool="docs__fail")] == ["tool_error"]
        assert len(await audit(served.base_url, limit="1")) == 1
        assert await audit(served.base_url, since="2999-01-01T00:00:00") == []
        async with admin(served.base_url) as http:
            assert (await http.get("/admin/audit", params={"limit": "0"})).status_code == 422
            assert (await http.get("/admin/audit", params={"since": "yesterday"})).status_code == 422
        # Calls made just before the gateway stops are written on the way out.
        async with connect(served.base_url, "http-legacy", headers=bearer(OPS_TOKEN)) as ops:
            with anyio.fail_after(WAIT):
                for n in range(20):
                    await ops.client.call_tool("docs__add", {"a": n, "b": 0})

    async with gateway(tmp_path, **audit_settings) as served:
        records = await audit(served.base_url, limit="1000")
        assert len(records) == 24
        assert sorted(r["tool"] for r in records).count("docs__add") == 21


async def test_removing_a_virtual_server_ends_its_calls_in_flight(tmp_path: Path) -> None:
    one_at_a_time = {**VIRTUAL_SERVERS["ops"], "limits": {"per_token": {"concurrent_calls": 1}}}
    async with gateway(tmp_path, {"ops": one_at_a_time}) as served, admin(served.base_url) as http:
        async with connect(served.base_url, "http-legacy", headers=bearer(OPS_TOKEN)) as ops:
            ended: list[BaseException] = []

            async def held() -> None:
                while True:
                    try:
                        await ops.client.call_tool("docs__wait_for_release", {"key": "removed"})
                    except MCPError as exc:
                        if exc.error.code == RATE_LIMITED:
                            continue  # the probe below took the token's one slot first
                        ended.append(exc)
                    return

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(held)

                    async def in_flight() -> bool | None:  # the token's one slot is taken: the call is running
                        reply = await raw_call(served.base_url, "docs__echo", {"text": "probe"})
                        return True if reply.status_code == 429 else None

                    await poll(in_flight, WAIT)
                    removed = await http.delete("/admin/virtual-servers/ops")
                    assert removed.status_code == 200
        assert len(ended) == 1 and "virtual server ops was removed" in str(ended[0])


async def test_removing_a_virtual_server_ends_its_listen_streams(tmp_path: Path) -> None:
    """A 2026-07-28 client's listen stream on a removed virtual server ends (it would hear of nothing any more, and
    would hold its place uncounted), with the result that closes a stream; the client listens again and is told the
    server is gone."""
    async with gateway(tmp_path) as served, httpx2.AsyncClient(timeout=WAIT) as http:
        found = served.gateway.virtual.endpoint("ops")
        assert found is not None
        endpoint = found[0]
        with anyio.fail_after(WAIT):
            async with listening(http, f"{served.base_url}/mcp", bearer(OPS_TOKEN)) as lines:
                assert endpoint.listening == 1
                async with admin(served.base_url) as admin_http:
                    assert (await admin_http.delete("/admin/virtual-servers/ops")).status_code == 200
                rest = [message async for line in lines if (message := sse_message(line)) is not None]
        assert rest[-1]["id"] == 1 and "result" in rest[-1], rest  # the stream's own end, not a cut connection
        await wait_until(lambda: endpoint.listening == 0)
        headers = {**LISTEN_HEADERS, **bearer(OPS_TOKEN)}
        again = await http.post(f"{served.base_url}/mcp", json=listen_body(), headers=headers)
        assert again.status_code == 401, again.text  # its token is no virtual server's any more


async def test_a_virtual_server_being_removed_holds_its_sessions_places_until_they_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removing a virtual server waits for its calls to end (up to `END_CALLS_WAIT` seconds, which is held open here).
    Meanwhile its sessions are still open and count against `gateway.export.max_sessions`: a new session cannot take
    their place until they have ended. (They used to stop counting the moment the removal began.)"""
    async with gateway(tmp_path, export={"max_sessions": 1}) as served, httpx2.AsyncClient(timeout=WAIT) as http:
        ops = served.gateway.virtual.get("ops")
        assert ops is not None
        ending, release = anyio.Event(), anyio.Event()
        end_calls = ops.export.end_calls

        async def held_end_calls(reason: str) -> None:
            ending.set()
            await release.wait()
            await end_calls(reason)

        monkeypatch.setattr(ops.export, "end_calls", held_end_calls)
        url = f"{served.base_url}/mcp"
        with anyio.fail_after(WAIT):
            async with raw_session(url, headers=bearer(OPS_TOKEN)), admin(served.base_url) as api:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(api.delete, "/admin/virtual-servers/ops")
                    await ending.wait()  # the removal began: ops is no longer served
                    refused = await http.post(url, json=initialize_body(), headers=MCP_HEADERS)
                    assert refused.status_code == 503, refused.text
                    assert served.gateway.open_sessions() == 1
                    release.set()
            assert served.gateway.virtual.get("ops") is None and served.gateway.open_sessions() == 0
            async with raw_session(url):  # its place is free
                pass


@pytest.mark.parametrize("mode", ["http-legacy", "http-auto"])
async def test_a_view_filters_prompts_resources_and_templates_and_serves_none_it_hides(
    tmp_path: Path, mode: ClientMode
) -> None:
    views = {
        "reader": {
            "servers": ["*"],  # every server: what it hides, its globs alone must hide
            "resources": {
                "allow": ["test://static/*", "items://*", "test://big/*"],
                "deny": ["*blob*", "items://secret/*", "test://big/{size}"],
            },
            "prompts": {"allow": ["docs__greet"]},
            "tokens": [RESEARCH_TOKEN],
        },
        "elsewhere": {"servers": ["other*"], "tokens": [OPS_TOKEN]},
    }
    async with gateway(tmp_path, views) as served:
        async with (
            connect(served.base_url, mode, headers=bearer(RESEARCH_TOKEN)) as reader,
            connect(served.base_url, mode, headers=bearer(OPS_TOKEN)) as elsewhere,
            connect(served.base_url, mode) as everything,
        ):
            with anyio.fail_after(WAIT):
                client = reader.client
                assert {str(r.uri) for r in (await client.list_resources()).resources} == {"test://static/text"}
                templates = (await client.list_resource_templates()).resource_templates
                assert [t.uri_template for t in templates] == ["items://{kind}/{id}"]
                assert [p.name for p in (await client.list_prompts()).prompts] == ["docs__greet"]
                assert (await client.read_resource("items://fruit/7")).contents[0].text == "fruit/7"  # type: ignore[union-attr]
                hidden_uris = (
                    "test://static/blob",  # listed, and denied
                    "test://big/10",  # allowed itself, but served through a hidden template
                    "items://secret/1",
                    "items://%73ecret/1",  # the upstream decodes it to the one above
                    "items://public/..%2Fsecret",
                    "test://static/./blob",
                )
                for hidden in hidden_uris:
                    with pytest.raises(MCPError) as refused:
                        await client.read_resource(hidden)
                    assert refused.value.error.code == (
                        RESOURCE_NOT_FOUND if mode == "http-legacy" else types.INVALID_PARAMS
                    )
                big = types.ResourceTemplateReference(type="ref/resource", uri="test://big/{size}")
                with pytest.raises(MCPError):
                    await client.complete(big, {"name": "size", "value": "1"})
                for hidden in hidden_uris:  # a resource ref may name a URI: completed as it would be read, or not
                    ref = types.ResourceTemplateReference(type="ref/resource", uri=hidden)
                    with pytest.raises(MCPError):
                        await client.complete(ref, {"name": "kind", "value": ""})
                shown = types.ResourceTemplateReference(type="ref/resource", uri="items://fruit/7")
                assert (await client.complete(shown, {"name": "kind", "value": "f"})).completion.values == ["fruit"]
                greet = types.PromptReference(type="ref/prompt", name="docs__greet")
                assert (await client.complete(greet, {"name": "name", "value": "b"})).completion.values == ["bob"]

                other = elsewhere.client
                assert (await other.list_resources()).resources == []
                assert (await other.list_prompts()).prompts == []
                with pytest.raises(MCPError):
                    await other.get_prompt("docs__greet", {"name": "x"})
                with pytest.raises(MCPError):
                    await other.read_resource("test://static/text")

                plain = everything.client
                assert len((await plain.list_resources()).resources) > 1
                assert len((await plain.list_resource_templates()).resource_templates) == 2


async def test_a_virtual_server_holds_its_own_share_of_sessions(tmp_path: Path) -> None:
    """One virtual server's clients cannot take every session: past its `max_sessions` it refuses new ones (503)
    while the gateway's other endpoints still admit; its token cannot be the gateway's own. The same holds for the
    `subscriptions/listen` streams of its 2026-07-28 clients."""
    capped = {**VIRTUAL_SERVERS["ops"], "max_sessions": 1}
    async with gateway(tmp_path, {"ops": capped}, auth_token=GATEWAY_TOKEN) as served:
        url = f"{served.base_url}/mcp"
        async with raw_session(url, headers=bearer(OPS_TOKEN)), httpx2.AsyncClient(timeout=WAIT) as http:
            refused = await http.post(url, json=initialize_body(), headers={**MCP_HEADERS, **bearer(OPS_TOKEN)})
            assert refused.status_code == 503, refused.text
            assert refused.headers["retry-after"] == str(RETRY_WHEN_FULL)  # the SDK's refusal, as the gateway's say
            stream = await http.get(url, headers={**bearer(OPS_TOKEN), "Accept": "text/event-stream"})
            assert stream.status_code == 503 and stream.headers["retry-after"] == str(RETRY_WHEN_FULL), stream.text
            async with http.stream("GET", f"{served.base_url}/sse/ops", headers=bearer(OPS_TOKEN)) as first:
                assert first.status_code == 200  # its own count: one SSE connection besides the session
                second = await http.get(f"{served.base_url}/sse/ops", headers=bearer(OPS_TOKEN))
                assert second.status_code == 503
            async with raw_session(url, headers=bearer(GATEWAY_TOKEN)):
                pass  # the plain endpoint still admits
            async with connect(served.base_url, "http-auto", headers=bearer(OPS_TOKEN)):  # holds a listen stream
                listen = {**LISTEN_HEADERS, **bearer(OPS_TOKEN)}
                refused = await http.post(url, json=listen_body(), headers=listen)
                assert refused.status_code == 503, refused.text
                assert "1 listen streams, its limit (its max_sessions)" in refused.json()["error"]["message"]
                assert refused.headers["retry-after"] == str(RETRY_WHEN_FULL)
                async with connect(served.base_url, "http-auto", headers=bearer(GATEWAY_TOKEN)):
                    pass  # the plain endpoint's clients still listen
        async with admin(served.base_url) as http:
            taken = await http.put("/admin/virtual-servers/mine", json={"tokens": [GATEWAY_TOKEN]})
            assert taken.status_code == 422 and "auth_token" in taken.text and GATEWAY_TOKEN not in taken.text
