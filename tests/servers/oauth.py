"""An OAuth-protected MCP server and its authorization server, in one ASGI app, for tests of upstream OAuth.

Serve `ProtectedServer().app` (the tests use `serve_app`) and set `base` to its URL. It plays both parts of the MCP
authorization spec on one origin:

- the resource server: `/mcp` (streamable HTTP) and `/sse` + `/messages/` (legacy SSE) answer 401 with
  `WWW-Authenticate: Bearer resource_metadata=..., scope="mcp:read"` unless the request carries an access token
  issued for that endpoint (the token's `resource`, RFC 8707) and not revoked; Protected Resource Metadata (RFC
  9728) at `/.well-known/oauth-protected-resource/<path>`. Tools: `whoami` (the client id the token was issued
  to) and `echo`.
- the authorization server, issuer `<base>/as`: metadata (RFC 8414) at `/.well-known/oauth-authorization-server/as`,
  `/as/token` with the `client_credentials` grant and `client_secret_basic`, `client_secret_post` or
  `private_key_jwt` (a JWT signed by the client's registered public key, audience the issuer).

Everything the authorization server is asked is in `requests` (grant, client authentication method, resource,
scope), so tests can check what the gateway sent; `revoke()` makes every issued token invalid at once.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote_plus

import jwt
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE = "mcp:read"
ISSUER_PATH = "/as"


@dataclass
class Client:
    secret: str | None = None
    public_key_pem: str | None = None


@dataclass
class Issued:
    client_id: str
    resource: str
    expires_at: float


@dataclass
class ProtectedServer:
    base: str = ""
    """The URL it is served at (set it once it listens)."""
    clients: dict[str, Client] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    """What the token endpoint was asked: grant, method (client authentication), resource, scope, client_id."""
    token_lifetime: int = 3600
    _tokens: dict[str, Issued] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return self.base + ISSUER_PATH

    def revoke(self) -> None:
        self._tokens.clear()

    @property
    def app(self) -> ASGIApp:
        server: Server[Any] = Server("protected", on_list_tools=_list_tools, on_call_tool=self._call_tool)
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        manager = StreamableHTTPSessionManager(app=server, security_settings=security)
        sse = SseServerTransport("/messages/", security_settings=security)
        mcp = StreamableHTTPASGIApp(manager)

        async def sse_stream(scope: Scope, receive: Receive, send: Send) -> None:
            async with sse.connect_sse(scope, receive, send) as (read, write):
                await server.run(read, write, server.create_initialization_options())

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with manager.run():
                yield

        return Starlette(
            routes=[
                Route("/healthz", lambda request: JSONResponse({"ok": True})),
                Route("/mcp", self._protected("/mcp", mcp), methods=["GET", "POST", "DELETE"]),
                Route("/sse", self._protected("/sse", sse_stream), methods=["GET"]),
                Route("/messages/", self._protected("/sse", sse.handle_post_message), methods=["POST"]),
                Route("/.well-known/oauth-protected-resource/{path:path}", self._resource_metadata),
                Route(f"/.well-known/oauth-authorization-server{ISSUER_PATH}", self._as_metadata),
                Route(f"{ISSUER_PATH}/token", self._token, methods=["POST"]),
            ],
            lifespan=lifespan,
        )

    def _protected(self, path: str, app: Any) -> ASGIApp:
        return _Asgi(partial(self._guarded, path, app))

    async def _guarded(self, path: str, app: Any, scope: Scope, receive: Receive, send: Send) -> None:
        headers = dict(scope["headers"])
        token = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
        issued = self._tokens.get(token)
        if issued is None or issued.resource != self.base + path or issued.expires_at < time.time():
            challenge = (
                f'Bearer resource_metadata="{self.base}/.well-known/oauth-protected-resource{path}", scope="{SCOPE}"'
            )
            response = JSONResponse(
                {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": challenge}
            )
            await response(scope, receive, send)
            return
        scope["client_id"] = issued.client_id
        await app(scope, receive, send)

    async def _resource_metadata(self, request: Request) -> Response:
        path = "/" + request.path_params["path"]
        return JSONResponse(
            {"resource": self.base + path, "authorization_servers": [self.issuer], "scopes_supported": [SCOPE]}
        )

    async def _as_metadata(self, request: Request) -> Response:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "grant_types_supported": ["client_credentials"],
                "response_types_supported": ["code"],
                "token_endpoint_auth_methods_supported": [
                    "client_secret_basic",
                    "client_secret_post",
                    "private_key_jwt",
                ],
                "token_endpoint_auth_signing_alg_values_supported": ["ES256"],
                "code_challenge_methods_supported": ["S256"],
            }
        )

    async def _token(self, request: Request) -> Response:
        form = dict(await request.form())
        method, client_id = self._authenticate(request, form)
        self.requests.append(
            {
                "grant": form.get("grant_type"),
                "method": method,
                "client_id": client_id,
                "resource": form.get("resource"),
                "scope": form.get("scope"),
            }
        )
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        if form.get("grant_type") != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        resource = str(form.get("resource") or "")
        if not resource.startswith(self.base + "/"):
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = Issued(client_id, resource, time.time() + self.token_lifetime)
        return JSONResponse(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime, "scope": SCOPE},
            headers={"Cache-Control": "no-store"},
        )

    def _authenticate(self, request: Request, form: dict[str, Any]) -> tuple[str, str | None]:
        """The client authentication method the request used, and the client it proves (None: it proves none)."""
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")  # each form-encoded (RFC 6749)
            return "client_secret_basic", self._with_secret(unquote_plus(client_id), unquote_plus(secret))
        if "client_assertion" in form:
            return "private_key_jwt", self._with_assertion(str(form["client_assertion"]))
        return "client_secret_post", self._with_secret(str(form.get("client_id")), str(form.get("client_secret")))

    def _with_secret(self, client_id: str, secret: str) -> str | None:
        client = self.clients.get(client_id)
        ok = client is not None and client.secret is not None and secrets.compare_digest(client.secret, secret)
        return client_id if ok else None

    def _with_assertion(self, assertion: str) -> str | None:
        client_id = jwt.decode(assertion, options={"verify_signature": False}).get("iss", "")
        client = self.clients.get(client_id)
        if client is None or client.public_key_pem is None:
            return None
        try:
            claims = jwt.decode(assertion, client.public_key_pem, algorithms=["ES256"], audience=self.issuer)
        except jwt.InvalidTokenError:
            return None
        return client_id if claims.get("sub") == client_id else None

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        if params.name == "whoami":
            request = ctx.request
            who = request.scope.get("client_id", "?") if isinstance(request, Request) else "?"
            return types.CallToolResult(content=[types.TextContent(type="text", text=who)])
        text = str((params.arguments or {}).get("text", ""))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])


@dataclass(frozen=True)
class _Asgi:
    """An ASGI app Starlette's `Route` takes as one (a plain function would be taken for a request handler)."""

    call: Any

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.call(scope, receive, send)


async def _list_tools(
    ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    schema = {"type": "object", "properties": {"text": {"type": "string"}}}
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name="whoami", description="The client the access token was issued to.", input_schema={"type": "object"}
            ),
            types.Tool(name="echo", description="Echo the text back.", input_schema=schema),
        ]
    )
