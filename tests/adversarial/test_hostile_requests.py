"""Generated hostile requests against every HTTP entry of the gateway: `/mcp` (with and without a live session),
`/sse` and its message route, and `/admin/*` (with the token). Each must be answered (never a hang) with a status
below 500, and afterwards a canary session on the same gateway must still list and call its tools.

Regression: deeply nested JSON (`[` x 5000) or a 5,000-digit number in `PUT /admin/servers/x` answered 500, and
`startup_timeout`/`call_timeout` took `Infinity` and `1e309`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import anyio
import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lash_gateway import GatewayConfig, StateStore
from tests.adversarial.test_edge import canary_works
from tests.integration._gateway import MCP_HEADERS, InProcessGateway, initialize_body, reply_to, run_gateway_in_process

pytestmark = pytest.mark.anyio

TOKEN: Final = "lgw_adversarial-token-000000000000000000000"
ANSWER_WITHIN: Final = 10.0
EXAMPLES: Final = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
methods = st.sampled_from(
    [
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "resources/list",
        "prompts/get",
        "logging/setLevel",
        "subscriptions/listen",
        "server/discover",
        "",
    ]
) | st.text(max_size=30)
ids = st.none() | st.integers() | st.text(max_size=10) | st.floats(allow_nan=False) | st.booleans() | json_values
tool_params = st.fixed_dictionaries(
    {"name": st.sampled_from(["lash_gateway_status", "nope", ""]) | st.text(max_size=10)},
    optional={"arguments": json_values, "_meta": st.dictionaries(st.sampled_from(["progressToken", "x"]), ids)},
)
messages = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "1.0"]) | st.text(max_size=3), "method": methods},
    optional={"id": ids, "params": tool_params | json_values},
)
bodies = (
    messages.map(json.dumps)
    | st.lists(messages, max_size=3).map(json.dumps)
    | json_values.map(json.dumps)
    | st.binary(max_size=200).map(lambda raw: raw.decode("latin-1"))
    | st.sampled_from(["[" * 5000, "{" * 5000, '{"a": ' + "9" * 5000 + "}", "", "null", "{", '{"jsonrpc": "2.0"'])
)
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40).map(str.strip)
"""What an HTTP client can put in a header value at all."""
versions = st.sampled_from(["2025-11-25", "2026-07-28", "2025-03-26", "1999-01-01", ""]) | header_text
content_types = st.sampled_from(["application/json", "text/plain", "application/json; charset=latin-1", ""])
accepts = st.sampled_from(["application/json, text/event-stream", "text/event-stream", "application/json", "*/*", ""])

timeouts = st.sampled_from(["Infinity", "-Infinity", "NaN", "1e309", "-1", "0", "1e9", "9" * 5000, '"10"', "null"])
admin_bodies = (
    st.tuples(st.sampled_from(["startup_timeout", "call_timeout"]), timeouts).map(
        lambda pair: f'{{"url": "http://127.0.0.1:1/mcp", "{pair[0]}": {pair[1]}}}'
    )
    | st.dictionaries(
        st.sampled_from(["url", "command", "args", "env", "cwd", "headers", "type", "transport", "tools", "mode"])
        | st.text(max_size=8),
        json_values,
        max_size=5,
    ).map(json.dumps)
    | bodies
)
server_names = st.sampled_from(["x", "%00", "a" * 200, "..", "%2F", " x"]) | st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="/?#"), min_size=1, max_size=20
)


class Target:
    def __init__(self, served: InProcessGateway, http: httpx2.AsyncClient, session_id: str) -> None:
        self.served, self.http, self.session_id = served, http, session_id

    async def send(
        self, method: str, path: str, *, content: str | None = None, upstream_failed_ok: bool = False, **headers: str
    ) -> httpx2.Response:
        """Send one request; it must be answered in time, below 500 (502, the upstream failed, only when
        `upstream_failed_ok`: an attach the body describes well enough to try)."""
        with anyio.fail_after(ANSWER_WITHIN):
            reply = await self.http.request(
                method,
                self.served.base_url + path,
                content=content.encode("utf-8", "surrogatepass") if content else None,
                headers={k.replace("_", "-"): v for k, v in headers.items()},
            )
        assert reply.status_code < 500 or (upstream_failed_ok and reply.status_code == 502), (
            method,
            path,
            content and content[:200],
            headers,
            reply.status_code,
            reply.text[:500],
        )
        return reply


@pytest.fixture(scope="module")
async def target(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Target]:
    store = StateStore(Path(tmp_path_factory.mktemp("hostile")) / "state.sqlite3")
    async with run_gateway_in_process(GatewayConfig(), store=store, admin_token=TOKEN) as served:
        async with httpx2.AsyncClient(timeout=ANSWER_WITHIN) as http:
            init = await http.post(served.mcp_url, json=initialize_body(), headers=MCP_HEADERS)
            reply_to(init, 1)
            yield Target(served, http, init.headers["mcp-session-id"])
        await canary_works(served)


@EXAMPLES
@given(body=bodies, content_type=content_types, accept=accepts, version=versions, with_session=st.booleans())
async def test_mcp_posts(
    target: Target, body: str, content_type: str, accept: str, version: str, with_session: bool
) -> None:
    headers: dict[str, Any] = {"content_type": content_type, "accept": accept, "mcp_protocol_version": version}
    if with_session:
        headers["mcp_session_id"] = target.session_id
    await target.send("POST", "/mcp", content=body, **headers)


@EXAMPLES
@given(method=st.sampled_from(["GET", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD"]), session=header_text)
async def test_mcp_other_methods(target: Target, method: str, session: str) -> None:
    await target.send(method, "/mcp", mcp_session_id=session, accept="text/event-stream")


@EXAMPLES
@given(body=bodies, session=st.text(alphabet="0123456789abcdefg", max_size=40), content_type=content_types)
async def test_sse_message_posts(target: Target, body: str, session: str, content_type: str) -> None:
    await target.send("POST", f"/messages/?session_id={session}", content=body, content_type=content_type)


@EXAMPLES
@given(name=server_names, body=admin_bodies)
async def test_admin_puts(target: Target, name: str, body: str) -> None:
    path = "/admin/servers/" + quote(name, safe="")
    reply = await target.send("PUT", path, content=body, upstream_failed_ok=True, authorization=f"Bearer {TOKEN}")
    if reply.status_code in (400, 403, 413, 422, 502):
        assert set(reply.json()) == {"error"}, reply.text
    if reply.status_code in (200, 201):  # something valid got through: leave nothing attached
        await target.send("DELETE", path, authorization=f"Bearer {TOKEN}")


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN", "1e309", "1e9", "0", "-1", "9" * 5000, '"forever"'])
async def test_timeouts_that_are_not_finite_bounded_numbers_are_422(target: Target, value: str) -> None:
    for field in ("startup_timeout", "call_timeout"):
        body = f'{{"url": "http://127.0.0.1:1/mcp", "{field}": {value}}}'
        reply = await target.send("PUT", "/admin/servers/t", content=body, authorization=f"Bearer {TOKEN}")
        assert reply.status_code == 422, reply.text


async def test_deep_nesting_and_huge_numbers_are_422(target: Target) -> None:
    for body in ("[" * 5000 + "]" * 5000, '{"url": ' + "[" * 5000, '{"startup_timeout": ' + "1" * 5000 + "}"):
        reply = await target.send("PUT", "/admin/servers/n", content=body, authorization=f"Bearer {TOKEN}")
        assert reply.status_code == 422, reply.text


async def test_an_admin_body_over_a_mebibyte_is_413(target: Target) -> None:
    body = json.dumps({"url": "http://127.0.0.1:1/mcp", "headers": {"X": "a" * (2 * 1024 * 1024)}})
    reply = await target.send("PUT", "/admin/servers/big", content=body, authorization=f"Bearer {TOKEN}")
    assert reply.status_code == 413, reply.text
