"""The embedded store: every attach and detach made at runtime, so they survive a restart; the virtual servers made
at runtime (tokens as digests only); the audit log; and the OAuth records of upstreams.

One row per server name: its last runtime change, either an attach (with the full config, secrets included,
encrypted with the store's key when it has one; the file is owner-only either way) or a detach (a tombstone, so
detaching a server from the config file also survives a restart). Each change is one transaction: a crash leaves
the previous or the new row, never half of one. OAuth records are encrypted (Fernet) with the same key.

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
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Any

import anyio
from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, SecretStr

from .._config import McpServerConfig, ServerConfig
from .._errors import StateError, StoreError
from ._audit import AuditEntry, AuditQuery
from ._state import ensure_private
from ._virtual_settings import VirtualServerConfig, parse_virtual_server

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
_SEALED = "fernet:"
"""The prefix of a server config stored encrypted."""
_AUDIT_COLUMNS = (
    "time, virtual_server, token_id, session, tool, upstream_tool, server, outcome, duration_ms, argument_bytes, "
    "result_bytes, arguments"
)


StoredVirtualServer = tuple[str, "VirtualServerConfig | None"]
"""A virtual server's last runtime change: its name, and its config (None: it was removed)."""


@dataclass(frozen=True, slots=True)
class StoredChange:
    name: str
    config: ServerConfig | None
    """None: the server was detached."""


class StateStore:
    """Runtime attach/detach records in `path`. Methods run SQLite in a worker thread."""

    def __init__(self, path: Path, oauth_key: bytes | None = None) -> None:
        """`oauth_key` (a Fernet key) encrypts OAuth tokens at rest; without it they are not kept (fetched again
        after a restart)."""
        self.path = path
        self._lock = anyio.Lock()
        self._fernet = Fernet(oauth_key) if oauth_key is not None else None

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

    def _load(self) -> list[StoredChange]:
        rows = self._rows("SELECT name, config FROM servers ORDER BY changed_at")
        changes = []
        for name, raw in rows:
            try:
                config = McpServerConfig.parse(json.loads(self._unseal(raw)), name=name) if raw else None
                changes.append(StoredChange(name, config))
            except (ValueError, RecursionError, InvalidToken) as exc:  # JSONDecodeError and ConfigError are ValueErrors
                reason = str(exc) or "it is sealed with another key (did oauth.key or LASH_GATEWAY_OAUTH_KEY change?)"
                log.error(
                    "state store %s: the stored change of server %s cannot be read, left out: %s",
                    self.path,
                    name,
                    reason,
                    extra={"server": name, "path": str(self.path), "reason": reason},
                )
        return changes

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

    async def load(self) -> list[StoredChange]:
        """Every server's last runtime change, oldest first."""
        async with self._lock:
            return await anyio.to_thread.run_sync(self._load)

    async def record_attach(self, name: str, config: ServerConfig) -> None:
        async with self._lock:
            sealed = self._seal(json.dumps(_with_secrets(config)))
            await anyio.to_thread.run_sync(self._record, "servers", name, sealed)

    async def record_detach(self, name: str) -> None:
        async with self._lock:
            await anyio.to_thread.run_sync(self._record, "servers", name, None)

    async def load_virtual_servers(self) -> list[StoredVirtualServer]:
        """Every virtual server's last runtime change, oldest first (None: removed)."""
        async with self._lock:
            rows = await anyio.to_thread.run_sync(
                self._rows, "SELECT name, config FROM virtual_servers ORDER BY changed_at"
            )
        changes: list[StoredVirtualServer] = []
        for name, raw in rows:
            try:
                changes.append((name, parse_virtual_server(name, json.loads(raw)) if raw else None))
            except (ValueError, RecursionError) as exc:
                log.error(
                    "state store %s: the stored virtual server %s cannot be read, left out: %s",
                    self.path,
                    name,
                    exc,
                    extra={"virtual_server": name, "path": str(self.path), "reason": str(exc)},
                )
        return changes

    async def record_virtual_server(self, name: str, config: VirtualServerConfig | None) -> None:
        """Keep `config` (its tokens as digests only) as virtual server `name`; None: it was removed."""
        raw = None if config is None else config.hashed().model_dump_json(exclude={"tokens"})
        async with self._lock:
            await anyio.to_thread.run_sync(self._record, "virtual_servers", name, raw)

    def _seal(self, text: str) -> str:
        """A server config as stored: encrypted with the store's key when it has one (its secrets are the upstream's
        credentials), as it is otherwise."""
        return _SEALED + self._fernet.encrypt(text.encode()).decode() if self._fernet is not None else text

    def _unseal(self, raw: str) -> str:
        """Raises:
        InvalidToken: sealed with another key, or the store has none."""
        if not raw.startswith(_SEALED):
            return raw  # written before configs were sealed, or by a store without a key
        if self._fernet is None:
            raise InvalidToken
        return self._fernet.decrypt(raw.removeprefix(_SEALED).encode()).decode()

    async def load_oauth(self, server: str) -> dict[str, Any] | None:
        """A server's OAuth record; None if there is none, or it cannot be decrypted (a new key: said in the log)."""
        if self._fernet is None:
            return None
        async with self._lock:
            rows = await anyio.to_thread.run_sync(self._rows, "SELECT record FROM oauth WHERE server = ?", (server,))
        if not rows:
            return None
        try:
            record: dict[str, Any] = json.loads(self._fernet.decrypt(rows[0][0]))
        except (InvalidToken, ValueError):
            log.warning(
                "state store %s: the OAuth record of server %s cannot be decrypted with this key; a new token is "
                "fetched",
                self.path,
                server,
                extra={"server": server, "path": str(self.path)},
            )
            return None
        return record

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None:
        if self._fernet is None:
            return
        sealed = self._fernet.encrypt(json.dumps(record).encode())
        statement = (
            "INSERT INTO oauth (server, record) VALUES (?, ?) "
            "ON CONFLICT(server) DO UPDATE SET record = excluded.record"
        )
        async with self._lock:
            await anyio.to_thread.run_sync(self._write, statement, [(server, sealed)])

    async def drop_oauth(self, server: str) -> None:
        """Forget a server's OAuth record (it was detached)."""
        async with self._lock:
            await anyio.to_thread.run_sync(self._write, "DELETE FROM oauth WHERE server = ?", [(server,)])

    async def write_audit(self, entries: list[AuditEntry], prune_before: float | None) -> None:
        rows = [astuple(entry) for entry in entries]
        statement = f"INSERT INTO audit ({_AUDIT_COLUMNS}) VALUES ({', '.join('?' * 12)})"
        after = ("DELETE FROM audit WHERE time < ?", (prune_before,)) if prune_before is not None else None
        async with self._lock:
            await anyio.to_thread.run_sync(self._write, statement, rows, after)

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
        sql = f"SELECT {_AUDIT_COLUMNS} FROM audit WHERE {' AND '.join(where)} ORDER BY time DESC, id DESC LIMIT ?"
        async with self._lock:
            rows = await anyio.to_thread.run_sync(self._rows, sql, (*parameters, query.limit))
        return [AuditEntry(*row) for row in rows]


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
