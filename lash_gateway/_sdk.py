"""Every private part of the MCP SDK the gateway uses, in this one module, each with why and what it relies on.

Nothing else in the package touches an `mcp` name that starts with `_`. `tests/structure/test_sdk_internals.py` checks
each piece against the installed SDK and fails naming the piece when an upgrade moves it; `mcp` is pinned to
the minor versions those checks were run on (see the README to move the pin).

Client side (`upstream`):
- `send_raw_request`: `ClientSession.send_request` validates results strictly: one upstream tool with a
  schema the SDK rejects would hide all of a server's tools, and `call_tool()` re-lists the tools after a
  success to check structured output. The gateway forwards results as they are, so it stamps a request the
  way the session does (`_stamp`: protocol headers and the 2026-07-28 envelope) and sends it through the
  session's dispatcher (`_dispatcher.send_raw_request`), the same path without validation. The envelope's client
  capabilities then say what the request's own client declared of each kind of question (the stamp writes the
  connection's).
- `executable_command`, `create_process`, `stop_process`: the stdio client's process helpers (the child in
  its own process group or job object; close stdin, wait, then kill the tree). The gateway's own stdio
  transport reads the child's output itself, for speed, and starts and stops it as the SDK does.
- `terminate_process_group`: the helper with which `stop_process` kills the tree on POSIX (SIGTERM to the child's
  process group, SIGKILL after a timeout). `stop_process` kills the tree only when the child outstays its grace; the
  gateway also kills what the child leaves of its group once it has exited.
- `pipe_writer`: the asyncio `StreamWriter` under the child's stdin (anyio's `StreamWriterWrapper._stream`). anyio's
  `send()` yields to the event loop after every write, even when the pipe takes it at once: a loop turn and two
  cancel-scope checks per call, on every call's path. The lane writes to the pipe itself and waits only when the
  pipe is full.

Server side (`export`):
- `connection_of`: a request context's `ServerSession._connection`. The SDK has no public registry of
  connections; the gateway keeps one (to notify clients and to find a streamable-HTTP session's
  connection), through the connection's public `state`, `exit_stack` and `session_id`.
- `http_transports`, `holding`: the streamable-HTTP session manager's sessions (`_server_instances`), and a
  session transport's idle clock (`_idle_timeout`, `_requests_in_flight`, `idle_scope`). The fast path
  answers calls on a session itself, so it must know a session the SDK still serves, and hold the session
  against idle expiry while it serves a request, exactly as the SDK's own `handle_request` does.
- `prefix_session_ids`: the manager's `_admit_session` (which names a new session `uuid4().hex`) and its
  `_server_instances` / `_session_owners`. Replicas name their sessions `<replica>-<uuid>`, so whichever replica a
  load balancer sends a request to knows which one holds the session, with no lookup.
- `report_admissions`: the same `_admit_session`, where the manager decides on a new session (makes and counts it,
  or refuses it), in the request's task, before its answer starts. The edge holds a place against `max_sessions` for
  an initialize until then, so that initializes arriving together cannot pass the limit together, and no longer (it
  would count the session twice).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import anyio
from mcp import ClientSession
from mcp.client.stdio import _create_platform_compatible_process as create_process
from mcp.client.stdio import _get_executable_command as executable_command
from mcp.client.stdio import _stop_server_process as stop_process
from mcp.os.posix.utilities import terminate_posix_process_tree as terminate_process_group
from mcp.server import ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.streamable_http import StreamableHTTPServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.shared.dispatcher import CallOptions
from mcp_types import CLIENT_CAPABILITIES_META_KEY

__all__ = [
    "admitting",
    "connection_of",
    "create_process",
    "executable_command",
    "holding",
    "http_transports",
    "pipe_writer",
    "prefix_session_ids",
    "report_admissions",
    "send_raw_request",
    "stop_process",
    "terminate_process_group",
]


async def send_raw_request(
    session: ClientSession,
    method: str,
    params: Mapping[str, Any],
    opts: CallOptions,
    declares: Callable[[str, Any], Any] | None = None,
) -> dict[str, Any]:
    """Send one request as `ClientSession.send_request` would, and return its raw result, unvalidated. `declares`
    says what the 2026-07-28 per-request envelope tells of this request's client, capability by capability
    (`declares(name, the connection's value)`, None to leave it out): the stamp puts in the connection's, declared for
    every client at once.

    Raises:
        mcp.MCPError: an error response, or `CONNECTION_CLOSED` when the transport went away.
    """
    data: dict[str, Any] = {"method": method, "params": dict(params)}
    session._stamp(data, opts)  # protocol headers, and the 2026-07-28 per-request envelope
    meta = data["params"].get("_meta")
    if declares is not None and isinstance(meta, dict):
        declared = meta.get(CLIENT_CAPABILITIES_META_KEY)
        if isinstance(declared, dict):  # the stamp's dict is the connection's: a new one, not an edit
            told = {name: declares(name, value) for name, value in declared.items()}
            meta[CLIENT_CAPABILITIES_META_KEY] = {name: value for name, value in told.items() if value is not None}
    return await session._dispatcher.send_raw_request(method, data["params"], opts)


def connection_of(ctx: ServerRequestContext[Any, Any]) -> Connection:
    """The connection a request came on."""
    connection: Connection = ctx.session._connection
    return connection


def http_transports(manager: StreamableHTTPSessionManager) -> Mapping[str, StreamableHTTPServerTransport]:
    """The manager's sessions by id (read only: the manager adds and discards them)."""
    return manager._server_instances


def prefix_session_ids(
    manager: StreamableHTTPSessionManager, prefix: str, forced: Callable[[], str | None] = lambda: None
) -> None:
    """Name every new session of `manager` `<prefix><uuid hex>` (before its first answer carries the id), or what
    `forced()` says when it says something (a session taken over keeps the id it had)."""
    admit = manager._admit_session

    def admit_prefixed(requestor: Any) -> StreamableHTTPServerTransport | None:
        transport = admit(requestor)
        if transport is None or transport.mcp_session_id is None:
            return transport
        plain = transport.mcp_session_id
        transport.mcp_session_id = forced() or prefix + plain
        manager._server_instances[transport.mcp_session_id] = manager._server_instances.pop(plain)
        if plain in manager._session_owners:
            manager._session_owners[transport.mcp_session_id] = manager._session_owners.pop(plain)
        return transport

    manager._admit_session = admit_prefixed  # type: ignore[method-assign]


_ADMITTED: ContextVar[Callable[[], None] | None] = ContextVar("lash_gateway_admitted", default=None)


def report_admissions(manager: StreamableHTTPSessionManager) -> None:
    """Have `manager` call what `admitting` gave, in the request's task, once it has decided on a new session."""
    admit = manager._admit_session

    def admit_reporting(requestor: Any) -> StreamableHTTPServerTransport | None:
        try:
            return admit(requestor)
        finally:
            decided = _ADMITTED.get()
            if decided is not None:
                decided()

    manager._admit_session = admit_reporting  # type: ignore[method-assign]


@contextmanager
def admitting(decided: Callable[[], None]) -> Iterator[None]:
    """Within this block, the manager of `report_admissions` calls `decided()` when it decides on a new session."""
    token = _ADMITTED.set(decided)
    try:
        yield
    finally:
        _ADMITTED.reset(token)


@contextmanager
def holding(transport: StreamableHTTPServerTransport) -> Iterator[None]:
    """Hold a session against idle expiry while a request is served, as the SDK's `handle_request` does: its
    countdown stops with the first request in flight and restarts when the last one ends."""
    idle_scope, timeout = transport.idle_scope, transport._idle_timeout
    if idle_scope is None or timeout is None:
        yield
        return
    transport._requests_in_flight += 1
    idle_scope.deadline = math.inf
    try:
        yield
    finally:
        transport._requests_in_flight -= 1
        if not transport._requests_in_flight:
            idle_scope.deadline = anyio.current_time() + timeout


def pipe_writer(stdin: object) -> asyncio.StreamWriter | None:
    """The asyncio writer under an anyio process's stdin; None where there is none (the SDK's Windows fallback)."""
    writer = getattr(stdin, "_stream", None)
    return writer if isinstance(writer, asyncio.StreamWriter) else None
