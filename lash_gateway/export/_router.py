"""Which endpoint serves an MCP request: the plain one (every tool, the gateway's own token) or a virtual server's,
chosen by path (`/mcp/<name>`, `/sse/<name>`, `/messages/<name>/`) or, on the plain paths, by the client token the
request carries. One URL then serves every client, and its token decides what it sees.

- On a plain path, the gateway's `auth_token` gets the plain endpoint; a virtual server's token gets that virtual
  server; any other token is refused (401) once the gateway has an `auth_token` or serves any virtual server (so a
  revoked token gets nothing), and no token at all is refused when it has an `auth_token`.
- On a virtual server's path, its own tokens and the gateway's `auth_token` are accepted; a token of another
  virtual server is refused (401). A virtual server with no tokens is open only while the gateway has no
  `auth_token`.

Tokens are compared as SHA-256 digests (the gateway keeps no other form of a virtual server's token); the id of the
token that passed goes on in the scope (`TOKEN_ID`), the token itself no further.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from starlette.types import Receive, Scope, Send

from .._bearer import Bearer
from ._edge import TOKEN_ID, reply
from ._endpoint import HttpEndpoint

__all__ = ["GATEWAY_TOKEN_ID", "Refusal", "Route", "Router", "VirtualEndpoints", "token_digest"]

Kind = Literal["mcp", "sse", "messages"]
Route = tuple[Kind, str | None]
"""Which app of an endpoint, and the virtual server the path names (None: the plain path)."""
GATEWAY_TOKEN_ID: Final = "gateway"
"""The token id of a request that carried the gateway's own `auth_token`."""
_PREFIXES: Final[tuple[tuple[str, Kind], ...]] = (("/mcp", "mcp"), ("/sse", "sse"), ("/messages", "messages"))
_UNAUTHORIZED: Final = ((b"www-authenticate", b"Bearer"),)
_REFUSED: Final = (401, "missing or wrong bearer token")


def token_digest(token: str) -> str:
    """How a client token is kept and looked up: its SHA-256, in hex."""
    return hashlib.sha256(token.encode()).hexdigest()


class VirtualEndpoints(Protocol):
    """The virtual servers being served (the admin side's registry)."""

    @property
    def any_served(self) -> bool:
        """Whether any virtual server is served."""

    def endpoint(self, name: str) -> tuple[HttpEndpoint, bool] | None:
        """A virtual server's endpoint and whether it has tokens; None if there is none of that name."""

    def by_token(self, digest: str) -> tuple[HttpEndpoint, str] | None:
        """The endpoint of the virtual server a token digest belongs to, and the token's id."""


class Router:
    """Who serves every MCP path: the edge finds the route (`route`), the endpoint (`admit`), then serves it there
    (`dispatch`), doing what else it must between the last two (handing a session to its replica)."""

    def __init__(self, main: HttpEndpoint, token: str | None, virtual: VirtualEndpoints) -> None:
        self._main = main
        self._token = Bearer(token) if token else None
        self._virtual = virtual

    @staticmethod
    def route(scope: Scope) -> Route | None:
        """The route of a request path; None: no MCP path."""
        path: str = scope["path"]
        root = scope.get("root_path", "")
        if root and path.startswith(root):
            path = path[len(root) :]
        for prefix, kind in _PREFIXES:
            if path == prefix or path == prefix + "/":
                return kind, None
            if path.startswith(prefix + "/"):
                name = path[len(prefix) + 1 :].removesuffix("/")
                return (kind, name) if name and "/" not in name else None
        return None

    def resolve(self, route: Route, scope: Scope) -> HttpEndpoint | Refusal:
        """The endpoint that serves the request (the id of the token that passed goes into the scope, `TOKEN_ID`),
        or why it is refused. No I/O: the edge asks it before anything else is done for the request."""
        kind, name = route
        endpoint, token_id = self._main, None
        bearer = _bearer(scope)
        if self._token is not None and bearer is not None and self._token.matches(scope["headers"]):
            token_id = GATEWAY_TOKEN_ID
            if name is not None:
                found = self._virtual.endpoint(name)
                if found is None:
                    return Refusal(404, f"no virtual server is named {name!r}")
                endpoint = found[0]
        elif name is None:
            matched = self._virtual.by_token(token_digest(bearer)) if bearer is not None else None
            if matched is not None:
                endpoint, token_id = matched
            elif self._token is not None or (bearer is not None and self._virtual.any_served):
                return Refusal(*_REFUSED, _UNAUTHORIZED)
        else:
            found = self._virtual.endpoint(name)
            if found is None:  # said only to a client that could reach any virtual server of that name
                open_gateway = self._token is None and not self._virtual.any_served
                return Refusal(404, f"no virtual server is named {name!r}") if open_gateway else Refusal(*_REFUSED)
            endpoint, has_tokens = found
            matched = self._virtual.by_token(token_digest(bearer)) if bearer is not None else None
            if matched is not None and matched[0] is endpoint:  # one of its own tokens
                token_id = matched[1]
            elif has_tokens or self._token is not None:
                return Refusal(401, f"missing or wrong bearer token for virtual server {name}", _UNAUTHORIZED)
        if token_id is not None:
            scope[TOKEN_ID] = token_id
        return endpoint

    async def admit(self, route: Route, scope: Scope, send: Send) -> HttpEndpoint | None:
        """The endpoint that serves the request, or None once its refusal was answered."""
        endpoint = self.resolve(route, scope)
        if isinstance(endpoint, Refusal):
            await reply(send, endpoint.status, endpoint.message, headers=endpoint.headers)
            return None
        return endpoint

    @staticmethod
    async def dispatch(route: Route, endpoint: HttpEndpoint, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve the request with the app of `endpoint` its route names."""
        kind = route[0]
        method = scope["method"]
        if kind == "mcp":
            await endpoint.mcp(scope, receive, send)
        elif kind == "sse" and method == "GET":
            await endpoint.sse(scope, receive, send)
        elif kind == "messages" and method == "POST":
            await endpoint.messages(scope, receive, send)
        else:
            await reply(
                send, 405, f"{method} is not served here", headers=[(b"allow", b"GET" if kind == "sse" else b"POST")]
            )


@dataclass(frozen=True, slots=True)
class Refusal:
    """A request the router refuses, and how it says so."""

    status: int
    message: str
    headers: Sequence[tuple[bytes, bytes]] = ()


def _bearer(scope: Scope) -> str | None:
    """The token of the first `Authorization: Bearer` header."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None
