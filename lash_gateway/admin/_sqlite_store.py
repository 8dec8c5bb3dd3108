"""The embedded store (SQLite, one file in the state directory, owner-only): what `_store` says a store keeps, for
one gateway process. Methods run SQLite in a worker thread, one at a time."""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

from .._config import ServerConfig
from .._errors import StateError, StoreError
from ._audit import AuditEntry, AuditQuery
from ._state import ensure_private
from ._store import AUDIT_COLUMNS, Sealer, StoredChange, StoredVirtualServer, audit_row
from ._virtual_settings import VirtualServerConfig

__all__ = ["StateStore"]

log = logging.getLogger("lash_gateway.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS servers (
    name TEXT PRIMARY KEY,
    config TEXT,            -- JSON of the server config with secrets; NULL means detached
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS virtual_servers (
    name TEXT PRIMARY KEY,
    config TEXT,            -- JSON of the virtual server, tokens as digests only; NULL means removed
    changed_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    time REAL NOT NULL,
    virtual_server TEXT,
    token_id TEXT,
    session TEXT NOT NULL,
    tool TEXT NOT NULL,
    upstream_tool TEXT,
    server TEXT,
    outcome TEXT NOT NULL,
    duration_ms REAL NOT NULL,
    argument_bytes INTEGER NOT NULL,
    result_bytes INTEGER NOT NULL,
    arguments TEXT
);
CREATE INDEX IF NOT EXISTS audit_time ON audit (time);
CREATE TABLE IF NOT EXISTS oauth (
    server TEXT PRIMARY KEY,
    record BLOB NOT NULL    -- the server's OAuth record (tokens, client, metadata) as JSON, Fernet-encrypted
);
"""


class StateStore:
    """The store in SQLite at `path`."""

    def __init__(self, path: Path, oauth_key: bytes | None = None) -> None:
        """`oauth_key` (a Fernet key) encrypts server configs and OAuth tokens at rest; without it OAuth tokens are
        not kept (fetched again after a restart)."""
        self.path = path
        self._lock = anyio.Lock()
        self._sealer = Sealer(oauth_key, str(path))

    @property
    def where(self) -> str:
        return str(self.path)

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.path.exists():
                ensure_private(self.path)
            else:
                self.path.touch(mode=0o600)
            connection = sqlite3.connect(self.path, timeout=5)
            with connection:
                connection.executescript(_SCHEMA)
            return connection
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open the state store {self.path}: {exc}") from exc
        except StateError as exc:
            raise StoreError(str(exc)) from None

    def _record(self, table: str, name: str, raw: str | None) -> None:
        self._write(
            f"INSERT INTO {table} (name, config, changed_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET config = excluded.config, changed_at = excluded.changed_at",
            [(name, raw, time.time())],
        )

    def _write(
        self, statement: str, rows: list[tuple[Any, ...]], after: tuple[str, tuple[Any, ...]] | None = None
    ) -> None:
        """`statement` for each of `rows`, then `after` (a statement and its parameters), in one transaction."""
        connection = self._connect()
        try:
            with connection:
                connection.executemany(statement, rows)
                if after is not None:
                    connection.execute(*after)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write the state store {self.path}: {exc}") from exc
        finally:
            connection.close()

    def _rows(self, query: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        connection = self._connect()
        try:
            return connection.execute(query, parameters).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"cannot read the state store {self.path}: {exc}") from exc
        finally:
            connection.close()

    async def _run_rows(self, query: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        async with self._lock:
            return await anyio.to_thread.run_sync(self._rows, query, parameters)

    async def _run_write(
        self, statement: str, rows: list[tuple[Any, ...]], after: tuple[str, tuple[Any, ...]] | None = None
    ) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._write, statement, rows, after)

    async def _run_record(self, table: str, name: str, raw: str | None) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._record, table, name, raw)

    async def load(self) -> list[StoredChange]:
        """Every server's last runtime change, oldest first."""
        rows = await self._run_rows("SELECT name, config FROM servers ORDER BY changed_at")
        return [change for name, raw in rows if (change := self._sealer.server(name, raw)) is not None]

    async def record_attach(self, name: str, config: ServerConfig) -> None:
        await self._run_record("servers", name, self._sealer.seal_server(config))

    async def record_detach(self, name: str) -> None:
        await self._run_record("servers", name, None)

    async def load_virtual_servers(self) -> list[StoredVirtualServer]:
        """Every virtual server's last runtime change, oldest first (None: removed)."""
        rows = await self._run_rows("SELECT name, config FROM virtual_servers ORDER BY changed_at")
        return [row for name, raw in rows if (row := self._sealer.virtual_server(name, raw)) is not None]

    async def record_virtual_server(self, name: str, config: VirtualServerConfig | None) -> None:
        """Keep `config` (its tokens as digests only) as virtual server `name`; None: it was removed."""
        await self._run_record("virtual_servers", name, self._sealer.seal_virtual_server(config))

    async def load_oauth(self, server: str) -> dict[str, Any] | None:
        """A server's OAuth record; None if there is none, or it cannot be decrypted (a new key: said in the log)."""
        if self._sealer.fernet is None:
            return None
        rows = await self._run_rows("SELECT record FROM oauth WHERE server = ?", (server,))
        return self._sealer.oauth(server, rows[0][0]) if rows else None

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None:
        sealed = self._sealer.seal_oauth(record)
        if sealed is None:
            return
        statement = (
            "INSERT INTO oauth (server, record) VALUES (?, ?) "
            "ON CONFLICT(server) DO UPDATE SET record = excluded.record"
        )
        await self._run_write(statement, [(server, sealed)])

    async def drop_oauth(self, server: str) -> None:
        """Forget a server's OAuth record (it was detached)."""
        await self._run_write("DELETE FROM oauth WHERE server = ?", [(server,)])

    async def write_audit(self, entries: list[AuditEntry], prune_before: float | None) -> None:
        rows = [audit_row(entry) for entry in entries]
        statement = f"INSERT INTO audit ({AUDIT_COLUMNS}) VALUES ({', '.join('?' * 12)})"
        after = ("DELETE FROM audit WHERE time < ?", (prune_before,)) if prune_before is not None else None
        await self._run_write(statement, rows, after)

    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The newest records first, filtered as `query` says."""
        where, parameters = ["1"], []
        for clause, value in (
            ("time >= ?", query.since),
            ("tool = ?", query.tool),
            ("virtual_server = ?", query.virtual_server),
        ):
            if value is not None:
                where.append(clause)
                parameters.append(value)
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY time DESC, id DESC LIMIT ?"
        rows = await self._run_rows(sql, (*parameters, query.limit))
        return [AuditEntry(*row) for row in rows]
