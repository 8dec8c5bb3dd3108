"""Gateway benchmarks: what a tool call costs through `lash-gateway serve`, against the upstream called directly.

`python -m bench.bench_gateway` starts real processes and prints one table:

- the gateway: `lash-gateway serve --port 0` with one stdio upstream (`tests.servers.upstream`), reached over
  streamable HTTP;
- the baseline: the same upstream server run over streamable HTTP and called directly.

One client process talks to both with the official SDK client (`mode="legacy"`); gateway and direct samples are
taken alternately (calls for latency, rounds for throughput), so drift and load hit both alike. The tools/list
figures run two more gateways at the end: 50 stdio servers of 20 tools each, and 1 server of 1,000 tools (the same
surface size, so the only difference is the number of servers).
"""

from __future__ import annotations

import gc
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import AsyncExitStack, ExitStack, asynccontextmanager, closing, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Final, Literal
from urllib.parse import urlsplit

import anyio
import httpx2
import mcp_types as types
from mcp import Client
from mcp.client.context import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from bench import _report
from tests.servers.launch import GatewayProcess, UpstreamProcess, write_config

ROOT: Final = Path(__file__).resolve().parents[1]
STARTUP_TIMEOUT: Final = 30.0
MANY_STARTUP_TIMEOUT: Final = 150.0

LATENCY_WARMUP: Final = 50
LATENCY_CALLS: Final = 500
SLOWEST_CALLS: Final = 4000
"""Sequential calls whose slowest is shown: enough for a full garbage collection of the process to fall among them."""
IN_FLIGHT: Final = 16
SESSIONS: Final = 4
THROUGHPUT_CALLS: Final = 640
THROUGHPUT_ROUNDS: Final = 5
"""Rounds of a second or so each: with 3 of half a second, an ideal forwarder's ratio to the same direct server ranged
0.89-1.15x between runs on 4 sessions (2026-12-04), which no target can be read against."""
BIG_BYTES: Final = 1_048_576
BIG_WARMUP: Final = 3
BIG_CALLS: Final = 15
CPU_CALLS: Final = 400
RAW_CALLS: Final = 2000
RAW_RATE_ROUNDS: Final = 3
RAW_RATE_SECONDS: Final = 3.0
LIST_SERVERS: Final = 50
LIST_TOOLS_PER_SERVER: Final = 20
LIST_WARMUP: Final = 5
LIST_CALLS: Final = 30

ADDED_P50_TARGET_NS: Final = 300_000
"""A call through the gateway may take at most 0.3 ms longer (p50) than the same call made directly."""
THROUGHPUT_TARGET_RATIO: Final = 1.0
"""Calls per second through the gateway at least those of the direct server."""
CPU_TARGET_NS: Final = 600_000
"""CPU time of the gateway process (its upstream's excluded) per call: under 600 µs."""
VIRTUAL_TARGET_RATIO: Final = 1.05
"""A call through a virtual server (overrides, limits, its token) within 5% of the plain endpoint's (p50, and
throughput the other way round)."""
VIRTUAL_TOKEN: Final = "bench-virtual-token"
VIRTUAL_CALLS: Final = 1000
VIRTUAL_ROUNDS: Final = 6
VIRTUAL_SERVER: Final = {
    "servers": ["up"],
    "overrides": {"up__echo": {"name": "say", "description": "Say it back.", "title": "Say"}},
    "tokens": [VIRTUAL_TOKEN],
    "limits": {
        "calls_per_minute": 10_000_000 // 10,
        "concurrent_calls": 10_000,
        "per_token": {"calls_per_minute": 1_000_000, "concurrent_calls": 10_000},
    },
}
"""Limits far above what the benchmark calls: every call is counted against them, none is refused."""
READ_TARGET_RATIO: Final = 1.2
"""A 1 MiB resources/read through the gateway may take at most this factor of the direct read (median)."""
LIST_INDEPENDENCE_RATIO: Final = 1.25
"""tools/list over 50 servers may take this factor longer than over 1 server with as many tools (timer noise)."""

ECHO_ARGS: Final = {"text": "hello"}
CLOCK_TICK_NS: Final = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
LOADS: list[float] = []
"""1-minute load averages: at start, and before the tools/list part starts its 51 upstreams."""


# -- processes -------------------------------------------------------------------------------------------------


def stdio_upstream(*behaviours: str, allow: Sequence[str] = (), startup_timeout: float = 10.0) -> dict[str, Any]:
    """An `mcpServers` entry running `tests.servers.upstream` over stdio."""
    args = ["-m", "tests.servers.upstream", "--transport", "stdio"]
    for behaviour in behaviours:
        args += ["--behaviour", behaviour]
    entry: dict[str, Any] = {
        "command": sys.executable,
        "args": args,
        "cwd": str(ROOT),
        "startup_timeout": startup_timeout,
    }
    if allow:
        entry["tools"] = {"allow": list(allow)}
    return entry


def start_gateway(
    servers: Mapping[str, Mapping[str, Any]],
    workdir: Path,
    label: str,
    timeout: float,
    settings: Mapping[str, Any] | None = None,
) -> GatewayProcess:
    """`lash-gateway serve --port 0` with `servers` configured (and the gateway section `settings`), returned once
    every one of them is connected. Its config file and state directory are in `workdir`, named after `label`.

    Raises:
        GatewayStartError: the gateway exited at startup (a refused config key, for one); its stderr in the message.
    """
    config = write_config(workdir / f"{label}.json", servers, {"host": "127.0.0.1", **(settings or {})})
    process = GatewayProcess(config, state_dir=workdir / f"{label}-state", startup_timeout=timeout)
    try:
        process.wait_connected(list(servers), timeout)
    except BaseException:
        process.stop()
        raise
    return process


def children_of(pid: int) -> list[int]:
    """Pids whose parent is `pid`: a gateway's stdio upstreams."""
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and _stat_fields(int(name))[1:2] == [str(pid)]]


def _stat_fields(pid: int) -> list[str]:
    """/proc/<pid>/stat from the state field on ([state, ppid, ...]); empty if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return []
    return raw[raw.rindex(b")") + 2 :].decode().split()


def cpu_ns(pid: int) -> int:
    """utime + stime of one process (all its threads, not its children), in nanoseconds."""
    fields = _stat_fields(pid)
    return (int(fields[11]) + int(fields[12])) * CLOCK_TICK_NS  # fields 14 and 15 of proc(5)


# -- clients ---------------------------------------------------------------------------------------------------


@asynccontextmanager
async def connect(
    url: str, mode: Literal["legacy", "auto"] = "legacy", *, asks: bool = False, token: str | None = None
) -> AsyncIterator[Client]:
    """An SDK client over streamable HTTP (`mode="auto"`: 2026-07-28), its tools listed (so calls make no hidden
    tools/list). `asks`: it declares elicitation, as clients that show forms do (so a call may be asked a question).
    `token`: it presents this bearer token."""
    options: dict[str, Any] = {"elicitation_callback": _decline} if asks else {}
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=120), headers=headers) as http:
        transport = streamable_http_client(url, http_client=http, max_sse_event_size=None)
        async with Client(transport, mode=mode, read_timeout_seconds=120, cache=None, **options) as client:
            await client.list_tools(cache_mode="bypass")
            yield client


async def _decline(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
    return types.ElicitResult(action="decline")


async def tool_name(client: Client, suffix: str) -> str:
    """The exported name of an upstream tool (`<server>__echo` through the gateway, `echo` directly)."""
    names = [tool.name for tool in (await client.list_tools(cache_mode="bypass")).tools]
    matches = [name for name in names if name == suffix or name.endswith(f"__{suffix}")]
    if len(matches) != 1:
        raise RuntimeError(f"expected one tool named like {suffix!r}, got {matches} of {names}")
    return matches[0]


async def call(client: Client, name: str, args: Mapping[str, Any]) -> None:
    result = await client.call_tool(name, dict(args))
    if result.is_error:
        raise RuntimeError(f"{name} failed: {result.content}")


@dataclass(frozen=True, slots=True)
class Target:
    """One side of a comparison: a connected client and the tool names it calls."""

    client: Client
    echo: str
    big: str


async def timed(fn: Callable[[], Awaitable[object]]) -> int:
    start = time.perf_counter_ns()
    await fn()
    return time.perf_counter_ns() - start


async def paired_latencies(
    gateway: Callable[[], Awaitable[object]], direct: Callable[[], Awaitable[object]], *, warmup: int, calls: int
) -> tuple[list[int], list[int]]:
    """Nanoseconds per call of each, calls alternating so that drift and load hit both alike."""
    for _ in range(warmup):
        await gateway()
        await direct()
    through, straight = [], []
    for _ in range(calls):
        through.append(await timed(gateway))
        straight.append(await timed(direct))
    return through, straight


async def calls_per_second(clients: Sequence[Client], name: str, in_flight: int, total: int) -> float:
    """Throughput with `in_flight` calls outstanding at all times, spread evenly over `clients`."""
    per_worker = total // in_flight

    async def worker(client: Client) -> None:
        for _ in range(per_worker):
            await call(client, name, ECHO_ARGS)

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for index in range(in_flight):
            tg.start_soon(worker, clients[index % len(clients)])
    return per_worker * in_flight / (time.perf_counter() - start)


def percentile(values: Sequence[int], q: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))])


# -- the figures -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    value: float
    baseline: float
    baseline_is: str
    unit: str
    """"ns" (smaller is better) or "/s" (larger is better)."""
    target: str
    passed: bool | None
    """None: informational, no target."""

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> str:
        return _report.verdict_of(self.passed)

    def show(self, value: float) -> str:
        return f"{value:,.0f} calls/s" if self.unit == "/s" else duration(value)


def duration(ns: float) -> str:
    """Figures here are hundreds of µs and more: whole microseconds are enough."""
    return _report.duration(ns, us_decimals=0)


def difference(ns: float) -> str:
    """A `duration` that may be negative (the gateway side faster)."""
    return duration(ns) if ns >= 0 else "-" + duration(-ns)


async def paired_echo_calls(
    first: Target, second: Target, *, warmup: int = LATENCY_WARMUP, calls: int = LATENCY_CALLS
) -> tuple[list[int], list[int]]:
    return await paired_latencies(
        lambda: call(first.client, first.echo, ECHO_ARGS),
        lambda: call(second.client, second.echo, ECHO_ARGS),
        warmup=warmup,
        calls=calls,
    )


async def latency_figures(gateway: Target, direct: Target, label: str = "") -> list[Figure]:
    through, straight = await paired_echo_calls(gateway, direct)
    p50, base50 = statistics.median(through), statistics.median(straight)
    p99, base99 = percentile(through, 0.99), percentile(straight, 0.99)
    added, added99 = p50 - base50, p99 - base99
    return [
        Figure(
            f"{label}echo call, p50 (added {difference(added)})",
            p50,
            base50,
            "direct HTTP call",
            "ns",
            f"added <= {duration(ADDED_P50_TARGET_NS)}",
            added <= ADDED_P50_TARGET_NS,
        ),
        Figure(
            f"{label}echo call, p99 (added {difference(added99)})",
            p99,
            base99,
            "direct HTTP call",
            "ns",
            "-",
            None,
        ),
    ]


async def slowest_figure(gateway: Target, direct: Target) -> Figure:
    """The slowest of many sequential calls, each side's: a pause of the whole process (a full garbage collection)
    shows here, where a p99 of a few hundred calls misses it."""
    through, straight = await paired_echo_calls(gateway, direct, warmup=0, calls=SLOWEST_CALLS)
    return Figure(
        f"echo call, slowest of {SLOWEST_CALLS:,}", max(through), max(straight), "direct HTTP call", "ns", "-", None
    )


async def throughput_figures(
    gateway: list[Target], direct: list[Target], label: str = "", pids: tuple[int, int, int] | None = None
) -> list[Figure]:
    """Calls per second with `IN_FLIGHT` outstanding, through the gateway and direct, on one session and on
    `SESSIONS`. With `pids` (the gateway's, its upstream's, the direct server's), each layout also gets its ceiling
    (`ceiling_figure`)."""
    figures = []
    for sessions in (1, SESSIONS):
        through: list[float] = []
        straight: list[float] = []
        spent: tuple[list[Spent], list[Spent]] = ([], [])
        sides = [
            ([t.client for t in gateway[:sessions]], gateway[0].echo, through, (pids[:2] if pids else ()), spent[0]),
            ([t.client for t in direct[:sessions]], direct[0].echo, straight, (pids[2:] if pids else ()), spent[1]),
        ]
        for _ in range(THROUGHPUT_ROUNDS):
            for clients, name, results, servers, costs in sides:
                await calls_per_second(clients, name, IN_FLIGHT, 4 * IN_FLIGHT)  # warm this layout's connections
                before = Spent.now(servers)
                results.append(await calls_per_second(clients, name, IN_FLIGHT, THROUGHPUT_CALLS))
                costs.append(Spent.now(servers).since(before, THROUGHPUT_CALLS // IN_FLIGHT * IN_FLIGHT, results[-1]))
        value, baseline = statistics.median(through), statistics.median(straight)
        where = "1 session" if sessions == 1 else f"{sessions} sessions"
        figures.append(
            Figure(
                f"{label}throughput, {IN_FLIGHT} in flight on {where}",
                value,
                baseline,
                "direct, same layout",
                "/s",
                f"ratio >= {THROUGHPUT_TARGET_RATIO:.1f}",
                value / baseline >= THROUGHPUT_TARGET_RATIO,
            )
        )
        if pids:
            figures.append(
                ceiling_figure(f"{label}throughput ceiling, {IN_FLIGHT} in flight on {where}", *spent, baseline)
            )
    return figures


@dataclass(frozen=True, slots=True)
class Spent:
    """CPU time of this (the client's) process and of server processes: at one moment (`now`), or per call of a
    throughput round, with its rate and the cores it kept busy (`since`)."""

    client: float
    servers: tuple[float, ...]
    rate: float = 0.0
    busy: float = 0.0

    @classmethod
    def now(cls, servers: Sequence[int]) -> Spent:
        # This process's own to the ns: the client is the largest share. The servers' in clock ticks (`cpu_ns`).
        return cls(time.process_time_ns(), tuple(cpu_ns(pid) for pid in servers))

    def since(self, before: Spent, calls: int, rate: float) -> Spent:
        client = (self.client - before.client) / calls
        servers = tuple((now - then) / calls for now, then in zip(self.servers, before.servers, strict=True))
        return Spent(client, servers, rate, (client + sum(servers)) * rate / 1e9)


def ceiling_figure(name: str, through: Sequence[Spent], straight: Sequence[Spent], direct_rate: float) -> Figure:
    """An estimate of the throughput of a gateway costing no CPU at all, from the same rounds: the client's process
    shares this machine's cores with the servers, so such a gateway would spend the cores of the busier side of a
    round on the client and the stdio upstream alone. "room" is the CPU per call a gateway may spend there and still
    match the direct server's rate. Each is worked out per pair of rounds; the medians are shown."""
    ceilings, rooms = [], []
    for gateway_round, direct_round in zip(through, straight, strict=True):
        cores = max(gateway_round.busy, direct_round.busy) * 1e9
        without = gateway_round.client + gateway_round.servers[1]
        ceilings.append(cores / without)
        rooms.append(cores / direct_round.rate - without)
    client = statistics.median(s.client for s in through)
    upstream = statistics.median(s.servers[1] for s in through)
    used = statistics.median(s.servers[0] for s in through)
    costs = (
        f"client {duration(client)} + upstream {duration(upstream)} per call; room"
        f" {difference(statistics.median(rooms))}, used {duration(used)}"
    )
    return Figure(
        f"{name}, a gateway costing no CPU ({costs})",
        statistics.median(ceilings),
        direct_rate,
        "direct, same layout",
        "/s",
        "-",
        None,
    )


async def big_result_figure(gateway: Target, direct: Target) -> Figure:
    args = {"size_bytes": BIG_BYTES}
    through, straight = await paired_latencies(
        lambda: call(gateway.client, gateway.big, args),
        lambda: call(direct.client, direct.big, args),
        warmup=BIG_WARMUP,
        calls=BIG_CALLS,
    )
    return Figure(
        "1 MiB result (big), median",
        statistics.median(through),
        statistics.median(straight),
        "direct HTTP call",
        "ns",
        "-",
        None,
    )


async def big_read_figure(gateway: Target, direct: Target) -> Figure:
    """resources/read of a 1 MiB text resource (a template of the upstream's), paired as the calls are."""
    uri = f"test://big/{BIG_BYTES}"

    async def read(client: Client) -> None:
        result = await client.read_resource(uri)
        if len(getattr(result.contents[0], "text", "")) != BIG_BYTES:
            raise RuntimeError(f"{uri}: the read came back short")

    through, straight = await paired_latencies(
        lambda: read(gateway.client), lambda: read(direct.client), warmup=BIG_WARMUP, calls=BIG_CALLS
    )
    value, baseline = statistics.median(through), statistics.median(straight)
    return Figure(
        "1 MiB resources/read, median",
        value,
        baseline,
        "direct HTTP read",
        "ns",
        f"ratio <= {READ_TARGET_RATIO:.1f}",
        value / baseline <= READ_TARGET_RATIO,
    )


async def cpu_figures(
    gateway: Target, direct: Target, gateway_pid: int, upstream_pid: int, direct_pid: int, label: str = ""
) -> Figure:
    """CPU time per sequential echo call: the gateway process alone, against the direct HTTP server's. The
    handshake era's target is absolute; the 2026-07-28 one (`label`) is the direct server's own CPU per call."""
    before = cpu_ns(gateway_pid), cpu_ns(upstream_pid)
    for _ in range(CPU_CALLS):
        await call(gateway.client, gateway.echo, ECHO_ARGS)
    after = cpu_ns(gateway_pid), cpu_ns(upstream_pid)
    direct_before = cpu_ns(direct_pid)
    for _ in range(CPU_CALLS):
        await call(direct.client, direct.echo, ECHO_ARGS)
    direct_after = cpu_ns(direct_pid)
    own = (after[0] - before[0]) / CPU_CALLS
    upstream = (after[1] - before[1]) / CPU_CALLS
    baseline = (direct_after - direct_before) / CPU_CALLS
    target, passed = (
        (f"< {duration(CPU_TARGET_NS)}", own < CPU_TARGET_NS) if not label else ("ratio <= 1.0", own <= baseline)
    )
    return Figure(
        f"{label}gateway CPU per call (its stdio upstream: {duration(upstream)})",
        own,
        baseline,
        "direct server's CPU/call",
        "ns",
        target,
        passed,
    )


async def list_figures(workdir: Path) -> list[Figure]:
    """tools/list with 50 servers of 20 tools against 1 server of 1,000 tools: same surface, 50x the servers."""
    allow = ["t[0-9]*"]  # only the many-tools tools t0..tN-1, not the upstream's built-in ones
    many = {
        f"s{i:02d}": stdio_upstream(
            f"many-tools={LIST_TOOLS_PER_SERVER}", allow=allow, startup_timeout=MANY_STARTUP_TIMEOUT
        )
        for i in range(LIST_SERVERS)
    }
    total = LIST_SERVERS * LIST_TOOLS_PER_SERVER
    one = {"s00": stdio_upstream(f"many-tools={total}", allow=allow, startup_timeout=MANY_STARTUP_TIMEOUT)}
    started = time.perf_counter()
    with (
        start_gateway(one, workdir, "list-1", MANY_STARTUP_TIMEOUT) as single,
        start_gateway(many, workdir, "list-50", MANY_STARTUP_TIMEOUT) as fifty,
    ):
        ready_s = time.perf_counter() - started
        async with connect(fifty.mcp_url) as to_fifty, connect(single.mcp_url) as to_single:
            sizes = {len((await c.list_tools(cache_mode="bypass")).tools) for c in (to_fifty, to_single)}
            if len(sizes) != 1:
                raise RuntimeError(f"the two surfaces differ in size: {sizes}")
            through, straight = await paired_latencies(
                lambda: to_fifty.list_tools(cache_mode="bypass"),
                lambda: to_single.list_tools(cache_mode="bypass"),
                warmup=LIST_WARMUP,
                calls=LIST_CALLS,
            )
    value, baseline = statistics.median(through), statistics.median(straight)
    print(f"  ({LIST_SERVERS + 1} stdio upstreams started and attached in {ready_s:.1f} s)", flush=True)
    return [
        Figure(
            f"tools/list, {LIST_SERVERS} servers x {LIST_TOOLS_PER_SERVER} tools ({sizes.pop()} listed)",
            value,
            baseline,
            f"1 server x {total} tools",
            "ns",
            f"ratio < {LIST_INDEPENDENCE_RATIO}",
            value / baseline < LIST_INDEPENDENCE_RATIO,
        )
    ]


async def small_list_figure(gateway: Target, direct: Target) -> Figure:
    through, straight = await paired_latencies(
        lambda: gateway.client.list_tools(cache_mode="bypass"),
        lambda: direct.client.list_tools(cache_mode="bypass"),
        warmup=LIST_WARMUP,
        calls=LIST_CALLS,
    )
    return Figure(
        "tools/list, 1 server, all its tools",
        statistics.median(through),
        statistics.median(straight),
        "direct HTTP call",
        "ns",
        "-",
        None,
    )


async def run(workdir: Path) -> list[Figure]:
    figures: list[Figure] = []
    with (
        UpstreamProcess("streamable_http") as upstream,
        start_gateway(
            {"up": stdio_upstream()}, workdir, "gateway", STARTUP_TIMEOUT, {"virtual_servers": {"v": VIRTUAL_SERVER}}
        ) as gateway,
    ):
        children = children_of(gateway.process.pid)
        if len(children) != 1:
            raise RuntimeError(f"expected one stdio upstream under the gateway, found pids {children}")
        async with AsyncExitStack() as stack:
            gateways, directs = [], []
            for _ in range(SESSIONS):
                through = await stack.enter_async_context(connect(gateway.mcp_url))
                straight = await stack.enter_async_context(connect(upstream.url))
                gateways.append(Target(through, await tool_name(through, "echo"), await tool_name(through, "big")))
                directs.append(Target(straight, await tool_name(straight, "echo"), await tool_name(straight, "big")))
            print("measuring: call latency", flush=True)
            figures += await latency_figures(gateways[0], directs[0])
            figures.append(await slowest_figure(gateways[0], directs[0]))
            print("measuring: throughput", flush=True)
            figures += await throughput_figures(gateways, directs)
            print("measuring: 1 MiB results and reads", flush=True)
            figures.append(await big_result_figure(gateways[0], directs[0]))
            figures.append(await big_read_figure(gateways[0], directs[0]))
            print("measuring: CPU per call", flush=True)
            figures.append(
                await cpu_figures(gateways[0], directs[0], gateway.process.pid, children[0], upstream.process.pid)
            )
            figures.append(await small_list_figure(gateways[0], directs[0]))
            figures += await modern_figures(gateway, upstream, children[0], gateways[0])
            figures += await virtual_server_figures(gateway, gateways[0])
    LOADS.append(os.getloadavg()[0])
    print(f"measuring: tools/list with {LIST_SERVERS} servers", flush=True)
    figures += await list_figures(workdir)
    return figures


MODERN: Final = "2026-07-28: "


async def modern_figures(
    gateway: GatewayProcess, upstream: UpstreamProcess, upstream_pid: int, handshake: Target
) -> list[Figure]:
    """The same figures for 2026-07-28 clients (`mode="auto"`), against the upstream on that protocol directly; and
    against a handshake client through the same gateway (`handshake`), as the issue's title puts it."""
    async with AsyncExitStack() as stack:
        gateways, directs = [], []
        for _ in range(SESSIONS):
            through = await stack.enter_async_context(connect(gateway.mcp_url, "auto"))
            straight = await stack.enter_async_context(connect(upstream.url, "auto"))
            gateways.append(Target(through, await tool_name(through, "echo"), await tool_name(through, "big")))
            directs.append(Target(straight, await tool_name(straight, "echo"), await tool_name(straight, "big")))
        asking = await stack.enter_async_context(connect(gateway.mcp_url, "auto", asks=True))
        straight_asking = await stack.enter_async_context(connect(upstream.url, "auto", asks=True))
        print("measuring: 2026-07-28 clients", flush=True)
        figures = await latency_figures(gateways[0], directs[0], MODERN)
        pids = gateway.process.pid, upstream_pid, upstream.process.pid
        figures += await throughput_figures(gateways, directs, MODERN, pids)
        figures.append(await cpu_figures(gateways[0], directs[0], *pids, MODERN))
        echo, big = gateways[0].echo, gateways[0].big
        asked = Target(asking, echo, big), Target(straight_asking, directs[0].echo, directs[0].big)
        figures += (await latency_figures(*asked, f"{MODERN}declaring elicitation: "))[:1]
        figures.append(await era_figure(gateways[0], handshake))
        figures += await forwarder_figures(directs)
        figures += await floor_figures(gateway, upstream, echo)
        return figures


async def forwarder_figures(directs: list[Target]) -> list[Figure]:
    """The 2026-07-28 latency and throughput figures of the ideal forwarder (`_forwarder`: no checks, no sessions)
    reached by the same SDK clients, against the same direct server: the least any Python gateway adds in this
    layout, where the clients, the servers and the gateway share the machine's cores. Informational: the targets
    are the gateway's."""
    print("measuring: 2026-07-28 clients through an ideal forwarder", flush=True)
    with forwarder() as port:
        async with AsyncExitStack() as stack:
            ideal = []
            for _ in range(SESSIONS):
                client = await stack.enter_async_context(connect(f"http://127.0.0.1:{port}/", "auto"))
                ideal.append(Target(client, "echo", "big"))
            label = f"{MODERN}ideal forwarder: "
            figures = (await latency_figures(ideal[0], directs[0], label))[:1]
            figures += await throughput_figures(ideal, directs, label)
    return [replace(figure, target="-", passed=None) for figure in figures]


async def floor_figures(gateway: GatewayProcess, upstream: UpstreamProcess, echo: str) -> list[Figure]:
    """The same 2026-07-28 echo call from a bare HTTP client to the direct server, to the gateway, and to an ideal
    forwarder (`_forwarder`: the least any Python gateway does), in turns: what the gateway adds, against what any
    gateway on this machine would add; then the throughput of `IN_FLIGHT` bare clients at each."""
    print("measuring: 2026-07-28 calls from a bare client, and an ideal forwarder", flush=True)
    # In a worker thread: the bare client blocks, and the SDK clients' streams go on being read meanwhile.
    took, rates = await anyio.to_thread.run_sync(partial(bare_calls, [(upstream.url, "echo"), (gateway.mcp_url, echo)]))
    direct, through, ideal = (statistics.median(side) for side in took)
    direct_rate, through_rate, ideal_rate = (statistics.median(side) for side in rates)
    sides = (("ideal forwarder", ideal, ideal_rate), ("gateway", through, through_rate))
    figures = [
        Figure(
            f"{MODERN}bare client: {who}, p50 (added {difference(p50 - direct)})",
            p50,
            direct,
            "direct HTTP call",
            "ns",
            "-",
            None,
        )
        for who, p50, _ in sides
    ]
    figures += [
        Figure(
            f"{MODERN}bare clients: {who}, throughput, {IN_FLIGHT} in flight",
            rate,
            direct_rate,
            "direct server",
            "/s",
            "-",
            None,
        )
        for who, _, rate in sides
    ]
    return figures


def bare_calls(targets: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[float]]]:
    """`RAW_CALLS` calls of each (url, tool name), then of the ideal forwarder, in turns (`raw_rounds`); then
    `RAW_RATE_ROUNDS` rounds of `IN_FLIGHT` bare clients at each (`raw_rate`), which side goes first rotating."""
    with forwarder() as port, ExitStack() as stack:
        every = [*targets, (f"http://127.0.0.1:{port}/", "echo")]
        sides = [stack.enter_context(closing(RawCaller(url, name))) for url, name in every]
        took = raw_rounds(sides, RAW_CALLS)
        rates: list[list[float]] = [[] for _ in every]
        for index in range(RAW_RATE_ROUNDS):
            for turn in range(len(every)):
                which = (index + turn) % len(every)
                rates[which].append(raw_rate(*every[which]))
        return took, rates


def raw_rate(url: str, name: str) -> float:
    """Calls per second of `IN_FLIGHT` bare clients, a connection and a thread each, calling for `RAW_RATE_SECONDS`
    (the socket calls let go of the GIL: the threads wait on the server, not on each other)."""
    with ExitStack() as stack:
        callers = [stack.enter_context(closing(RawCaller(url, name))) for _ in range(IN_FLIGHT)]
        for caller in callers:
            caller.call()  # connected and warm
        counts = [0] * IN_FLIGHT
        start = time.perf_counter()
        until = start + RAW_RATE_SECONDS

        def calling(index: int) -> None:
            while time.perf_counter() < until:
                callers[index].call()
                counts[index] += 1

        threads = [threading.Thread(target=calling, args=(index,)) for index in range(IN_FLIGHT)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return sum(counts) / (time.perf_counter() - start)


@contextmanager
def forwarder() -> Iterator[int]:
    """`bench._forwarder` with a stdio upstream like the gateway's; yields its port. Closing its stdin stops it and
    its upstream: so does this process ending, however it ends."""
    upstream = stdio_upstream()
    command = [sys.executable, "-m", "bench._forwarder", upstream["command"], *upstream["args"]]
    with subprocess.Popen(command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        try:
            assert process.stdout is not None
            ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
            line = process.stdout.readline() if ready else b""
            if not line.strip().isdigit():
                raise RuntimeError(f"the ideal forwarder did not start (exit code {process.poll()})")
            yield int(line)
        finally:
            assert process.stdin is not None
            process.stdin.close()
            try:
                process.wait(STARTUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()  # its upstream then reads the end of its stdin
    if process.returncode:
        raise RuntimeError(f"the ideal forwarder failed (exit code {process.returncode}); its stderr says why")


class RawCaller:
    """One keep-alive connection that sends the same 2026-07-28 `tools/call` as a bare client would: no SDK."""

    def __init__(self, url: str, name: str) -> None:
        self._url = url
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": name,
                    "arguments": ECHO_ARGS,
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
        ).encode()
        head = (
            f"POST {parts.path or '/'} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
            "accept: application/json, text/event-stream\r\nmcp-protocol-version: 2026-07-28\r\n"
            f"mcp-method: tools/call\r\nmcp-name: {name}\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        self._request = head.encode() + body
        self._socket = socket.create_connection((parts.hostname, parts.port), timeout=STARTUP_TIMEOUT)
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def call(self) -> int:
        """Nanoseconds for one call, answered whole (a JSON answer with a Content-Length, as all three give)."""
        start = time.perf_counter_ns()
        self._socket.sendall(self._request)
        received = b""
        while True:
            chunk = self._socket.recv(65536)
            if not chunk:
                raise RuntimeError(f"{self._url} closed the connection")
            received += chunk
            head, found, body = received.partition(b"\r\n\r\n")
            if found and len(body) >= _content_length(head):
                break
        took = time.perf_counter_ns() - start
        if not head.startswith(b"HTTP/1.1 200") or b'"hello"' not in body:
            raise RuntimeError(f"unexpected answer from {self._url}: {received[:300]!r}")
        return took

    def close(self) -> None:
        self._socket.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    raise RuntimeError(f"an answer without Content-Length: {head[:300]!r}")


def raw_rounds(sides: Sequence[RawCaller], calls: int) -> list[list[int]]:
    """`calls` calls of each side after a warmup, in turns, which side goes first rotating."""
    for side in sides:
        for _ in range(LATENCY_WARMUP):
            side.call()
    took: list[list[int]] = [[] for _ in sides]
    for index in range(calls):
        for turn in range(len(sides)):
            which = (index + turn) % len(sides)
            took[which].append(sides[which].call())
    return took


async def era_figure(modern: Target, handshake: Target) -> Figure:
    """A 2026-07-28 client's call through the gateway against a handshake client's through it, paired."""
    through, baseline = await paired_echo_calls(modern, handshake)
    p50, base50 = statistics.median(through), statistics.median(baseline)
    added = p50 - base50
    return Figure(
        f"{MODERN}echo call through the gateway, p50 (added {difference(added)})",
        p50,
        base50,
        "handshake client, same",
        "ns",
        "-",
        None,
    )


async def virtual_server_figures(gateway: GatewayProcess, plain: Target) -> list[Figure]:
    """A call through a virtual server (renamed tool, limits counted, found by its token on the plain URL) against
    the same call on the plain endpoint of the same gateway."""
    print("measuring: virtual server", flush=True)
    async with connect(gateway.mcp_url, token=VIRTUAL_TOKEN) as client:
        viewed = Target(client, await tool_name(client, "say"), plain.big)
        for _ in range(LATENCY_WARMUP):
            await call(viewed.client, viewed.echo, ECHO_ARGS)
            await call(plain.client, plain.echo, ECHO_ARGS)
        through, straight = [], []
        for index in range(VIRTUAL_CALLS):  # which side goes first alternates too: neither gets the warmer upstream
            first, second = (viewed, plain) if index % 2 else (plain, viewed)
            took = [await timed(partial(call, side.client, side.echo, ECHO_ARGS)) for side in (first, second)]
            through.append(took[0] if first is viewed else took[1])
            straight.append(took[1] if first is viewed else took[0])
        p50, base50 = statistics.median(through), statistics.median(straight)
        rates: tuple[list[float], list[float]] = ([], [])
        for round_ in range(VIRTUAL_ROUNDS):
            sides = ((viewed, rates[0]), (plain, rates[1]))
            for side, results in sides if round_ % 2 else sides[::-1]:
                await calls_per_second([side.client], side.echo, IN_FLIGHT, 4 * IN_FLIGHT)
                results.append(await calls_per_second([side.client], side.echo, IN_FLIGHT, THROUGHPUT_CALLS))
    rate, base_rate = statistics.median(rates[0]), statistics.median(rates[1])
    target = f"ratio <= {VIRTUAL_TARGET_RATIO:.2f}"
    return [
        Figure(
            "virtual server: p50 latency",
            p50,
            base50,
            "plain endpoint",
            "ns",
            target,
            p50 / base50 <= VIRTUAL_TARGET_RATIO,
        ),
        Figure(
            f"virtual server: throughput, {IN_FLIGHT} in flight",
            rate,
            base_rate,
            "plain endpoint",
            "/s",
            f"ratio >= {1 / VIRTUAL_TARGET_RATIO:.2f}",
            rate / base_rate >= 1 / VIRTUAL_TARGET_RATIO,
        ),
    ]


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "gateway", "baseline", "baseline is", "ratio", "target", "verdict")
    rows = [
        (f.name, f.show(f.value), f.show(f.baseline), f.baseline_is, f"{f.ratio:.2f}x", f.target, f.verdict)
        for f in figures
    ]
    return _report.table(header, rows)


NOTES = f"""\
notes:
  gateway: lash-gateway serve (HTTP downstream) -> tests.servers.upstream over stdio; direct: the same server over
    streamable HTTP. Both reached from one client process (mcp.Client, mode="legacy"; "2026-07-28:" figures with
    mode="auto", the direct server on that protocol too; "declaring elicitation": clients that take questions;
    "through the gateway": a 2026-07-28 client against a handshake client, both through the gateway, paired).
  latency: {LATENCY_CALLS} echo calls each, gateway and direct alternating; "added" is gateway minus direct;
    "slowest of": {SLOWEST_CALLS:,} more, alternating too (a full garbage collection of either process shows there).
  throughput: {THROUGHPUT_CALLS} echo calls with {IN_FLIGHT} outstanding at all times, on 1 session or spread over
    {SESSIONS} sessions ({IN_FLIGHT // SESSIONS} each); median of {THROUGHPUT_ROUNDS} alternating rounds.
  ceiling: an estimate, from the CPU per call of each process in the 2026-07-28 throughput rounds (this client's
    too: it shares the cores; the servers' in {CLOCK_TICK_NS // 1_000_000} ms ticks): what a gateway costing no CPU
    would reach on the cores the rounds kept busy; "room" is the CPU per call a gateway may spend there and still
    match the direct server, "used" what this one spent. Medians over the pairs of rounds.
  CPU: utime+stime (/proc, {CLOCK_TICK_NS // 1_000_000} ms ticks) of the gateway process alone over {CPU_CALLS}
    sequential calls (its stdio upstream's in the name), against the direct HTTP server process over as many calls.
  ideal forwarder: the same 2026-07-28 SDK clients reaching bench/_forwarder.py (below) instead of the gateway, its
    latency and throughput against the same direct server: what a gateway doing nothing but forwarding gets here.
  bare client: the same 2026-07-28 tools/call bytes on one keep-alive socket per server, no SDK, {RAW_CALLS:,} calls
    each in turns; the ideal forwarder (bench/_forwarder.py) hands them to a stdio upstream of its own without any
    check, session or plugin: the least any Python gateway adds on this machine. "bare clients": {IN_FLIGHT} of
    them, a connection each, calling for {RAW_RATE_SECONDS:g} s; median of {RAW_RATE_ROUNDS} rounds in turns.
  virtual server: the echo tool renamed, with limits on the virtual server and its token (never reached), called
    by a client that presents the virtual server's token on the plain URL, against the plain endpoint: {VIRTUAL_CALLS}
    pairs of calls and {VIRTUAL_ROUNDS} throughput rounds, which side goes first alternating.
  tools/list: same surface size ({LIST_SERVERS * LIST_TOOLS_PER_SERVER} tools) from {LIST_SERVERS} servers or from 1,
    so the ratio isolates the server count; the gateway serves the list from its cache, no upstream round trip."""


def main() -> None:
    # This client's own full collections would land on whichever call runs then, and "slowest of" would blame a
    # server for them: its heap leaves the collector's view, as the gateway's does (`freeze_startup_heap`).
    gc.collect()
    gc.freeze()
    started = time.perf_counter()
    LOADS.append(os.getloadavg()[0])
    with tempfile.TemporaryDirectory(prefix="lash-bench-") as workdir:
        figures = anyio.run(run, Path(workdir))
    print("lash gateway: through the gateway against the upstream called directly, measured in the same run")
    print(render(figures))
    print(NOTES)
    # Other work on the machine inflates wall-clock figures (less so the ratios): say how busy it was.
    start, before_list = LOADS[-2:]
    load = f"1-minute load average {start:.1f} at start, {before_list:.1f} before the tools/list part"
    print(f"({time.perf_counter() - started:.1f} s; {load}, on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
