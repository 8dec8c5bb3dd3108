"""The audit log: one record per tool call, on every endpoint, kept in the state store for `retention_days`.

A call only appends its record to a list (a few hundred nanoseconds); a task of the log writes the list to the store
every `FLUSH_INTERVAL` seconds, or as soon as `BATCH` records wait, in one transaction in a worker thread, where the
records' sizes are measured and their arguments redacted too. Leaving the log (`async with`) writes what is left, so
a clean shutdown loses none. A store that cannot keep up loses the oldest records past `MAX_PENDING`, counted and
said in the log, rather than the gateway's memory.

Arguments are kept only when `gateway.audit.arguments` is on, as the client sent them (a virtual server's fixed
arguments are the operator's, never recorded), with the values of keys that contain a word of `redact` (at any
depth, case-insensitive) replaced by `"[redacted]"`; never the token a client presented, only its id.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Protocol, Self

import anyio
import pydantic_core
from anyio.abc import TaskGroup
from pydantic import BaseModel, ConfigDict, Field

from .._errors import StoreError
from ..export._export import CallRecord

__all__ = ["AuditEntry", "AuditLog", "AuditQuery", "AuditSettings", "AuditStore"]

log = logging.getLogger("lash_gateway.audit")

BATCH: Final = 256
FLUSH_INTERVAL: Final = 0.5
MAX_PENDING: Final = 10_000
"""Calls waiting to be written (each holds its result until then)."""
MAX_UNWRITTEN: Final = 100_000
"""Records kept, small, while the store cannot be written; past it the oldest are lost (counted, and logged)."""
PRUNE_EVERY: Final = 3600.0
"""Seconds between two deletions of records past their retention."""
REDACTED: Final = "[redacted]"
MAX_NAME: Final = 256
"""Characters of a called tool name kept: a client may call any name, and an unknown one is recorded too."""


class AuditSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)

    enabled: bool = True
    """Record every tool call (needs a state store: `serve`, and `stdio` with a state directory)."""
    retention_days: float = Field(default=30.0, gt=0, le=36500, allow_inf_nan=False)
    """Records older than this are deleted (checked hourly)."""
    arguments: bool = False
    """Keep each call's arguments (as the tool got them, fixed ones included), with `redact` keys hidden."""
    redact: list[str] = ["password", "passwd", "secret", "token", "key", "auth", "cookie", "credential", "session"]
    """Argument keys whose values are never kept: a key that contains one of these, case-insensitively, at any
    depth (`key` covers `api_key` and `private_key`)."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One record as stored and shown."""

    time: float
    virtual_server: str | None
    token_id: str | None
    session: str
    tool: str
    upstream_tool: str | None
    server: str | None
    outcome: str
    duration_ms: float
    argument_bytes: int
    result_bytes: int
    arguments: str | None
    """JSON, redacted; None unless `arguments` is on."""

    def public(self) -> dict[str, Any]:
        """As the admin API shows it: `time` in ISO 8601 (UTC), `arguments` as JSON."""
        shown: dict[str, Any] = {
            "time": datetime.fromtimestamp(self.time, UTC).isoformat(timespec="milliseconds"),
            "virtual_server": self.virtual_server,
            "token_id": self.token_id,
            "session": self.session,
            "tool": self.tool,
            "upstream_tool": self.upstream_tool,
            "server": self.server,
            "outcome": self.outcome,
            "duration_ms": round(self.duration_ms, 3),
            "argument_bytes": self.argument_bytes,
            "result_bytes": self.result_bytes,
        }
        if self.arguments is not None:
            shown["arguments"] = json.loads(self.arguments)
        return shown


@dataclass(frozen=True, slots=True)
class AuditQuery:
    limit: int = 100
    since: float | None = None
    tool: str | None = None
    virtual_server: str | None = None


class AuditStore(Protocol):
    """Where records go (`StateStore` is one)."""

    async def write_audit(self, entries: list[AuditEntry], prune_before: float | None) -> None:
        """Add `entries` and delete those older than `prune_before`, in one transaction."""


_Pending = tuple[str | None, CallRecord, tuple[str, str] | None]
"""(virtual server, the call, its (server, upstream tool))."""


class AuditLog:
    """Takes records (`add`) and writes them in batches while entered."""

    def __init__(self, store: AuditStore, settings: AuditSettings) -> None:
        self._store = store
        self._settings = settings
        self._redact = frozenset(key.lower() for key in settings.redact)
        self._pending: list[_Pending] = []
        self._unwritten: list[AuditEntry] = []
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self._last_prune = 0.0
        self.dropped = 0
        """Records lost because the store did not keep up."""
        self._tg: TaskGroup | None = None

    async def __aenter__(self) -> Self:
        self._tg = anyio.create_task_group()
        await self._tg.__aenter__()
        self._tg.start_soon(self._run)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._tg is not None
        self._tg.cancel_scope.cancel()
        await self._tg.__aexit__(None, None, None)
        self._tg = None
        with anyio.CancelScope(shield=True), anyio.move_on_after(10):
            try:
                await self.flush()
            except StoreError as exc:  # the gateway stops all the same
                lost = len(self._unwritten) + len(self._pending)
                log.error("%d audit records lost at shutdown: %s", lost, exc, extra={"lost": lost, "reason": str(exc)})

    def add(self, virtual_server: str | None, record: CallRecord, route: tuple[str, str] | None) -> None:
        """Note one call (on the call's own path: no I/O, no serialising); `route` is its (server, upstream tool),
        None for a plugin's tool or none at all."""
        if len(self._pending) >= MAX_PENDING:
            del self._pending[0]
            self._lost(1)
        self._pending.append((virtual_server, record, route))
        if len(self._pending) >= BATCH:
            self._wake.set()

    def _lost(self, count: int) -> None:
        before, self.dropped = self.dropped, self.dropped + count
        if before == 0 or before // 10_000 != self.dropped // 10_000:
            log.error(
                "audit records lost: the state store does not keep up (%d lost so far)",
                self.dropped,
                extra={"dropped": self.dropped},
            )

    async def _run(self) -> None:
        while True:
            with anyio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            try:
                await self.flush()
            except StoreError as exc:
                log.error("audit records not written, retried later: %s", exc, extra={"reason": str(exc)})

    async def flush(self) -> None:
        """Write every record taken so far (and prune past the retention, at most hourly).

        Raises:
            StoreError: the store could not be written; the records wait for the next flush.
        """
        async with self._lock:
            pending, self._pending = self._pending, []
            self._wake = anyio.Event()
            now = datetime.now(UTC).timestamp()
            prune = None
            if now - self._last_prune >= PRUNE_EVERY:
                prune = now - self._settings.retention_days * 86400
            if not pending and not self._unwritten and prune is None:
                return
            entries: list[AuditEntry] = []
            try:
                entries = self._unwritten + await anyio.to_thread.run_sync(self._entries, pending)
                self._unwritten = []
                await self._store.write_audit(entries, prune)
            except BaseException:  # a failed write, or the writer cancelled mid-batch: the records wait for the next
                if entries:  # measured already: kept small, without the results they were measured from
                    self._unwritten = entries[-MAX_UNWRITTEN:]
                    self._lost(len(entries) - len(self._unwritten))
                else:
                    self._pending[:0] = pending
                raise
            if prune is not None:
                self._last_prune = now

    def _entries(self, pending: list[_Pending]) -> list[AuditEntry]:
        return [self._entry(*item) for item in pending]

    def _entry(self, virtual_server: str | None, record: CallRecord, route: tuple[str, str] | None) -> AuditEntry:
        arguments = pydantic_core.to_json(record.arguments, fallback=str)
        kept = None
        if self._settings.arguments:
            kept = pydantic_core.to_json(self._redacted(record.arguments), fallback=str).decode()
        result_bytes = len(pydantic_core.to_json(record.wire, fallback=str)) if record.wire is not None else 0
        return AuditEntry(
            time=record.started,
            virtual_server=virtual_server,
            token_id=record.token_id,
            session=record.session,
            tool=record.tool[:MAX_NAME],
            upstream_tool=route[1] if route else None,
            server=route[0] if route else None,
            outcome=record.outcome,
            duration_ms=record.seconds * 1000,
            argument_bytes=len(arguments),
            result_bytes=result_bytes,
            arguments=kept,
        )

    def _redacted(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {
                key: REDACTED if any(word in str(key).lower() for word in self._redact) else self._redacted(item)
                for key, item in value.items()
            }
        if isinstance(value, list | tuple):
            return [self._redacted(item) for item in value]
        return value
