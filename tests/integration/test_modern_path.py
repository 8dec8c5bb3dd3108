"""2026-07-28 requests of the hot methods answered by the gateway itself (`lash_gateway.export._modern_path`), and what
the SDK's own answer guarantees kept: the same results, the same refusals, progress and log messages on the request's
stream, cancellation by closing it, input-required rounds.

Which path answered is seen by a spy on the SDK's single-exchange entry (`handle_modern_request`): it records the
`Mcp-Method` of every request that reaches the SDK. A middleware on the export's server sends every request there
(the fast path steps aside for a user's middleware), which is how the same requests get the SDK's answers to compare.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
import mcp_types as types
import pytest
import uvicorn
from mcp.client.context import ClientRequestContext
from mcp.server import streamable_http_manager
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    HEADER_MISMATCH,
    LOG_LEVEL_META_KEY,
    PROTOCOL_VERSION_META_KEY,
)
from starlette.types import ASGIApp

from lash_core import PluginRegistrar, PluginSessionContext, ToolCall, ToolResult
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, simple_tool
from lash_gateway import McpServerConfig, StateStore
from lash_gateway.export import _reply as reply_module
from lash_gateway.export._limits import RATE_LIMITED, Limit, Limiter, Limits
from tests.integration import _gateway as gateway_harness
from tests.integration._gateway import (
    MCP_HEADERS,
    InProcessGateway,
    admin_client,
    connect,
    connected_gateway,
    poll,
    run_gateway_in_process,
    sse_message,
    sse_messages,
    text_of,
)
from tests.servers.launch import PROJECT_ROOT, stdio_command

pytestmark = pytest.mark.anyio

WAIT: Final = 15.0
"""Bound on anything that should happen promptly."""
MODERN: Final = "2026-07-28"
SERVER: Final = "alpha"
ENVELOPE: Final = {
    PROTOCOL_VERSION_META_KEY: MODERN,
    CLIENT_CAPABILITIES_META_KEY: {},
    CLIENT_INFO_META_KEY: {"name": "raw", "version": "0"},
}
SDK_ENTRY: Final = "handle_modern_request"
"""The SDK's entry for a 2026-07-28 POST, as its session manager calls it."""
_NAMED_BY: Final = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}

Exchange = tuple[int, str, list[dict[str, Any]]]
"""What a client sees of one POST: status, content type, the JSON-RPC messages."""


def request(method: str, params: Mapping[str, Any] | None = None, *, meta: Mapping[str, Any] | None = None) -> Any:
    """A 2026-07-28 request, and the headers a conforming client sends with it."""
    body = {**(params or {}), "_meta": {**ENVELOPE, **(meta or {})}}
    headers = {**MCP_HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": method}
    if method in _NAMED_BY:
        headers["Mcp-Name"] = str(body[_NAMED_BY[method]])
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": body}, headers


def call(tool: str, arguments: Mapping[str, Any], **meta: Any) -> Any:
    return request("tools/call", {"name": f"{SERVER}__{tool}", "arguments": dict(arguments)}, meta=meta)


def routed(region: str, header: str | None) -> Any:
    """A call of `route`, whose schema asks for `region` in the `Mcp-Param-Region` header too (None: not sent)."""
    body, headers = call("route", {"region": region, "text": "hi"})
    return body, {**headers, **({"Mcp-Param-Region": header} if header is not None else {})}


async def exchange(http: httpx2.AsyncClient, url: str, sent: Any, headers: Mapping[str, str] | None = None) -> Exchange:
    body, default_headers = sent
    reply = await http.post(url, json=body, headers={**default_headers, **(headers or {})})
    return reply.status_code, reply.headers["content-type"], sse_messages(reply)


@asynccontextmanager
async def gateway_with_spy(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[InProcessGateway, list[str]]]:
    """A gateway with `alpha` (the test upstream over stdio), and the methods of the requests the SDK answered."""
    reached_sdk: list[str] = []
    sdk_entry = vars(streamable_http_manager)[SDK_ENTRY]

    async def spy(*args: Any) -> None:
        scope = args[-3]
        reached_sdk.append(dict(scope["headers"]).get(b"mcp-method", b"").decode())
        await sdk_entry(*args)

    monkeypatch.setattr(streamable_http_manager, SDK_ENTRY, spy)
    command, args = stdio_command("--name", SERVER)
    async with connected_gateway({SERVER: McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT))}) as served:
        yield served, reached_sdk


def to_sdk(served: InProcessGateway) -> None:
    """From now on every request takes the SDK's path (the fast path leaves a user's middleware to the SDK)."""

    async def passing(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
        return await call_next(ctx)

    served.gateway.export.server.middleware.append(passing)


def spy_on_handler(served: InProcessGateway, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the calls the export's own handler serves from now on (`McpExport.answer`), as they come."""
    handled: list[str] = []
    handler = served.gateway.export.answer

    async def spied(ctx: Any, method: str, params: Any, run: Any) -> dict[str, Any]:
        handled.append(params.name)
        return await handler(ctx, method, params, run)

    monkeypatch.setattr(served.gateway.export, "answer", spied)
    return handled


SILENT: Final = call("slow", {"seconds": 0.5, "steps": 1})
"""A call that sends nothing for half a second (no progress token: `slow` reports none)."""
INFO_MESSAGE: Final = {"message": "m", "level": "info"}
SAME_ANSWERS: Final = {
    "tools/list": request("tools/list"),
    "call": call("echo", {"text": "hi"}),
    "call, every content kind": call("content_kinds", {}),
    "call, a tool error": call("fail", {"message": "no"}),
    "call, an unknown tool": call("nothing", {}),
    "call, with its Mcp-Param header": routed("eu-west", "eu-west"),
    "call, progress first": call("slow", {"seconds": 0.05, "steps": 2}, progressToken="p1"),
    "call, log messages at the level asked": call("log", INFO_MESSAGE, **{LOG_LEVEL_META_KEY: "info"}),
    "call, no log messages below it": call("log", INFO_MESSAGE, **{LOG_LEVEL_META_KEY: "error"}),
    "call, from a client that takes questions": call(
        "echo", {"text": "hi"}, **{CLIENT_CAPABILITIES_META_KEY: {"elicitation": {}, "sampling": {}}}
    ),
    "resources/list": request("resources/list"),
    "resources/templates/list": request("resources/templates/list"),
    "read": request("resources/read", {"uri": "test://static/text"}),
    "read, a blob": request("resources/read", {"uri": "test://static/blob"}),
    "read, through a template": request("resources/read", {"uri": "items://fruit/apple"}),
    "read, a URI nobody serves": request("resources/read", {"uri": "nowhere://at/all"}),
    "prompts/list": request("prompts/list"),
    "prompt": request("prompts/get", {"name": f"{SERVER}__greet", "arguments": {"name": "alice"}}),
    "prompt, unknown": request("prompts/get", {"name": "nothing"}),
}


async def test_the_hot_methods_get_the_sdks_answers_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        # No call takes the export's handler, not even one whose client takes questions.
        handled = spy_on_handler(served, monkeypatch)
        fast = {label: await exchange(http, served.mcp_url, sent) for label, sent in SAME_ANSWERS.items()}
        assert reached_sdk == []
        assert handled == []
        to_sdk(served)
        sdk = {label: await exchange(http, served.mcp_url, sent) for label, sent in SAME_ANSWERS.items()}
        assert len(reached_sdk) == len(SAME_ANSWERS)

    for label in SAME_ANSWERS:
        assert fast[label] == sdk[label], label
    assert fast["call"] == (200, "application/json", fast["call"][2])
    assert fast["call"][2][0]["result"]["structuredContent"] == {"text": "hi"}
    status, content_type, messages = fast["call, progress first"]
    assert content_type.startswith("text/event-stream")
    assert [m["params"]["progress"] for m in messages[:-1]] == [0, 1, 2]
    assert [m["method"] for m in fast["call, log messages at the level asked"][2][:-1]] == ["notifications/message"]
    assert len(fast["call, no log messages below it"][2]) == 1
    assert fast["tools/list"][2][0]["result"]["ttlMs"] == 0  # a cache hint: every list changes at runtime
    assert fast["read, a URI nobody serves"][:1] == (400,)  # SEP-2164: invalid params, with its HTTP status
    assert fast["read, a URI nobody serves"][2][0]["error"]["code"] == types.INVALID_PARAMS
    assert fast["prompt, unknown"][0] == 400  # INVALID_PARAMS has an HTTP status of its own on this era


def declaring(tool: str, arguments: Mapping[str, Any], *kinds: str, **meta: Any) -> Any:
    """A call from a client that declares it takes the questions `kinds`."""
    return call(tool, arguments, **{CLIENT_CAPABILITIES_META_KEY: {kind: {} for kind in kinds}}, **meta)


def declared_as(tool: str, arguments: Mapping[str, Any], capabilities: Mapping[str, Any]) -> Any:
    """A call from a client that declares `capabilities` as they are."""
    return call(tool, arguments, **{CLIENT_CAPABILITIES_META_KEY: dict(capabilities)})


ANSWERS: Final = {
    "elicitation/create": {"action": "accept", "content": {"answer": "ann"}},
    "roots/list": {"roots": [{"uri": "file:///work", "name": "work"}]},
    "sampling/createMessage": {"role": "assistant", "content": {"type": "text", "text": "hello"}, "model": "m"},
}
ASKING: Final = {
    "elicitation, declared": declaring("ask", {"message": "name?"}, "elicitation"),
    "elicitation, only sampling declared": declaring("ask", {"message": "name?"}, "sampling"),
    "roots, declared with the others": declaring("roots", {}, "roots", "sampling", "elicitation"),
    "nothing asked, with progress": declaring("slow", {"seconds": 0.05, "steps": 1}, "roots", progressToken="p"),
    "a URL to open, URLs declared": declared_as(
        "ask", {"message": "open?", "mode": "url"}, {"elicitation": {"url": {}}}
    ),
    "a URL to open, forms declared": declared_as("ask", {"message": "open?", "mode": "url"}, {"elicitation": {}}),
    "sampling with tools, declared": declared_as(
        "sample", {"prompt": "hi", "tools": True}, {"sampling": {"tools": {}}}
    ),
    "sampling with tools, plain sampling declared": declared_as(
        "sample", {"prompt": "hi", "tools": True}, {"sampling": {}}
    ),
}


async def rounds(http: httpx2.AsyncClient, url: str, sent: Any) -> list[Exchange]:
    """A call and its retries, each answering the round before it (`ANSWERS`), until it is complete; each round's
    `requestState` left out (it names the call, which differs between runs)."""
    body, headers = sent
    seen: list[Exchange] = []
    for request_id in range(2, 6):
        status, content_type, messages = await exchange(http, url, (body, headers))
        result = messages[-1].get("result", {})
        state = result.pop("requestState", None)
        seen.append((status, content_type, messages))
        if result.get("resultType") != "input_required":
            return seen
        responses = {key: ANSWERS[asked["method"]] for key, asked in result["inputRequests"].items()}
        body = {**body, "id": request_id, "params": {**body["params"], "requestState": state}}
        body["params"]["inputResponses"] = responses
    raise AssertionError(f"no end to the rounds: {seen}")


async def test_clients_that_take_questions_get_the_same_rounds_without_the_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    """Input-required rounds on the direct path: the same questions, the same results after the retries, what the
    client did not declare refused as the SDK's path refuses it; and never through the export's handler."""
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        handled = spy_on_handler(served, monkeypatch)
        fast = {label: await rounds(http, served.mcp_url, sent) for label, sent in ASKING.items()}
        assert reached_sdk == [] and handled == []
        to_sdk(served)
        sdk = {label: await rounds(http, served.mcp_url, sent) for label, sent in ASKING.items()}
        assert len(handled) == sum(len(seen) for seen in sdk.values())

    for label in ASKING:
        assert fast[label] == sdk[label], label
    asked, answered = fast["elicitation, declared"]
    assert asked[2][0]["result"]["inputRequests"]["q0"]["method"] == "elicitation/create"
    assert answered[2][0]["result"]["content"] == [{"type": "text", "text": "accept: ann"}]
    [refused] = fast["elicitation, only sampling declared"]
    assert refused[2][0]["result"]["isError"], refused
    # A client is asked only what it declared of a kind, too: no URL for a client of forms, no tools for one whose
    # sampling takes none; the upstream hears why.
    allowed = {"a URL to open, URLs declared": "accept: ann", "sampling with tools, declared": "hello"}
    for label, answer in allowed.items():
        assert fast[label][-1][2][0]["result"]["content"][0]["text"] == answer, fast[label]
    undeclared = {
        "a URL to open, forms declared": "'url' mode",
        "sampling with tools, plain sampling declared": "tools",
    }
    for label, missing in undeclared.items():
        [(status, _, [refusal])] = fast[label]
        assert refusal["result"]["isError"] and missing in refusal["result"]["content"][0]["text"], refusal
    assert fast["roots, declared with the others"][-1][2][0]["result"]["content"][0]["text"] == "file:///work"
    [(_, content_type, messages)] = fast["nothing asked, with progress"]
    assert content_type.startswith("text/event-stream")
    assert [m.get("method") for m in messages] == ["notifications/progress", "notifications/progress", None]


@pytest.mark.parametrize("first", ["direct", "sdk"])
async def test_a_retry_on_the_other_path_gets_its_calls_later_messages(
    monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    """A call begun on one path whose retry takes the other (a middleware added or removed between the rounds): the
    upstream's log message after the client's answer reaches the retry's stream, and then its result."""
    body, headers = declaring(
        "ask", {"message": "name?", "then_log": True}, "elicitation", **{LOG_LEVEL_META_KEY: "info"}
    )
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        middleware = served.gateway.export.server.middleware
        if first == "sdk":
            to_sdk(served)
        _, _, [asked] = await exchange(http, served.mcp_url, (body, headers))
        if first == "sdk":
            middleware.pop()  # the retry takes the direct path
        else:
            to_sdk(served)
        round_ = asked["result"]
        [key] = round_["inputRequests"]
        params = {
            **body["params"],
            "requestState": round_["requestState"],
            "inputResponses": {key: ANSWERS["elicitation/create"]},
        }
        _, _, messages = await exchange(http, served.mcp_url, ({**body, "id": 2, "params": params}, headers))
    assert reached_sdk == ["tools/call"], reached_sdk  # one of the two requests, as the test meant
    assert [message.get("method") for message in messages] == ["notifications/message", None], messages
    assert messages[0]["params"]["data"] == {"answer": "ann"}
    assert messages[1]["result"]["content"] == [{"type": "text", "text": "accept: ann"}]


async def test_a_retry_sent_again_runs_the_call_again_with_the_answers_it_carries(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A retry whose call is no longer held (it ended with the first retry) runs the request again, and the answers
    its state carries answer the same questions: the same result, with no new round."""
    body, headers = declaring("ask", {"message": "name?"}, "elicitation")
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        handled = spy_on_handler(served, monkeypatch)
        _, _, [asked] = await exchange(http, served.mcp_url, (body, headers))
        round_ = asked["result"]
        [key] = round_["inputRequests"]
        answered = {"requestState": round_["requestState"], "inputResponses": {key: ANSWERS["elicitation/create"]}}
        retry = {**body, "id": 2, "params": {**body["params"], **answered}}
        results = [(await exchange(http, served.mcp_url, (retry, headers)))[2] for _ in range(2)]
        assert served.gateway.export.bridges.held == 0
    for [done] in results:
        assert done["result"]["content"] == [{"type": "text", "text": "accept: ann"}], done
    assert reached_sdk == [] and handled == []


@pytest.mark.parametrize("path", ["direct", "sdk"])
async def test_closing_a_retrys_stream_cancels_the_call_it_resumed(monkeypatch: pytest.MonkeyPatch, path: str) -> None:
    """A retry that answered its call's round is the call's request from then on: closing its stream cancels the call
    upstream, as closing the first request's stream would have before the round."""
    arguments = {"message": "name?", "then_log": True, "then_sleep": 60}
    body, headers = declaring("ask", arguments, "elicitation", **{LOG_LEVEL_META_KEY: "info"})
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        if path == "sdk":
            to_sdk(served)
        _, _, [asked] = await exchange(http, served.mcp_url, (body, headers))
        round_ = asked["result"]
        [key] = round_["inputRequests"]
        answered = {"requestState": round_["requestState"], "inputResponses": {key: ANSWERS["elicitation/create"]}}
        retry = {**body, "id": 2, "params": {**body["params"], **answered}}
        with anyio.fail_after(WAIT):
            async with http.stream("POST", served.mcp_url, json=retry, headers=headers) as reply:
                async for line in reply.aiter_lines():
                    if (message := sse_message(line)) is not None and message.get("method") == "notifications/message":
                        break  # the upstream has the answer and sleeps on: hang up on the call
            assert reached_sdk == (["tools/call"] * 2 if path == "sdk" else []), reached_sdk

            async def cancelled_upstream() -> bool | None:
                _, _, messages = await exchange(http, served.mcp_url, call("cancel_log", {}))
                return True if "ask" in messages[0]["result"]["structuredContent"]["cancelled"] else None

            await poll(cancelled_upstream)


async def test_a_call_over_a_limit_is_refused_alike_on_both_paths_when_its_client_takes_questions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A limit refuses a call whose client takes questions (so the call goes through the export's bridges): the same
    HTTP 429, `Retry-After` and error on both paths, and the call admitted before it answered as usual."""
    sent = declaring("echo", {"text": "hi"}, "elicitation")
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        export = served.gateway.export

        async def twice() -> tuple[Exchange, tuple[int, str | None, Any]]:
            limits = Limits(tools={f"{SERVER}__echo": Limit(calls_per_minute=1)})
            export.limiter = Limiter(limits, "test", clock=lambda: 0.0)  # the same Retry-After, however slow the run
            admitted = await exchange(http, served.mcp_url, sent)
            refused = await http.post(served.mcp_url, json=sent[0], headers=sent[1])
            return admitted, (refused.status_code, refused.headers.get("retry-after"), refused.json())

        fast = await twice()
        assert reached_sdk == []
        to_sdk(served)
        sdk = await twice()
        assert reached_sdk == ["tools/call"] * 2
    assert fast == sdk
    admitted, (status, retry_after, body) = fast
    assert admitted[2][0]["result"]["structuredContent"] == {"text": "hi"}
    assert status == 429 and retry_after == "60", (status, retry_after)
    assert body["error"]["code"] == RATE_LIMITED and body["error"]["data"]["limit"] == "calls_per_minute"


async def read_counter(http: httpx2.AsyncClient, url: str) -> str:
    _, _, messages = await exchange(http, url, request("resources/read", {"uri": f"test://{SERVER}/counter"}))
    text: str = messages[0]["result"]["contents"][0]["text"]
    return text


REFUSED: Final = {
    "Mcp-Name of another tool": {"Mcp-Name": f"{SERVER}__echo"},
    "Mcp-Method of another method": {"Mcp-Method": "tools/list"},
    "MCP-Protocol-Version not the envelope's": {"MCP-Protocol-Version": "2026-07-29"},
}


async def test_requests_whose_headers_disagree_with_their_body_are_refused_and_never_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        url = served.mcp_url
        before = await read_counter(http, url)
        body, headers = call("bump", {})
        refusals = [await exchange(http, url, (body, headers), wrong) for wrong in REFUSED.values()]
        repeated = await http.post(url, json=body, headers=[*headers.items(), ("Mcp-Name", f"{SERVER}__bump")])
        refusals.append((repeated.status_code, repeated.headers["content-type"], sse_messages(repeated)))
        refusals += [await exchange(http, url, routed("eu-west", header)) for header in ("us-east", None)]
        assert await read_counter(http, url) == before  # no bump ran
        accepted = await exchange(http, url, routed("eu-west", "eu-west"))

    labels = [*REFUSED, "Mcp-Name twice", "Mcp-Param wrong", "Mcp-Param missing"]
    for label, (status, _, messages) in zip(labels, refusals, strict=True):
        assert status == 400, label
        assert messages[0]["error"]["code"] == HEADER_MISMATCH, (label, messages)
    assert accepted[2][0]["result"]["structuredContent"] == {"region": "eu-west"}
    assert len(reached_sdk) == len(refusals), "the refusals are the SDK's own"


def plain_uvicorn(app: ASGIApp, *, drain: float, head_timeout: float) -> uvicorn.Server:
    """uvicorn as an embedder would run the gateway's app: without the gateway's own protocol (its extensions)."""
    return uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))


@pytest.mark.parametrize("server", ["gateway", "plain uvicorn"])
async def test_closing_the_stream_cancels_the_call_upstream(monkeypatch: pytest.MonkeyPatch, server: str) -> None:
    """The gateway's server says at once that a connection was lost; under another ASGI server a task waits for it."""
    if server == "plain uvicorn":
        monkeypatch.setattr(gateway_harness, "http_server", plain_uvicorn)
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        body, headers = call("slow", {"seconds": 60, "steps": 600}, progressToken="p")
        with anyio.fail_after(WAIT):
            async with http.stream("POST", served.mcp_url, json=body, headers=headers) as reply:
                async for line in reply.aiter_lines():
                    if (message := sse_message(line)) is not None and message.get("method") == "notifications/progress":
                        break  # the call runs: hang up on it

            async def cancelled_upstream() -> bool | None:
                _, _, messages = await exchange(http, served.mcp_url, call("cancel_log", {}))
                return True if "slow" in messages[0]["result"]["structuredContent"]["cancelled"] else None

            await poll(cancelled_upstream)
        assert "tools/call" not in reached_sdk


async def test_the_sdk_client_lists_calls_and_answers_questions_on_the_fast_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The official client in `mode="auto"`: progress, an elicitation round (input-required, then the retry with the
    answer), and `tools/list_changed` on its `subscriptions/listen` stream."""

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": "ann"})

    reported: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reported.append(progress)

    async with gateway_with_spy(monkeypatch) as (served, reached_sdk):
        async with connect(served.base_url, "http-auto", elicitation_callback=elicit) as handle:
            client = handle.client
            assert f"{SERVER}__route" in await handle.tool_names()
            slow = await client.call_tool(
                f"{SERVER}__slow", {"seconds": 0.05, "steps": 2}, progress_callback=on_progress
            )
            assert not slow.is_error and reported == [0, 1, 2]
            routed = await client.call_tool(f"{SERVER}__route", {"region": "eu-west", "text": "hi"})
            assert text_of(routed) == "eu-west: hi"
            asked = await client.call_tool(f"{SERVER}__ask", {"message": "name?"})
            assert text_of(asked) == "accept: ann"
            seen = handle.tools_changed
            await client.call_tool(f"{SERVER}__add_tool", {"name": "fresh"})
            with anyio.fail_after(WAIT):
                await handle.wait_tools_changed(seen)
            assert f"{SERVER}__fresh" in await handle.tool_names()
    assert not {"tools/list", "tools/call"} & set(reached_sdk), reached_sdk


async def test_a_request_answered_with_a_question_keeps_its_call_for_the_retry_though_its_client_hangs_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The call of an input-required round goes on in the first request's task; closing that request's connection
    (the round is its answer) must not cancel it: the retry, on another connection, gets its result."""
    body, headers = call("ask", {"message": "name?"}, **{CLIENT_CAPABILITIES_META_KEY: {"elicitation": {}}})
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk):
        async with httpx2.AsyncClient(timeout=WAIT) as first:
            _, _, [asked] = await exchange(first, served.mcp_url, (body, headers))
        round_ = asked["result"]
        assert round_["resultType"] == "input_required"
        [(key, question)] = round_["inputRequests"].items()
        assert question["method"] == "elicitation/create"
        answered = {**body["params"], "requestState": round_["requestState"]}
        answered["inputResponses"] = {key: {"action": "accept", "content": {"answer": "ann"}}}
        async with httpx2.AsyncClient(timeout=WAIT) as second:
            _, _, [done] = await exchange(second, served.mcp_url, ({**body, "id": 2, "params": answered}, headers))
            _, _, [log] = await exchange(second, served.mcp_url, call("cancel_log", {}))
    assert done["result"]["content"] == [{"type": "text", "text": "accept: ann"}]
    assert "ask" not in log["result"]["structuredContent"]["cancelled"]
    assert "tools/call" not in reached_sdk


async def test_a_call_silent_for_long_becomes_a_stream_kept_alive_until_its_result(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As the SDK answers: after `KEEPALIVE` seconds of silence an SSE stream, with a comment line every `KEEPALIVE`
    seconds (a proxy must not take a long call for an idle connection)."""
    monkeypatch.setattr(reply_module, "KEEPALIVE", 0.1)
    async with gateway_with_spy(monkeypatch) as (served, reached_sdk), httpx2.AsyncClient(timeout=WAIT) as http:
        reply = await http.post(served.mcp_url, json=SILENT[0], headers=SILENT[1])
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/event-stream")
    assert reply.text.count(": ping") >= 2
    [result] = sse_messages(reply)
    assert result["result"]["content"] == [{"type": "text", "text": "slept 0.5s in 1 steps"}]
    assert "tools/call" not in reached_sdk


async def test_a_plugins_close_hook_runs_after_the_answer_and_cannot_spoil_it(caplog: pytest.LogCaptureFixture) -> None:
    """A 2026-07-28 call's lash session closes once its answer is out, as the SDK closes the request's connection: a
    close hook that takes long holds up no answer, and one that fails is logged, not answered with."""
    provider = StaticToolProvider([simple_tool("bump")], name="bumps")
    release, failing = anyio.Event(), anyio.Event()

    async def close_hook(ctx: PluginSessionContext) -> None:
        if ctx.stateless:
            await release.wait()
            failing.set()
            raise RuntimeError("the close hook broke")

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.tools().provider(provider)
        reg.session().on_close(close_hook)

    plugin = CallbackPluginFactory("closing", register)
    caplog.set_level(logging.ERROR, logger="lash_gateway.export")
    async with run_gateway_in_process(plugins=[plugin]) as served, httpx2.AsyncClient(timeout=WAIT) as http:
        with anyio.fail_after(WAIT):
            status, _, [answer] = await exchange(http, served.mcp_url, request("tools/call", {"name": "bump"}))
            assert status == 200 and answer["result"]["isError"] is False
            assert len(provider.calls) == 1
            release.set()
            await failing.wait()  # the hook's task logs its failure before it next yields, so before this resumes
        assert "the close hook broke" in caplog.text


def answering(value: Any, name: str = "answer") -> CallbackPluginFactory:
    """A plugin with one tool, `name`, whose result is `ToolResult.ok(value)`."""

    async def answer(call: ToolCall) -> ToolResult:
        return ToolResult.ok(value)

    provider = StaticToolProvider([simple_tool(name)], answer, name=name)
    return CallbackPluginFactory(name, lambda reg, ctx: reg.tools().provider(provider))


async def test_a_result_with_a_lone_surrogate_gets_the_sdks_answer_not_a_broken_connection() -> None:
    """A lone surrogate (a plugin's: no upstream's JSON can carry one) has no UTF-8 form. In a value the SDK's path
    sends it escaped, in a key its result check refuses it; the fast path answers both alike (it broke the connection
    with HTTP 500 before)."""
    async with (
        run_gateway_in_process(plugins=[answering({"\ud800": 1}, "key"), answering({"v": "\ud800"}, "value")]) as (
            served
        ),
        httpx2.AsyncClient(timeout=WAIT) as http,
    ):
        with anyio.fail_after(WAIT):
            fast = [await exchange(http, served.mcp_url, request("tools/call", {"name": name})) for name in NAMES]
            to_sdk(served)
            sdk = [await exchange(http, served.mcp_url, request("tools/call", {"name": name})) for name in NAMES]
    assert fast == sdk
    (_, _, [in_key]), (_, _, [in_value]) = fast
    assert in_key["error"]["code"] == types.INTERNAL_ERROR
    assert in_value["result"]["structuredContent"] == {"v": "\ud800"}


NAMES: Final = ("key", "value")


async def test_the_audit_log_records_a_calls_result_alike_on_both_paths(tmp_path: Path) -> None:
    """The answer's own stamps are not the call's result: the record of a call is the same whichever path served it
    (the fast path once stamped the very result the audit log measures later)."""
    store = StateStore(tmp_path / "state.sqlite3")
    async with (
        run_gateway_in_process(store=store, admin_token="admin", plugins=[answering({"n": 1})]) as served,
        httpx2.AsyncClient(timeout=WAIT) as http,
        admin_client(served.base_url, "admin", WAIT) as admin,
    ):
        sent = request("tools/call", {"name": "answer"})
        with anyio.fail_after(WAIT):
            await exchange(http, served.mcp_url, sent)
            to_sdk(served)
            await exchange(http, served.mcp_url, sent)
            reply = await admin.get("/admin/audit")
    fast, sdk = reversed(reply.json()["records"])  # newest first
    assert fast["tool"] == sdk["tool"] == "answer"
    assert fast["result_bytes"] == sdk["result_bytes"] > 0
