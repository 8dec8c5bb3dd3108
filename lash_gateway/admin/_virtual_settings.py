"""A virtual server as the config file and the admin API spell it (`gateway.virtual_servers.<name>`), and as the store
keeps it: the same object with its client tokens replaced by their digests.

    "research": {
      "servers": ["docs", "search*"],
      "tools": {"allow": ["*"], "deny": ["*delete*"]},
      "prompts": {"allow": ["docs__*"]},
      "resources": {"deny": ["file:///private/*"]},
      "overrides": {"docs__fetch": {"name": "read_page", "arguments": {"format": "markdown"}}},
      "tokens": ["a-secret-the-client-presents"],
      "limits": {"calls_per_minute": 120, "concurrent_calls": 8,
                 "per_token": {"calls_per_minute": 60}, "tools": {"read_page": {"concurrent_calls": 2}}},
      "mode": "full",
      "pinned": []
    }
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .._errors import ConfigError
from .._tool_filter import ToolFilter
from ..export._limits import Limit, Limits
from ..export._router import token_digest
from ..export._views import ToolOverride, View

__all__ = ["TokenRecord", "VirtualServerConfig", "new_token", "parse_virtual_server", "validate_virtual_server_name"]

_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
TOKEN_PREFIX: Final = "lvs_"
"""Generated client tokens start with it, so secret scanners can name them."""
MIN_TOKEN_LENGTH: Final = 16
"""Shortest client token accepted: tokens are the only thing between a client and its tools."""
_STRICT = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)


def validate_virtual_server_name(name: str) -> str:
    """`name`, if it can be a path segment (`/mcp/<name>`): 1 to 64 of letters, digits, `_`, `.` and `-`, starting
    with a letter or digit.

    Raises:
        ConfigError: it cannot.
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigError(
            None,
            f"{name!r} is not a virtual server name: 1 to 64 of A-Z, a-z, 0-9, _, . and -, first a letter or digit",
        )
    return name


class LimitConfig(BaseModel):
    model_config = _STRICT

    calls_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrent_calls: int | None = Field(default=None, ge=1, le=100_000)

    def limit(self) -> Limit:
        return Limit(self.calls_per_minute, self.concurrent_calls)


class LimitsConfig(LimitConfig):
    """The top-level numbers hold for the whole virtual server; `per_token` for each of its client tokens; `tools`
    for single tools, by the name the virtual server shows them under."""

    per_token: LimitConfig = LimitConfig()
    tools: dict[str, LimitConfig] = {}

    def limits(self) -> Limits:
        return Limits(self.limit(), self.per_token.limit(), {name: cfg.limit() for name, cfg in self.tools.items()})


class OverrideConfig(BaseModel):
    model_config = _STRICT

    name: str | None = None
    title: str | None = None
    description: str | None = None
    annotations: dict[str, Any] | None = None
    arguments: dict[str, Any] = {}
    """Fixed values: set by the gateway on every call, and taken out of the schema the client sees."""


class TokenRecord(BaseModel):
    """A client token as it is kept: an id (in the audit log, in revocations) and the token's SHA-256."""

    model_config = _STRICT

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class VirtualServerConfig(BaseModel):
    model_config = _STRICT

    servers: list[str] = ["*"]
    """Globs over upstream server names; tools of in-process plugins pass only through `*`."""
    tools: ToolFilter = ToolFilter()
    """Allow and deny globs over the plain endpoint's tool names (`docs__fetch`)."""
    prompts: ToolFilter = ToolFilter()
    """Allow and deny globs over the plain endpoint's prompt names (`docs__greet`)."""
    resources: ToolFilter = ToolFilter()
    """Allow and deny globs over resource URIs and URI templates (`file:///docs/*`)."""
    overrides: dict[str, OverrideConfig] = {}
    """By the plain endpoint's tool name."""
    tokens: list[SecretStr] = []
    """Client tokens, as given (config file, `PUT`); kept only as digests from then on."""
    token_hashes: list[TokenRecord] = []
    """Tokens as the store keeps them (made by the admin API, or hashed from `tokens`)."""
    limits: LimitsConfig = LimitsConfig()
    mode: Literal["full", "search"] = "full"
    pinned: list[str] = []
    max_sessions: int | None = Field(default=None, ge=1)
    """Streamable-HTTP sessions (and, as many again, legacy SSE connections and 2026-07-28 listen streams) its
    clients may hold open, so that one virtual server's clients cannot use up `gateway.export.max_sessions` for every
    other; None: no cap of its own."""
    """Tools listed as usual in search mode, by the plain endpoint's name."""

    @field_validator("tokens")
    @classmethod
    def _check_tokens(cls, tokens: list[SecretStr]) -> list[SecretStr]:
        if any(len(token.get_secret_value()) < MIN_TOKEN_LENGTH for token in tokens):
            raise ValueError(f"a client token has at least {MIN_TOKEN_LENGTH} characters (a random one is best)")
        return tokens

    @field_validator("servers", "pinned")
    @classmethod
    def _check_globs(cls, patterns: list[str]) -> list[str]:
        if any(not pattern for pattern in patterns):
            raise ValueError("names and patterns must not be empty strings")
        return patterns

    def view(self) -> View:
        """The view of the export this virtual server shows.

        Raises:
            ConfigError: an override the view refuses (a name clients would refuse).
        """
        overrides = {}
        for tool, override in self.overrides.items():
            try:
                overrides[tool] = ToolOverride(**override.model_dump())
            except ConfigError as exc:
                raise ConfigError(None, exc.problem, field=f"overrides.{tool}.{exc.field}") from None
        return View(
            tuple(self.servers), self.tools, overrides, self.mode, tuple(self.pinned), self.prompts, self.resources
        )

    def hashed(self) -> VirtualServerConfig:
        """This config with its plain `tokens` replaced by digests (ids `t1`, `t2`, ... in the order given, past any
        already in `token_hashes`: a config file's tokens keep their ids across restarts)."""
        taken = {record.id for record in self.token_hashes}
        records = list(self.token_hashes)
        number = 1
        for token in self.tokens:
            while f"t{number}" in taken:
                number += 1
            records.append(TokenRecord(id=f"t{number}", sha256=token_digest(token.get_secret_value())))
            taken.add(f"t{number}")
        return self.model_copy(update={"tokens": [], "token_hashes": records})

    def public(self) -> dict[str, Any]:
        """As the admin API shows it: token ids (`token_ids`, never a token or a digest)."""
        shown = self.model_dump(mode="json", exclude={"tokens", "token_hashes"})
        shown["token_ids"] = [record.id for record in self.token_hashes]
        return shown


def new_token(config: VirtualServerConfig) -> tuple[str, VirtualServerConfig]:
    """A new client token for `config` (shown once), and `config` with its digest added. Its id is random, so an id
    in the audit log names one token only, however many were made and revoked since."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(id="k" + secrets.token_hex(4), sha256=token_digest(token))
    return token, config.model_copy(update={"token_hashes": [*config.token_hashes, record]})


def parse_virtual_server(name: str, raw: object, *, where: str = "gateway.virtual_servers") -> VirtualServerConfig:
    """A virtual server's config, checked (its overrides too), with its tokens hashed.

    Raises:
        ConfigError: the message names the field and what is wrong with it.
    """
    validate_virtual_server_name(name)
    try:
        config = VirtualServerConfig.model_validate(raw)
    except ValidationError as exc:
        problems = [
            (".".join([where, name, *map(str, e["loc"])]), e["msg"])
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError.from_problems(None, problems) from None
    try:
        config.view()
    except ConfigError as exc:
        raise ConfigError(None, exc.problem, field=f"{where}.{name}.{exc.field}") from None
    return config.hashed()
