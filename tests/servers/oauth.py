"""An OAuth-protected MCP server and its authorization server, in one ASGI app, for tests of upstream OAuth.

Serve `ProtectedServer().app` (the tests use `serve_app`) and set `base` to its URL. It plays both parts of the MCP
authorization spec on one origin:

- the resource server: `/mcp` (streamable HTTP) and `/sse` + `/messages/` (legacy SSE) answer 401 with
  `WWW-Authenticate: Bearer resource_metadata=..., scope="mcp:read"` unless the request carries an access token
  issued for that endpoint (the token's `resource`, RFC 8707) and not revoked; Protected Resource Metadata (RFC
  9728) at `/.well-known/oauth-protected-resource/<path>`. Tools: `whoami` (the client id the token was issued
  to) and `echo`.
- the authorization server, issuer `<base>/as`: metadata (RFC 8414) at `/.well-known/oauth-authorization-server/as`;
  `/as/register` (Dynamic Client Registration); `/as/authorize`, which approves at once (a 302 back to the client's
  `redirect_uri` with `code`, `state` and `iss`; with `deny` set, `error=access_denied`), PKCE S256 required;
  `/as/token` with the `authorization_code` (PKCE checked), `refresh_token` (rotated) and `client_credentials`
  grants, and `client_secret_basic`, `client_secret_post`, `private_key_jwt` (a JWT signed by the client's
  registered public key, audience the issuer) or no authentication (public clients); `/as/revoke` (RFC 7009), where
  the client authenticates as at `/as/token`.

Everything the authorization server is asked is in `requests` (grant, client authentication method, resource,
scope), `registrations` and `authorizations`, so tests can check what the gateway sent; `revoke()` makes every
issued access token invalid at once; `reported_lifetime` is the `expires_in` it reports (short: the client takes
its token for expired soon, and refreshes it, while the resource server still takes it); with `echo_token_form` the
token endpoint refuses every request with a page that quotes the form it was sent, as some servers and proxies do.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import Any
from urllib.parse import unquote_plus, urlencode

import anyio
import jwt
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE = "mcp:read"
ISSUER_PATH = "/as"
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass
class Client:
    secret: str | None = None
    public_key_pem: str | None = None
    redirect_uris: list[str] = field(default_factory=list)


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
    registrations: list[dict[str, Any]] = field(default_factory=list)
    revoked: list[dict[str, Any]] = field(default_factory=list)
    """What the revocation endpoint was asked: the token's hint, client authentication, whether the client was known."""
    authorizations: list[dict[str, Any]] = field(default_factory=list)
    token_lifetime: int = 3600
    reported_lifetime: int = 3600
    deny: bool = False
    echo_token_form: bool = False
    hold_refresh: anyio.Event | None = None
    """When set, a refresh is answered only once it is set (so a test can see the client refreshing)."""
    handed_out: list[str] = field(default_factory=list)
    """Every secret it gave a client (access and refresh tokens, codes, registered client secrets): none may appear
    in what the gateway logs or shows."""
    _tokens: dict[str, Issued] = field(default_factory=dict)
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    _refresh: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Refresh token -> (client id, resource)."""

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
                Route(f"{ISSUER_PATH}/register", self._register, methods=["POST"]),
                Route(f"{ISSUER_PATH}/authorize", self._authorize),
                Route(f"{ISSUER_PATH}/revoke", self._revoke, methods=["POST"]),
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
                "registration_endpoint": f"{self.issuer}/register",
                "revocation_endpoint": f"{self.issuer}/revoke",
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "scopes_supported": [SCOPE, "offline_access"],
                "authorization_response_iss_parameter_supported": True,
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
        if self.echo_token_form:
            return Response(f"Bad Request: {(await request.body()).decode()}", status_code=400)
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
        grant = form.get("grant_type")
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        resource = str(form.get("resource") or "")
        refresh = None
        if grant == "authorization_code":
            code = self._codes.pop(str(form.get("code")), None)
            verifier = str(form.get("code_verifier", ""))
            challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if (
                code is None
                or code["client_id"] != client_id
                or code["redirect_uri"] != form.get("redirect_uri")
                or code["challenge"] != challenge
                or code["resource"] != resource
            ):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            refresh = secrets.token_urlsafe(24)
        elif grant == "refresh_token":
            if self.hold_refresh is not None:
                await self.hold_refresh.wait()
            held = self._refresh.pop(str(form.get("refresh_token")), None)
            if held is None or held[0] != client_id:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            resource = resource or held[1]
            refresh = secrets.token_urlsafe(24)  # rotated: the old one is gone
        elif grant != "client_credentials":
            return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
        if not resource.startswith(self.base + "/"):
            return JSONResponse({"error": "invalid_target"}, status_code=400)
        token = secrets.token_urlsafe(24)
        self._tokens[token] = Issued(client_id, resource, time.time() + self.token_lifetime)
        self.handed_out.append(token)
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.reported_lifetime,
            "scope": SCOPE,
        }
        if refresh is not None:
            self._refresh[refresh] = (client_id, resource)
            self.handed_out.append(refresh)
            body["refresh_token"] = refresh
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def _revoke(self, request: Request) -> Response:
        """RFC 7009: the token named (access or refresh) is gone, for an authenticated client."""
        form = dict(await request.form())
        method, client_id = self._authenticate(request, form)
        token = str(form.get("token", ""))
        self.revoked.append({"hint": form.get("token_type_hint"), "method": method, "known": client_id is not None})
        if client_id is None:
            return JSONResponse({"error": "invalid_client"}, status_code=401)
        self._tokens.pop(token, None)
        self._refresh.pop(token, None)
        return Response(status_code=200)

    async def _register(self, request: Request) -> Response:
        metadata = await request.json()
        self.registrations.append(metadata)
        client_id, secret = "dcr-" + secrets.token_hex(4), secrets.token_urlsafe(16)
        self.handed_out.append(secret)
        self.clients[client_id] = Client(secret=secret, redirect_uris=list(metadata.get("redirect_uris", [])))
        return JSONResponse(
            {
                **metadata,
                "client_id": client_id,
                "client_secret": secret,
                "token_endpoint_auth_method": "client_secret_basic",
            },
            status_code=201,
        )

    async def _authorize(self, request: Request) -> Response:
        query = dict(request.query_params)
        self.authorizations.append(query)
        client = self.clients.get(query.get("client_id", ""))
        redirect = query.get("redirect_uri", "")
        if client is None or (client.redirect_uris and redirect not in client.redirect_uris):
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return JSONResponse(
                {"error": "invalid_request", "error_description": "PKCE S256 required"}, status_code=400
            )
        if self.deny:
            return RedirectResponse(f"{redirect}?{urlencode({'error': 'access_denied', 'state': query.get('state')})}")
        code = secrets.token_urlsafe(16)
        self.handed_out.append(code)
        self._codes[code] = {
            "client_id": query["client_id"],
            "redirect_uri": redirect,
            "challenge": query["code_challenge"],
            "resource": query.get("resource", ""),
        }
        params = {"code": code, "state": query.get("state", ""), "iss": self.issuer}
        return RedirectResponse(f"{redirect}?{urlencode(params)}", status_code=302)

    def _authenticate(self, request: Request, form: dict[str, Any]) -> tuple[str, str | None]:
        """The client authentication method the request used, and the client it proves (None: it proves none)."""
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")  # each form-encoded (RFC 6749)
            return "client_secret_basic", self._with_secret(unquote_plus(client_id), unquote_plus(secret))
        if "client_assertion" in form:
            typed = form.get("client_assertion_type") == JWT_BEARER
            return "private_key_jwt", self._with_assertion(str(form["client_assertion"])) if typed else None
        if "client_secret" not in form:  # a public client
            client = self.clients.get(str(form.get("client_id")))
            public = client is not None and client.secret is None and client.public_key_pem is None
            return "none", str(form.get("client_id")) if public else None
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
