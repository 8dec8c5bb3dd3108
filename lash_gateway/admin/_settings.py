"""The gateway's config file: the `mcpServers` JSON users already have, plus an optional `gateway`
section for the service itself. Unknown keys in `gateway` are errors; other top-level keys (a
client's own settings) are ignored, so a Claude Desktop config works unchanged."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import ip_network

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, ValidationError, field_validator

from .._allow import env_pattern, parse_command_pattern
from .._config import ServerConfig, load_mcp_servers
from .._errors import ConfigError
from .._hosts import parse_host_pattern, parse_origin_pattern
from .._mcp_json import load_json
from ._audit import AuditSettings
from ._logs import LogFormat
from ._virtual_settings import VirtualServerConfig, validate_virtual_server_name

DEFAULT_HOST = "127.0.0.1"
DEFAULT_MAX_SESSIONS = 1000
DEFAULT_PORT = 8765

_STRICT = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)


class ExportSettings(BaseModel):
    model_config = _STRICT

    name_limit: int = Field(default=64, ge=16, le=128)
    """Longest exported tool name; Claude and OpenAI reject names over 64 characters."""
    max_text_chars: int | None = Field(default=None, ge=0)
    """Output budget per tool result, in characters of text; None passes results whole, since MCP
    clients budget their own context (Claude Code's MAX_MCP_OUTPUT_TOKENS)."""
    session_idle_timeout: float = Field(default=1800.0, gt=0, allow_inf_nan=False)
    """Seconds a streamable-HTTP session may go without a request (or an open stream) before the
    gateway forgets it; the client then gets 404 and starts a new session."""
    max_sessions: int = Field(default=DEFAULT_MAX_SESSIONS, ge=1)
    """Most downstream sessions open at once (streamable-HTTP sessions, legacy SSE connections and the
    `subscriptions/listen` streams of 2026-07-28 clients; an abandoned session holds about 40 KiB until it
    expires). Past it, new sessions get HTTP 503."""
    notify_timeout: float = Field(default=5.0, gt=0, le=3600, allow_inf_nan=False)
    """Seconds a client may take to accept a notification (tools/list_changed) before the gateway
    closes its connection: a client that stopped reading holds up nobody else."""


DEFAULT_DENY_NETWORKS = ("169.254.0.0/16", "fe80::/10", "100.100.100.200/32", "fd00:ec2::254/128")
"""Link-local (where AWS, GCP and Azure serve instance metadata) and the other clouds' metadata
addresses. Loopback stays allowed: local servers are the common case."""


def _not_empty(token: SecretStr | None, advice: str) -> SecretStr | None:
    """`token`, unless it is empty: an empty token would read as none (no authentication for `auth_token`, and no
    warning that there is none), as when a templated config's variable was unset."""
    if token is not None and not token.get_secret_value():
        raise ValueError(f"is empty: {advice}")
    return token


class AdminSettings(BaseModel):
    model_config = _STRICT

    token: SecretStr | None = None
    """Bearer token for `/admin`. Also `--admin-token` or LASH_GATEWAY_ADMIN_TOKEN; with none of
    them the gateway generates one and keeps it in its state directory."""
    allow_remote: bool = False
    """Accept admin requests from non-loopback addresses (they still need the token)."""
    stdio_allow: list[str] = []
    """Patterns for the command lines that `PUT /admin/servers/...` may start: shell-quoted words, the
    first for the command (as given or resolved to its absolute path), one per argument, and a last
    `*` for any further ones; `*` and `?` in a word match no `/` (`"uvx mcp-server-* *"`). Empty: the
    API starts no process. Config-file servers are not subject to it."""
    stdio_cwd_allow: list[str] = []
    """Glob patterns for the working directories (real absolute paths) those processes may be given;
    empty: an attach that sets `cwd` is refused and the process runs in the gateway's directory."""
    stdio_env_allow: list[str] = []
    """Names of environment variables those processes may be given, or globs that keep at least 4
    characters of the name (`"*_API_KEY"`); empty: an attach that sets `env` is refused. Variables
    known to change what runs (PATH, LD_PRELOAD, PYTHONPATH, NODE_OPTIONS, ...) pass only when listed
    by their exact name."""
    deny_networks: list[IPvAnyNetwork] = Field(default_factory=lambda: [ip_network(n) for n in DEFAULT_DENY_NETWORKS])

    @field_validator("token")
    @classmethod
    def _check_token(cls, token: SecretStr | None) -> SecretStr | None:
        return _not_empty(token, "leave it out to have one generated, or give one")

    @field_validator("stdio_allow")
    @classmethod
    def _check_commands(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            parse_command_pattern(pattern)
        return patterns

    @field_validator("stdio_env_allow")
    @classmethod
    def _check_env(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            env_pattern(pattern)
        return patterns

    """URL servers attached through the API must not reach these networks, in any spelling of an
    address (IPv4-mapped, NAT64, ...); checked at attach and again on every connection."""


class GatewaySettings(BaseModel):
    model_config = _STRICT

    host: str = DEFAULT_HOST
    """Address to listen on. Loopback by default: anything else exposes every attached tool."""
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    """TCP port; 0 lets the OS pick (the chosen port is printed)."""
    allowed_hosts: list[str] = []
    """Extra `Host` header values accepted on every route (`name:port`, `name:*`); loopback names
    are always accepted. Requests with other hosts get 421 (DNS rebinding protection)."""
    allowed_origins: list[str] = []
    """Extra `Origin` values accepted from browsers (`http://name:port`, `http://name:*`)."""
    request_timeout: float = Field(default=30.0, gt=0, le=3600, allow_inf_nan=False)
    """Seconds a request's line and headers may take to arrive, and then its body; a slower one gets 408."""
    shutdown_drain: float = Field(default=5.0, ge=0, le=3600, allow_inf_nan=False)
    """Seconds `serve` gives calls in flight to finish after SIGTERM; the rest are answered with an
    error saying the gateway is shutting down, and cancelled upstream."""
    log_format: LogFormat = "text"
    """`text` for people, `json` for log shippers (one object per line, facts as fields); `--log-format` wins."""
    auth_token: SecretStr | None = None
    """When set, `/mcp` and `/sse` require `Authorization: Bearer <token>`."""
    public_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
    """The gateway's address as a browser reaches it, when that is not the address it listens on (behind a proxy):
    an operator approving an upstream's OAuth authorization comes back to `<public_url>/oauth/callback`."""
    store: str | None = Field(default=None, min_length=1)
    """Where the gateway keeps what it must not forget: a SQLite file path (default: `state.sqlite3` in the state
    directory), or `postgresql://...` for a store that replicas share. `--store` and `LASH_GATEWAY_STORE` win."""
    advertise_url: str | None = Field(default=None, pattern=r"^https?://[^\s/?#]+$")
    """Where the other replicas reach this one (`http://host:port`), with a shared store; default: the address it
    listens on. `LASH_GATEWAY_ADVERTISE_URL` wins."""
    export: ExportSettings = Field(default_factory=ExportSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)
    virtual_servers: dict[str, VirtualServerConfig] = {}
    """Named views of the catalog, each with its own tokens, limits and mode, served at `/mcp/<name>`,
    `/sse/<name>`, and on `/mcp` to a client that presents one of its tokens (see the README)."""
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @field_validator("auth_token")
    @classmethod
    def _check_auth_token(cls, token: SecretStr | None) -> SecretStr | None:
        return _not_empty(token, "leave it out to serve without a token, or give one")

    @field_validator("virtual_servers")
    @classmethod
    def _check_virtual_servers(cls, servers: dict[str, VirtualServerConfig]) -> dict[str, VirtualServerConfig]:
        checked = {}
        for name, config in servers.items():
            validate_virtual_server_name(name)
            try:
                config.view()
            except ConfigError as exc:
                raise ValueError(f"{name}.{exc.field}: {exc.problem}") from None
            checked[name] = config.hashed()  # the tokens as given are kept no longer than this
        return checked

    @field_validator("allowed_hosts")
    @classmethod
    def _check_hosts(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            parse_host_pattern(host)
        return hosts

    @field_validator("allowed_origins")
    @classmethod
    def _check_origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            parse_origin_pattern(origin)
        return origins


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    settings: GatewaySettings = field(default_factory=GatewaySettings)
    servers: Mapping[str, ServerConfig] = field(default_factory=dict)


def load_gateway_config(source: Mapping[str, object] | str | os.PathLike[str]) -> GatewayConfig:
    """Read a gateway config: `{"mcpServers": {...}, "gateway": {...}}`, both optional.

    Raises:
        ConfigError: unreadable file, bad JSON, or a bad value (the message names server and field).
    """
    root = load_json(source) if isinstance(source, str | os.PathLike) else source
    if not isinstance(root, Mapping):
        raise ConfigError(None, "the config file must hold a JSON object")
    try:
        settings = GatewaySettings.model_validate(root.get("gateway") or {})
    except ValidationError as exc:
        problems = [
            (".".join(["gateway", *map(str, e["loc"])]), e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError.from_problems(None, problems) from None
    servers = load_mcp_servers(root) if "mcpServers" in root else {}
    return GatewayConfig(settings, servers)
