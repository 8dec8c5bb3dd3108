"""The embedded store: every attach and detach made at runtime, so they survive a restart.

One SQLite table, one row per server name: its last runtime change, either an attach (with the
full config, secrets included, which is why the file is owner-only) or a detach (a tombstone, so
detaching a server from the config file also survives a restart). Each change is one transaction:
a crash leaves the previous or the new row, never half of one.

Precedence on start: the config file's servers, then the store on top (a stored attach replaces a
config-file server of the same name; a stored detach removes it). Editing the config file does not
undo runtime changes; `DELETE` then `PUT` through the admin API does.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from pydantic import BaseModel, SecretStr

from .._config import McpServerConfig, ServerConfig
from .._errors import StateError, StoreError
from ._state import ensure_private

log = logging.getLogger("lash_gateway.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    name TEXT PRIMARY KEY,
    config TEXT,            -- JSON of the server config with secrets; NULL means detached
    changed_at REAL NOT NULL
)
"""


@dataclass(frozen=True, slots=True)
class StoredChange:
    name: str
    config: ServerConfig | None
    """None: the server was detached."""


class StateStore:
    """Runtime attach/detach records in `path`. Methods run SQLite in a worker thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = anyio.Lock()

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path.exists():
                ensure_private(self.path)
            else:
                self.path.touch(mode=0o600)
            connection = sqlite3.connect(self.path, timeout=5)
            with connection:
                connection.execute(_SCHEMA)
            return connection
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        except StateError as exc:
            raise StoreError(str(exc)) from None

    def _load(self) -> list[StoredChange]:
        connection = self._connect()
        try:
            rows = connection.execute("SELECT name, config FROM servers ORDER BY changed_at").fetchall()
        finally:
            connection.close()
        changes = []
        for name, raw in rows:
            try:
                changes.append(StoredChange(name, McpServerConfig.parse(json.loads(raw), name=name) if raw else None))
            except (ValueError, RecursionError) as exc:  # JSONDecodeError and ConfigError are ValueErrors
                log.error(
                    "state store %s: the stored change of server %s cannot be read, left out: %s",
                    self.path,
                    name,
                    exc,
                    extra={"server": name, "path": str(self.path), "reason": str(exc)},
                )
        return changes

    def _record(self, name: str, config: ServerConfig | None) -> None:
        raw = json.dumps(_with_secrets(config)) if config is not None else None
        connection = self._connect()
        try:
            with connection:
                connection.execute(
                    "INSERT INTO servers (name, config, changed_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET config = excluded.config, changed_at = excluded.changed_at",
                    (name, raw, time.time()),
                )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state store {self.path}: {exc}") from exc
        finally:
            connection.close()

    async def load(self) -> list[StoredChange]:
        """Every server's last runtime change, oldest first."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._load)

    async def record_attach(self, name: str, config: ServerConfig) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._record, name, config)

    async def record_detach(self, name: str) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._record, name, None)


def apply_changes(servers: Mapping[str, ServerConfig], changes: list[StoredChange]) -> dict[str, ServerConfig]:
    """The config file's servers with the stored runtime changes on top (see the module docstring)."""
    result = dict(servers)
    for change in changes:
        if change.config is None:
            result.pop(change.name, None)
        else:
            result[change.name] = change.config
    return result


def _with_secrets(config: BaseModel) -> dict[str, Any]:
    """The typed config as JSON, secret values included (the store must be able to reconnect)."""

    def reveal(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return value.get_secret_value()
        if isinstance(value, BaseModel):
            return {name: reveal(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, Mapping):
            return {k: reveal(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [reveal(v) for v in value]
        return value

    revealed: dict[str, Any] = reveal(config)
    return revealed
