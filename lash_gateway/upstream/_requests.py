"""One request to a live upstream connection that may take a while and ask its caller: `tools/call`,
`resources/read`, `prompts/get`, `completion/complete`.

The request goes through the stdio lane where there is one (its own task delivers progress and log messages,
in order, before the answer), else through the SDK session without result validation. A timeout and the
server's stop share one cancel scope, told apart by the stop reason. A 2026-07-28 server that asks (an
input-required result) is answered from this task, through the caller, and asked again with the answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

import anyio
import mcp_types as types
from mcp import Client, MCPError
from mcp_types import LOG_LEVEL_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from lash_core import Caller, LogReporter, ProgressReporter

from .._config import ServerConfig
from .._declared import declared_as, lacks_what_it_declared
from .._errors import CallTimeout, ServerDetached, UpstreamCallError, UpstreamError, UpstreamUnavailable
from ._asks import MAX_INPUT_ROUNDS, Asks, answer_input_requests, paused
from ._in_flight import CallsInFlight
from ._relay import CallRelay
from ._stdio import StdioLane
from ._wire import send_raw, strip_sdk_meta

__all__ = ["Live", "Requests"]

_KINDS: Final = {
    "tools/call": "tool",
    "resources/read": "resource",
    "prompts/get": "prompt",
    "completion/complete": "completion",
}
"""How errors name what a request was for."""


@dataclass(frozen=True, slots=True)
class Live:
    """An open connection, as a request sees it."""

    client: Client
    lane: StdioLane | None
    lost: anyio.Event
    """Set to tell the supervisor the connection is gone."""


class Requests:
    """The requests of one upstream server."""

    def __init__(self, name: str, config: ServerConfig, calls: CallsInFlight, asks: Asks) -> None:
        self._name, self._config, self._calls, self._asks = name, config, calls, asks

    async def send(
        self,
        live: Live | None,
        down: str,
        method: str,
        params: Mapping[str, Any],
        label: str,
        *,
        progress: ProgressReporter | None,
        call_timeout: float | None,
        log_to: LogReporter | None,
        caller: Caller,
    ) -> dict[str, Any]:
        """Send one request and return its raw result, without the SDK's `_meta` stamps. `live` is None while
        not connected, `down` then says why; `label` names the request in errors (the tool, the URI, the prompt).

        Raises:
            UpstreamUnavailable: not connected, or the connection was lost during the request.
            ServerDetached: the server was detached (or replaced) while the request was in flight.
            CallTimeout: no answer within the timeout; the upstream is told to cancel.
            UpstreamCallError: the upstream answered with a JSON-RPC error, or kept asking for input.
        """
        stop_reason = self._calls.stop_reason
        if stop_reason is not None:  # stopping: its calls are being cancelled, this one would outlive them
            raise ServerDetached(self._name, stop_reason)
        if live is None:
            raise UpstreamUnavailable(self._name, f"not connected ({down}); the gateway keeps reconnecting")
        limit = self._config.call_timeout if call_timeout is None else call_timeout
        relay = self._calls.relay(label, progress, log_to)
        body = dict(params)
        if log_to is not None and live.client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            # A 2026-07-28 server logs to a request only when asked; the caller's level filters downstream.
            body["_meta"] = {**body.get("_meta", {}), LOG_LEVEL_META_KEY: "debug"}
        # One scope serves the timeout and `stop()`; which one fired is told by the stop reason.
        with (
            anyio.CancelScope(deadline=anyio.current_time() + limit) as scope,
            self._calls.tracking(scope),
            self._asks.asking(caller, scope),
        ):
            try:
                retry = body
                for _ in range(MAX_INPUT_ROUNDS):
                    raw = await self._once(live, method, retry, label, relay, progress, caller)
                    if raw.get("resultType") != "input_required":
                        return _cleaned(raw)
                    # A 2026-07-28 server asks in its result; the answers go back with the retry, from this task.
                    requests = raw.get("inputRequests")
                    with paused(scope):  # the caller's time to answer is not the call's
                        answers = await answer_input_requests(
                            self._name, caller, requests if isinstance(requests, Mapping) else {}
                        )
                    retry = {**body, "inputResponses": answers}
                    if "requestState" in raw:
                        retry["requestState"] = raw["requestState"]
                raise UpstreamCallError(
                    self._name,
                    label,
                    types.INTERNAL_ERROR,
                    f"still asking for input after {MAX_INPUT_ROUNDS} rounds",
                    kind=_KINDS.get(method, method),
                )
            finally:
                relay.close()
        if self._calls.stop_reason is not None:
            raise ServerDetached(self._name, self._calls.stop_reason)
        raise CallTimeout(self._name, label, limit)

    async def _once(
        self,
        live: Live,
        method: str,
        body: Mapping[str, Any],
        label: str,
        relay: CallRelay,
        progress: ProgressReporter | None,
        caller: Caller,
    ) -> dict[str, Any]:
        error: UpstreamError | None = None
        raw: dict[str, Any] = {}
        if live.lane is not None:  # the lane's request delivers the relay's messages in this task
            try:
                raw = await live.lane.request(method, body, relay)
            except MCPError as exc:
                error = self._error(live, method, label, exc)
        else:
            with self._calls.taking_logs(relay):  # until answered: no later message is this call's
                try:
                    on_progress = relay.report_progress if progress is not None else None
                    # A 2026-07-28 server hears what this call's client takes (it asks for nothing else).
                    declares = partial(declared_as, caller)
                    raw = await send_raw(live.client.session, method, body, on_progress=on_progress, declares=declares)
                except MCPError as exc:
                    error = self._error(live, method, label, exc)
            await relay.settled()  # what came before the answer goes first, within the time limit
        if error is not None:
            raise error from None
        return raw

    def _error(self, live: Live, method: str, label: str, exc: MCPError) -> UpstreamError:
        if self._calls.stop_reason is not None:
            return ServerDetached(self._name, self._calls.stop_reason)
        if exc.code == types.CONNECTION_CLOSED:
            live.lost.set()
            # The SDK's HTTP client says why a response stream failed (an event over the size limit).
            why = "" if exc.message == "Connection closed" else f" ({exc.message})"
            return UpstreamUnavailable(self._name, f"connection lost during {method} {label!r}{why}; reconnecting")
        if exc.code == types.INVALID_REQUEST and exc.message in ("Session not found", "Session terminated"):
            # An HTTP server that restarted forgot our session: the request never ran.
            live.lost.set()
            return UpstreamUnavailable(
                self._name, f"the server no longer knows this session ({exc.message}); reconnecting"
            )
        # A 2026-07-28 server heard the client's own capabilities; a handshake-era one, the gateway's connection's.
        client_lacks = (
            exc.code == types.MISSING_REQUIRED_CLIENT_CAPABILITY
            and live.client.protocol_version in MODERN_PROTOCOL_VERSIONS
            and lacks_what_it_declared(exc.data)
        )
        kind = _KINDS.get(method, method)
        return UpstreamCallError(
            self._name, label, exc.code, exc.message, kind=kind, data=exc.data, client_lacks=client_lacks
        )


def _cleaned(raw: dict[str, Any]) -> dict[str, Any]:
    """A result as the gateway passes it on: without `resultType` (the export sets its own era's) and the SDK's
    own `_meta` stamps."""
    raw.pop("resultType", None)
    meta = strip_sdk_meta(raw.pop("_meta", None))
    if meta:
        raw["_meta"] = meta
    return raw
