"""Load and soak benchmark of `lash-gateway serve`: echo calls at 50 and 200 concurrent client sessions (calls/s,
p50/p99, lost and mismatched answers) against the upstream called directly; gateway memory per abandoned session and
at the session cap (`gateway.export.max_sessions`); and the time from an upstream's death (stdio SIGKILL, HTTP
restart) to the first successful call through the gateway again.

`python -m bench.bench_load` starts real processes and prints one table.
"""

from __future__ import annotations

import itertools
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import anyio.to_thread
import httpx2
import mcp_types as types
from mcp import Client
from prometheus_client.parser import text_string_to_metric_families

from bench import _report
from bench.bench_gateway import connect, cpu_ns, duration, percentile, start_gateway, stdio_upstream, tool_name
from tests.integration._gateway import MCP_HEADERS
from tests.servers.launch import (
    SERVER_MODULE,
    GatewayProcess,
    GatewayStartError,
    UpstreamProcess,
    leaked_processes,
)

STARTUP_TIMEOUT: Final = 30.0

LOAD_SESSIONS: Final = (50, 200)
BASELINE_SESSIONS: Final = 50
CALLS_PER_SESSION: Final = 40
WARMUP_CALLS: Final = 2
"""Calls each session makes, unmeasured, before the measured calls of all sessions start together."""
CONNECT_IN_FLIGHT: Final = 25
"""Sessions being opened at once (opening 200 at the same moment measures the handshake, not the calls)."""
CONNECT_TIMEOUT: Final = 120.0
CALL_TIMEOUT: Final = 30.0
"""A call without an answer within this many seconds counts as lost."""
LOAD_TIMEOUT: Final = 240.0

SESSION_CAP: Final = 300
MEMORY_WARMUP_SESSIONS: Final = 20
MEMORY_SESSIONS: Final = 120
"""Sessions per memory figure: initialize only, then as many that also list the tools."""
CAP_MARGIN: Final = 50
"""Sessions opened past the cap, at most, while waiting for the 503."""
RAW_TIMEOUT: Final = 120.0
PROTOCOL_VERSION: Final = "2025-11-25"

PROBE_INTERVAL: Final = 0.010
"""The probe's cadence: one call started every 10 ms (or as soon as the previous one ends, if it took longer)."""
PROBE_WARM_CALLS: Final = 20
"""Successful probe calls before the kill."""
PROBE_CALL_TIMEOUT: Final = 10.0
RECOVERY_ROUNDS: Final = 3
RECOVERY_TIMEOUT: Final = 30.0


# -- processes ---------------------------------------------------------------------------------------------------


def rss_kib(pid: int) -> int:
    """Resident set size of one process (its children excluded), from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])  # "VmRSS:   123456 kB"
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


def stdio_upstream_pid(gateway: GatewayProcess) -> int:
    """The pid of the gateway's one live stdio upstream (a killed one may linger as a zombie until reaped)."""
    live = [
        info.pid
        for info in leaked_processes(gateway.process.pid)
        if info.ppid == gateway.process.pid and info.state != "Z" and SERVER_MODULE in info.cmdline
    ]
    if len(live) != 1:
        raise RuntimeError(f"expected one live stdio upstream under the gateway, found pids {live}")
    return live[0]


# -- load: many sessions calling at once -------------------------------------------------------------------------


def answer_text(result: types.CallToolResult) -> str | None:
    """The text of an echo answer, or None if it is not one text block."""
    if len(result.content) != 1 or not isinstance(result.content[0], types.TextContent):
        return None
    return result.content[0].text


@dataclass(slots=True)
class Tally:
    """What the sessions of one load run saw, call by call."""

    latencies_ns: list[int] = field(default_factory=list)
    lost: int = 0
    """Calls that raised or got no answer within `CALL_TIMEOUT`."""
    mismatched: int = 0
    """Answers whose text is not the request's own."""
    errors: int = 0
    """isError answers."""

    async def call(self, client: Client, name: str, text: str, *, timed: bool = True) -> None:
        started = time.perf_counter_ns()
        try:
            with anyio.fail_after(CALL_TIMEOUT):
                result = await client.call_tool(name, {"text": text})
        except Exception:
            self.lost += 1
            return
        if timed:
            self.latencies_ns.append(time.perf_counter_ns() - started)
        if result.is_error:
            self.errors += 1
        elif answer_text(result) != text or result.structured_content not in (None, {"text": text}):
            self.mismatched += 1


@dataclass(frozen=True, slots=True)
class LoadRun:
    sessions: int
    tally: Tally
    seconds: float
    server_cpu_ns: int
    """CPU time of the process answering the sessions (gateway or direct upstream) over the measured calls."""
    client_cpu_s: float

    @property
    def calls(self) -> int:
        return self.sessions * CALLS_PER_SESSION

    @property
    def per_second(self) -> float:
        return self.calls / self.seconds

    @property
    def p50(self) -> float:
        return statistics.median(self.tally.latencies_ns) if self.tally.latencies_ns else float("nan")

    @property
    def p99(self) -> float:
        return percentile(self.tally.latencies_ns, 0.99) if self.tally.latencies_ns else float("nan")

    @property
    def clean(self) -> bool:
        return not (self.tally.lost or self.tally.mismatched or self.tally.errors)


async def load_run(url: str, name: str, sessions: int, server_pid: int, tag: str) -> LoadRun:
    """`sessions` SDK clients, each with its own HTTP client, open (`CONNECT_IN_FLIGHT` at a time) and warm up;
    then all make `CALLS_PER_SESSION` sequential echo calls at once, each with a text no other call uses."""
    tally = Tally()
    limiter = anyio.CapacityLimiter(CONNECT_IN_FLIGHT)
    all_ready, go, all_done = anyio.Event(), anyio.Event(), anyio.Event()
    ready = done = 0

    async def session(index: int) -> None:
        nonlocal ready, done
        async with AsyncExitStack() as stack:
            async with limiter:
                client = await stack.enter_async_context(connect(url))
                for call in range(WARMUP_CALLS):
                    await tally.call(client, name, f"{tag}-{index}-warm{call}", timed=False)
            ready += 1
            if ready == sessions:
                all_ready.set()
            await go.wait()
            for call in range(CALLS_PER_SESSION):
                await tally.call(client, name, f"{tag}-{index}-{call}")
            done += 1
            if done == sessions:
                all_done.set()

    with anyio.fail_after(LOAD_TIMEOUT):
        async with anyio.create_task_group() as tg:
            for index in range(sessions):
                tg.start_soon(session, index)
            with anyio.fail_after(CONNECT_TIMEOUT):
                await all_ready.wait()
            cpu_before, client_before = cpu_ns(server_pid), time.process_time()
            started = time.perf_counter()
            go.set()
            await all_done.wait()
            seconds = time.perf_counter() - started
            cpu_after, client_after = cpu_ns(server_pid), time.process_time()
    return LoadRun(sessions, tally, seconds, cpu_after - cpu_before, client_after - client_before)


# -- memory: abandoned sessions and the session cap --------------------------------------------------------------


async def open_raw_session(http: httpx2.AsyncClient, url: str, *, list_tools: bool) -> str | None:
    """initialize + notifications/initialized (+ tools/list, which builds the session's lash session) over plain
    HTTP; the session id, or None on a 503 (session cap). The session is never closed (no DELETE): a client that went
    away without a word."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "bench-load", "version": "0"},
        },
    }
    reply = await http.post(url, json=initialize, headers=MCP_HEADERS)
    if reply.status_code == 503:
        return None
    session_id = reply.headers.get("mcp-session-id")
    if reply.status_code != 200 or session_id is None:
        raise RuntimeError(f"initialize: {reply.status_code} {reply.text[:200]}")
    headers = {**MCP_HEADERS, "Mcp-Session-Id": session_id, "Mcp-Protocol-Version": PROTOCOL_VERSION}
    note = await http.post(url, json={"jsonrpc": "2.0", "method": "notifications/initialized"}, headers=headers)
    if note.status_code != 202:
        raise RuntimeError(f"notifications/initialized: {note.status_code} {note.text[:200]}")
    if list_tools:
        listed = await http.post(url, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, headers=headers)
        if listed.status_code != 200 or '"tools"' not in listed.text:
            raise RuntimeError(f"tools/list: {listed.status_code} {listed.text[:200]}")
    return session_id


@dataclass(frozen=True, slots=True)
class MemoryRun:
    rss_before_kib: int
    rss_initialized_kib: int
    """After `MEMORY_SESSIONS` sessions that only initialized."""
    rss_listed_kib: int
    """After as many more that also listed the tools."""
    clients_reported: float
    """lash_gateway_clients_connected after the measured sessions."""
    cap_reached_at: int | None
    """Sessions open when the first 503 came; None: no 503 within the cap plus `CAP_MARGIN`, or no cap configured."""
    rss_at_cap_kib: int | None
    has_cap: bool

    @property
    def kib_per_initialized(self) -> float:
        return (self.rss_initialized_kib - self.rss_before_kib) / MEMORY_SESSIONS

    @property
    def kib_per_listed(self) -> float:
        return (self.rss_listed_kib - self.rss_initialized_kib) / MEMORY_SESSIONS


async def memory_run(gateway: GatewayProcess, *, has_cap: bool) -> MemoryRun:
    """RSS after `MEMORY_WARMUP_SESSIONS` abandoned sessions, after `MEMORY_SESSIONS` more, and after as many more
    that also listed the tools; then, with a cap, sessions opened until the gateway answers 503."""
    pid = gateway.process.pid
    opened = 0
    with anyio.fail_after(RAW_TIMEOUT):
        async with httpx2.AsyncClient(timeout=30) as http:

            async def open_many(count: int, *, list_tools: bool = False) -> bool:
                nonlocal opened
                for _ in range(count):
                    if await open_raw_session(http, gateway.mcp_url, list_tools=list_tools) is None:
                        return False
                    opened += 1
                return True

            if not await open_many(MEMORY_WARMUP_SESSIONS):
                raise RuntimeError(f"503 after only {opened} sessions")
            before = rss_kib(pid)
            if not await open_many(MEMORY_SESSIONS):
                raise RuntimeError(f"503 after only {opened} sessions")
            initialized = rss_kib(pid)
            if not await open_many(MEMORY_SESSIONS, list_tools=True):
                raise RuntimeError(f"503 after only {opened} sessions")
            listed = rss_kib(pid)
            clients = metric_sum(await scrape(http, gateway), "lash_gateway_clients_connected")
            cap_at: int | None = None
            rss_at_cap: int | None = None
            if has_cap and not await open_many(SESSION_CAP + CAP_MARGIN - opened):
                cap_at, rss_at_cap = opened, rss_kib(pid)
    return MemoryRun(before, initialized, listed, clients, cap_at, rss_at_cap, has_cap)


async def scrape(http: httpx2.AsyncClient, gateway: GatewayProcess) -> str:
    reply = await http.get(f"{gateway.local_url}/metrics")
    reply.raise_for_status()
    return reply.text


def metric_sum(text: str, name: str) -> float:
    """The sum of the samples named `name` (a counter's `_total`) over all their labels."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name
    )


async def memory_figures(workdir: Path) -> MemoryRun:
    """The memory figures on a fresh gateway with a cap of `SESSION_CAP`, or without a cap if the gateway refuses
    the key (not implemented yet)."""
    servers = {"up": stdio_upstream()}
    cap = {"export": {"max_sessions": SESSION_CAP}}
    try:
        gateway = await anyio.to_thread.run_sync(start_gateway, servers, workdir, "memory-cap", STARTUP_TIMEOUT, cap)
        has_cap = True
    except GatewayStartError as exc:
        if "max_sessions" not in str(exc):
            raise
        print("  (the gateway refuses export.max_sessions: measuring memory without a cap)", flush=True)
        gateway = await anyio.to_thread.run_sync(start_gateway, servers, workdir, "memory", STARTUP_TIMEOUT, {})
        has_cap = False
    try:
        return await memory_run(gateway, has_cap=has_cap)
    finally:
        await anyio.to_thread.run_sync(gateway.stop)


# -- recovery: an upstream dies while a client keeps calling -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Recovery:
    seconds: float
    """From the kill to the answer of the first successful call started after it."""
    failed: int
    """isError answers in between (expected: the upstream is unavailable)."""
    unexpected: int
    """Calls in between that raised, got no answer within `PROBE_CALL_TIMEOUT` or a wrong one (not expected)."""
    first_error: str
    back_after: float | None
    """Seconds from the kill until the upstream itself was back, where `kill` says (None: it does not)."""


Kill = Callable[[], Awaitable[float | None]]
"""Kills an upstream; returns the time (anyio clock) it was back up, if it waits for that, else None."""


async def recovery_after(client: Client, name: str, kill: Kill, tag: str) -> Recovery:
    """Call `name` every `PROBE_INTERVAL`; after `PROBE_WARM_CALLS` successes, start `kill` alongside, and measure
    from its start until a call started after it succeeds."""
    killed_at: float | None = None
    back_at: float | None = None
    failed = unexpected = successes = 0
    first_error = ""

    async def timed_kill() -> None:
        nonlocal killed_at, back_at
        killed_at = anyio.current_time()
        back_at = await kill()

    with anyio.fail_after(RECOVERY_TIMEOUT):
        async with anyio.create_task_group() as tg:
            for call in itertools.count():
                started = anyio.current_time()
                text = f"{tag}-{call}"
                try:
                    with anyio.fail_after(PROBE_CALL_TIMEOUT):
                        result = await client.call_tool(name, {"text": text})
                except Exception as exc:
                    outcome, error = "raised", f"{type(exc).__name__}: {exc}"
                else:
                    error = answer_text(result) or repr(result.content)
                    outcome = "isError" if result.is_error else "ok" if error == text else "mismatched"
                if killed_at is None:
                    if outcome != "ok":
                        raise RuntimeError(f"probe call {outcome} before the kill: {error}")
                    successes += 1
                    if successes == PROBE_WARM_CALLS:
                        tg.start_soon(timed_kill)
                elif outcome == "ok" and started >= killed_at:
                    recovered = anyio.current_time() - killed_at
                    break
                elif outcome != "ok":
                    failed += outcome == "isError"
                    unexpected += outcome != "isError"
                    first_error = first_error or f"{outcome}: {error}"
                await anyio.sleep_until(started + PROBE_INTERVAL)
    # The task group waited for `kill` to return, so both times are known here.
    assert killed_at is not None
    return Recovery(recovered, failed, unexpected, first_error, None if back_at is None else back_at - killed_at)


async def stdio_recoveries(gateway: GatewayProcess, client: Client, name: str) -> list[Recovery]:
    """SIGKILL the gateway's stdio upstream, `RECOVERY_ROUNDS` times."""
    rounds = []
    for round_ in range(RECOVERY_ROUNDS):
        pid = stdio_upstream_pid(gateway)

        async def kill(pid: int = pid) -> None:
            os.kill(pid, signal.SIGKILL)

        rounds.append(await recovery_after(client, name, kill, f"stdio-kill-{round_}"))
    return rounds


async def http_recoveries(upstream: UpstreamProcess, client: Client, name: str) -> list[Recovery]:
    """Restart the gateway's streamable-HTTP upstream (SIGKILL, then a new process on the same port),
    `RECOVERY_ROUNDS` times."""

    async def restart() -> float:
        await anyio.to_thread.run_sync(upstream.restart)  # returns once the new process listens
        return anyio.current_time()

    return [await recovery_after(client, name, restart, f"http-restart-{n}") for n in range(RECOVERY_ROUNDS)]


# -- the run -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Results:
    direct: LoadRun
    through: Sequence[LoadRun]
    memory: MemoryRun
    stdio_kill: Sequence[Recovery]
    http_restart: Sequence[Recovery]
    metrics: str
    """The load gateway's /metrics at the end."""


async def run(workdir: Path) -> Results:
    # Port 0: the OS picks a free port once, and restart() starts the new process on that same port.
    upstream = await anyio.to_thread.run_sync(UpstreamProcess, "streamable_http")
    try:
        servers = {"up": stdio_upstream(), "web": {"transport": "streamable_http", "url": upstream.url}}
        gateway = await anyio.to_thread.run_sync(start_gateway, servers, workdir, "load", STARTUP_TIMEOUT, {})
        try:
            async with connect(gateway.mcp_url) as probe, connect(upstream.url) as straight:
                via_stdio, via_http = await tool_name(probe, "up__echo"), await tool_name(probe, "web__echo")
                direct_echo = await tool_name(straight, "echo")
            print(f"measuring: {BASELINE_SESSIONS} sessions calling the upstream directly", flush=True)
            direct = await load_run(upstream.url, direct_echo, BASELINE_SESSIONS, upstream.process.pid, "direct")
            through = []
            for sessions in LOAD_SESSIONS:
                print(f"measuring: {sessions} sessions calling through the gateway", flush=True)
                through.append(await load_run(gateway.mcp_url, via_stdio, sessions, gateway.process.pid, "load"))
            async with connect(gateway.mcp_url) as probe:
                print("measuring: recovery after SIGKILL of a stdio upstream", flush=True)
                stdio_kill = await stdio_recoveries(gateway, probe, via_stdio)
                print("measuring: recovery after a restart of a streamable-HTTP upstream", flush=True)
                http_restart = await http_recoveries(upstream, probe, via_http)
            async with httpx2.AsyncClient(timeout=10) as http:
                metrics = await scrape(http, gateway)
        finally:
            await anyio.to_thread.run_sync(gateway.stop)
    finally:
        await anyio.to_thread.run_sync(upstream.stop)
    print(f"measuring: memory of {MEMORY_SESSIONS} abandoned sessions, session cap {SESSION_CAP}", flush=True)
    memory = await memory_figures(workdir)
    return Results(direct, through, memory, stdio_kill, http_restart, metrics)


# -- the report --------------------------------------------------------------------------------------------------

NA_CAP: Final = "n/a (gateway has no export.max_sessions)"
Row = tuple[str, str, str, str, str]
"""figure, gateway, baseline or detail, ratio, verdict."""


def rate(value: float) -> str:
    return f"{value:,.0f} calls/s"


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "-"


def mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def counts(run: LoadRun) -> str:
    return f"{run.tally.lost} / {run.tally.mismatched} / {run.tally.errors}"


def load_rows(direct: LoadRun, run: LoadRun) -> list[Row]:
    where, base = f"echo, {run.sessions} sessions", f"(direct, {direct.sessions})"
    cpu, direct_cpu = run.server_cpu_ns / run.calls, direct.server_cpu_ns / direct.calls
    figures: list[tuple[str, Callable[[float], str], float, float]] = [
        (f"{where} x {CALLS_PER_SESSION} calls", rate, run.per_second, direct.per_second),
        (f"{where}: p50", duration, run.p50, direct.p50),
        (f"{where}: p99", duration, run.p99, direct.p99),
        (f"{where}: server process CPU per call", duration, cpu, direct_cpu),
    ]
    rows = [
        (name, show(value), f"{show(baseline)} {base}", ratio(value, baseline), "info")
        for name, show, value, baseline in figures
    ]
    verdict = _report.verdict_of(run.clean and direct.clean)
    rows.append((f"{where}: lost / mismatched / isError", counts(run), f"{counts(direct)} {base}", "-", verdict))
    return rows


def memory_rows(memory: MemoryRun) -> list[Row]:
    before, initialized, listed = (
        mib(kib) for kib in (memory.rss_before_kib, memory.rss_initialized_kib, memory.rss_listed_kib)
    )
    clients = f"/metrics: {memory.clients_reported:.0f} clients connected"
    rows: list[Row] = [
        (
            f"RSS per abandoned session, initialize only ({MEMORY_SESSIONS})",
            f"{memory.kib_per_initialized:.1f} KiB",
            f"RSS {before} -> {initialized}",
            "-",
            "info",
        ),
        (
            f"RSS per abandoned session, + tools/list ({MEMORY_SESSIONS})",
            f"{memory.kib_per_listed:.1f} KiB",
            f"RSS {initialized} -> {listed}, {clients}",
            "-",
            "info",
        ),
    ]
    opened = f"sessions opened until 503 (cap {SESSION_CAP})"
    if not memory.has_cap:
        rows += [(opened, NA_CAP, "-", "-", "info"), ("RSS at the session cap", NA_CAP, "-", "-", "info")]
    elif memory.cap_reached_at is None or memory.rss_at_cap_kib is None:
        rows.append((opened, f"no 503 after {SESSION_CAP + CAP_MARGIN}", "-", "-", "FAIL"))
    else:
        verdict = _report.verdict_of(memory.cap_reached_at == SESSION_CAP)
        rows.append((opened, f"{memory.cap_reached_at}", f"cap {SESSION_CAP}", "-", verdict))
        warm = f"{before} after {MEMORY_WARMUP_SESSIONS} sessions"
        rows.append(("RSS at the session cap", mib(memory.rss_at_cap_kib), warm, "-", "info"))
    return rows


def recovery_row(what: str, rounds: Sequence[Recovery]) -> Row:
    detail = "rounds " + ", ".join(f"{r.seconds:.2f}" for r in rounds) + " s"
    backs = [r.back_after for r in rounds if r.back_after is not None]
    if backs:
        detail += " (upstream up after " + ", ".join(f"{b:.2f}" for b in backs) + " s)"
    detail += f"; {sum(r.failed for r in rounds)} isError"
    unexpected = sum(r.unexpected for r in rounds)
    if unexpected:
        detail += f", {unexpected} other failures"
    median = statistics.median(r.seconds for r in rounds)
    return (f"{what} -> first good call", f"median {median:.2f} s", detail, "-", _report.verdict_of(not unexpected))


def render(results: Results) -> str:
    rows = [row for run in results.through for row in load_rows(results.direct, run)]
    rows += memory_rows(results.memory)
    rows.append(recovery_row("stdio upstream SIGKILL", results.stdio_kill))
    rows.append(recovery_row("HTTP upstream restart", results.http_restart))
    return _report.table(("figure", "gateway", "baseline or detail", "ratio", "verdict"), rows, right=(1, 3))


def outcomes(metrics: str) -> str:
    """Tool calls the load gateway counted, per server and outcome."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "lash_gateway_tool_calls_total":
                key = sample.labels["server"], sample.labels["outcome"]
                found[key] = found.get(key, 0.0) + sample.value
    return ", ".join(f"{server} {outcome} {count:,.0f}" for (server, outcome), count in sorted(found.items()))


def notes(results: Results) -> str:
    errors = sorted({r.first_error for r in (*results.stdio_kill, *results.http_restart) if r.first_error})
    client_cpu = ", ".join(
        f"{run.client_cpu_s / run.seconds:.0%} ({'gateway' if run in results.through else 'direct'}, {run.sessions})"
        for run in (results.direct, *results.through)
    )
    seen = "\n".join(f"      {error}" for error in errors) or "      none"
    counted = outcomes(results.metrics) or "no tool calls counted"
    interval_ms = f"{PROBE_INTERVAL * 1000:g}"
    warm, measured = MEMORY_WARMUP_SESSIONS, MEMORY_SESSIONS
    return f"""\
notes:
  load: one client process; per session one mcp.Client (mode="legacy") on its own httpx2.AsyncClient. Each session
    makes {WARMUP_CALLS} unmeasured calls; then all sessions make {CALLS_PER_SESSION} sequential echo calls at once,
    each with a text no other call uses. Throughput: measured calls over the wall time to the last answer.
    Gateway: lash-gateway serve -> tests.servers.upstream over stdio; direct: the same server over streamable HTTP.
    lost: raised, or no answer within {CALL_TIMEOUT:g} s; mismatched: the answer's text is not the request's own.
    Server process CPU: utime+stime of the gateway (its upstream excluded), or of the direct server.
    CPU of this client process over wall time (100% = one core busy): {client_cpu}.
  memory: raw POST initialize + notifications/initialized, the session never deleted. VmRSS of the gateway process
    alone, read after {warm} such sessions, after {measured} more, and after {measured} more that also sent tools/list
    (the request that builds a session's lash session). Then sessions up to the cap.
  recovery: one session calls echo every {interval_ms} ms; after {PROBE_WARM_CALLS} good calls the upstream is killed
    (stdio: SIGKILL of the gateway's child; HTTP: UpstreamProcess.restart(), SIGKILL and a new process on the same
    port). The figure runs from the kill to the answer of the first good call started after it; {RECOVERY_ROUNDS}
    rounds each; "upstream up": restart() returned, the new process listens. First failures of the rounds (distinct):
{seen}
  gateway /metrics after the load and recovery parts, tool calls by server and outcome:
    {counted}"""


def main() -> None:
    started = time.perf_counter()
    loads = os.getloadavg()
    print(
        f"lash gateway load and soak: 1-minute load average {loads[0]:.1f} at start, on {os.cpu_count()} cores",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="lash-bench-load-") as workdir:
        results = anyio.run(run, Path(workdir))
    print(render(results))
    print(notes(results))
    print(f"({time.perf_counter() - started:.1f} s; 1-minute load average {os.getloadavg()[0]:.1f} at the end)")


if __name__ == "__main__":
    main()
