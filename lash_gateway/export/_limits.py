"""Call limits of a virtual server: calls per minute and calls at once, for the whole server, for each client token,
and for single tools.

Calls per minute are a token bucket per counted thing (full at the start, refilled evenly over the minute), so a
burst up to the limit passes and the rate holds over any minute. A call is admitted only when every limit that
applies to it has room, and then it takes from all of them: a refused call uses up nothing. Counts live in this
process: with several replicas each one counts its own calls.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

from .._errors import GatewayError

__all__ = ["RATE_LIMITED", "Limit", "LimitExceeded", "Limiter", "Limits"]

RATE_LIMITED: Final = -32029
"""JSON-RPC error code of a call refused by a limit (implementation-defined server error range); its `data` says
which limit (`limit`, `scope`) and when to retry (`retryAfter`, seconds)."""
_BUSY_RETRY: Final = 1.0
"""Seconds a call refused for too many calls at once is told to wait: no clock says when one ends."""

Scope = Literal["virtual_server", "token", "tool"]
Kind = Literal["calls_per_minute", "concurrent_calls"]


@dataclass(frozen=True, slots=True)
class Limit:
    """`None` leaves a dimension unlimited."""

    calls_per_minute: int | None = None
    concurrent_calls: int | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """What a virtual server allows: `server` over all its calls, `per_token` to each client token, `tools` to each
    named tool (by the name the view shows it under, over all its callers)."""

    server: Limit = Limit()
    per_token: Limit = Limit()
    tools: Mapping[str, Limit] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return any(
            limit.calls_per_minute or limit.concurrent_calls
            for limit in (self.server, self.per_token, *self.tools.values())
        )


class LimitExceeded(GatewayError):
    """A call over a limit; the message says which limit and when to retry."""

    def __init__(self, scope: Scope, kind: Kind, allowed: int, retry_after: float, subject: str) -> None:
        self.scope, self.kind, self.allowed = scope, kind, allowed
        self.retry_after = max(1, math.ceil(retry_after))
        """Whole seconds, as `Retry-After` takes them."""
        what = f"{allowed} calls per minute" if kind == "calls_per_minute" else f"{allowed} calls at once"
        super().__init__(f"rate limited: {subject} allows {what}; retry in {self.retry_after} s")

    @property
    def data(self) -> dict[str, object]:
        """The JSON-RPC error's `data`."""
        return {"limit": self.kind, "scope": self.scope, "allowed": self.allowed, "retryAfter": self.retry_after}


@dataclass(slots=True)
class _Bucket:
    rate: int
    level: float
    at: float

    def wait(self, now: float) -> float:
        """Seconds until one call fits (0: it fits now), with the bucket refilled up to `now`."""
        self.level = min(float(self.rate), self.level + (now - self.at) * self.rate / 60.0)
        self.at = now
        return 0.0 if self.level >= 1.0 else (1.0 - self.level) * 60.0 / self.rate


class Limiter:
    """Admits calls within `limits`; `on_refused` hears of each refusal (for metrics)."""

    def __init__(
        self,
        limits: Limits,
        subject: str,
        on_refused: Callable[[LimitExceeded], None] = lambda exc: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`subject` names what is limited in messages (`virtual server research`); `clock` counts seconds."""
        self.limits = limits
        self._clock = clock
        self._subject = subject
        self._on_refused = on_refused
        self._buckets: dict[tuple[Scope, str | None], _Bucket] = {}
        self._running: dict[tuple[Scope, str | None], int] = {}

    def acquire(self, token_id: str | None, tool: str) -> Callable[[], None]:
        """Admit one call of `tool` by the client of `token_id`; returns what ends it (call it once, when it ends).

        Raises:
            LimitExceeded: a limit has no room; nothing was taken.
        """
        checks: list[tuple[Scope, str | None, Limit, str]] = [
            ("virtual_server", None, self.limits.server, f"virtual server {self._subject}"),
            ("token", token_id, self.limits.per_token, f"virtual server {self._subject}, per client token,"),
        ]
        if (tool_limit := self.limits.tools.get(tool)) is not None:
            checks.append(("tool", tool, tool_limit, f"tool {tool} of virtual server {self._subject}"))
        now = self._clock()
        buckets: list[_Bucket] = []
        counted: list[tuple[Scope, str | None]] = []
        for scope, key, limit, subject in checks:
            if limit.concurrent_calls is not None:
                if self._running.get((scope, key), 0) >= limit.concurrent_calls:
                    self._refuse(LimitExceeded(scope, "concurrent_calls", limit.concurrent_calls, _BUSY_RETRY, subject))
                counted.append((scope, key))
            if limit.calls_per_minute is not None:
                bucket = self._buckets.get((scope, key))
                if bucket is None or bucket.rate != limit.calls_per_minute:
                    bucket = self._buckets[(scope, key)] = _Bucket(limit.calls_per_minute, limit.calls_per_minute, now)
                if (wait := bucket.wait(now)) > 0:
                    self._refuse(LimitExceeded(scope, "calls_per_minute", limit.calls_per_minute, wait, subject))
                buckets.append(bucket)
        for bucket in buckets:
            bucket.level -= 1.0
        for held in counted:
            self._running[held] = self._running.get(held, 0) + 1
        return lambda: self._release(counted)

    def _refuse(self, exc: LimitExceeded) -> None:
        self._on_refused(exc)
        raise exc

    def _release(self, counted: list[tuple[Scope, str | None]]) -> None:
        for key in counted:
            left = self._running[key] - 1
            if left:
                self._running[key] = left
            else:
                del self._running[key]
