"""lash_gateway pool benchmarks: what the pool adds to a tool call, and what a cached tool list costs.

`python -m bench.bench_pool` prints one table. A tool call (`echo`) through `McpConnectionPool.call_tool` is timed
against the same call on a bare SDK `mcp.Client` (`mode="legacy"`, `client.call_tool`) and on that client's raw
`ClientSession.send_request` path, to the same upstream server (`tests.servers.upstream`), on the same transport, in
the same run. Sequential calls are interleaved (pool, client, session, rotating who goes first) so machine noise hits
all three alike; throughput runs alternate rounds of 32 calls in flight. `definitions()` with 5,000 cached tools is
timed against returning a prebuilt tuple.

Over stdio the pool and the bare client each start their own server process (one stdio connection per process);
over streamable HTTP both connect to one server process.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import anyio
import httpx2
import mcp_types as types
from mcp import Client

from lash_gateway import McpConnectionPool, McpServerConfig, ServerConfig
from tests.servers.launch import PROJECT_ROOT, UpstreamProcess, stdio_command, stdio_params

Transport = Literal["stdio", "streamable_http"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "streamable_http")
SERVER = "bench"
TOOL = f"mcp__{SERVER}__echo"
ARGS = {"text": "hello"}
WARMUP = 100
SEQUENTIAL_CALLS: dict[Transport, int] = {"stdio": 1500, "streamable_http": 500}
"""Interleaved triples (pool, client, session) per transport: about 5 s each on a 2-core machine."""
IN_FLIGHT = 32
CALLS_PER_WORKER: dict[Transport, int] = {"stdio": 16, "streamable_http": 8}
THROUGHPUT_ROUNDS = 5
MANY_TOOLS = 5_000
OVERHEAD_TARGET = 1.10
"""The pool may cost at most 10% more than the bare SDK client (latency up, throughput down)."""
DEFINITIONS_TARGET_NS = 1_000
"""A cached definitions() hands back a tuple: under 1 µs, whatever the tool count."""

Call = Callable[[], Awaitable[object]]


# -- figures ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Figure:
    name: str
    pool: float
    baseline: float
    baseline_is: str
    unit: Literal["ns", "calls/s"]
    target: str
    passed: bool | None
    """None: informational, no target."""

    @property
    def ratio(self) -> float:
        """Pool cost relative to the baseline: above 1 means the pool is slower (for throughput, inverted)."""
        if self.unit == "calls/s":
            return self.baseline / self.pool if self.pool else float("inf")
        return self.pool / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> str:
        return "info" if self.passed is None else "PASS" if self.passed else "FAIL"

    def show(self, value: float) -> str:
        return f"{value:,.0f}/s" if self.unit == "calls/s" else duration(value)


def duration(ns: float) -> str:
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1_000:.1f} µs"
    return f"{ns / 1_000_000:.2f} ms"


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def overhead(name: str, pool: float, baseline: float, baseline_is: str, unit: Literal["ns", "calls/s"]) -> Figure:
    figure = Figure(name, pool, baseline, baseline_is, unit, f"ratio <= {OVERHEAD_TARGET:.2f}", None)
    return Figure(
        name, pool, baseline, baseline_is, unit, figure.target, figure.ratio <= OVERHEAD_TARGET
    )


def info(name: str, pool: float, baseline: float, baseline_is: str, unit: Literal["ns", "calls/s"]) -> Figure:
    return Figure(name, pool, baseline, baseline_is, unit, "-", None)


# -- measuring -------------------------------------------------------------------------------------


async def sequential(calls: Sequence[Call], count: int) -> list[list[float]]:
    """Nanoseconds of `count` calls of each, interleaved; the first to go rotates each round."""
    for _ in range(WARMUP):
        for call in calls:
            await call()
    samples: list[list[float]] = [[] for _ in calls]
    for round_number in range(count):
        for offset in range(len(calls)):
            index = (round_number + offset) % len(calls)
            start = time.perf_counter_ns()
            await calls[index]()
            samples[index].append(time.perf_counter_ns() - start)
    return samples


async def throughput(call: Call, calls_per_worker: int) -> float:
    """Calls per second with `IN_FLIGHT` calls on the wire at all times."""

    async def worker() -> None:
        for _ in range(calls_per_worker):
            await call()

    start = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(IN_FLIGHT):
            tg.start_soon(worker)
    return IN_FLIGHT * calls_per_worker / (time.perf_counter() - start)


async def throughputs(calls: Sequence[Call], calls_per_worker: int) -> list[float]:
    """Median calls per second of each, over alternating rounds."""
    for call in calls:
        await throughput(call, 2)
    rounds: list[list[float]] = [[] for _ in calls]
    for _ in range(THROUGHPUT_ROUNDS):
        for index, call in enumerate(calls):
            rounds[index].append(await throughput(call, calls_per_worker))
    return [statistics.median(values) for values in rounds]


# -- the figures -----------------------------------------------------------------------------------


def stdio_config(*args: str) -> ServerConfig:
    command, stdio_args = stdio_command(*args)
    return McpServerConfig.stdio(command, stdio_args, cwd=str(PROJECT_ROOT))


async def call_figures(transport: Transport) -> list[Figure]:
    async with contextlib.AsyncExitStack() as stack:
        if transport == "stdio":
            config = stdio_config()
            target: Any = stdio_params()
        else:
            server = stack.enter_context(UpstreamProcess("streamable_http"))
            config = McpServerConfig.streamable_http(server.url)
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)))
            from mcp.client.streamable_http import streamable_http_client

            target = streamable_http_client(server.url, http_client=http, max_sse_event_size=None)
        pool = await stack.enter_async_context(McpConnectionPool())
        await pool.attach(SERVER, config)
        client = await stack.enter_async_context(Client(target, mode="legacy"))
        await client.list_tools()  # caches output schemas: no hidden tools/list after each call_tool
        request = types.CallToolRequest(params=types.CallToolRequestParams(name="echo", arguments=ARGS))

        async def via_pool() -> object:
            return await pool.call_tool(TOOL, ARGS)

        async def via_client() -> object:
            return await client.call_tool("echo", ARGS)

        async def via_session() -> object:
            return await client.session.send_request(request, types.CallToolResult)

        for call in (via_pool, via_client, via_session):
            text = str(await call())
            assert "hello" in text, text
        calls = (via_pool, via_client, via_session)
        gc.collect()
        pool_ns, client_ns, session_ns = await sequential(calls, SEQUENTIAL_CALLS[transport])
        pool_tp, client_tp, session_tp = await throughputs(calls, CALLS_PER_WORKER[transport])

    label = f"{transport}: echo"
    client_is, session_is = "SDK Client.call_tool", "SDK ClientSession.send_request"
    return [
        overhead(f"{label} p50", percentile(pool_ns, 0.5), percentile(client_ns, 0.5), client_is, "ns"),
        overhead(f"{label} p99", percentile(pool_ns, 0.99), percentile(client_ns, 0.99), client_is, "ns"),
        overhead(f"{label}, {IN_FLIGHT} in flight", pool_tp, client_tp, client_is, "calls/s"),
        info(f"{label} p50", percentile(pool_ns, 0.5), percentile(session_ns, 0.5), session_is, "ns"),
        info(f"{label} p99", percentile(pool_ns, 0.99), percentile(session_ns, 0.99), session_is, "ns"),
        info(f"{label}, {IN_FLIGHT} in flight", pool_tp, session_tp, session_is, "calls/s"),
    ]


async def definitions_figure() -> Figure:
    async with McpConnectionPool() as pool:
        await pool.attach(SERVER, stdio_config("--behaviour", f"many-tools={MANY_TOOLS}"))
        definitions = pool.definitions()
        assert len(definitions) >= MANY_TOOLS, len(definitions)
        prebuilt = tuple(definitions)

        def baseline() -> tuple[Any, ...]:
            return prebuilt

        value, base = median_pair(pool.definitions, baseline, batch=1_000, samples=200)
    return Figure(
        f"definitions(), {len(prebuilt):,} cached tools",
        value,
        base,
        "return a prebuilt tuple",
        "ns",
        f"< {duration(DEFINITIONS_TARGET_NS)}",
        value < DEFINITIONS_TARGET_NS,
    )


def median_pair(fn: Callable[[], object], baseline: Callable[[], object], *, batch: int, samples: int) -> tuple[float, float]:
    """Median nanoseconds per call of `fn` and `baseline`, sampled alternately."""

    def sample(f: Callable[[], object]) -> float:
        start = time.perf_counter_ns()
        for _ in range(batch):
            f()
        return (time.perf_counter_ns() - start) / batch

    for _ in range(20):
        sample(fn)
        sample(baseline)
    values: list[float] = []
    baselines: list[float] = []
    gc.collect()
    gc.disable()
    try:
        for _ in range(samples):
            values.append(sample(fn))
            baselines.append(sample(baseline))
    finally:
        gc.enable()
    return statistics.median(values), statistics.median(baselines)


# -- output ----------------------------------------------------------------------------------------


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "pool", "baseline", "baseline is", "ratio", "target", "verdict")
    rows = [
        (f.name, f.show(f.pool), f.show(f.baseline), f.baseline_is, f"{f.ratio:.2f}x", f.target, f.verdict)
        for f in figures
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    right = {1, 2, 4}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


NOTES = f"""\
notes:
  ratio: pool cost / baseline cost (for calls/s: baseline rate / pool rate); above 1 the pool is slower.
  sequential: {SEQUENTIAL_CALLS["stdio"]:,} (stdio) / {SEQUENTIAL_CALLS["streamable_http"]:,} (HTTP) interleaved calls
    per path after {WARMUP} warm-up calls each; in flight: {IN_FLIGHT} workers, median of {THROUGHPUT_ROUNDS} alternating
    rounds.
  the pool sends tools/call as a raw request (no result model validation, no hidden tools/list) and maps the answer
    to a lash ToolResult; Client.call_tool validates into CallToolResult and runs the input-required driver;
    ClientSession.send_request validates only."""


async def run() -> list[Figure]:
    figures: list[Figure] = []
    for transport in TRANSPORTS:
        figures += await call_figures(transport)
    figures.append(await definitions_figure())
    return figures


def main() -> None:
    started = time.perf_counter()
    figures = anyio.run(run)
    print("lash_gateway pool: tool calls vs a bare SDK client to the same upstream, same run, interleaved")
    print(render(figures))
    print(NOTES)
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()
