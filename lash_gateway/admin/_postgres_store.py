"""The shared store (PostgreSQL): what `_store` says a store keeps, for several gateway replicas at once, plus what
replicas share with each other (`_replicas`): who is alive and where, each one's view of its servers, the keys they
must agree on, and a feed of registry changes.

- **Migrations** are versioned (`MIGRATIONS`) and applied in one transaction under an advisory lock, so replicas
  starting together apply each exactly once, and one that starts while others serve changes nothing they use.
- **Registry rows** (servers, virtual servers) carry a `version` from one sequence and the `origin` replica that
  wrote them; a trigger sends `NOTIFY lash_registry` with (table, name, version, origin) at commit. A replica
  applies a row newer than the one it holds, and catches up from the rows themselves after a lost connection.
- **Keys.** Configs and OAuth records are sealed with the Fernet key of each replica (`LASH_GATEWAY_OAUTH_KEY`), which
  must be the same everywhere: a check value in the store refuses a replica whose key differs. The key that signs
  input-required rounds is kept here, sealed, so any replica checks a round another began.
- Times of liveness are the database's clock, so replicas' clocks need not agree.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Self

import anyio
import asyncpg
from asyncpg.pool import PoolConnectionProxy
from cryptography.fernet import InvalidToken

from .._config import ServerConfig
from .._errors import StoreError
from .._redact import redact, redacted_url
from ..export._forward import DEAD_AFTER
from ._audit import AuditEntry, AuditQuery
from ._store import AUDIT_COLUMNS, Sealer, StoredChange, StoredVirtualServer, audit_row
from ._virtual_settings import VirtualServerConfig

__all__ = ["CHANNEL", "MIGRATIONS", "PostgresStore", "RegistryRow", "ReplicaRow", "is_postgres_url"]

log = logging.getLogger("lash_gateway.store")

CHANNEL: Final = "lash_registry"
"""The NOTIFY channel of registry changes."""
SERVERS: Final = "lash_servers"
VIRTUAL_SERVERS: Final = "lash_virtual_servers"
_MIGRATION_LOCK: Final = 0x6C617368_67770001
"""The advisory lock migrations run under (a constant of this program: "lash", "gw", 1)."""
_KEY_CHECK: Final = "key_check"

MIGRATIONS: Final[tuple[tuple[int, str], ...]] = (
    (
        1,
        f"""
        CREATE SEQUENCE lash_registry_version;
        CREATE TABLE {SERVERS} (
            name TEXT PRIMARY KEY,
            config TEXT,                        -- sealed JSON of the config with its secrets; NULL: detached
            changed_at DOUBLE PRECISION NOT NULL,
            version BIGINT NOT NULL,
            origin TEXT NOT NULL                -- the replica that wrote it
        );
        CREATE TABLE {VIRTUAL_SERVERS} (
            name TEXT PRIMARY KEY,
            config TEXT,                        -- JSON, tokens as digests only; NULL: removed
            changed_at DOUBLE PRECISION NOT NULL,
            version BIGINT NOT NULL,
            origin TEXT NOT NULL
        );
        CREATE TABLE lash_audit (
            id BIGSERIAL PRIMARY KEY,
            time DOUBLE PRECISION NOT NULL,
            virtual_server TEXT,
            token_id TEXT,
            session TEXT NOT NULL,
            tool TEXT NOT NULL,
            upstream_tool TEXT,
            server TEXT,
            outcome TEXT NOT NULL,
            duration_ms DOUBLE PRECISION NOT NULL,
            argument_bytes INTEGER NOT NULL,
            result_bytes INTEGER NOT NULL,
            arguments TEXT
        );
        CREATE INDEX lash_audit_time ON lash_audit (time);
        CREATE TABLE lash_oauth (server TEXT PRIMARY KEY, record BYTEA NOT NULL);
        CREATE TABLE lash_secrets (name TEXT PRIMARY KEY, value TEXT NOT NULL);  -- sealed
        CREATE TABLE lash_replicas (
            id TEXT PRIMARY KEY,
            url TEXT,                           -- where other replicas reach it; NULL: it serves no HTTP
            started_at DOUBLE PRECISION NOT NULL,
            heartbeat_at DOUBLE PRECISION NOT NULL,
            servers TEXT NOT NULL               -- JSON: its view of its servers (statuses, no secrets)
        );
        CREATE FUNCTION lash_registry_notify() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('{CHANNEL}', json_build_object(
                'table', TG_TABLE_NAME, 'name', NEW.name, 'version', NEW.version, 'origin', NEW.origin)::text);
            RETURN NEW;
        END $$ LANGUAGE plpgsql;
        CREATE TRIGGER lash_servers_notify AFTER INSERT OR UPDATE ON {SERVERS}
            FOR EACH ROW EXECUTE FUNCTION lash_registry_notify();
        CREATE TRIGGER lash_virtual_servers_notify AFTER INSERT OR UPDATE ON {VIRTUAL_SERVERS}
            FOR EACH ROW EXECUTE FUNCTION lash_registry_notify();
        """,
    ),
    (
        2,
        """
        CREATE TABLE lash_sessions (
            id TEXT PRIMARY KEY,                -- a handshake-era session's Mcp-Session-Id
            replica TEXT NOT NULL,              -- the replica that holds it now
            opening TEXT NOT NULL,              -- its initialize request (JSON), to open it again elsewhere
            touched_at DOUBLE PRECISION NOT NULL
        );
        CREATE INDEX lash_sessions_replica ON lash_sessions (replica);
        """,
    ),
)
"""Schema versions in order; a version once released is never edited, a change is a new version."""

_NOW: Final = "extract(epoch from clock_timestamp())"
_COMMAND_TIMEOUT: Final = 10.0
"""Seconds a connection, a statement or a wait for a pooled connection may take: a store that stops answering
(a dropped link, a failover) fails a write, it does not hold the name's lock forever."""


def is_postgres_url(store: str) -> bool:
    return store.startswith(("postgresql://", "postgres://"))


@dataclass(frozen=True, slots=True)
class RegistryRow:
    """A registry row's identity: which table, which name, which version, written by which replica."""

    table: str
    name: str
    version: int
    origin: str


@dataclass(frozen=True, slots=True)
class ReplicaRow:
    id: str
    url: str | None
    started_at: float
    age: float
    """Seconds since its last heartbeat, by the database's clock."""
    servers: list[dict[str, Any]]


class PostgresStore:
    """The store in the PostgreSQL database at `url`, used by this replica (`replica`, a random id per process)."""

    def __init__(self, url: str, oauth_key: bytes | None = None, *, replica: str | None = None) -> None:
        self.url = url
        self.replica = replica or secrets.token_hex(4)
        self._where = redacted_url(url)
        self._sealer = Sealer(oauth_key, self._where)
        self._pool: asyncpg.Pool | None = None
        self.versions: dict[tuple[str, str], int] = {}
        """The newest version of each registry row this replica holds (read, written or applied)."""

    @property
    def where(self) -> str:
        return self._where

    async def __aenter__(self) -> Self:
        try:
            self._pool = await asyncpg.create_pool(
                self.url, min_size=1, max_size=4, command_timeout=_COMMAND_TIMEOUT, timeout=_COMMAND_TIMEOUT
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to the store {self.where}: {_reason(exc)}") from None
        try:
            await self._migrate()
            await self._check_key()
        except BaseException:
            await self._pool.close()
            self._pool = None
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def _connection(self, doing: str) -> AsyncIterator[PoolConnectionProxy]:
        if self._pool is None:
            raise StoreError(f"the store {self.where} is not open")
        try:
            async with self._pool.acquire(timeout=_COMMAND_TIMEOUT) as connection:
                yield connection
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot {doing} the store {self.where}: {_reason(exc)}") from None

    async def _migrate(self) -> None:
        async with self._connection("migrate") as connection, connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await connection.execute(
                "CREATE TABLE IF NOT EXISTS lash_schema (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION "
                "NOT NULL, applied_by TEXT NOT NULL)"
            )
            done = {row["version"] for row in await connection.fetch("SELECT version FROM lash_schema")}
            newest = max(version for version, _ in MIGRATIONS)
            if done and max(done) > newest:
                raise StoreError(
                    f"the store {self.where} has schema version {max(done)}, newer than this gateway's {newest}: "
                    "upgrade this replica"
                )
            for version, sql in MIGRATIONS:
                if version not in done:
                    await connection.execute(sql)
                    await connection.execute(f"INSERT INTO lash_schema VALUES ($1, {_NOW}, $2)", version, self.replica)
                    log.info(
                        "store %s: schema version %d applied",
                        self.where,
                        version,
                        extra={"store": self.where, "version": version},
                    )

    async def _check_key(self) -> None:
        """Refuse a replica whose key is not the one the store's rows are sealed with."""
        fernet = self._sealer.fernet
        if fernet is None:
            return
        stored = await self._secret(_KEY_CHECK, lambda: fernet.encrypt(b"lash-gateway").decode())
        try:
            fernet.decrypt(stored.encode())
        except InvalidToken:
            raise StoreError(
                f"the store {self.where} is sealed with another key: give every replica the same "
                "LASH_GATEWAY_OAUTH_KEY (or the same oauth.key in its state directory)"
            ) from None

    async def _secret(self, name: str, make: Callable[[], str]) -> str:
        """A value every replica shares: made by the first one that asks."""
        async with self._connection("read") as connection:
            await connection.execute(
                "INSERT INTO lash_secrets VALUES ($1, $2) ON CONFLICT (name) DO NOTHING", name, make()
            )
            value: str = await connection.fetchval("SELECT value FROM lash_secrets WHERE name = $1", name)
            return value

    async def request_state_key(self) -> bytes:
        """The key that signs input-required rounds, shared by every replica (sealed with their key).

        Raises:
            StoreError: the store has no key to seal it with, or cannot be read.
        """
        fernet = self._sealer.fernet
        if fernet is None:
            raise StoreError("a shared store needs a key (LASH_GATEWAY_OAUTH_KEY) to keep the request-state key")
        sealed = await self._secret("request_state", lambda: fernet.encrypt(secrets.token_bytes(32)).decode())
        try:
            return fernet.decrypt(sealed.encode())
        except InvalidToken:
            raise StoreError(f"the request-state key in {self.where} is sealed with another key") from None

    # The registry.

    async def _record(self, table: str, name: str, raw: str | None) -> None:
        async with self._connection("write") as connection:
            version = await connection.fetchval(
                f"INSERT INTO {table} (name, config, changed_at, version, origin) "
                f"VALUES ($1, $2, $3, nextval('lash_registry_version'), $4) "
                "ON CONFLICT (name) DO UPDATE SET config = excluded.config, changed_at = excluded.changed_at, "
                # A version taken under the row's lock: the change committed last has the highest one.
                "version = nextval('lash_registry_version'), origin = excluded.origin RETURNING version",
                name,
                raw,
                time.time(),
                self.replica,
            )
        self._seen(table, name, version)

    def _seen(self, table: str, name: str, version: int) -> None:
        key = (table, name)
        self.versions[key] = max(version, self.versions.get(key, 0))

    async def _load(self, table: str) -> list[tuple[str, str | None]]:
        async with self._connection("read") as connection:
            rows = await connection.fetch(f"SELECT name, config, version FROM {table} ORDER BY version")
        for row in rows:
            self._seen(table, row["name"], row["version"])
        return [(row["name"], row["config"]) for row in rows]

    async def load(self) -> list[StoredChange]:
        """Every server's last runtime change, oldest first."""
        rows = await self._load(SERVERS)
        return [change for name, raw in rows if (change := self._sealer.server(name, raw)) is not None]

    async def record_attach(self, name: str, config: ServerConfig) -> None:
        await self._record(SERVERS, name, self._sealer.seal_server(config))

    async def record_detach(self, name: str) -> None:
        await self._record(SERVERS, name, None)

    async def load_virtual_servers(self) -> list[StoredVirtualServer]:
        """Every virtual server's last runtime change, oldest first (None: removed)."""
        rows = await self._load(VIRTUAL_SERVERS)
        return [row for name, raw in rows if (row := self._sealer.virtual_server(name, raw)) is not None]

    async def record_virtual_server(self, name: str, config: VirtualServerConfig | None) -> None:
        """Keep `config` (its tokens as digests only) as virtual server `name`; None: it was removed."""
        await self._record(VIRTUAL_SERVERS, name, self._sealer.seal_virtual_server(config))

    async def registry(self) -> list[RegistryRow]:
        """Every registry row's identity, oldest first: what a replica compares with what it holds to catch up."""
        async with self._connection("read") as connection:
            rows = await connection.fetch(
                f"SELECT '{SERVERS}' AS t, name, version, origin FROM {SERVERS} UNION ALL "
                f"SELECT '{VIRTUAL_SERVERS}', name, version, origin FROM {VIRTUAL_SERVERS} ORDER BY version"
            )
        return [RegistryRow(row["t"], row["name"], row["version"], row["origin"]) for row in rows]

    async def server(self, name: str) -> tuple[int, StoredChange | None]:
        """A server's row as it is now: its version, and the change (None: unreadable, said in the log)."""
        version, raw = await self._row(SERVERS, name)
        return version, self._sealer.server(name, raw)

    async def virtual_server(self, name: str) -> tuple[int, StoredVirtualServer | None]:
        version, raw = await self._row(VIRTUAL_SERVERS, name)
        return version, self._sealer.virtual_server(name, raw)

    async def _row(self, table: str, name: str) -> tuple[int, str | None]:
        async with self._connection("read") as connection:
            row = await connection.fetchrow(f"SELECT version, config FROM {table} WHERE name = $1", name)
        if row is None:
            raise StoreError(f"the store {self.where} has no row {name!r} in {table}")
        return row["version"], row["config"]

    def seen(self, row: RegistryRow) -> bool:
        """Whether this replica holds this row or a newer one of its name."""
        return self.versions.get((row.table, row.name), 0) >= row.version

    def mark(self, table: str, name: str, version: int) -> None:
        """This replica now holds `version` of the row (applied, or its own write)."""
        self._seen(table, name, version)

    @asynccontextmanager
    async def listening(
        self, on_change: Callable[[RegistryRow], None], on_lost: Callable[[], None]
    ) -> AsyncIterator[None]:
        """Hear registry changes (`on_change`, from the connection's reader) on a connection of its own; `on_lost`
        is called once if that connection goes away (changes made until the next `listening` are missed: catch up
        with `registry`)."""

        def heard(connection: object, pid: int, channel: str, payload: object) -> None:
            try:
                data = json.loads(str(payload))
                on_change(RegistryRow(data["table"], data["name"], int(data["version"]), data["origin"]))
            except (ValueError, KeyError, TypeError):
                log.warning("store %s: a registry notification was not understood", self.where)
            except anyio.ClosedResourceError:  # heard while the listener closes: the next one catches up
                pass

        try:
            connection = await asyncpg.connect(self.url, timeout=_COMMAND_TIMEOUT, command_timeout=_COMMAND_TIMEOUT)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot listen to the store {self.where}: {_reason(exc)}") from None
        try:
            connection.add_termination_listener(lambda _: on_lost())
            await connection.add_listener(CHANNEL, heard)
            yield
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot listen to the store {self.where}: {_reason(exc)}") from None
        finally:
            connection.terminate()  # no goodbye: it may be the connection that was lost

    # Replicas.

    async def heartbeat(self, url: str | None, servers: list[dict[str, Any]]) -> None:
        """This replica is alive, reachable at `url`, and sees its servers so."""
        async with self._connection("write") as connection:
            await connection.execute(
                f"INSERT INTO lash_replicas VALUES ($1, $2, {_NOW}, {_NOW}, $3) ON CONFLICT (id) DO UPDATE SET "
                "url = excluded.url, heartbeat_at = excluded.heartbeat_at, servers = excluded.servers",
                self.replica,
                url,
                json.dumps(servers),
            )

    async def replicas(self, forget_after: float) -> list[ReplicaRow]:
        """Every replica heard of within `forget_after` seconds (older rows are deleted: replicas that died)."""
        async with self._connection("read") as connection:
            await connection.execute(f"DELETE FROM lash_replicas WHERE heartbeat_at < {_NOW} - $1", forget_after)
            rows = await connection.fetch(
                f"SELECT id, url, started_at, {_NOW} - heartbeat_at AS age, servers FROM lash_replicas ORDER BY id"
            )
        return [
            ReplicaRow(row["id"], row["url"], row["started_at"], row["age"], json.loads(row["servers"])) for row in rows
        ]

    async def remember_session(self, session: str, opening: bytes) -> None:
        """This replica holds `session` (a new one), opened by `opening` (its initialize request)."""
        async with self._connection("write") as connection:
            await connection.execute(
                f"INSERT INTO lash_sessions VALUES ($1, $2, $3, {_NOW}) ON CONFLICT (id) DO NOTHING",
                session,
                self.replica,
                opening.decode(),
            )

    async def session_holder(self, session: str) -> str | None:
        """The replica that holds `session` now (None: the store knows no such session)."""
        async with self._connection("read") as connection:
            holder: str | None = await connection.fetchval("SELECT replica FROM lash_sessions WHERE id = $1", session)
            return holder

    async def claim_session(self, session: str, holder: str) -> bytes | None:
        """Take `session` over from `holder`, if `holder` has not beaten for `DEAD_AFTER` seconds (by the database's
        clock): its initialize request, or None (another replica took it first, it is unknown, or `holder` lives:
        a refused connection alone must not put one session on two replicas)."""
        async with self._connection("write") as connection:
            opening: str | None = await connection.fetchval(
                f"UPDATE lash_sessions SET replica = $3, touched_at = {_NOW} WHERE id = $1 AND replica = $2 "
                f"AND NOT EXISTS (SELECT 1 FROM lash_replicas WHERE id = $2 AND heartbeat_at > {_NOW} - $4) "
                "RETURNING opening",
                session,
                holder,
                self.replica,
                DEAD_AFTER,
            )
        return opening.encode() if opening is not None else None

    async def sessions_elsewhere(self, held: list[str]) -> list[str]:
        """Those of `held` that the store says another replica holds now (taken over while this one seemed gone)."""
        async with self._connection("read") as connection:
            rows = await connection.fetch(
                "SELECT id FROM lash_sessions WHERE id = ANY($1) AND replica <> $2", held, self.replica
            )
        return [row["id"] for row in rows]

    async def prune_sessions(self, held: list[str], idle: float, grace: float = 60.0) -> None:
        """Forget sessions that ended here (not in `held`, recorded over `grace` seconds ago: a new one's record may
        come before it is held) and those of replicas gone, untouched for `idle` seconds (their clients would find
        them expired anyway)."""
        async with self._connection("write") as connection:
            await connection.execute(
                f"DELETE FROM lash_sessions WHERE touched_at < {_NOW} - $3 AND replica = $1 AND NOT id = ANY($2)",
                self.replica,
                held,
                grace,
            )
            await connection.execute(
                f"DELETE FROM lash_sessions WHERE touched_at < {_NOW} - $1 "
                "AND replica NOT IN (SELECT id FROM lash_replicas)",
                idle,
            )

    async def leave(self) -> None:
        """This replica stops: others stop sending it anything at once."""
        async with self._connection("write") as connection:
            await connection.execute("DELETE FROM lash_replicas WHERE id = $1", self.replica)

    # OAuth records and the audit log.

    async def load_oauth(self, server: str) -> dict[str, Any] | None:
        """A server's OAuth record; None if there is none, or it cannot be decrypted (a new key: said in the log)."""
        if self._sealer.fernet is None:
            return None
        async with self._connection("read") as connection:
            sealed = await connection.fetchval("SELECT record FROM lash_oauth WHERE server = $1", server)
        return self._sealer.oauth(server, sealed) if sealed is not None else None

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None:
        sealed = self._sealer.seal_oauth(record)
        if sealed is None:
            return
        async with self._connection("write") as connection:
            await connection.execute(
                "INSERT INTO lash_oauth VALUES ($1, $2) ON CONFLICT (server) DO UPDATE SET record = excluded.record",
                server,
                sealed,
            )

    async def drop_oauth(self, server: str) -> None:
        """Forget a server's OAuth record (it was detached)."""
        async with self._connection("write") as connection:
            await connection.execute("DELETE FROM lash_oauth WHERE server = $1", server)

    async def write_audit(self, entries: list[AuditEntry], prune_before: float | None) -> None:
        placeholders = ", ".join(f"${i}" for i in range(1, 13))
        async with self._connection("write") as connection, connection.transaction():
            await connection.executemany(
                f"INSERT INTO lash_audit ({AUDIT_COLUMNS}) VALUES ({placeholders})",
                [audit_row(entry) for entry in entries],
            )
            if prune_before is not None:
                await connection.execute("DELETE FROM lash_audit WHERE time < $1", prune_before)

    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The newest records first, filtered as `query` says."""
        where, parameters = ["TRUE"], []
        for column, operator, value in (
            ("time", ">=", query.since),
            ("tool", "=", query.tool),
            ("virtual_server", "=", query.virtual_server),
        ):
            if value is not None:
                parameters.append(value)
                where.append(f"{column} {operator} ${len(parameters)}")
        sql = (
            f"SELECT {AUDIT_COLUMNS} FROM lash_audit WHERE {' AND '.join(where)} "
            f"ORDER BY time DESC, id DESC LIMIT ${len(parameters) + 1}"
        )
        async with self._connection("read") as connection:
            rows = await connection.fetch(sql, *parameters, query.limit)
        return [AuditEntry(*row) for row in rows]


def _reason(exc: BaseException) -> str:
    """What went wrong, without the connection string (it may hold a password)."""
    return f"{type(exc).__name__}: {redact(str(exc))}" if str(exc) else type(exc).__name__
