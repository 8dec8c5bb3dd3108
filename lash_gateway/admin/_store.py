"""What the gateway keeps, whichever store keeps it: every attach and detach made at runtime, so they survive a
restart; the virtual servers made at runtime (tokens as digests only); the audit log; and the OAuth records of
upstreams. `StateStore` keeps them in SQLite for one process (the default); `PostgresStore` in PostgreSQL for
replicas (`_postgres_store`).

One row per server name: its last runtime change, either an attach (with the full config, secrets included,
encrypted with the store's key when it has one) or a detach (a tombstone, so detaching a server from the config
file also survives a restart). Each change is one transaction: a crash leaves the previous or the new row, never
half of one. OAuth records are encrypted (Fernet) with the same key.

Precedence on start: the config file's servers, then the store on top (a stored attach replaces a
config-file server of the same name; a stored detach removes it). Editing the config file does not
undo runtime changes; `DELETE` then `PUT` through the admin API does.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Final, Protocol

from cryptography.fernet import Fernet, InvalidToken
from pydantic import BaseModel, SecretStr

from .._config import McpServerConfig, ServerConfig
from ._audit import AuditEntry, AuditQuery
from ._virtual_settings import VirtualServerConfig, parse_virtual_server

__all__ = ["AUDIT_COLUMNS", "Sealer", "Store", "StoredChange", "StoredVirtualServer", "apply_changes", "audit_row"]

log = logging.getLogger("lash_gateway.store")

AUDIT_COLUMNS = (
    "time, virtual_server, token_id, session, tool, upstream_tool, server, outcome, duration_ms, argument_bytes, "
    "result_bytes, arguments"
)
audit_row: Final = attrgetter(*(column.strip() for column in AUDIT_COLUMNS.split(",")))
"""An `AuditEntry` as a row of `AUDIT_COLUMNS` (`dataclasses.astuple` deep-copies every field: tens of µs a record,
on the event loop)."""
_SEALED = "fernet:"
"""The prefix of a server config stored encrypted."""


@dataclass(frozen=True, slots=True)
class StoredChange:
    name: str
    config: ServerConfig | None
    """None: the server was detached."""


StoredVirtualServer = tuple[str, "VirtualServerConfig | None"]
"""A virtual server's last runtime change: its name, and its config (None: it was removed)."""


class Store(Protocol):
    """What the gateway keeps between restarts (and, for PostgreSQL, shares between replicas)."""

    @property
    def where(self) -> str:
        """The store as people see it (a path, or a database URL without its password)."""

    async def load(self) -> list[StoredChange]:
        """Every server's last runtime change, oldest first."""

    async def record_attach(self, name: str, config: ServerConfig) -> None: ...

    async def record_detach(self, name: str) -> None: ...

    async def load_virtual_servers(self) -> list[StoredVirtualServer]:
        """Every virtual server's last runtime change, oldest first (None: removed)."""

    async def record_virtual_server(self, name: str, config: VirtualServerConfig | None) -> None:
        """Keep `config` (its tokens as digests only) as virtual server `name`; None: it was removed."""

    async def load_oauth(self, server: str) -> dict[str, Any] | None:
        """A server's OAuth record; None if there is none, or it cannot be decrypted (a new key: said in the log)."""

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None: ...

    async def drop_oauth(self, server: str) -> None:
        """Forget a server's OAuth record (it was detached)."""

    async def write_audit(self, entries: list[AuditEntry], prune_before: float | None) -> None:
        """Add `entries` and delete those older than `prune_before`, in one transaction."""

    async def read_audit(self, query: AuditQuery) -> list[AuditEntry]:
        """The newest records first, filtered as `query` says."""


class Sealer:
    """How rows are written and read, the same in every store: server configs with their secrets (encrypted with the
    store's key when it has one), virtual servers (token digests only) and OAuth records (encrypted, or not kept).

    `where` names the store in log lines (a path, or a database URL without its password)."""

    def __init__(self, key: bytes | None, where: str) -> None:
        self.fernet = Fernet(key) if key is not None else None
        self.where = where

    def seal_server(self, config: ServerConfig) -> str:
        """A server config as stored: encrypted with the store's key when it has one (its secrets are the upstream's
        credentials), as it is otherwise."""
        text = json.dumps(_with_secrets(config))
        return _SEALED + self.fernet.encrypt(text.encode()).decode() if self.fernet is not None else text

    def server(self, name: str, raw: str | None) -> StoredChange | None:
        """A stored server row; None (said in the log) if it cannot be read."""
        try:
            return StoredChange(name, McpServerConfig.parse(json.loads(self._unseal(raw)), name=name) if raw else None)
        except (ValueError, RecursionError, InvalidToken) as exc:  # JSONDecodeError and ConfigError are ValueErrors
            reason = str(exc) or "it is sealed with another key (did oauth.key or LASH_GATEWAY_OAUTH_KEY change?)"
            log.error(
                "state store %s: the stored change of server %s cannot be read, left out: %s",
                self.where,
                name,
                reason,
                extra={"server": name, "store": self.where, "reason": reason},
            )
            return None

    @staticmethod
    def seal_virtual_server(config: VirtualServerConfig | None) -> str | None:
        return None if config is None else config.hashed().model_dump_json(exclude={"tokens"})

    def virtual_server(self, name: str, raw: str | None) -> StoredVirtualServer | None:
        """A stored virtual server row; None (said in the log) if it cannot be read."""
        try:
            return (name, parse_virtual_server(name, json.loads(raw)) if raw else None)
        except (ValueError, RecursionError) as exc:
            log.error(
                "state store %s: the stored virtual server %s cannot be read, left out: %s",
                self.where,
                name,
                exc,
                extra={"virtual_server": name, "store": self.where, "reason": str(exc)},
            )
            return None

    def seal_oauth(self, record: Mapping[str, Any]) -> bytes | None:
        """The record encrypted; None: the store has no key, so it is not kept."""
        return self.fernet.encrypt(json.dumps(record).encode()) if self.fernet is not None else None

    def oauth(self, server: str, sealed: bytes) -> dict[str, Any] | None:
        if self.fernet is None:
            return None
        try:
            record: dict[str, Any] = json.loads(self.fernet.decrypt(sealed))
        except (InvalidToken, ValueError):
            log.warning(
                "state store %s: the OAuth record of server %s cannot be decrypted with this key; a new token is "
                "fetched",
                self.where,
                server,
                extra={"server": server, "store": self.where},
            )
            return None
        return record

    def _unseal(self, raw: str) -> str:
        """Raises:
        InvalidToken: sealed with another key, or the store has none."""
        if not raw.startswith(_SEALED):
            return raw  # written before configs were sealed, or by a store without a key
        if self.fernet is None:
            raise InvalidToken
        return self.fernet.decrypt(raw.removeprefix(_SEALED).encode()).decode()


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
