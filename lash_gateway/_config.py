"""Upstream server configs: what to start or connect to, how long to wait, which tools to take.

`McpServerConfig` is the type of a server config, and its two kinds are frozen pydantic models tagged
on `transport`: `StdioServerConfig` ("stdio") and `HttpServerConfig` ("streamable_http" or "sse").
Build one with `McpServerConfig.stdio(...)`, `.streamable_http(...)`, `.sse(...)` or `.parse(obj)`.

`load_mcp_servers` reads the `mcpServers` JSON that Claude Desktop, Claude Code and Cursor write (the
format itself is `_mcp_json`).
Every failure of the constructors, `parse` and the loader is a `ConfigError` naming the server and
the field (constructing the models directly raises pydantic's `ValidationError`). No message, repr
or `redacted()` view contains an env or header value.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import Annotated, Any, Final, Literal, Self, TypeAlias, TypeVar, cast
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, GetCoreSchemaHandler, SecretStr, TypeAdapter, field_validator
from pydantic_core import CoreSchema

from ._errors import ConfigError
from ._mcp_json import load_json, typed_shape
from ._naming import validate_server_name
from ._redact import redacted_args, redacted_url
from ._schema import json_kind as _kind
from ._tool_filter import ToolFilter
from ._validation import validated

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_MODE",
    "DEFAULT_STARTUP_TIMEOUT",
    "HttpServerConfig",
    "McpServerConfig",
    "ProtocolMode",
    "ServerConfig",
    "StdioServerConfig",
    "load_mcp_servers",
]

DEFAULT_STARTUP_TIMEOUT: Final = 10.0
"""Seconds for connect + initialize + the first complete tools/list."""
DEFAULT_CALL_TIMEOUT: Final = 60.0
"""Seconds one tools/call may run before it fails with `CallTimeout`."""
MAX_STARTUP_TIMEOUT: Final = 3600.0
"""Longest `startup_timeout` accepted: an attach must answer within the hour."""
MAX_CALL_TIMEOUT: Final = 86400.0
"""Longest `call_timeout` accepted: a day; "no limit" would let a hung upstream hold a call for ever."""

ProtocolMode: TypeAlias = Literal["legacy", "auto"]
"""How the client picks the protocol era; see `McpServerConfig.mode`."""

DEFAULT_MODE: Final[ProtocolMode] = "legacy"
DEFAULT_MAX_CLIENTS: Final = 16
"""Clients with a connection of their own to one `per_client` server, at most, by default."""

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)

# RFC 9110 token characters: what an HTTP header name may contain.
_TOKEN_CHARS: Final = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


class McpServerConfig(BaseModel):
    """An upstream MCP server's config: the type to annotate with, of which `StdioServerConfig` and
    `HttpServerConfig` are the two kinds (told apart by `transport`). Build one with the constructors:

    ```python
    McpServerConfig.stdio("uvx", ["mcp-server-time"], env={"TZ": "UTC"})
    McpServerConfig.streamable_http("https://example.com/mcp", headers={"Authorization": "Bearer ..."})
    McpServerConfig.sse("http://127.0.0.1:8000/sse")
    McpServerConfig.parse({"command": "npx", "args": ["-y", "@modelcontextprotocol/server-memory"]})
    ```
    Each raises `ConfigError` for invalid input. As the type of a field of another pydantic model, it
    validates either kind by its `transport` tag. The fields below are the ones every kind shares.
    """

    model_config = _MODEL_CONFIG

    startup_timeout: float = Field(default=DEFAULT_STARTUP_TIMEOUT, gt=0, le=MAX_STARTUP_TIMEOUT, allow_inf_nan=False)
    """Seconds for connect + initialize + the first complete tools/list; attach fails after that."""
    call_timeout: float = Field(default=DEFAULT_CALL_TIMEOUT, gt=0, le=MAX_CALL_TIMEOUT, allow_inf_nan=False)
    """Seconds one tools/call may run before it fails with `CallTimeout`."""
    tools: ToolFilter = ToolFilter()
    """Which of the server's tools are offered; every tool by default."""
    mode: ProtocolMode = DEFAULT_MODE
    """Protocol era negotiation. "legacy" runs the classic initialize handshake (2025-11-25), which
    every server understands and on which `notifications/tools/list_changed` arrives on the
    connection. "auto" first probes `server/discover` for 2026-07-28: servers that ignore unknown
    methods then cost a 10 s connect delay, very old servers (mcp 1.2.x) die, and on 2026-07-28
    list_changed only arrives on a `subscriptions/listen` stream. Hence "legacy" by default."""
    prefix: bool = True
    """Name this server's tools and prompts `<server>__<name>` (the default), or, with false, by their own names
    (normalised as every name is; a name another server or plugin holds already gets a digest suffix). For one
    server whose names clients expect as they are (a conformance suite, a client's saved settings)."""
    per_client: bool = False
    """Give each downstream client its own connection to this server (a process of its own, for stdio), opened
    on the client's first use and closed when its session ends or idles out. Stateful servers need it (a
    browser per user, each client's own roots); others share one connection. The shared connection stays, for
    the tool list and for callers without a session (2026-07-28 requests are each a client of their own)."""
    max_clients: int = Field(default=DEFAULT_MAX_CLIENTS, ge=1, le=10_000)
    """With `per_client`: how many clients may have a connection of their own at once; the next one gets an
    error that says so."""

    def model_post_init(self, context: Any, /) -> None:
        if type(self) is McpServerConfig:
            raise TypeError(
                "McpServerConfig is the type of every server config: build one with McpServerConfig.stdio(...), "
                ".streamable_http(...), .sse(...) or .parse(...)"
            )

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        """As a field type, the base validates either kind by its `transport` tag; the kinds (and any subclass
        of them) keep pydantic's own schema. The base's own schema is made before the kinds exist."""
        if source is cls and cls is globals().get("McpServerConfig"):
            return handler.generate_schema(_TaggedKinds)
        return handler(source)

    @classmethod
    def model_validate(cls, obj: Any, **options: Any) -> Self:
        """The base validates either kind (by `transport`); a kind validates itself."""
        if cls is McpServerConfig:
            return cast(Self, _kinds().validate_python(obj, **options))
        return super().model_validate(obj, **options)

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        if cls is McpServerConfig:
            return cast(Self, _kinds().validate_json(json_data, **options))
        return super().model_validate_json(json_data, **options)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The base's schema is that of either kind."""
        if cls is McpServerConfig:
            return _kinds().json_schema(*args, **kwargs)
        return super().model_json_schema(*args, **kwargs)

    @staticmethod
    def stdio(
        command: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str | SecretStr] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        tools: ToolFilter | None = None,
        mode: ProtocolMode = DEFAULT_MODE,
        per_client: bool = False,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> StdioServerConfig:
        """A server started as `command *args`.

        Raises:
            ConfigError: an argument is invalid.
        """
        if isinstance(args, str):
            # A str is a Sequence[str]; taking it would run `command` with one argument per character.
            raise ConfigError(None, "must be a list of strings, not one string", field="args")
        data: dict[str, object] = {
            "command": command,
            "args": list(args),
            "env": dict(env or {}),
            "cwd": os.fspath(cwd) if cwd is not None else None,
        }
        return _build(
            StdioServerConfig,
            None,
            _with_common(data, startup_timeout, call_timeout, tools, mode, per_client, max_clients),
        )

    @staticmethod
    def streamable_http(
        url: str,
        *,
        headers: Mapping[str, str | SecretStr] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        tools: ToolFilter | None = None,
        mode: ProtocolMode = DEFAULT_MODE,
        per_client: bool = False,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> HttpServerConfig:
        """A server reached over streamable HTTP at `url`.

        Raises:
            ConfigError: an argument is invalid.
        """
        return _http(
            "streamable_http", url, headers, startup_timeout, call_timeout, tools, mode, per_client, max_clients
        )

    @staticmethod
    def sse(
        url: str,
        *,
        headers: Mapping[str, str | SecretStr] | None = None,
        startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
        call_timeout: float = DEFAULT_CALL_TIMEOUT,
        tools: ToolFilter | None = None,
        mode: ProtocolMode = DEFAULT_MODE,
        per_client: bool = False,
        max_clients: int = DEFAULT_MAX_CLIENTS,
    ) -> HttpServerConfig:
        """A server reached over the legacy HTTP+SSE transport; `url` is its SSE stream.

        Raises:
            ConfigError: an argument is invalid.
        """
        return _http("sse", url, headers, startup_timeout, call_timeout, tools, mode, per_client, max_clients)

    @staticmethod
    def parse(obj: Mapping[str, object] | McpServerConfig, *, name: str | None = None) -> ServerConfig:
        """Validate a config given as a JSON-like object, in either shape.

        - typed: `{"transport": "stdio" | "streamable_http" | "sse", ...the model's fields}`;
        - an `mcpServers` entry: `{"command", "args"?, "env"?, "cwd"?}` is stdio, `{"url", "headers"?}`
          is streamable HTTP unless `"type": "sse"`. Claude Code's `"type"` (stdio, http, sse,
          streamable-http, streamable_http; Cline's streamableHttp) picks the transport, Windsurf's
          `"serverUrl"` stands for `"url"`, and Cline's `autoApprove` / `alwaysAllow` are ignored.

        Both shapes also take `startup_timeout`, `call_timeout`, `tools`, `mode`, `prefix`, `per_client`
        and `max_clients`; other keys are errors. `name` is used in error messages (and validated); a config
        object is returned as is.

        Raises:
            ConfigError: the name or the config is invalid; one line per problem.
        """
        if name is not None:
            validate_server_name(name)
        if isinstance(obj, StdioServerConfig | HttpServerConfig):
            return obj
        if isinstance(obj, McpServerConfig):
            raise ConfigError(name, "a server config must be a StdioServerConfig or an HttpServerConfig")
        if not isinstance(obj, Mapping):
            raise ConfigError(name, f"server config must be a JSON object (got {_kind(obj)})")
        data = typed_shape(obj, name)
        if data["transport"] == "stdio":
            return _build(StdioServerConfig, name, data)
        return _build(HttpServerConfig, name, data)


class StdioServerConfig(McpServerConfig):
    """A server the gateway starts as a child process and talks to over stdin/stdout."""

    transport: Literal["stdio"] = "stdio"
    command: str
    """The program to run, looked up on PATH when it has no directory part."""
    args: list[str] = []
    """Arguments passed to the program."""
    env: dict[str, SecretStr] = {}
    """Environment variables for the child. The SDK merges them over a minimal set (HOME, LOGNAME,
    PATH, SHELL, TERM, USER); the gateway's other variables are not inherited."""
    cwd: str | None = None
    """Working directory of the child; the gateway's own when None."""

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        # Credentials in URL-shaped arguments stay out of reprs, as they stay out of `redacted()`.
        for key, value in super().__repr_args__():
            yield key, (redacted_args(self.args) if key == "args" else value)

    @field_validator("command")
    @classmethod
    def _check_command(cls, command: str) -> str:
        if not command.strip():
            raise ValueError("must not be empty")
        if "\0" in command:
            raise ValueError("contains a NUL character")
        return command

    @field_validator("args")
    @classmethod
    def _check_args(cls, args: list[str]) -> list[str]:
        for index, arg in enumerate(args):
            if "\0" in arg:
                raise ValueError(f"argument {index} contains a NUL character")
        return args

    @field_validator("env")
    @classmethod
    def _check_env(cls, env: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in env.items():
            if not name or "=" in name or "\0" in name:
                raise ValueError(f"environment variable name {name!r} is empty or contains '=' or NUL")
            if "\0" in value.get_secret_value():
                raise ValueError(f"value of environment variable {name!r} contains a NUL character")
        return env

    @field_validator("cwd")
    @classmethod
    def _check_cwd(cls, cwd: str | None) -> str | None:
        if cwd is not None and not cwd:
            raise ValueError("must not be empty; leave it out to use the gateway's working directory")
        return cwd


class OAuthConfig(BaseModel):
    """How the gateway gets its access tokens for a server that requires OAuth (MCP authorization): discovery
    starts from the server's 401 (Protected Resource Metadata, then the authorization server's metadata). The
    client secret and the private key are secrets, as env and header values are.

    `authorization_code` (the default): an operator approves in a browser once; the gateway registers itself
    (Dynamic Client Registration) unless `client_id` names a pre-registered client, and refreshes its tokens.
    `client_credentials` (machine-to-machine): with `client_secret` (`client_secret_basic`, or `client_secret_post`
    through `token_endpoint_auth_method`) or with `private_key_pem` (`private_key_jwt`, signed with
    `signing_algorithm`)."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)

    grant: Literal["authorization_code", "client_credentials"] = "authorization_code"
    client_id: str | None = Field(default=None, min_length=1, max_length=512)
    client_secret: SecretStr | None = None
    private_key_pem: SecretStr | None = None
    signing_algorithm: Literal["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA"] = "ES256"
    token_endpoint_auth_method: Literal["client_secret_basic", "client_secret_post", "private_key_jwt"] | None = None
    """Default: `private_key_jwt` with a private key, else `client_secret_basic`."""
    scopes: list[str] = []
    """Scopes to ask for (empty: those the server's challenge and metadata name)."""
    issuer: str | None = None
    """The issuer of the authorization server the credentials belong to: they are sent to no other. Without it, to
    whichever authorization server the MCP server's metadata names."""
    client_metadata_url: str | None = Field(default=None, pattern=r"^https://[^\s/?#]+/[^\s?#]+$")
    """authorization_code: the gateway's Client ID Metadata Document (an https URL with a path), used as its client
    id where the authorization server supports them. Default: the one the gateway serves at
    `<gateway.public_url>/oauth/client-metadata.json` when that is https."""

    @field_validator("scopes")
    @classmethod
    def _check_scopes(cls, scopes: list[str]) -> list[str]:
        if any(not scope or any(char.isspace() for char in scope) for scope in scopes):
            raise ValueError("a scope is one word, not empty")
        return scopes

    def model_post_init(self, context: Any) -> None:
        if self.grant == "authorization_code":
            if self.private_key_pem is not None or self.token_endpoint_auth_method == "private_key_jwt":
                raise ValueError("private_key_jwt is for client_credentials; authorization_code takes client_secret")
            if self.client_secret is not None and self.client_id is None:
                raise ValueError("client_secret needs the client_id it belongs to")
            return
        if self.client_id is None:
            raise ValueError("client_credentials needs client_id")
        method = self.auth_method
        if method == "private_key_jwt" and self.private_key_pem is None:
            raise ValueError("private_key_jwt needs private_key_pem")
        if method != "private_key_jwt" and self.client_secret is None:
            raise ValueError(f"{method} needs client_secret")

    @property
    def auth_method(self) -> Literal["client_secret_basic", "client_secret_post", "private_key_jwt"]:
        if self.token_endpoint_auth_method is not None:
            return self.token_endpoint_auth_method
        return "private_key_jwt" if self.private_key_pem is not None else "client_secret_basic"


class HttpServerConfig(McpServerConfig):
    """A server the gateway connects to over streamable HTTP or the legacy HTTP+SSE transport."""

    transport: Literal["streamable_http", "sse"] = "streamable_http"
    url: str
    """The MCP endpoint, http:// or https://: the streamable HTTP endpoint, or the SSE stream URL."""
    headers: dict[str, SecretStr] = {}
    """Headers sent with every request (e.g. Authorization); values are secrets."""
    oauth: OAuthConfig | None = None
    """Get access tokens by OAuth (then no `Authorization` header may be given)."""

    def __repr_args__(self) -> Iterator[tuple[str | None, object]]:
        # Credentials and query values of the URL stay out of reprs, as they stay out of `redacted()`.
        for key, value in super().__repr_args__():
            yield key, (redacted_url(self.url) if key == "url" else value)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        if any(char.isspace() or unicodedata.category(char) == "Cc" for char in url):
            raise ValueError("URL contains whitespace or control characters")
        scheme, sep, _ = url.partition("://")
        if not sep:
            raise ValueError("URL must start with http:// or https://")
        if scheme.lower() not in ("http", "https"):
            raise ValueError(f"URL scheme must be http or https (got {scheme[:20]!r})")
        try:
            parts = urlsplit(url)
            host, _port = parts.hostname, parts.port  # .port raises ValueError unless a number in 0-65535
        except ValueError:
            raise ValueError("URL has a malformed host or port") from None
        if not host:
            raise ValueError("URL has no host")
        return url

    def model_post_init(self, context: Any) -> None:
        super().model_post_init(context)
        if self.oauth is not None and any(name.lower() == "authorization" for name in self.headers):
            raise ValueError("give either oauth or an Authorization header, not both")

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for name, value in headers.items():
            if not name or not set(name) <= _TOKEN_CHARS:
                raise ValueError(f"header name {name!r} is not a valid HTTP header name")
            if any(char in "\r\n\0" for char in value.get_secret_value()):
                raise ValueError(f"value of header {name!r} contains a line break or NUL")
        return headers


ServerConfig: TypeAlias = StdioServerConfig | HttpServerConfig
_TaggedKinds: TypeAlias = Annotated[ServerConfig, Field(discriminator="transport")]
"""The two kinds of `McpServerConfig`, for code that tells them apart (`isinstance`): what `parse` returns."""


_Config = TypeVar("_Config", StdioServerConfig, HttpServerConfig)


def _http(
    transport: Literal["streamable_http", "sse"],
    url: str,
    headers: Mapping[str, str | SecretStr] | None,
    startup_timeout: float,
    call_timeout: float,
    tools: ToolFilter | None,
    mode: ProtocolMode,
    per_client: bool,
    max_clients: int,
) -> HttpServerConfig:
    data: dict[str, object] = {"transport": transport, "url": url, "headers": dict(headers or {})}
    return _build(
        HttpServerConfig, None, _with_common(data, startup_timeout, call_timeout, tools, mode, per_client, max_clients)
    )


def load_mcp_servers(data: Mapping[str, object] | str | os.PathLike[str]) -> dict[str, ServerConfig]:
    """Read the servers of an `mcpServers` config, as Claude Desktop, Claude Code and Cursor write it.

    `data` is the parsed JSON, JSON text (a `str`), or the path of a file (a `pathlib.Path` or other
    `os.PathLike`; a `str` is always JSON text). The top-level object must hold an `mcpServers`
    object; its other keys (a client's own settings) are ignored. Each entry is read by
    `McpServerConfig.parse`. An entry with `"disabled": true` (Cline, Roo Code, Windsurf) is left out.
    Values are taken literally: `${VAR}` is not expanded. Returns the servers in file order.

    Raises:
        ConfigError: the file cannot be read, is not JSON, repeats a key, or an entry is invalid.
    """
    root = load_json(data) if isinstance(data, str | os.PathLike) else data
    if not isinstance(root, Mapping) or "mcpServers" not in root:
        raise ConfigError(None, "expected a JSON object with an 'mcpServers' object (the Claude Desktop format)")
    servers = root["mcpServers"]
    if not isinstance(servers, Mapping):
        raise ConfigError(None, f"must be a JSON object (got {_kind(servers)})", field="mcpServers")
    result: dict[str, ServerConfig] = {}
    for name, entry in servers.items():
        validate_server_name(name)
        if not isinstance(entry, Mapping):
            raise ConfigError(name, f"server config must be a JSON object (got {_kind(entry)})")
        if "disabled" in entry:
            disabled = entry["disabled"]
            if not isinstance(disabled, bool):
                raise ConfigError(name, f"must be true or false (got {_kind(disabled)})", field="disabled")
            if disabled:
                continue
            entry = {key: value for key, value in entry.items() if key != "disabled"}
        result[name] = McpServerConfig.parse(entry, name=name)
    return result


def _with_common(
    data: dict[str, object],
    startup_timeout: float,
    call_timeout: float,
    tools: ToolFilter | None,
    mode: ProtocolMode,
    per_client: bool,
    max_clients: int,
) -> dict[str, object]:
    data.update(
        startup_timeout=startup_timeout,
        call_timeout=call_timeout,
        mode=mode,
        per_client=per_client,
        max_clients=max_clients,
    )
    if tools is not None:
        data["tools"] = tools
    return data


@cache
def _kinds() -> TypeAdapter[ServerConfig]:
    """Either kind, told apart by `transport` (built once, on first use: the kinds are defined after the base)."""
    return TypeAdapter(_TaggedKinds)


def _build(model: type[_Config], name: str | None, data: Mapping[str, object]) -> _Config:
    return validated(model, name, data, nested_keys=ToolFilter.model_fields)
