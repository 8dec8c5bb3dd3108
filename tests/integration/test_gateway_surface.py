"""The whole MCP surface through the gateway: resources, templates, prompts, completion, subscriptions, log levels,
and an upstream's questions (sampling, elicitation, roots) answered by the client whose call caused them.

Two upstreams (`tests.servers.upstream`, with `tests.servers.surface`), `alpha` over stdio and `beta` over
streamable HTTP, behind an in-process gateway; official SDK clients on `/mcp` and `/sse`, in both eras.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final, Literal

import anyio
import mcp_types as types
import pytest
from mcp import MCPError
from mcp.client.context import ClientRequestContext

from lash_gateway import GatewayConfig, McpServerConfig, ServerConfig
from lash_gateway.export._catalog import RESOURCE_NOT_FOUND
from tests.integration._gateway import (
    CLIENT_MODES,
    ClientMode,
    GatewayClient,
    InProcessGateway,
    connect,
    connected_gateway,
    poll,
    run_gateway_in_process,
    text_of,
)
from tests.integration._helpers import wait_until
from tests.servers.launch import PROJECT_ROOT, UpstreamFactory, stdio_command
from tests.servers.surface import ITEMS_TEMPLATE
from tests.servers.upstream import BLOB_BYTES, big_text

pytestmark = pytest.mark.anyio

WAIT: Final = 15.0
HANDSHAKE_MODES: Final[tuple[ClientMode, ...]] = ("http-legacy", "sse-legacy")


@asynccontextmanager
async def surface_gateway(upstream: UpstreamFactory) -> AsyncIterator[InProcessGateway]:
    """A gateway with `alpha` (stdio) and `beta` (streamable HTTP), both connected."""
    command, args = stdio_command("--name", "alpha")
    servers: dict[str, ServerConfig] = {
        "alpha": McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT)),
        "beta": McpServerConfig.streamable_http(upstream("--name", "beta", transport="streamable_http").url),
    }
    async with connected_gateway(servers) as served:
        pool = served.gateway.factory.pool
        with anyio.fail_after(WAIT):
            await wait_until(lambda: all(s.resource_count for s in pool.server_statuses()))
        yield served


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_resources_are_merged_read_and_routed(upstream: UpstreamFactory, mode: ClientMode) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, mode) as handle:
        client = handle.client
        listed = await client.list_resources()
        uris = [str(resource.uri) for resource in listed.resources]
        assert uris.count("test://static/text") == 1  # listed by both, served by the first attached
        assert {"test://alpha/counter", "test://beta/counter", "test://static/blob"} <= set(uris)
        templates = await client.list_resource_templates()
        assert {t.uri_template for t in templates.resource_templates} == {"test://big/{size}", ITEMS_TEMPLATE}

        text = await client.read_resource("test://static/text")
        assert _text(text) == "static text from alpha"
        beta_counter = await client.read_resource("test://beta/counter")
        assert _text(beta_counter) == "0"
        blob = (await client.read_resource("test://static/blob")).contents[0]
        assert isinstance(blob, types.BlobResourceContents)
        assert base64.b64decode(blob.blob) == BLOB_BYTES
        assert _text(await client.read_resource("items://fruit/apple")) == "fruit/apple"  # through a template
        assert _text(await client.read_resource("test://big/100000")) == big_text(100_000)

        with pytest.raises(MCPError) as unknown:
            await client.read_resource("test://nobody/here")
        # SEP-2164: "not found" is invalid params from 2026-07-28 on, whichever era the upstream speaks
        not_found = RESOURCE_NOT_FOUND if mode in HANDSHAKE_MODES else types.INVALID_PARAMS
        assert unknown.value.code == not_found
        assert "test://nobody/here" in unknown.value.message
        with pytest.raises(MCPError) as missing:  # a template's, which the upstream (handshake era) says is not there
            await client.read_resource("test://big/none")
        assert missing.value.code == not_found
        assert "no resource test://big/none" in missing.value.message

        statuses = {s.name: s for s in served.gateway.factory.pool.server_statuses()}
        assert statuses["alpha"].conflicts == ()
        beta_conflicts = statuses["beta"].conflicts
        assert any("test://static/text" in conflict and "'alpha'" in conflict for conflict in beta_conflicts)


async def test_a_16_mib_resource_arrives_whole(upstream: UpstreamFactory) -> None:
    size = 16 * 1024 * 1024
    async with surface_gateway(upstream) as served, connect(served.base_url, "http-legacy") as handle:
        with anyio.fail_after(60):
            read = await handle.client.read_resource(f"test://big/{size}")
    assert _text(read) == big_text(size)


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_prompts_are_named_like_tools_and_completion_is_routed(
    upstream: UpstreamFactory, mode: ClientMode
) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, mode) as handle:
        client = handle.client
        prompts = {prompt.name: prompt for prompt in (await client.list_prompts()).prompts}
        assert {"alpha__greet", "beta__greet"} <= set(prompts)
        assert [argument.name for argument in prompts["beta__greet"].arguments or ()] == ["name"]
        got = await client.get_prompt("beta__greet", {"name": "ada"})
        message = got.messages[0].content
        assert isinstance(message, types.TextContent)
        assert message.text == "Hello, ada! (from beta)"
        with pytest.raises(MCPError):
            await client.get_prompt("greet", {"name": "ada"})  # the upstream name is not the exported one

        names = await client.complete(
            types.PromptReference(type="ref/prompt", name="alpha__greet"), {"name": "name", "value": "al"}
        )
        assert names.completion.values == ["alice", "albert"]
        ref = types.ResourceTemplateReference(type="ref/resource", uri=ITEMS_TEMPLATE)
        items = await client.complete(ref, {"name": "id", "value": ""}, {"kind": "fruit"})
        assert items.completion.values == ["apple", "pear"]


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_resource_updates_reach_exactly_the_subscribers(upstream: UpstreamFactory, mode: ClientMode) -> None:
    alpha, beta = "test://alpha/counter", "test://beta/counter"
    async with (
        surface_gateway(upstream) as served,
        subscribed(served.base_url, mode, alpha) as watcher,
        subscribed(served.base_url, mode, beta) as other,
    ):
        with anyio.fail_after(WAIT):
            await other.client.call_tool("alpha__bump", {})
            await watcher.wait_notice(_updated(alpha))
            await watcher.client.call_tool("beta__bump", {})
            await other.wait_notice(_updated(beta))
        assert not [n for n in other.notices if _updated(alpha)(n)]
        assert not [n for n in watcher.notices if _updated(beta)(n)]


@pytest.mark.parametrize("mode", HANDSHAKE_MODES)
async def test_upstream_subscriptions_end_with_the_last_subscriber(upstream: UpstreamFactory, mode: ClientMode) -> None:
    """The gateway subscribes upstream once per URI, and unsubscribes when its last client leaves."""
    beta = "test://beta/counter"
    async with surface_gateway(upstream) as served:
        pool = served.gateway.factory.pool
        async with subscribed(served.base_url, mode, beta), subscribed(served.base_url, mode, beta) as second:
            reply = await second.client.call_tool("beta__subscribers", {"uri": beta})
            assert text_of(reply) == "1"
        async with connect(served.base_url, mode) as probe:

            async def unsubscribed() -> bool | None:
                count = text_of(await probe.client.call_tool("beta__subscribers", {"uri": beta}))
                return True if count == "0" else None

            await poll(unsubscribed, WAIT)
        assert pool.resource_server(beta) == "beta"


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_list_changes_reach_every_client(upstream: UpstreamFactory, mode: ClientMode) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, mode) as handle:
        if handle.modern:
            async with handle.client.listen(resources_list_changed=True) as subscription:
                await handle.client.call_tool("alpha__add_resource", {"name": "fresh"})
                with anyio.fail_after(WAIT):
                    async for event in subscription:
                        if type(event).__name__ == "ResourcesListChanged":
                            break
        else:
            await handle.client.call_tool("alpha__add_resource", {"name": "fresh"})
            with anyio.fail_after(WAIT):
                await handle.wait_notice(lambda n: isinstance(n, types.ResourceListChangedNotification))
        uris = {str(r.uri) for r in (await handle.client.list_resources()).resources}
        assert "test://added/fresh" in uris


@pytest.mark.parametrize("mode", HANDSHAKE_MODES)
async def test_log_messages_respect_the_clients_level(upstream: UpstreamFactory, mode: ClientMode) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, mode) as handle:
        await handle.client.session.send_request(
            types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning")), types.EmptyResult
        )
        await handle.client.call_tool("alpha__log", {"message": "quiet", "level": "info"})
        await handle.client.call_tool("alpha__log", {"message": "loud", "level": "error"})
        assert [log.data for log in handle.logs] == [{"message": "loud"}]


@pytest.mark.parametrize("mode", CLIENT_MODES)
@pytest.mark.parametrize("server", ["alpha", "beta"])
async def test_questions_reach_the_client_that_made_the_call(
    upstream: UpstreamFactory, mode: ClientMode, server: str
) -> None:
    async with (
        surface_gateway(upstream) as served,
        asking(served.base_url, mode, "ann") as ann,
        asking(served.base_url, mode, "bob") as bob,
    ):
        if not ann.modern:  # a client's roots/list_changed reaches the shared session that serves it
            await ann.client.session.send_notification(types.RootsListChangedNotification())

            async def told() -> bool | None:
                return True if text_of(await ann.client.call_tool(f"{server}__roots_changes", {})) == "1" else None

            await poll(told, WAIT)
        for who, handle in (("ann", ann), ("bob", bob)):
            assert text_of(await handle.client.call_tool(f"{server}__ask", {"message": "name?"})) == f"accept: {who}"
            assert text_of(await handle.client.call_tool(f"{server}__sample", {"prompt": "hi"})) == f"{who} says hi"
            assert text_of(await handle.client.call_tool(f"{server}__roots", {})) == f"file:///home/{who}"


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_concurrent_questions_on_streamable_http_go_to_their_own_callers(
    upstream: UpstreamFactory, mode: ClientMode
) -> None:
    async with (
        surface_gateway(upstream) as served,
        asking(served.base_url, mode, "ann") as ann,
        asking(served.base_url, mode, "bob") as bob,
    ):
        answers: dict[str, str] = {}

        async def call(who: str, handle: GatewayClient) -> None:
            for _ in range(5):
                answers[who] = text_of(await handle.client.call_tool("beta__roots", {}))
                assert answers[who] == f"file:///home/{who}"

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "ann", ann)
                tg.start_soon(call, "bob", bob)


async def test_a_client_without_the_capability_is_said_so(upstream: UpstreamFactory) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, "http-legacy") as handle:
        result = await handle.client.call_tool("beta__ask", {"message": "name?"})
    assert result.is_error
    assert "does not support elicitation" in text_of(result)


async def test_capabilities_advertise_the_whole_surface(upstream: UpstreamFactory) -> None:
    async with surface_gateway(upstream) as served, connect(served.base_url, "http-legacy") as handle:
        capabilities = handle.client.server_capabilities
    assert capabilities is not None
    assert (
        capabilities.resources is not None and capabilities.resources.subscribe and capabilities.resources.list_changed
    )
    assert capabilities.prompts is not None and capabilities.prompts.list_changed
    assert capabilities.completions is not None
    assert capabilities.logging is not None


# --- helpers ------------------------------------------------------------------------------------------------------


def _text(result: types.ReadResourceResult) -> str:
    contents = result.contents[0]
    assert isinstance(contents, types.TextResourceContents)
    return contents.text


def _updated(uri: str) -> Any:
    return lambda n: isinstance(n, types.ResourceUpdatedNotification) and str(n.params.uri) == uri


@asynccontextmanager
async def subscribed(base_url: str, mode: ClientMode, uri: str) -> AsyncIterator[GatewayClient]:
    """A client subscribed to `uri`: `resources/subscribe` on the handshake era, a listen stream on 2026-07-28
    (whose events are teed to `message_handler`, so `notices` sees both the same way)."""
    async with connect(base_url, mode) as handle:
        if not handle.modern:
            await handle.client.session.send_request(
                types.SubscribeRequest(params=types.SubscribeRequestParams(uri=uri)), types.EmptyResult
            )
            yield handle
            return
        async with handle.client.listen(resource_subscriptions=[uri]) as subscription, anyio.create_task_group() as tg:

            async def drain() -> None:
                async for _ in subscription:
                    pass

            tg.start_soon(drain)
            yield handle
            tg.cancel_scope.cancel()


@asynccontextmanager
async def asking(base_url: str, mode: ClientMode, who: str) -> AsyncIterator[GatewayClient]:
    """A client that answers elicitation with its name, sampling with "<who> says <prompt>", roots with its home."""

    async def elicit(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": who})

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult:
        prompt = params.messages[0].content
        text = prompt.text if isinstance(prompt, types.TextContent) else "?"
        return types.CreateMessageResult(
            role="assistant", content=types.TextContent(type="text", text=f"{who} says {text}"), model="test"
        )

    async def roots(context: ClientRequestContext) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root.model_validate({"uri": f"file:///home/{who}", "name": who})])

    async with connect(
        base_url, mode, elicitation_callback=elicit, sampling_callback=sample, list_roots_callback=roots
    ) as handle:
        yield handle


# --- per-client connections ---------------------------------------------------------------------------------------


@asynccontextmanager
async def per_client_gateway(max_clients: int = 4) -> AsyncIterator[InProcessGateway]:
    """A gateway whose one server, `own` (stdio), gives every client a connection (a process) of its own."""
    command, args = stdio_command("--name", "own")
    config = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT), per_client=True, max_clients=max_clients)
    async with connected_gateway({"own": config}) as served:
        yield served


@pytest.mark.parametrize("mode", HANDSHAKE_MODES)
async def test_per_client_servers_ask_each_client_on_its_own_connection(mode: ClientMode) -> None:
    """Concurrent questions on a stdio server: attributable only because each client has its own process."""
    async with per_client_gateway() as served:
        pool = served.gateway.factory.pool
        async with asking(served.base_url, mode, "ann") as ann, asking(served.base_url, mode, "bob") as bob:

            async def call(who: str, handle: GatewayClient) -> None:
                for _ in range(3):
                    assert text_of(await handle.client.call_tool("own__roots", {})) == f"file:///home/{who}"

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, "ann", ann)
                    tg.start_soon(call, "bob", bob)
            assert pool.status("own").clients == 2
            # A client's roots/list_changed reaches its own connection, and no other.
            await ann.client.session.send_notification(types.RootsListChangedNotification())

            async def ann_told() -> bool | None:
                changes = text_of(await ann.client.call_tool("own__roots_changes", {}))
                return True if changes == "1" else None

            await poll(ann_told, WAIT)
            assert text_of(await bob.client.call_tool("own__roots_changes", {})) == "0"
        # Each client's connection closed with its session.
        await wait_until(lambda: pool.status("own").clients == 0)


async def test_per_client_servers_refuse_clients_past_max_clients() -> None:
    async with (
        per_client_gateway(max_clients=1) as served,
        connect(served.base_url, "http-legacy") as first,
        connect(served.base_url, "sse-legacy") as second,
    ):
        assert text_of(await first.client.call_tool("own__echo", {"text": "in"})) == "in"
        refused = await second.client.call_tool("own__echo", {"text": "out"})
        assert refused.is_error
        assert "max_clients" in text_of(refused)


@pytest.mark.parametrize("server", ["alpha", "beta"])
async def test_a_2026_client_gets_input_required_rounds_and_a_state_that_cannot_be_forged(
    upstream: UpstreamFactory, server: str
) -> None:
    """Driven by hand: the question comes back as an input-required result; a tampered state is refused; the
    genuine one, with the answer, completes the call."""
    async with surface_gateway(upstream) as served, asking(served.base_url, "http-auto", "ann") as handle:
        session = handle.client.session
        tool = f"{server}__ask"
        first = await session.call_tool(tool, {"message": "name?"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        assert first.request_state is not None
        (key, question), *others = (first.input_requests or {}).items()
        assert not others
        assert isinstance(question, types.ElicitRequest)
        answer: types.InputResponses = {key: types.ElicitResult(action="accept", content={"answer": "ann"})}
        forged = first.request_state[:-2] + ("AA" if not first.request_state.endswith("AA") else "BB")
        with pytest.raises(MCPError) as refused:
            await session.call_tool(
                tool, {"message": "name?"}, input_responses=answer, request_state=forged, allow_input_required=True
            )
        assert "requestState" in refused.value.message
        with pytest.raises(MCPError):  # and to its arguments
            await session.call_tool(
                tool,
                {"message": "other?"},
                input_responses=answer,
                request_state=first.request_state,
                allow_input_required=True,
            )
        with pytest.raises(MCPError):  # a state is bound to its tool
            await session.call_tool(
                f"{server}__roots",
                {},
                input_responses=answer,
                request_state=first.request_state,
                allow_input_required=True,
            )
        done = await session.call_tool(
            tool,
            {"message": "name?"},
            input_responses=answer,
            request_state=first.request_state,
            allow_input_required=True,
        )
        assert isinstance(done, types.CallToolResult)
        assert text_of(done) == "accept: ann"


@pytest.mark.parametrize("mode", ["http-legacy", "sse-legacy", "http-auto"])
@pytest.mark.parametrize("transport", ["stdio", "streamable_http"])
async def test_a_2026_upstream_asks_in_its_results_and_the_caller_answers(
    upstream: UpstreamFactory, mode: ClientMode, transport: str
) -> None:
    """A 2026-07-28 upstream returns input-required results; the gateway asks its caller (a server-to-client request
    for a handshake client, a round of its own for a 2026-07-28 one) and retries with the answers."""
    if transport == "stdio":
        command, args = stdio_command("--name", "modern")
        config: ServerConfig = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT), mode="auto")
    else:
        url = upstream("--name", "modern", transport="streamable_http").url
        config = McpServerConfig.streamable_http(url, mode="auto")
    async with connected_gateway({"modern": config}) as served:
        assert served.gateway.factory.pool.status("modern").protocol_version == "2026-07-28"
        async with asking(served.base_url, mode, "ann") as ann:
            with anyio.fail_after(WAIT):
                assert text_of(await ann.client.call_tool("modern__ask", {"message": "name?"})) == "accept: ann"
                assert text_of(await ann.client.call_tool("modern__sample", {"prompt": "hi"})) == "ann says hi"
                assert text_of(await ann.client.call_tool("modern__roots", {})) == "file:///home/ann"


@pytest.mark.parametrize("mode", ["http-legacy", "http-auto"])
async def test_a_2026_upstreams_resource_updates_reach_the_subscribers(mode: ClientMode) -> None:
    """A 2026-07-28 upstream has no resources/subscribe: the gateway listens for the subscribed URIs instead."""
    command, args = stdio_command("--name", "modern")
    config = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT), mode="auto")
    counter = "test://modern/counter"
    async with connected_gateway({"modern": config}) as served:
        async with subscribed(served.base_url, mode, counter) as watcher, connect(served.base_url, mode) as other:
            with anyio.fail_after(WAIT):
                # The upstream listens once the gateway opened its stream; bump until an update comes through.
                while not [n for n in watcher.notices if _updated(counter)(n)]:
                    await other.client.call_tool("modern__bump", {})
                    with anyio.move_on_after(0.5):
                        await watcher.wait_notice(_updated(counter))
            assert not [n for n in other.notices if _updated(counter)(n)]


@pytest.mark.parametrize("mode", ["http-legacy", "http-auto"])
async def test_the_callers_time_to_answer_does_not_count_against_the_call_timeout(
    upstream: UpstreamFactory, mode: ClientMode
) -> None:
    """A person filling in a form takes longer than a call may run: the call's clock stops while they answer."""
    url = upstream("--name", "slowpoke", transport="streamable_http").url
    config = McpServerConfig.streamable_http(url, call_timeout=0.5)
    async with connected_gateway({"slowpoke": config}) as served:

        async def think_then_answer(
            context: ClientRequestContext, params: types.ElicitRequestParams
        ) -> types.ElicitResult:
            await anyio.sleep(1.0)  # the person, not synchronisation: longer than the call may run
            return types.ElicitResult(action="accept", content={"answer": "eventually"})

        async with connect(served.base_url, mode, elicitation_callback=think_then_answer) as handle:
            with anyio.fail_after(WAIT):
                answered = await handle.client.call_tool("slowpoke__ask", {"message": "name?"})
        assert text_of(answered) == "accept: eventually"


async def test_a_server_without_a_list_method_keeps_its_tools(upstream: UpstreamFactory) -> None:
    """Many servers offer resources but no `resources/templates/list`: that is an empty list, not a failed attach."""
    command, args = stdio_command("--name", "plain", "--behaviour", "no-templates")
    config = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT))
    async with run_gateway_in_process(GatewayConfig(servers={"plain": config})) as served:
        with anyio.fail_after(WAIT):
            await served.gateway.ready.wait()
        status = served.gateway.factory.pool.status("plain")
        assert status.connected, status.last_error
        assert status.tool_count > 0 and status.resource_count > 0
        assert status.resource_template_count == 0


async def test_2026_requests_use_the_shared_connection_of_a_per_client_server() -> None:
    """A 2026-07-28 request is a session of its own: opening a process for each would cost a process per call."""
    async with per_client_gateway() as served, connect(served.base_url, "http-auto") as handle:
        pool = served.gateway.factory.pool
        # One process counts on: a process per request would answer 1 each time.
        counts = [text_of(await handle.client.call_tool("own__bump", {})) for _ in range(3)]
        assert counts == ["1", "2", "3"]
        assert pool.status("own").clients == 0


@pytest.mark.parametrize("mode", ["http-legacy", "http-auto"])
async def test_resources_page_across_servers(upstream: UpstreamFactory, mode: ClientMode) -> None:
    """Two servers with 700 resources each (listed upstream in pages of 100): the client walks the gateway's pages
    and gets each resource once; a cursor it did not get is refused."""
    servers: dict[str, ServerConfig] = {}
    for name in ("first", "second"):
        command, args = stdio_command("--name", name, "--behaviour", "many-resources=700")
        servers[name] = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT))
    async with connected_gateway(servers) as served:
        async with connect(served.base_url, mode) as handle:
            uris: list[str] = []
            pages = 0
            cursor: str | None = None
            while True:
                page = await handle.client.list_resources(cursor=cursor)
                uris += [str(r.uri) for r in page.resources]
                pages += 1
                cursor = page.next_cursor
                if not cursor:
                    break
            with pytest.raises(MCPError):
                await handle.client.list_resources(cursor="not-a-cursor")
    assert sorted(uris) == sorted(f"test://{name}/many/{i}" for name in servers for i in range(700))
    assert pages == 3  # 1,400 in pages of 500


@pytest.mark.parametrize("mode", HANDSHAKE_MODES)
async def test_a_question_whose_caller_is_not_knowable_is_refused_never_misdelivered(
    upstream: UpstreamFactory, mode: ClientMode
) -> None:
    """On a shared stdio connection a question does not say which call it belongs to. With two calls in flight
    the gateway refuses it (the upstream hears why); a client never gets the other client's question."""
    async with (
        surface_gateway(upstream) as served,
        asking(served.base_url, mode, "ann") as ann,
        asking(served.base_url, mode, "bob") as bob,
    ):
        outcomes: dict[str, list[str]] = {"ann": [], "bob": []}

        async def call(who: str, handle: GatewayClient) -> None:
            for _ in range(5):
                outcomes[who].append(text_of(await handle.client.call_tool("alpha__roots", {})))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "ann", ann)
                tg.start_soon(call, "bob", bob)
        for who, other in (("ann", "bob"), ("bob", "ann")):
            assert not any(f"/home/{other}" in outcome for outcome in outcomes[who]), outcomes
            for outcome in outcomes[who]:
                assert outcome == f"file:///home/{who}" or "in flight" in outcome, outcomes


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_a_retry_is_answered_by_any_gateway_process_that_shares_the_key(
    upstream: UpstreamFactory, mode: Literal["legacy", "auto"]
) -> None:
    """The requestState carries the answers so far: a retry that reaches another gateway process (sharing the state
    directory's key) runs the request again there with those answers, whichever era the upstream speaks."""
    url = upstream("--name", "shared", transport="streamable_http").url
    servers = {"shared": McpServerConfig.streamable_http(url, mode=mode)}
    key = bytes(range(32))
    async with (
        connected_gateway(servers, request_state_key=key) as first,
        connected_gateway(servers, request_state_key=key) as second,
    ):
        async with (
            asking(first.base_url, "http-auto", "ann") as on_first,
            asking(second.base_url, "http-auto", "ann") as on_second,
        ):
            asked = await on_first.client.session.call_tool(
                "shared__ask", {"message": "name?"}, allow_input_required=True
            )
            assert isinstance(asked, types.InputRequiredResult) and asked.request_state
            (question_key,) = (asked.input_requests or {}).keys()
            answer: types.InputResponses = {
                question_key: types.ElicitResult(action="accept", content={"answer": "ann"})
            }
            done = await on_second.client.session.call_tool(
                "shared__ask",
                {"message": "name?"},
                input_responses=answer,
                request_state=asked.request_state,
                allow_input_required=True,
            )
            assert isinstance(done, types.CallToolResult)
            assert text_of(done) == "accept: ann"
    async with connected_gateway(servers, request_state_key=bytes(32)) as stranger:  # another deployment's key
        async with asking(stranger.base_url, "http-auto", "ann") as handle:
            with pytest.raises(MCPError):
                await handle.client.session.call_tool(
                    "shared__ask",
                    {"message": "name?"},
                    input_responses=answer,
                    request_state=asked.request_state,
                    allow_input_required=True,
                )
