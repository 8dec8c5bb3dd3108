"""Replicas on a shared PostgreSQL store: a real server (`tests.postgres`, started once for the module), a database of
its own for each test, and gateways in this process as replicas.

What one replica's admin API changes reaches the others within a second, and their clients hear `list_changed`; a
replica that was away catches up from the store; migrations run once however many replicas start together; a replica
with another key is refused; `status` through any replica shows every replica's view.
"""

from __future__ import annotations

import base64
import logging
import secrets
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Final

import anyio
import asyncpg
import httpx2
import mcp_types as types
import pytest

from lash_gateway import StoreError, load_gateway_config
from lash_gateway.admin._audit import AuditEntry, AuditQuery
from lash_gateway.admin._postgres_store import MIGRATIONS, PostgresStore
from lash_gateway.export import _adopt
from tests.integration._balancer import Balancer, balancing
from tests.integration._gateway import (
    MCP_HEADERS,
    GatewayClient,
    InProcessGateway,
    RawSession,
    admin_client,
    connect,
    http_upstream,
    initialize_body,
    poll,
    raw_session,
    reply_to,
    run_gateway_in_process,
    text_of,
)
from tests.postgres import PostgresServer
from tests.servers.launch import GATEWAY_COMMAND, GatewayProcess, UpstreamFactory, child_env, write_config

pytestmark = pytest.mark.anyio

ADMIN_TOKEN: Final = "admin-t0ken"
VS_TOKEN: Final = "replicated-token-0123"
PROPAGATION: Final = 1.0
"""The issue's bound: a change on one replica reaches every other within a second."""
WAIT: Final = 15.0
ECHO: Final = {
    "jsonrpc": "2.0",
    "id": 2,
    "method": "tools/call",
    "params": {"name": "docs__echo", "arguments": {"text": "x"}},
}


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
async def database(postgres: PostgresServer) -> AsyncIterator[str]:
    """A fresh database of the module's server, dropped after the test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    await _admin_statement(postgres.url, f"CREATE DATABASE {name}")
    yield postgres.url.rsplit("/", 1)[0] + f"/{name}"
    await _admin_statement(postgres.url, f"DROP DATABASE {name} WITH (FORCE)")  # a new connection: tests restart it


async def _admin_statement(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture
def key() -> bytes:
    """The key every replica of a test shares (as `LASH_GATEWAY_OAUTH_KEY` would give them)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32))


@asynccontextmanager
async def replica(
    database: str, key: bytes, servers: dict[str, Any] | None = None, **settings: Any
) -> AsyncIterator[InProcessGateway]:
    """A replica on the test's database, with the admin API, `servers` configured, and caught up with the store."""
    config = load_gateway_config({"mcpServers": servers or {}, "gateway": {"admin": {"deny_networks": []}, **settings}})
    store = PostgresStore(database, key)
    async with run_gateway_in_process(config, store=store, admin_token=ADMIN_TOKEN) as served:
        replication = served.gateway.replication
        assert replication is not None
        with anyio.fail_after(WAIT):
            await replication.caught_up.wait()
        yield served


async def holding(
    database: str,
    key: bytes,
    servers: dict[str, Any],
    stop: anyio.Event,
    stopped: anyio.Event,
    *,
    task_status: anyio.abc.TaskStatus[InProcessGateway],
) -> None:
    """A replica (started for `tg.start`) that stops, leaving the cluster, once `stop` is set; `stopped` then."""
    try:
        async with replica(database, key, servers) as served:
            task_status.started(served)
            await stop.wait()
    finally:
        stopped.set()


async def orphaned_session(stack: AsyncExitStack, database: str, key: bytes, servers: dict[str, Any]) -> RawSession:
    """A session opened on a replica that then stops (it leaves the cluster): the next replica the session's requests
    reach takes it over. The replica's task and the session live on `stack`."""
    stop, stopped = anyio.Event(), anyio.Event()
    tg = await stack.enter_async_context(anyio.create_task_group())
    holder: InProcessGateway = await tg.start(partial(holding, database, key, servers, stop, stopped))
    session = await stack.enter_async_context(raw_session(holder.mcp_url))
    stop.set()
    with anyio.fail_after(WAIT):
        await stopped.wait()
    return session


def admin(base_url: str) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
    return admin_client(base_url, ADMIN_TOKEN)


async def attach_elsewhere(client: GatewayClient, base_url: str, name: str, url: str, *, hear: bool = True) -> None:
    """Attach `name` (streamable HTTP at `url`) through the admin API at `base_url`; returns once `client` heard
    `tools/list_changed` (`hear`) or lists the server's tools."""
    seen = client.tools_changed
    async with admin(base_url) as api:
        reply = await api.put(f"/admin/servers/{name}", json={"transport": "streamable_http", "url": url})
        assert reply.status_code == 201, reply.text
    if hear:
        with anyio.fail_after(WAIT):
            await client.wait_tools_changed(seen)
        return

    async def listed() -> bool | None:
        return True if f"{name}__echo" in await client.tool_names() else None

    await poll(listed, WAIT)


async def test_an_attach_on_one_replica_reaches_the_others_clients_within_a_second(
    database: str, key: bytes, upstream: UpstreamFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lash_gateway")  # as `serve` logs: every line is made, its facts too
    server = upstream()
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(replica(database, key))
        second = await stack.enter_async_context(replica(database, key))
        client = await stack.enter_async_context(connect(second.base_url, "http-legacy"))
        assert await client.tool_names() == {"lash_gateway_status"}
        seen = client.tools_changed
        async with admin(first.base_url) as api:
            reply = await api.put("/admin/servers/docs", json={"transport": "streamable_http", "url": server.url})
            assert reply.status_code == 201, reply.text
            started = anyio.current_time()
            with anyio.fail_after(WAIT):
                await client.wait_tools_changed(seen)
            assert anyio.current_time() - started < PROPAGATION
            assert "docs__echo" in await client.tool_names()
            result = await client.client.call_tool("docs__echo", {"text": "from the other replica"})
            assert text_of(result) == "from the other replica"

            seen = client.tools_changed
            assert (await api.delete("/admin/servers/docs")).status_code == 200
            with anyio.fail_after(WAIT):
                await client.wait_tools_changed(seen)
            assert "docs__echo" not in await client.tool_names()
    applied = [r for r in caplog.records if r.getMessage().startswith("applied a change of docs made on replica")]
    assert len(applied) == 2, "the attach and the detach, each applied once on the other replica"


async def test_a_virtual_server_made_on_one_replica_is_served_by_the_others(database: str, key: bytes) -> None:
    async with replica(database, key) as first, replica(database, key) as second:
        async with admin(first.base_url) as api:
            body = {"servers": ["*"], "tools": {"allow": ["lash_gateway_status"]}, "tokens": [VS_TOKEN]}
            reply = await api.put("/admin/virtual-servers/team", json=body)
            assert reply.status_code in (200, 201), reply.text

        async def served() -> bool | None:
            return True if second.gateway.virtual.get("team") is not None else None

        await poll(served, PROPAGATION * 5)
        headers = {"Authorization": f"Bearer {VS_TOKEN}"}
        async with connect(second.base_url, "http-legacy", headers=headers) as client:
            assert await client.tool_names() == {"lash_gateway_status"}

        async with admin(first.base_url) as api:
            assert (await api.delete("/admin/virtual-servers/team")).status_code == 200

        async def removed() -> bool | None:
            return True if second.gateway.virtual.get("team") is None else None

        await poll(removed, PROPAGATION * 5)


async def test_a_replica_that_was_away_catches_up_from_the_store(
    database: str, key: bytes, postgres: PostgresServer, upstream: UpstreamFactory
) -> None:
    server = upstream()
    config = {"transport": "streamable_http", "url": server.url}
    async with replica(database, key) as first:
        async with admin(first.base_url) as api:
            assert (await api.put("/admin/servers/early", json=config)).status_code == 201
        # A replica that starts later reads the store at its start.
        async with replica(database, key) as second:
            assert "early" in {s.name for s in second.gateway.factory.pool.server_statuses()}
            # The store goes away and comes back: what changed meanwhile is read from the rows, not heard.
            replication = second.gateway.replication
            assert replication is not None
            await anyio.to_thread.run_sync(postgres.restart)
            async with admin(first.base_url) as api:

                async def attached() -> bool | None:
                    reply = await api.put("/admin/servers/late", json=config)
                    return True if reply.status_code == 201 else None  # the first replica's pool reconnects too

                await poll(attached, WAIT)

            async def caught_up() -> bool | None:
                names = {s.name for s in second.gateway.factory.pool.server_statuses()}
                return True if "late" in names else None

            await poll(caught_up, WAIT)


async def test_status_through_any_replica_shows_every_replicas_view(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    server = upstream()
    async with replica(database, key) as first, replica(database, key) as second:
        async with admin(first.base_url) as api:
            reply = await api.put("/admin/servers/docs", json={"transport": "streamable_http", "url": server.url})
            assert reply.status_code == 201, reply.text
        ids = {first.gateway.replication.id, second.gateway.replication.id}  # type: ignore[union-attr]

        async def both_connected() -> list[dict[str, Any]] | None:
            async with admin(second.base_url) as api:
                body = (await api.get("/admin/servers")).json()
            views = {r["id"]: r for r in body["replicas"]}
            ready = set(views) == ids and all(
                [s["name"] for s in r["servers"] if s["connected"]] == ["docs"] for r in views.values()
            )
            return body["replicas"] if ready else None

        replicas = await poll(both_connected, WAIT)
        assert all(r["alive"] for r in replicas)
        assert {r["url"] for r in replicas} == {first.base_url, second.base_url}
        assert [r["this"] for r in replicas].count(True) == 1


async def test_replicas_starting_together_apply_each_migration_once(database: str, key: bytes) -> None:
    stores = [PostgresStore(database, key) for _ in range(8)]
    async with AsyncExitStack() as stack:
        async with anyio.create_task_group() as tg:
            for store in stores:
                tg.start_soon(stack.enter_async_context, store)
    connection = await asyncpg.connect(database)
    try:
        rows = await connection.fetch("SELECT version, applied_by FROM lash_schema ORDER BY version")
    finally:
        await connection.close()
    assert [row["version"] for row in rows] == [version for version, _ in MIGRATIONS]
    assert {row["applied_by"] for row in rows} <= {store.replica for store in stores}


async def test_a_replica_with_another_key_is_refused(database: str, key: bytes) -> None:
    async with PostgresStore(database, key):
        pass
    other = base64.urlsafe_b64encode(secrets.token_bytes(32))
    with pytest.raises(StoreError, match="LASH_GATEWAY_OAUTH_KEY"):
        async with PostgresStore(database, other):
            pass


async def test_a_store_that_cannot_be_reached_is_named_without_its_password() -> None:
    with pytest.raises(StoreError) as caught:
        async with PostgresStore("postgresql://gw:hunter2-secret@127.0.0.1:1/db"):
            pass
    assert "hunter2-secret" not in str(caught.value)
    assert "127.0.0.1:1" in str(caught.value)


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    prompt = params.messages[0].content
    text = prompt.text if isinstance(prompt, types.TextContent) else "?"
    return types.CreateMessageResult(
        role="assistant", content=types.TextContent(type="text", text=f"the client says {text}"), model="test"
    )


async def cancelled_upstream(client: GatewayClient) -> list[str]:
    result = await client.client.call_tool("docs__cancel_log", {})
    cancelled: list[str] = (result.structured_content or {})["cancelled"]
    return cancelled


async def test_one_session_goes_on_whichever_replica_each_request_lands_on(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    """Three replicas behind a round-robin balancer, a client whose every request opens a new connection: its session
    lives on one replica, and every request the others get is handed to that one: calls, progress, a sampling
    answer, cancellation, a resource subscription and its update, and `list_changed` after an attach elsewhere."""
    docs, extra = upstream(), upstream()
    async with AsyncExitStack() as stack:
        replicas, balancer = await stack.enter_async_context(cluster(database, key, {"docs": http_upstream(docs.url)}))
        client = await stack.enter_async_context(
            connect(balancer.url, "http-legacy", fresh_connections=True, sampling_callback=sample)
        )
        assert "docs__echo" in await client.tool_names()
        result = await client.client.call_tool("docs__echo", {"text": "anywhere"})
        assert text_of(result) == "anywhere"

        steps: list[float] = []

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            steps.append(progress)

        result = await client.client.call_tool(
            "docs__slow", {"seconds": 0.2, "steps": 4}, progress_callback=on_progress
        )
        assert text_of(result) == "slept 0.2s in 4 steps"
        assert steps == [0, 1, 2, 3, 4]

        result = await client.client.call_tool("docs__sample", {"prompt": "hi"})
        assert text_of(result) == "the client says hi"

        before = (await cancelled_upstream(client)).count("slow")
        with anyio.move_on_after(1.0):  # the client gives up on the call: it sends notifications/cancelled
            await client.client.call_tool("docs__slow", {"seconds": 60})

        async def cancelled() -> bool | None:
            return True if (await cancelled_upstream(client)).count("slow") > before else None

        await poll(cancelled, WAIT)

        # A resource subscription made through one replica, its update heard on the GET stream through another.
        counter = "test://upstream/counter"
        subscribe = types.SubscribeRequest(params=types.SubscribeRequestParams(uri=counter))
        await client.client.session.send_request(subscribe, types.EmptyResult)
        await client.client.call_tool("docs__bump", {})
        with anyio.fail_after(WAIT):
            await client.wait_notice(
                lambda n: isinstance(n, types.ResourceUpdatedNotification) and str(n.params.uri) == counter
            )

        await attach_elsewhere(client, replicas[2].base_url, "extra", extra.url)
        assert "extra__echo" in await client.tool_names()

        used = set(balancer.connections)
        assert used == {r.base_url.removeprefix("http://") for r in replicas}
        holders = [r for r in replicas if r.gateway.open_sessions()]
        assert len(holders) == 1, "the session lives on one replica only"


@asynccontextmanager
async def cluster(
    database: str, key: bytes, servers: dict[str, Any], count: int = 3
) -> AsyncIterator[tuple[list[InProcessGateway], Balancer]]:
    """`count` replicas that know each other, behind a round-robin balancer."""
    async with AsyncExitStack() as stack:
        replicas = [await stack.enter_async_context(replica(database, key, servers)) for _ in range(count)]
        ids = [r.gateway.replication.id for r in replicas]  # type: ignore[union-attr]

        async def known() -> bool | None:
            everyone = all(
                r.gateway.replication.address(other)  # type: ignore[union-attr]
                for r in replicas
                for other in ids
                if other != r.gateway.replication.id  # type: ignore[union-attr]
            )
            return True if everyone else None

        await poll(known, WAIT)
        yield replicas, await stack.enter_async_context(balancing([r.base_url for r in replicas]))


async def test_a_2026_client_is_served_by_any_replica_its_rounds_included(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    """Stateless requests spread over three replicas; an input-required round begun on one replica is answered on
    another (the key that signs rounds is the store's); the listen stream hears an attach made elsewhere."""
    docs, extra = upstream(), upstream()

    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"answer": "yes"})

    async with cluster(database, key, {"docs": http_upstream(docs.url)}) as (replicas, balancer):
        async with connect(balancer.url, "http-auto", fresh_connections=True, elicitation_callback=elicit) as client:
            for _ in range(3):  # three rounds and their retries: each lands where the balancer sends it
                assert text_of(await client.client.call_tool("docs__ask", {"message": "ok?"})) == "accept: yes"
            await attach_elsewhere(client, replicas[1].base_url, "extra", extra.url)

            async def everywhere() -> bool | None:  # each replica connects to it on its own
                lists = [await client.tool_names() for _ in replicas]  # spread over the replicas
                return True if all("extra__echo" in names for names in lists) else None

            await poll(everywhere, WAIT)
        assert set(balancer.connections) == {r.base_url.removeprefix("http://") for r in replicas}


async def test_a_session_whose_replica_stops_is_taken_over_and_goes_on(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    """The replica holding a session stops; the session's next request lands elsewhere, and that replica opens it
    again under its id: calls and lists go on in the same client session."""
    docs, extra = upstream(), upstream()
    servers = {"docs": http_upstream(docs.url)}
    stop, stopped = anyio.Event(), anyio.Event()

    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(replica(database, key, servers))
        second = await stack.enter_async_context(replica(database, key, servers))
        tg = await stack.enter_async_context(anyio.create_task_group())
        holder: InProcessGateway = await tg.start(partial(holding, database, key, servers, stop, stopped))
        # The balancer's first connection (the client's initialize) goes to the holder.
        balancer = await stack.enter_async_context(balancing([holder.base_url, first.base_url, second.base_url]))
        client = await stack.enter_async_context(connect(balancer.url, "http-legacy", fresh_connections=True))
        assert text_of(await client.client.call_tool("docs__echo", {"text": "before"})) == "before"
        assert holder.gateway.open_sessions() == 1

        stop.set()  # the holder stops (and leaves the cluster)
        with anyio.fail_after(WAIT):
            await stopped.wait()

        assert text_of(await client.client.call_tool("docs__echo", {"text": "after"})) == "after"
        assert first.gateway.open_sessions() + second.gateway.open_sessions() == 1, "taken over by one replica"
        # A notification sent while the client's GET stream is being opened again on the new holder is lost (the
        # gateway keeps no event store): the client is only sure to see the change by listing.
        await attach_elsewhere(client, first.base_url, "extra", extra.url, hear=False)


async def test_requests_that_race_the_take_over_of_their_session_wait_for_it(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    """Two requests of a session whose replica stopped reach another replica at once. The first opens the session
    again there; the second waits until it is open. (It used to find the session half open, and the SDK answered it
    "Invalid request parameters".) The re-opening's `initialize` is held while the second arrives. The taker has room
    for one session: the session's requests count as one new session, not one each."""
    servers = {"docs": http_upstream(upstream().url)}

    entered, release, waiting = anyio.Event(), anyio.Event(), anyio.Event()

    async def hold_initialize(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "initialize":
            entered.set()
            await release.wait()
        return await call_next(ctx)

    with _heard("lash_gateway.adopt", "waits while it is opened again here", waiting):
        async with AsyncExitStack() as stack:
            taker = await stack.enter_async_context(replica(database, key, servers, export={"max_sessions": 1}))
            session = await orphaned_session(stack, database, key, servers)
            taker.gateway.export.server.middleware.append(hold_initialize)
            there = RawSession(session.http, taker.mcp_url, session.headers)
            answers: dict[int, dict[str, Any]] = {}
            second_answered = anyio.Event()

            async def call(request_id: int) -> None:
                message = {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "method": "tools/call",
                    "params": {"name": "docs__echo", "arguments": {"text": f"call {request_id}"}},
                }
                answers[request_id] = reply_to(await there.post(message), request_id)
                if request_id == 3:
                    second_answered.set()

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as calls:
                    calls.start_soon(call, 2)  # after the session's initialize, 1
                    await entered.wait()  # the first is opening the session again
                    calls.start_soon(call, 3)
                    await _first_of(waiting, second_answered)
                    release.set()
            for request_id in (2, 3):
                assert answers[request_id].get("result", {}).get("content") == [
                    {"type": "text", "text": f"call {request_id}"}
                ], answers[request_id]


async def test_a_session_taken_over_counts_against_the_takers_session_limit(
    database: str, key: bytes, upstream: UpstreamFactory
) -> None:
    """A replica at `gateway.export.max_sessions` (here with a virtual server's session) does not take a gone
    replica's session over: 503, and the session is left to a replica with room. Once a place is free, it takes it.
    (Only the endpoint's own count was checked: the session was opened there, a second one.)"""
    servers = {"docs": http_upstream(upstream().url)}
    async with AsyncExitStack() as stack:
        taker = await stack.enter_async_context(replica(database, key, servers, export={"max_sessions": 1}))
        roomy = await stack.enter_async_context(replica(database, key, servers))
        async with admin(taker.base_url) as api:
            team = {"servers": ["*"], "tokens": [VS_TOKEN]}
            assert (await api.put("/admin/virtual-servers/team", json=team)).status_code == 201
        first = await orphaned_session(stack, database, key, servers)
        second = await orphaned_session(stack, database, key, servers)
        async with raw_session(taker.mcp_url, headers={"Authorization": f"Bearer {VS_TOKEN}"}):  # the one place
            for taken in (first, second):
                refused = await RawSession(taken.http, taker.mcp_url, taken.headers).post(ECHO)
                assert refused.status_code == 503, refused.text
                assert "gateway.export.max_sessions" in refused.json()["error"]["message"]
            ids = {taken.headers["Mcp-Session-Id"] for taken in (first, second)}
            assert taker.gateway.open_sessions() == 1 and not ids & set(taker.gateway.held_sessions())  # unclaimed
            elsewhere = await RawSession(first.http, roomy.mcp_url, first.headers).post(ECHO)  # a replica with room
            assert reply_to(elsewhere, 2)["result"]["isError"] is False
            assert roomy.gateway.open_sessions() == 1
        # A place is free on the taker: it takes the other session over, under its own id.
        assert reply_to(await RawSession(second.http, taker.mcp_url, second.headers).post(ECHO), 2)["result"]
        assert taker.gateway.open_sessions() == 1


async def test_the_place_a_session_taken_over_needs_is_held_from_its_claim_on(
    database: str, key: bytes, upstream: UpstreamFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Claiming a gone replica's session is a round trip to the store: a new session that comes meanwhile cannot take
    the place the session needs (before, the claim was made and its request then refused, and the session stayed
    claimed by a replica that could not serve it). A DELETE of a gone replica's session needs no place."""
    servers = {"docs": http_upstream(upstream().url)}
    claiming, go = anyio.Event(), anyio.Event()
    claim = PostgresStore.claim_session

    async def slow_claim(self: PostgresStore, session: str, holder: str) -> bytes | None:
        claiming.set()
        await go.wait()
        return await claim(self, session, holder)

    async with AsyncExitStack() as stack:
        taker = await stack.enter_async_context(replica(database, key, servers, export={"max_sessions": 1}))
        taken = await orphaned_session(stack, database, key, servers)
        ended = await orphaned_session(stack, database, key, servers)
        monkeypatch.setattr(PostgresStore, "claim_session", slow_claim)
        answers: list[httpx2.Response] = []

        async def call() -> None:
            answers.append(await RawSession(taken.http, taker.mcp_url, taken.headers).post(ECHO))

        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg, httpx2.AsyncClient(timeout=WAIT) as http:
                tg.start_soon(call)
                await claiming.wait()
                newcomer = await http.post(taker.mcp_url, json=initialize_body(), headers=MCP_HEADERS)
                assert newcomer.status_code == 503, newcomer.text
                go.set()
        assert reply_to(answers[0], 2)["result"]["isError"] is False
        assert taker.gateway.open_sessions() == 1  # the session taken over
        deleted = await ended.http.delete(taker.mcp_url, headers=ended.headers)  # at the limit, yet not refused
        assert deleted.status_code == 404, deleted.text  # claimed and ended: the session is gone
        assert ended.headers["Mcp-Session-Id"] not in taker.gateway.held_sessions()


async def test_a_session_whose_reopening_failed_is_kept_and_reopened_by_no_request_without_a_place(
    database: str, key: bytes, upstream: UpstreamFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Opening a taken-over session again fails once (as a virtual server's own limit or an error would make it):
    the claim stays (the store keeps it too), and only a request counted as a new session opens it again. A request
    that waited for the failed one, a 2026-07-28 request with the session's id, and a DELETE do not; the DELETE ends
    the claim."""
    reopen, reopened = _adopt._reopen, 0
    first_in, first_go, waiting = anyio.Event(), anyio.Event(), anyio.Event()

    async def failing_once(*args: Any) -> bool:
        nonlocal reopened
        reopened += 1
        if reopened == 1:
            first_in.set()
            await first_go.wait()
            return False
        return await reopen(*args)

    monkeypatch.setattr(_adopt, "_reopen", failing_once)
    servers = {"docs": http_upstream(upstream().url)}
    with _heard("lash_gateway.adopt", "waits while it is opened again here", waiting):
        async with AsyncExitStack() as stack:
            taker = await stack.enter_async_context(replica(database, key, servers))
            taken = await orphaned_session(stack, database, key, servers)
            there = RawSession(taken.http, taker.mcp_url, taken.headers)
            session = taken.headers["Mcp-Session-Id"]
            statuses: dict[int, int] = {}

            async def call(request_id: int, headers: dict[str, str] | None = None) -> None:
                statuses[request_id] = (await there.post({**ECHO, "id": request_id}, headers)).status_code

            with anyio.fail_after(WAIT):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(call, 2)
                    await first_in.wait()
                    tg.start_soon(call, 3)
                    await waiting.wait()  # the second waits for the first
                    first_go.set()
            assert statuses == {2: 404, 3: 404} and reopened == 1  # the waiter did not open it with no place
            replication = taker.gateway.replication
            assert replication is not None and session in taker.gateway.held_sessions()
            await replication.store.prune_sessions(taker.gateway.held_sessions(), 1800.0, grace=0.0)
            assert await replication.store.session_holder(session) == replication.id  # the store keeps the claim
            await call(4, {"MCP-Protocol-Version": "2026-07-28"})
            assert reopened == 1
            assert (await taken.http.delete(taker.mcp_url, headers=taken.headers)).status_code == 404
            assert reopened == 1 and session not in taker.gateway.held_sessions()


@contextmanager
def _heard(logger: str, words: str, event: anyio.Event) -> Iterator[None]:
    """Set `event` when `logger` logs (at DEBUG too) a line with `words` in it."""

    class Hearing(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if words in record.getMessage():
                event.set()

    listened, handler = logging.getLogger(logger), Hearing(logging.DEBUG)
    level, listened.level = listened.level, logging.DEBUG
    listened.addHandler(handler)
    try:
        yield
    finally:
        listened.removeHandler(handler)
        listened.level = level


async def _first_of(*events: anyio.Event) -> None:
    """Return once any of `events` is set (bound it with `anyio.fail_after`)."""
    async with anyio.create_task_group() as tg:
        for event in events:

            async def wait(event: anyio.Event = event) -> None:
                await event.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(wait)


@asynccontextmanager
async def replica_processes(
    database: str, key: bytes, servers: dict[str, Any], root: Path, count: int = 3
) -> AsyncIterator[list[GatewayProcess]]:
    """`count` `lash-gateway serve` processes on the test's database, each with its own state directory, yielded
    once each has connected `servers` and knows every other."""
    config = write_config(root / "gateway.json", servers, {"admin": {"deny_networks": []}})
    env = child_env(
        {
            "LASH_GATEWAY_STORE": database,
            "LASH_GATEWAY_OAUTH_KEY": key.decode(),
            "LASH_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    processes: list[GatewayProcess] = []
    try:
        for index in range(count):
            state = root / f"replica-{index}"
            start = partial(GatewayProcess, config, state_dir=state, env=env)
            processes.append(await anyio.to_thread.run_sync(start))
        for process in processes:
            await anyio.to_thread.run_sync(process.wait_connected, list(servers))

        async def all_alive() -> bool | None:
            async with admin(processes[0].base_url) as api:
                replicas = (await api.get("/admin/servers")).json()["replicas"]
            return True if sum(r["alive"] for r in replicas) == count else None

        await poll(all_alive, WAIT)
        yield processes
    finally:
        for process in processes:
            await anyio.to_thread.run_sync(process.stop)


async def test_a_replica_killed_or_stopped_mid_session_and_the_session_going_on(
    database: str, key: bytes, upstream: UpstreamFactory, tmp_path: Path
) -> None:
    """Real replica processes behind a round-robin balancer. The session's replica is killed (SIGKILL) during a call:
    the call ends with an error, nothing hangs, and the session goes on on another replica. That one then gets
    SIGTERM during a short call: the call finishes (the drain), and the session goes on on the last replica."""
    docs, extra = upstream(), upstream()
    async with replica_processes(database, key, {"docs": http_upstream(docs.url)}, tmp_path) as processes:
        async with balancing([p.base_url for p in processes]) as balancer:
            async with connect(balancer.url, "http-legacy", fresh_connections=True) as client:
                assert text_of(await client.client.call_tool("docs__echo", {"text": "one"})) == "one"
                killed = await _holder(database, processes)
                running = anyio.Event()

                async def started(progress: float, total: float | None, message: str | None) -> None:
                    running.set()

                async def long_call() -> None:
                    with pytest.raises(Exception):  # noqa: B017 (which error a cut call gets is the client's to say)
                        await client.client.call_tool("docs__slow", {"seconds": 60}, progress_callback=started)

                with anyio.fail_after(WAIT):
                    async with anyio.create_task_group() as tg:
                        tg.start_soon(long_call)
                        await running.wait()
                        killed.process.kill()
                await anyio.to_thread.run_sync(killed.process.wait)

                assert text_of(await client.client.call_tool("docs__echo", {"text": "two"})) == "two"
                survivors = [p for p in processes if p is not killed]
                holder = await _holder(database, survivors)

                with anyio.fail_after(WAIT):  # SIGTERM during a short call: the drain lets it finish
                    async with anyio.create_task_group() as tg:
                        results: list[str] = []

                        async def short_call() -> None:
                            result = await client.client.call_tool(
                                "docs__slow", {"seconds": 1, "steps": 2}, progress_callback=started
                            )
                            results.append(text_of(result))

                        running = anyio.Event()
                        tg.start_soon(short_call)
                        await running.wait()
                        holder.process.terminate()
                assert results == ["slept 1s in 2 steps"]
                # It left the cluster as its drain began: the session is taken over at once, with no error.
                assert text_of(await client.client.call_tool("docs__echo", {"text": "three"})) == "three"
                await anyio.to_thread.run_sync(holder.process.wait)
                last = next(p for p in survivors if p is not holder)
                await attach_elsewhere(client, last.base_url, "extra", extra.url, hear=False)


def _replica_of(process: GatewayProcess) -> str:
    """The replica id a `serve` process printed in its banner."""
    line = next(line for line in process.stdout_text().splitlines() if "(replica " in line)
    return line.rsplit("(replica ", 1)[1].rstrip(")")


async def _holder(database: str, processes: list[GatewayProcess]) -> GatewayProcess:
    """The process that holds the test's one session now, by the store's record (written in the background: polled)."""

    async def recorded() -> str | None:
        connection = await asyncpg.connect(database)
        try:
            holder: str | None = await connection.fetchval("SELECT replica FROM lash_sessions")
            return holder
        finally:
            await connection.close()

    replica = await poll(recorded, WAIT)
    return next(p for p in processes if _replica_of(p) == replica)


async def test_the_store_forgets_sessions_that_ended_and_those_of_replicas_gone(database: str, key: bytes) -> None:
    async with PostgresStore(database, key) as here, PostgresStore(database, key) as gone:
        await here.heartbeat(None, [])
        for session in ("here-kept", "here-ended"):
            await here.remember_session(session, b"{}")
        await gone.remember_session("gone-old", b"{}")  # `gone` never beat: it is not among the replicas

        await here.prune_sessions(["here-kept"], idle=0.0, grace=0.0)

        assert await here.session_holder("here-kept") == here.replica
        assert await here.session_holder("here-ended") is None
        assert await here.session_holder("gone-old") is None
        assert await here.claim_session("gone-old", gone.replica) is None


async def test_oauth_records_and_the_audit_log_live_in_the_shared_store(database: str, key: bytes) -> None:
    """What one replica writes another reads: an upstream's OAuth record (sealed: not readable in the table) and the
    audit log, filtered and newest first as the admin API asks for it."""
    record = {"tokens": {"access_token": "at-secret-123", "refresh_token": "rt-secret-456"}, "url": "https://x"}
    entries = [
        AuditEntry(
            1000.0 + i, "team" if i % 2 else None, "t1", "s", f"tool{i % 3}", "echo", "docs", "ok", 1.5, 2, 3, None
        )
        for i in range(6)
    ]
    async with PostgresStore(database, key) as writer, PostgresStore(database, key) as reader:
        await writer.save_oauth("docs", record)
        await writer.write_audit(entries, prune_before=1001.5)  # the two oldest are pruned in the same transaction
        assert await reader.load_oauth("docs") == record
        connection = await asyncpg.connect(database)
        try:
            sealed = await connection.fetchval("SELECT record FROM lash_oauth")
        finally:
            await connection.close()
        assert b"at-secret-123" not in sealed and b"rt-secret-456" not in sealed
        newest = await reader.read_audit(AuditQuery(limit=10))
        assert [e.time for e in newest] == [1005.0, 1004.0, 1003.0, 1002.0]
        assert [e.time for e in await reader.read_audit(AuditQuery(virtual_server="team", since=1002.5))] == [
            1005.0,
            1003.0,
        ]
        await reader.drop_oauth("docs")
        assert await writer.load_oauth("docs") is None


async def test_a_session_is_claimed_only_from_a_replica_whose_heartbeat_is_stale(database: str, key: bytes) -> None:
    """A refused connection alone does not move a session: one session must not live on two replicas. The old holder
    learns that its session went elsewhere (and closes it: `Replication._fence`)."""
    async with PostgresStore(database, key) as holder, PostgresStore(database, key) as other:
        await holder.heartbeat("http://holder", [])
        await holder.remember_session("s1", b'{"opening": 1}')
        assert await other.claim_session("s1", holder.replica) is None, "the holder beats: it keeps the session"
        assert await holder.sessions_elsewhere(["s1"]) == []
        connection = await asyncpg.connect(database)
        try:  # its heartbeat goes stale (as after a SIGKILL, or a loop stalled for longer than DEAD_AFTER)
            await connection.execute("UPDATE lash_replicas SET heartbeat_at = heartbeat_at - 60")
        finally:
            await connection.close()
        assert await other.claim_session("s1", holder.replica) == b'{"opening": 1}'
        assert await other.claim_session("s1", holder.replica) is None, "claimed once"
        assert await holder.session_holder("s1") == other.replica
        assert await holder.sessions_elsewhere(["s1"]) == ["s1"]


@pytest.mark.parametrize(
    "store", ["postgresql+asyncpg://lash:S3cretPW@db/lash", "host=db user=lash password=S3cretPW dbname=lash"]
)
def test_a_store_that_is_no_url_the_gateway_reads_is_refused_without_its_password(store: str, tmp_path: Path) -> None:
    """Not taken for a SQLite file path (the replica would run alone, and print the password as the store's name)."""
    done = subprocess.run(
        [*GATEWAY_COMMAND, "serve", "--port", "0", "--state-dir", str(tmp_path), "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
        env=child_env(),
    )
    assert done.returncode == 2
    assert "neither a file path nor a postgresql:// URL" in done.stderr
    assert "S3cretPW" not in done.stdout + done.stderr
