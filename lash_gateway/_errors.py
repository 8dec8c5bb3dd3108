"""Errors raised by lash_gateway.

GatewayError
├── ConfigError(ValueError)          bad input; names server and field; never retried
├── PolicyError                      the admin policy refuses an attach; says which setting allows it
├── StateError                       a state file cannot be made owner-only; says how to fix it
│   └── StoreError                   the state store cannot be read or written; names the file
├── ServerNotAttached(LookupError)   .server; no server of that name is attached
├── UnknownTool(LookupError)         .tool; no attached server offers a tool of that name
├── UnknownPrompt(LookupError)       .prompt; no attached server offers a prompt of that name
├── UnknownResource(LookupError)     .uri; no attached server lists the URI or has a template it matches
└── UpstreamError                    .server; str() starts "<server>: "
    ├── UpstreamUnavailable          transport gone or could not connect; the pool is reconnecting
    │   └── ServerDetached           the call ended because the server was detached or the pool closed
    ├── CallTimeout(TimeoutError)    .tool, .timeout; the connection is still usable
    ├── UpstreamCallError            .tool, .code, .data, .client_lacks; the upstream answered with a JSON-RPC error
    └── UpstreamProtocolError        upstream answered nonsense; the connection is still usable

Messages name servers, fields, tools and the figures exceeded. They never contain header or env
values (only their names), so any of these errors can be logged or returned to a client as is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "CallTimeout",
    "ConfigError",
    "GatewayError",
    "PolicyError",
    "ServerDetached",
    "ServerNotAttached",
    "StateError",
    "StoreError",
    "UnknownPrompt",
    "UnknownResource",
    "UnknownTool",
    "UpstreamCallError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamUnavailable",
]

_SHOWN_NAME_LENGTH = 80
"""Longest server name quoted in full in a message; longer (invalid) names are cut, with an ellipsis."""


def _show(name: str) -> str:
    """`name` quoted for a message; a name too long to be valid is cut so the message stays readable."""
    if len(name) > _SHOWN_NAME_LENGTH:
        return repr(name[:_SHOWN_NAME_LENGTH]) + "..."
    return repr(name)


def _config_line(server: str | None, field: str | None, problem: str) -> str:
    parts = []
    if server is not None:
        parts.append(f"server {_show(server)}")
    if field is not None:
        parts.append(f"field {field!r}")
    parts.append(problem)
    return ": ".join(parts)


class GatewayError(Exception):
    """Base of every error lash_gateway raises."""


class ConfigError(GatewayError, ValueError):
    """A server config, name or config file is invalid; fix the input, retrying cannot help.

    `str()` has one line per problem, each `server '<name>': field '<path>': <problem>` (the server
    part is left out when the config was given without a name, the field part when the problem is
    not about one field). `server`, `field` and `problem` describe the first problem; `problems`
    holds every `(field, problem)` pair.
    """

    server: str | None
    field: str | None
    problem: str
    problems: tuple[tuple[str | None, str], ...]

    def __init__(self, server: str | None, problem: str, *, field: str | None = None) -> None:
        super().__init__(_config_line(server, field, problem))
        self.server, self.field, self.problem = server, field, problem
        self.problems = ((field, problem),)

    @classmethod
    def from_problems(cls, server: str | None, problems: Sequence[tuple[str | None, str]]) -> ConfigError:
        """One error listing several `(field, problem)` pairs of one server, one line each."""
        if not problems:
            raise ValueError("ConfigError.from_problems needs at least one problem")
        (field, problem), *_ = problems
        error = cls(server, problem, field=field)
        error.problems = tuple(problems)
        error.args = ("\n".join(_config_line(server, f, p) for f, p in problems),)
        return error


class PolicyError(GatewayError):
    """An attach the operator's policy (`gateway.admin`) refuses; the message says which setting would allow it."""


class StateError(GatewayError):
    """A file of the state directory cannot be made safe (owner-only); the message says how to fix it."""


class StoreError(StateError):
    """The state store cannot be read or written; the message names the file."""


class ServerNotAttached(GatewayError, LookupError):
    """No server of this name is attached to the pool."""

    def __init__(self, server: str) -> None:
        super().__init__(f"server {_show(server)} is not attached")
        self.server = server


class UnknownTool(GatewayError, LookupError):
    """No attached server offers a tool of this (lash) name."""

    def __init__(self, tool: str) -> None:
        super().__init__(f"no attached server offers a tool named {_show(tool)}")
        self.tool = tool


class UnknownPrompt(GatewayError, LookupError):
    """No attached server offers a prompt of this (lash) name."""

    def __init__(self, prompt: str) -> None:
        super().__init__(f"no attached server offers a prompt named {_show(prompt)}")
        self.prompt = prompt


class UnknownResource(GatewayError, LookupError):
    """No attached server lists this URI or has a resource template it matches."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"no attached server lists the resource {_show(uri)} or has a template that matches it")
        self.uri = uri


class UpstreamError(GatewayError):
    """An upstream server failed a request. `str()` is `"<server>: <message>"`."""

    def __init__(self, server: str, message: str) -> None:
        super().__init__(f"{server}: {message}")
        self.server = server
        self.message = message


class UpstreamUnavailable(UpstreamError):
    """The server cannot be reached: it could not be started or connected, or its transport was lost.

    The pool keeps reconnecting in the background; a later call may succeed.
    """


class ServerDetached(UpstreamUnavailable):
    """The call ended because its server was detached or the pool shut down; it will not come back."""

    def __init__(self, server: str, message: str = "server was detached while the call was in flight") -> None:
        super().__init__(server, message)


class CallTimeout(UpstreamError, TimeoutError):
    """A tool call got no answer within its timeout; the connection stays usable."""

    def __init__(self, server: str, tool: str, timeout: float) -> None:
        super().__init__(server, f"tool {tool!r} gave no answer within {timeout:g}s")
        self.tool, self.timeout = tool, timeout


class UpstreamProtocolError(UpstreamError):
    """The upstream answered with something MCP does not allow; the connection stays usable."""


class UpstreamCallError(UpstreamError):
    """The upstream answered a call with a JSON-RPC error (unknown tool, invalid params, a crash in
    its handler); the connection stays usable."""

    def __init__(
        self,
        server: str,
        tool: str,
        code: int,
        message: str,
        *,
        kind: str = "tool",
        data: Any = None,
        client_lacks: bool = False,
    ) -> None:
        """`kind` and `tool` name what failed: a tool, a resource (its URI), a prompt; `data` is the error's;
        `client_lacks`: the server refused for a capability the request's own client did not declare (not one the
        gateway's connection lacks), so the client is the one to hear it."""
        super().__init__(server, f"{kind} {tool!r} failed with MCP error {code}: {message}")
        self.tool, self.code, self.kind, self.data = tool, code, kind, data
        self.client_lacks = client_lacks
