"""Replica benchmarks: what sharing a PostgreSQL store costs, on real processes.

`python -m bench.bench_replicas` starts a PostgreSQL server (`tests.postgres`), three `lash-gateway serve` replicas
on it, each with its own stdio upstream (`tests.servers.upstream`), and prints one table:

- **a request served by another replica than the session's**: `tools/call` POSTs of one session sent to the replica
  that holds it and to one that hands them over, alternating (the same raw HTTP client for both, so the difference
  is the hand-over);
- **attach to visible everywhere**: an HTTP upstream attached through one replica's admin API, timed until the other
  two replicas have it connected (the store's notification, the replica applying it, and its connection);
- **throughput with one and with three replicas**: sessions spread by a round-robin balancer over three replicas,
  against as many sessions on one replica, the same calls in flight. On a 2-core machine three replicas, their
  upstreams and the client share two cores: this shows what replicas cost there, not what they gain on more cores.
"""

from __future__ import annotations

import base64
import json
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from pathlib import Path
from typing import Final

import anyio
import httpx2
from mcp import Client

from bench import _report
from bench.bench_gateway import calls_per_second, connect, percentile, stdio_upstream
from tests.integration._balancer import balancing
from tests.integration._gateway import MCP_HEADERS, admin_client, initialize_body
from tests.postgres import PostgresServer
from tests.servers.launch import GatewayProcess, UpstreamProcess, child_env, write_config

REPLICAS: Final = 3
ADMIN_TOKEN: Final = "bench-admin-token"
KEY: Final = base64.urlsafe_b64encode(b"bench-replicas-fernet-key-32byte").decode()
"""The Fernet key every replica shares (32 bytes, urlsafe base64): any fixed one will do for a benchmark."""
HANDOVER_WARMUP: Final = 50
HANDOVER_CALLS: Final = 500
ATTACHES: Final = 20
SESSIONS: Final = 6
IN_FLIGHT: Final = 12
THROUGHPUT_CALLS: Final = 360
THROUGHPUT_ROUNDS: Final = 3


def start_replicas(store: str, workdir: Path) -> list[GatewayProcess]:
    config = write_config(workdir / "replica.json", {"up": stdio_upstream()}, {"admin": {"deny_networks": []}})
    env = child_env(
        {"LASH_GATEWAY_STORE": store, "LASH_GATEWAY_OAUTH_KEY": KEY, "LASH_GATEWAY_ADMIN_TOKEN": ADMIN_TOKEN}
    )
    replicas: list[GatewayProcess] = []
    try:
        for index in range(REPLICAS):
            replicas.append(GatewayProcess(config, state_dir=workdir / f"replica-{index}", env=env))
        for replica in replicas:
            replica.wait_connected(["up"], 60)
    except BaseException:
        for replica in replicas:
            replica.stop()
        raise
    return replicas


def admin(base_url: str) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
    return admin_client(base_url, ADMIN_TOKEN)


async def wait_all_alive(replicas: Sequence[GatewayProcess]) -> None:
    async with admin(replicas[0].base_url) as api:
        while sum(r["alive"] for r in (await api.get("/admin/servers")).json()["replicas"]) < len(replicas):  # noqa: ASYNC110
            await anyio.sleep(0.05)  # the heartbeats come every second; nothing announces them


async def open_session(http: httpx2.AsyncClient, url: str) -> str:
    """A handshake-era session opened on the replica at `url`; its id."""
    reply = await http.post(url, json=initialize_body(), headers=MCP_HEADERS)
    reply.raise_for_status()
    session = reply.headers["mcp-session-id"]
    headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
    await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    return session


async def handover_figures(replicas: Sequence[GatewayProcess]) -> list[tuple[str, float, float, str]]:
    """p50 and p99 of a call sent to the session's replica and of one sent to another replica, alternating."""
    async with httpx2.AsyncClient(timeout=30.0) as http:
        holder, other = f"{replicas[0].base_url}/mcp", f"{replicas[1].base_url}/mcp"
        session = await open_session(http, holder)
        headers = {**MCP_HEADERS, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "up__echo", "arguments": {"text": "hi"}},
            }
        )

        async def timed(url: str) -> int:
            start = time.perf_counter_ns()
            reply = await http.post(url, content=body, headers=headers)
            elapsed = time.perf_counter_ns() - start
            if reply.status_code != 200 or "hi" not in reply.text:
                raise RuntimeError(f"a call failed: {reply.status_code} {reply.text[:200]}")
            return elapsed

        for _ in range(HANDOVER_WARMUP):
            await timed(holder)
            await timed(other)
        direct, handed = [], []
        for _ in range(HANDOVER_CALLS):
            direct.append(await timed(holder))
            handed.append(await timed(other))
    return [
        ("call through another replica, p50", statistics.median(handed), statistics.median(direct), "ns"),
        ("call through another replica, p99", percentile(handed, 0.99), percentile(direct, 0.99), "ns"),
    ]


async def attach_figures(replicas: Sequence[GatewayProcess], upstream: UpstreamProcess) -> list[float]:
    """Nanoseconds from an attach's answer on the first replica until both others have the server connected."""
    times: list[float] = []
    async with AsyncExitStack() as stack:
        apis = [await stack.enter_async_context(admin(r.base_url)) for r in replicas]
        for index in range(ATTACHES):
            name = f"extra{index}"
            reply = await apis[0].put(
                f"/admin/servers/{name}", json={"transport": "streamable_http", "url": upstream.url}
            )
            reply.raise_for_status()
            answered = time.perf_counter_ns()
            pending = set(range(1, len(apis)))
            while pending:
                for other in list(pending):
                    status = await apis[other].get(f"/admin/servers/{name}")
                    if status.status_code == 200 and status.json().get("connected"):
                        pending.discard(other)
            times.append(time.perf_counter_ns() - answered)
        for index in range(ATTACHES):  # the throughput figures run on the replicas as they were
            (await apis[0].delete(f"/admin/servers/extra{index}")).raise_for_status()
    return times


async def throughput(urls: Sequence[str]) -> float:
    """Calls per second of `SESSIONS` sessions opened through `urls` in turn, `IN_FLIGHT` calls outstanding."""
    async with AsyncExitStack() as stack:
        clients: list[Client] = [
            await stack.enter_async_context(connect(f"{urls[i % len(urls)]}/mcp")) for i in range(SESSIONS)
        ]
        name = "up__echo"
        await calls_per_second(clients, name, IN_FLIGHT, 4 * IN_FLIGHT)
        return await calls_per_second(clients, name, IN_FLIGHT, THROUGHPUT_CALLS)


async def run(workdir: Path) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    with PostgresServer() as postgres:
        replicas = await anyio.to_thread.run_sync(start_replicas, postgres.url, workdir)
        upstream = await anyio.to_thread.run_sync(UpstreamProcess, "streamable_http")
        try:
            await wait_all_alive(replicas)
            for name, value, baseline, _ in await handover_figures(replicas):
                rows.append(
                    (
                        name,
                        _report.duration(value),
                        _report.duration(baseline),
                        f"+{_report.duration(value - baseline)}",
                    )
                )
            attaches = await attach_figures(replicas, upstream)
            for label, q in (("p50", 0.5), ("p99", 0.99)):
                value = statistics.median(attaches) if q == 0.5 else percentile([int(t) for t in attaches], q)
                rows.append((f"attach to visible on 2 other replicas, {label}", _report.duration(value), "-", "-"))
            async with balancing([r.base_url for r in replicas]) as balancer:
                one, three = [], []
                for _ in range(THROUGHPUT_ROUNDS):
                    one.append(await throughput([replicas[0].base_url]))
                    three.append(await throughput([balancer.url]))
            single, spread = statistics.median(one), statistics.median(three)
            rows.append(
                (
                    "throughput, 3 replicas behind a balancer",
                    f"{spread:,.0f} calls/s",
                    f"{single:,.0f} calls/s",
                    f"{spread / single:.2f}x",
                )
            )
        finally:
            for replica in replicas:
                await anyio.to_thread.run_sync(replica.stop)
            await anyio.to_thread.run_sync(upstream.stop)
    return rows


NOTES: Final = f"""\
notes:
  another replica: {HANDOVER_CALLS} echo calls of one session to its replica (baseline) and to another replica that
    hands them over, alternating, one raw HTTP client.
  attach: {ATTACHES} attaches of an HTTP upstream through one replica's admin API, until both others show it
    connected (polled as fast as their admin API answers); includes each replica's own connect.
  throughput: {SESSIONS} sessions, {IN_FLIGHT} calls in flight, median of {THROUGHPUT_ROUNDS} rounds; baseline: the same
    on one replica. 3 replicas, 3 stdio upstreams, PostgreSQL and the client share this machine's {{cores}} cores:
    more replicas add processes here, not cores."""


def main() -> None:
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="lash-bench-replicas-") as workdir:
        rows = anyio.run(run, Path(workdir))
    print("lash gateway replicas on one PostgreSQL store, measured in the same run")
    print(_report.table(("figure", "value", "baseline", "difference"), rows, right=(1, 2, 3)))
    print(NOTES.format(cores=os.cpu_count()))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
