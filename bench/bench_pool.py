"""lash_gateway pool benchmarks: what the pool adds to a tool call, and what a cached tool list costs.

`python -m bench.bench_pool` prints one table. A tool call (`echo`) through `McpConnectionPool.call_tool` is timed
against the same call on a bare SDK `mcp.Client` (`mode="legacy"`, `client.call_tool`) and on that client's raw
`ClientSession.send_request` path, to the same upstream server (`tests.servers.upstream`), on the same transport, in
the same run; a second bare client is timed as a control, to show the run's noise floor. Sequential calls are
interleaved (pool, client, session, control, rotating who goes first) so machine noise hits all of them alike;
throughput runs alternate rounds of 32 calls in flight. `definitions()` with 5,000 cached tools is timed against
returning a prebuilt tuple.

Over stdio the pool and each bare client start their own server process (one stdio connection per process); over
streamable HTTP all of them connect to one server process.
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
from mcp.client.streamable_http import streamable_http_client

from bench._report import duration, median_pair, table, verdict_of
from lash_gateway import McpConnectionPool, McpServerConfig
from tests.servers.launch import PROJECT_ROOT, UpstreamProcess, stdio_command, stdio_params

Transport = Literal["stdio", "streamable_http"]
TRANSPORTS: tuple[Transport, ...] = ("stdio", "streamable_http")
SERVER = "bench"
TOOL = f"mcp__{SERVER}__echo"
ARGS = {"text": "hello"}
WARMUP = 50
SEQUENTIAL_CALLS: dict[Transport, int] = {"stdio": 800, "streamable_http": 200}
"""Interleaved rounds (pool, client, session, control client) per transport: about 3-4 s each on a 2-core machine."""
IN_FLIGHT = 32
CALLS_PER_WORKER: dict[Transport, int] = {"stdio": 12, "streamable_http": 3}
"""Per throughput round: 384 calls over stdio, 96 over HTTP (about 0.4 s and 0.6 s on a 2-core machine)."""
THROUGHPUT_ROUNDS = 4
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
    noisy: bool = False
    """The run's control pair was further from 1.00x than the target's margin: the verdict is not conclusive."""

    @property
    def ratio(self) -> float:
        """Pool cost relative to the baseline: above 1 means the pool is slower (for throughput, inverted)."""
        if self.unit == "calls/s":
            return self.baseline / self.pool if self.pool else float("inf")
        return self.pool / self.baseline if self.baseline else float("inf")

    @property
    def verdict(self) -> str:
        shown = verdict_of(self.passed)
        return f"{shown} (noisy)" if self.noisy and self.passed is not None else shown

    def show(self, value: float) -> str:
        return f"{value:,.0f}/s" if self.unit == "calls/s" else duration(value)


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def overhead(
    name: str, pool: float, baseline: float, baseline_is: str, unit: Literal["ns", "calls/s"], *, noisy: bool
) -> Figure:
    ratio = info(name, pool, baseline, baseline_is, unit).ratio
    target = f"ratio <= {OVERHEAD_TARGET:.2f}"
    return Figure(name, pool, baseline, baseline_is, unit, target, ratio <= OVERHEAD_TARGET, noisy)


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


def stdio_config(*args: str) -> McpServerConfig:
    command, stdio_args = stdio_command(*args)
    return McpServerConfig.stdio(command, stdio_args, cwd=str(PROJECT_ROOT))


async def call_figures(transport: Transport) -> list[Figure]:
    async with contextlib.AsyncExitStack() as stack:
        if transport == "stdio":
            config = stdio_config()
            targets: list[Any] = [stdio_params(), stdio_params()]
        else:
            server = stack.enter_context(UpstreamProcess("streamable_http"))
            config = McpServerConfig.streamable_http(server.url)
            http = await stack.enter_async_context(httpx2.AsyncClient(timeout=httpx2.Timeout(30, read=None)))
            targets = [streamable_http_client(server.url, http_client=http, max_sse_event_size=None) for _ in range(2)]
        pool = await stack.enter_async_context(McpConnectionPool())
        await pool.attach(SERVER, config)
        client, control = [await stack.enter_async_context(Client(target, mode="legacy")) for target in targets]
        for bare in (client, control):
            await bare.list_tools()  # caches output schemas: no hidden tools/list after each call_tool
        request = types.CallToolRequest(params=types.CallToolRequestParams(name="echo", arguments=ARGS))

        async def via_pool() -> object:
            return await pool.call_tool(TOOL, ARGS)

        async def via_client() -> object:
            return await client.call_tool("echo", ARGS)

        async def via_session() -> object:
            return await client.session.send_request(request, types.CallToolResult)

        async def via_control() -> object:
            return await control.call_tool("echo", ARGS)

        calls = (via_pool, via_client, via_session, via_control)
        for call in calls:
            text = str(await call())
            assert "hello" in text, text
        gc.collect()
        pool_ns, client_ns, session_ns, control_ns = await sequential(calls, SEQUENTIAL_CALLS[transport])
        pool_tp, client_tp, session_tp = await throughputs(calls[:3], CALLS_PER_WORKER[transport])

    label = f"{transport}: echo"
    client_is, session_is = "SDK Client.call_tool", "SDK ClientSession.send_request"
    control_is = "SDK Client.call_tool" + (", own process" if transport == "stdio" else "")
    control_figure = info(
        f"{label} p50, control (2nd SDK Client)",
        percentile(control_ns, 0.5),
        percentile(client_ns, 0.5),
        control_is,
        "ns",
    )
    noisy = abs(control_figure.ratio - 1) > OVERHEAD_TARGET - 1
    return [
        overhead(f"{label} p50", percentile(pool_ns, 0.5), percentile(client_ns, 0.5), client_is, "ns", noisy=noisy),
        overhead(f"{label} p99", percentile(pool_ns, 0.99), percentile(client_ns, 0.99), client_is, "ns", noisy=noisy),
        overhead(f"{label}, {IN_FLIGHT} in flight", pool_tp, client_tp, client_is, "calls/s", noisy=noisy),
        info(f"{label} p50", percentile(pool_ns, 0.5), percentile(session_ns, 0.5), session_is, "ns"),
        info(f"{label}, {IN_FLIGHT} in flight", pool_tp, session_tp, session_is, "calls/s"),
        control_figure,
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


# -- output ----------------------------------------------------------------------------------------


def render(figures: Sequence[Figure]) -> str:
    header = ("figure", "pool", "baseline", "baseline is", "ratio", "target", "verdict")
    rows = [
        (f.name, f.show(f.pool), f.show(f.baseline), f.baseline_is, f"{f.ratio:.2f}x", f.target, f.verdict)
        for f in figures
    ]
    return table(header, rows)


NOTES = f"""\
notes:
  ratio: pool cost / baseline cost (for calls/s: baseline rate / pool rate); above 1 the pool is slower.
  control: a second bare SDK Client timed against the first (in the "pool" column); its distance from 1.00x is the
    noise floor of this run (over stdio each client has its own server process, and so does the pool); a verdict
    marked "(noisy)" comes from a run whose control was further from 1.00x than the 10% target: rerun on a quiet
    machine before believing it.
  sequential: {SEQUENTIAL_CALLS["stdio"]:,} (stdio) / {SEQUENTIAL_CALLS["streamable_http"]:,} (HTTP) interleaved calls
    per path after {WARMUP} warm-up calls each;
    in flight: {IN_FLIGHT} workers, median of {THROUGHPUT_ROUNDS} alternating rounds.
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
