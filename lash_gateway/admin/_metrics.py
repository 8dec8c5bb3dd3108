"""Prometheus metrics for the gateway: calls, errors and latency per server and tool; attached and
connected servers; connected clients; open and refused sessions; messages dropped for callers that did
not read them. Gauges and per-server counts are read at scrape time, never kept in sync by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from ..export._export import CallRecord
from ..export._limits import LimitExceeded
from ..upstream._pool import McpConnectionPool

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
PLUGIN_SERVER = "(plugin)"
"""The `server` label of tools that come from in-process plugins rather than an MCP server."""


class GatewayMetrics:
    def __init__(
        self, pool: McpConnectionPool, connected_clients: Callable[[], int], open_sessions: Callable[[], int]
    ) -> None:
        self._pool = pool
        self.registry = CollectorRegistry()
        self._calls = Counter(
            "lash_gateway_tool_calls", "Tool calls answered", ["server", "tool", "outcome"], registry=self.registry
        )
        self._latency = Histogram(
            "lash_gateway_tool_call_seconds", "Tool call latency", ["server", "tool"], registry=self.registry
        )
        self._children: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
        attached = Gauge("lash_gateway_servers_attached", "Attached MCP servers", registry=self.registry)
        attached.set_function(lambda: len(pool.server_statuses()))
        connected = Gauge("lash_gateway_servers_connected", "Connected MCP servers", registry=self.registry)
        connected.set_function(lambda: sum(s.connected for s in pool.server_statuses()))
        clients = Gauge("lash_gateway_clients_connected", "Open downstream MCP connections", registry=self.registry)
        clients.set_function(connected_clients)
        sessions = Gauge(
            "lash_gateway_sessions_open",
            "Open streamable-HTTP sessions, SSE connections and 2026-07-28 listen streams",
            registry=self.registry,
        )
        sessions.set_function(open_sessions)
        self.registry.register(_DroppedNotices(pool))
        self._limited = Counter(
            "lash_gateway_calls_limited",
            "Tool calls refused by a virtual server's limits",
            ["virtual_server", "scope", "limit"],
            registry=self.registry,
        )
        self._refused = Counter(
            "lash_gateway_sessions_refused",
            "New sessions refused at gateway.export.max_sessions",
            registry=self.registry,
        )

    def observe(self, record: CallRecord, route: tuple[str, str] | None) -> None:
        """Record one call that ran a tool (calls of no tool, or refused before one ran, are not timed here); `route`
        is its (server, upstream tool), None for a plugin's tool."""
        if record.lash_name is None:
            return
        server, name = route or (PLUGIN_SERVER, record.lash_name)
        result = record.result
        outcome = "cancelled" if result is None else (result.code or "error") if result.is_error else "ok"
        children = self._children.get((server, name, outcome))
        if children is None:
            # labels() validates and locks on every call, a measurable share of a fast call: look them up once.
            children = self._children[(server, name, outcome)] = (
                self._calls.labels(server, name, outcome),
                self._latency.labels(server, name),
            )
        calls, latency = children
        calls.inc()
        latency.observe(record.seconds)

    def limited(self, virtual_server: str, exc: LimitExceeded) -> None:
        """Count a call a limit refused."""
        self._limited.labels(virtual_server, exc.scope, exc.kind).inc()

    def session_refused(self) -> None:
        self._refused.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _DroppedNotices(Collector):
    """`lash_gateway_notices_dropped_total{server}`, read from the servers' statuses at scrape time."""

    def __init__(self, pool: McpConnectionPool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            "lash_gateway_notices_dropped",
            "Progress and log messages dropped for callers that did not read them",
            labels=["server"],
        )
        for status in self._pool.server_statuses():
            family.add_metric([status.name], status.notices_dropped)
        yield family
