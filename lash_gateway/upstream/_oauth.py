"""Access tokens for an upstream that requires OAuth (MCP authorization), as an `httpx2.Auth` on its HTTP client.

The SDK's providers (`mcp.client.auth`) do the protocol: the 401 and its `WWW-Authenticate`, Protected Resource
Metadata (RFC 9728), the authorization server's metadata (RFC 8414 / OpenID), the `resource` parameter (RFC 8707),
the token request with `client_secret_basic`, `client_secret_post` or `private_key_jwt`. This module adds what a
gateway needs around them:

- **A vault.** What a provider learns (tokens, the absolute expiry, the discovered metadata) is saved through a
  `TokenVault` (the state store keeps it encrypted) and restored when the server is attached again, so a restart
  does not fetch a new token while the old one is good. A record is bound to the server's URL, client id and grant:
  a server re-attached elsewhere under the same name never gets the old one's token.
- **No lock on the hot path.** A provider holds one lock from a request until its response's headers, so one slow
  call (any call answered as JSON) would hold up every other call to that server. While the token is good it is
  attached here without the lock; anything else (no token, an expired one, a 401 or 403) goes through the
  provider's flow, which sends the request again.
- **The operator's approval** (authorization code). The provider's redirect handler announces the authorization
  URL (the log, the status, and `Authorizations`, where the admin API waits for it) and returns; its callback
  handler waits, up to `Authorizations.timeout`, for the browser to come back to the gateway's `/oauth/callback`
  with that flow's `state`. Meanwhile other requests to the server fail at once, saying it needs authorization.
- **A status** (`authorization()`): authorized or not, for how long, or the URL waiting for approval; never a token.
  Of an authorization server's answer only its `error` code is shown or logged (`oauth_reason`), the SDK's own log
  line included (`_QuotedAnswers`): the rest may echo the request's form.

The SDK's providers keep what they learned on `context` and restore only the tokens; the expiry and the metadata are
restored here, in `_restore`, the one place that reaches into `OAuthContext`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import warnings
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final, Protocol
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, TokenStorage
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthMetadata,
    OAuthToken,
    ProtectedResourceMetadata,
)
from mcp.shared.exceptions import MCPDeprecationWarning
from pydantic import AnyUrl

from .._config import HttpServerConfig, OAuthConfig
from ._describe import oauth_reason

__all__ = [
    "CALLBACK_PATH",
    "CLIENT_METADATA_PATH",
    "CONNECTING",
    "Authorizations",
    "Connecting",
    "MemoryVault",
    "TokenVault",
    "UpstreamAuth",
]

log = logging.getLogger("lash_gateway.oauth")


class _QuotedAnswers(logging.Filter):
    """The SDK logs every failed flow with its traceback ("OAuth flow error"), and its message may quote the
    authorization server's whole answer, which may echo the form (a code, a verifier, a refresh token): such a
    record keeps the reason `oauth_reason` gives, and no traceback (the flow's failure is logged here too)."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, OAuthFlowError | ValueError):  # ValueError: a token response that failed validation
            record.msg, record.args = "%s: %s", (record.getMessage(), oauth_reason(exc))
            record.exc_info, record.exc_text = None, None
        return True


logging.getLogger("mcp.client.auth.oauth2").addFilter(_QuotedAnswers())  # once: this module is imported once


@dataclass(eq=False)
class Connecting:
    """The startup deadline of one connection being opened (`CONNECTING`); `scope` is None once it connected."""

    scope: anyio.CancelScope | None


CONNECTING: ContextVar[Connecting | None] = ContextVar("lash_gateway_oauth_connecting", default=None)
"""Set by an upstream around opening a connection: the requests of that connection (made in its tasks, which copy
this context) see whether it is still being opened, and which deadline an operator's approval must lift."""
_STEP_UP: ContextVar[bool] = ContextVar("lash_gateway_oauth_step_up", default=False)
"""Set in a request's task when the server answered it 403 `insufficient_scope` with a good token: the flow the
provider then starts is a step-up."""
CALLBACK_PATH: Final = "/oauth/callback"
"""Where the operator's browser comes back to the gateway (the redirect URI it registers)."""
CLIENT_METADATA_PATH: Final = "/oauth/client-metadata.json"
"""Where the gateway serves its Client ID Metadata Document (when its public address is https)."""
DEFAULT_APPROVAL_TIMEOUT: Final = 600.0
REFRESH_MARGIN: Final = 30.0
"""Seconds before its expiry a token is refreshed (when it can be): no request goes out with one about to lapse."""
_JWT_BEARER: Final = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
"""RFC 7523's `client_assertion_type` (the SDK's `PrivateKeyJWTOAuthProvider` sends it with its token requests)."""


@dataclass(eq=False)
class _Waiting:
    server: str
    url: str
    done: anyio.Event = field(default_factory=anyio.Event)
    result: AuthorizationCodeResult | None = None
    error: str | None = None


class Authorizations:
    """The authorization-code flows waiting for an operator, by their `state`, and where browsers reach the
    gateway. One per gateway; the pool's OAuth servers share it."""

    def __init__(self, timeout: float = DEFAULT_APPROVAL_TIMEOUT) -> None:
        self.base_url: str | None = None
        """The gateway's address as a browser reaches it (the one serving the gateway sets it)."""
        self.timeout = timeout
        self._waiting: dict[str, _Waiting] = {}
        self._announced: dict[str, anyio.Event] = {}

    @property
    def callback_url(self) -> str:
        """Raises:
        OAuthFlowError: no address is known (the gateway is not served over HTTP)."""
        if self.base_url is None:
            raise OAuthFlowError(
                "authorization needs an operator's browser to come back to the gateway, and it is not served over "
                "HTTP here; attach the server to a gateway started with `lash-gateway serve`"
            )
        return self.base_url.rstrip("/") + CALLBACK_PATH

    @property
    def client_metadata_url(self) -> str | None:
        """The gateway's own Client ID Metadata Document, when browsers reach it over https (the document's URL is
        the client id, and must be https)."""
        if self.base_url is None or not self.base_url.startswith("https://"):
            return None
        return self.base_url.rstrip("/") + CLIENT_METADATA_PATH

    def client_metadata(self) -> dict[str, Any] | None:
        """The Client ID Metadata Document the gateway serves (None: it has no https address)."""
        url = self.client_metadata_url
        if url is None:
            return None
        return {
            "client_id": url,
            "client_name": "lash gateway",
            "redirect_uris": [self.callback_url],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
        }

    def announced(self, server: str) -> anyio.Event:
        """Set when a flow of `server` next announces its authorization URL (for whoever started the attach)."""
        return self._announced.setdefault(server, anyio.Event())

    def withdraw(self, url: str) -> None:
        """End the flow waiting for an operator to approve `url` (its attach was withdrawn)."""
        waiting = self._waiting.get(_state_of(url))
        if waiting is not None and not waiting.done.is_set():
            waiting.error = "the attach was withdrawn"
            waiting.done.set()

    def url_of(self, server: str) -> str | None:
        """The authorization URL a flow of `server` waits on now."""
        return next((waiting.url for waiting in self._waiting.values() if waiting.server == server), None)

    def expect(self, server: str, url: str) -> _Waiting:
        """A flow of `server` announced `url`: its browser is awaited on the URL's `state`."""
        waiting = self._waiting[_state_of(url)] = _Waiting(server, url)
        if (event := self._announced.pop(server, None)) is not None:
            event.set()
        return waiting

    def forget(self, waiting: _Waiting) -> None:
        for state, held in list(self._waiting.items()):
            if held is waiting:
                del self._waiting[state]

    def complete(self, state: str, code: str | None, iss: str | None, error: str | None) -> str | None:
        """The browser came back: hand `code` (or the authorization server's `error`) to the flow waiting on
        `state`; returns its server's name, None if no flow waits on that state."""
        waiting = self._waiting.get(state)
        if waiting is None or waiting.done.is_set():
            return None
        if error is not None or not code:
            waiting.error = error or "the authorization server sent no code"
        else:
            waiting.result = AuthorizationCodeResult(code=code, state=state, iss=iss)
        waiting.done.set()
        return waiting.server


class TokenVault(Protocol):
    """Where a server's OAuth record is kept between attaches and restarts (a JSON-able dict)."""

    async def load_oauth(self, server: str) -> dict[str, Any] | None: ...

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None: ...


class MemoryVault:
    """A vault of this process only: tokens are fetched again after a restart."""

    def __init__(self) -> None:
        self._records: dict[str, dict[str, Any]] = {}

    async def load_oauth(self, server: str) -> dict[str, Any] | None:
        return self._records.get(server)

    async def save_oauth(self, server: str, record: Mapping[str, Any]) -> None:
        self._records[server] = dict(record)


class UpstreamAuth(httpx2.Auth):
    """The OAuth side of one attached server: its provider, its vault record and its status."""

    def __init__(
        self,
        server: str,
        config: HttpServerConfig,
        oauth: OAuthConfig,
        vault: TokenVault,
        authorizations: Authorizations,
        on_announce: Callable[[str], None] | None = None,
    ) -> None:
        """`on_announce` hears every authorization URL this server's flows announce (whoever attached it)."""
        self._server = server
        self._on_announce = on_announce
        self._oauth = oauth
        self._authorizations = authorizations
        self._storage = _VaultStorage(server, vault)
        self._binding_facts = [
            config.url,
            oauth.grant,
            oauth.client_id or "",
            oauth.issuer or "",
            " ".join(oauth.scopes),
        ]
        self._waiting: _Waiting | None = None
        self._url = config.url
        self._making = anyio.Lock()
        self._provider: OAuthClientProvider | None = None
        """Made on the first request: an authorization-code client registers the gateway's callback URL, known
        once the gateway is served."""
        self._assertion: Callable[[str], Awaitable[str]] | None = None
        """A `private_key_jwt` client's assertions (audience -> signed JWT), for requests the provider does not make."""
        self.last_error: str | None = None
        """Why the last token request failed (for the status; never a token or secret)."""
        self._startup_timeout = config.startup_timeout
        self._refreshing = 0
        """Requests whose flow refreshes the token now (the provider does one at a time; the rest wait for it)."""
        self.on_reauthorize: Callable[[], None] | None = None
        """Called when a call finds the authorization gone (set by the upstream: it reconnects)."""

    async def _provider_now(self) -> OAuthClientProvider:
        """The provider, made (and given the stored record) on the first request.

        Raises:
            OAuthFlowError: an authorization-code client, and the gateway's address is not known.
        """
        async with self._making:
            if self._provider is None:
                self._provider = await self._make_provider()
            return self._provider

    async def _make_provider(self) -> OAuthClientProvider:
        oauth = self._oauth
        facts = self._binding_facts
        if oauth.grant == "authorization_code":
            facts = [*facts, self._authorizations.callback_url]  # a client registered for another callback is not ours
        # What the stored record belongs to: a token is only ever sent to the server (URL) and client it was made for.
        self._storage.binding = hashlib.sha256("\n".join(facts).encode()).hexdigest()
        if oauth.grant == "authorization_code":
            callback = AnyUrl(self._authorizations.callback_url)
            metadata = OAuthClientMetadata(
                client_name="lash gateway",
                redirect_uris=[callback],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
                scope=" ".join(oauth.scopes) or None,
            )
            provider = OAuthClientProvider(
                self._url,
                metadata,
                self._storage,
                self._announce,
                self._approval,
                client_metadata_url=oauth.client_metadata_url or self._authorizations.client_metadata_url,
            )
            if oauth.client_id is not None:
                # A pre-registered client: the provider takes it from the storage, as a registration's result. The
                # config has the last word (a rotated secret is used at once); the tokens stay, being the client's.
                client = OAuthClientInformationFull(
                    client_id=oauth.client_id,
                    client_secret=oauth.client_secret.get_secret_value() if oauth.client_secret else None,
                    token_endpoint_auth_method=oauth.token_endpoint_auth_method
                    or ("client_secret_basic" if oauth.client_secret else "none"),
                    redirect_uris=[callback],
                    grant_types=["authorization_code", "refresh_token"],
                )
                if await self._storage.get_client_info() != client:
                    await self._storage.set_client_info(client)
        else:
            self._assertion = _assertion_provider(oauth)
            provider = _provider(self._url, oauth, self._storage, self._assertion)
        await self._restore(provider)
        return provider

    async def _announce(self, url: str) -> None:
        """The provider's redirect handler: announce the URL, and return (the approval is awaited in `_approval`).

        Only a connect, or a call whose token lacks a scope (step-up: the call waits for the wider approval), waits
        for an operator. A call's request that finds the authorization gone (its refresh failed) fails at once,
        saying so, and has the server reconnect, whose connect asks the operator."""
        connecting = CONNECTING.get()
        if (connecting is None or connecting.scope is None) and not _STEP_UP.get():
            if self.on_reauthorize is not None:
                self.on_reauthorize()
            raise OAuthFlowError(
                f"server {self._server} needs authorization again; an operator approves it (admin API)"
            )
        self._waiting = self._authorizations.expect(self._server, url)
        if self._on_announce is not None:
            self._on_announce(url)
        log.warning(
            "server %s needs authorization: open %s in a browser (waiting %g s)",
            self._server,
            url,
            self._authorizations.timeout,
            extra={"server": self._server},
        )

    async def _approval(self) -> AuthorizationCodeResult:
        """The provider's callback handler: the code the browser brought back to the gateway's callback."""
        waiting = self._waiting
        if waiting is None:
            raise OAuthFlowError("no authorization URL was announced")
        connecting = CONNECTING.get()
        held = connecting.scope if connecting is not None else None
        try:
            if held is not None:  # the connect's startup deadline does not count the operator's time
                held.deadline = math.inf
            with anyio.move_on_after(self._authorizations.timeout):
                await waiting.done.wait()
            if waiting.result is not None:
                return waiting.result
            if waiting.error is not None:
                raise OAuthFlowError(f"the authorization was refused: {waiting.error[:200]}")
            raise OAuthFlowError(f"nobody approved the authorization within {self._authorizations.timeout:g} s")
        finally:
            if held is not None and held.deadline == math.inf and connecting is not None and connecting.scope is held:
                held.deadline = anyio.current_time() + self._startup_timeout  # the rest of the connect
            self._authorizations.forget(waiting)
            self._waiting = None

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        _STEP_UP.set(False)  # this request's own (a task sends many)
        try:
            provider = await self._provider_now()
        except OAuthFlowError as exc:
            self.last_error = oauth_reason(exc)
            raise
        context = provider.context
        tokens = context.current_tokens
        expiry = context.token_expiry_time
        lifetime = tokens.expires_in if tokens is not None and tokens.expires_in else None
        margin = min(REFRESH_MARGIN, lifetime / 2) if lifetime else REFRESH_MARGIN  # a short-lived token: half its life
        if expiry is not None and expiry - margin < time.time() and context.can_refresh_token():
            context.token_expiry_time = time.time() - 1  # refreshed before it expires (the provider refreshes it now)
        if tokens is not None and context.is_token_valid():
            request.headers["Authorization"] = f"Bearer {tokens.access_token}"
            response = yield request
            if response.status_code not in (401, 403):
                return
            await response.aread()
            _STEP_UP.set(response.status_code == 403)
            if response.status_code == 401 and context.current_tokens is tokens and context.can_refresh_token():
                # Refused before its time: the provider would go straight to the operator on this 401; a stored
                # refresh token is tried first (the provider refreshes a token it takes for expired).
                context.token_expiry_time = time.time() - 1
        if request.method == "DELETE" and not context.is_token_valid():
            response = yield request  # ending a session never starts an authorization (nobody waits for it)
            return
        if self._waiting is not None:  # the provider's lock is held until an operator approves: say so at once
            raise OAuthFlowError(f"server {self._server} needs authorization; an operator approves it (admin API)")
        refreshing = not context.is_token_valid() and context.can_refresh_token()
        self._refreshing += refreshing
        flow = provider.async_auth_flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                outgoing = await flow.asend(response)
        except StopAsyncIteration:
            if context.current_tokens is not None:
                self.last_error = None
            await self._storage.remember(context)
        except OAuthFlowError as exc:
            self.last_error = oauth_reason(exc)
            log.warning(
                "server %s: no access token: %s",
                self._server,
                self.last_error,
                extra={"server": self._server, "reason": self.last_error},
            )
            await self._storage.remember(context)
            raise
        finally:
            self._refreshing -= refreshing
            self._storage.forget_unless_held(context)
            # Closed here, in this task: left to the garbage collector, a flow that held the provider's lock (a
            # cancelled request) would release it from another task, which anyio refuses: the lock stays held.
            await flow.aclose()

    async def _restore(self, provider: OAuthClientProvider) -> None:
        """Load the stored record into `provider`: tokens, their expiry, and where the token endpoint is (without
        the metadata a provider would refresh against the MCP server's own origin, sending it the credentials)."""
        context = provider.context
        record = await self._storage.record()
        if record is None:
            return
        try:
            if (client := await self._storage.get_client_info()) is not None:
                # The provider loads it only in its first flow: a 401 before that is refreshed with it.
                context.client_info = client
            context.current_tokens = OAuthToken.model_validate(record["tokens"]) if record.get("tokens") else None
            context.token_expiry_time = record.get("expires_at")
            if record.get("as_metadata") and record.get("prm"):
                context.oauth_metadata = OAuthMetadata.model_validate(record["as_metadata"])
                context.protected_resource_metadata = ProtectedResourceMetadata.model_validate(record["prm"])
                context.auth_server_url = record.get("auth_server_url")
        except (ValueError, KeyError) as exc:
            log.warning(
                "server %s: the stored OAuth record cannot be read; a new token is fetched: %s",
                self._server,
                exc,
                extra={"server": self._server},
            )
            context.clear_tokens()

    async def revoke(self, http: httpx2.AsyncClient) -> None:
        """Revoke the server's tokens at its authorization server (RFC 7009), where it offers a revocation endpoint:
        the refresh token first, the access token too; the record forgets them either way. Best effort, for a
        server already detached: a failure is logged, never raised."""
        provider = self._provider
        if provider is None:
            return
        context = provider.context
        tokens = context.current_tokens
        metadata = context.oauth_metadata
        endpoint = metadata.revocation_endpoint if metadata is not None else None
        if tokens is not None and metadata is not None and endpoint is not None:
            for token, hint in ((tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")):
                if not token:
                    continue
                form = {"token": token, "token_type_hint": hint}
                if context.client_info is not None:
                    form["client_id"] = context.client_info.client_id
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                try:
                    if self._assertion is not None:  # authenticated as its token requests are (RFC 7523 §2.2)
                        form["client_assertion"] = await self._assertion(str(metadata.issuer))
                        form["client_assertion_type"] = _JWT_BEARER
                    else:
                        form, headers = context.prepare_token_auth(form, headers)
                    response = await http.post(str(endpoint), data=form, headers=headers)
                    refused = f"HTTP {response.status_code}" if response.status_code != 200 else None
                except Exception as exc:  # best effort: the server is detached whatever happens here
                    refused = type(exc).__name__
                if refused is not None:
                    log.warning(
                        "server %s: its %s was not revoked (%s)",
                        self._server,
                        hint,
                        refused,
                        extra={"server": self._server, "reason": refused},
                    )
        context.clear_tokens()
        self._storage.forget_unless_held(context)

    def authorization(self) -> dict[str, Any]:
        """The status of this server's authorization: `state` (`authorized`, `refreshing`, `needs_authorization`
        with the URL to approve, `unauthorized`, `failed` with why) and, when it is known, `expires_in` (seconds)."""
        if self._waiting is not None:
            return {"state": "needs_authorization", "authorization_url": self._waiting.url}
        if self._provider is None:
            return {"state": "failed", "error": self.last_error} if self.last_error else {"state": "unauthorized"}
        if self._refreshing:
            return {"state": "refreshing"}
        context = self._provider.context
        tokens = context.current_tokens
        if tokens is not None and context.is_token_valid():
            expiry = context.token_expiry_time
            shown: dict[str, Any] = {"state": "authorized"}
            if expiry is not None:
                shown["expires_in"] = max(0, round(expiry - time.time()))
            return shown
        if self.last_error is not None:
            return {"state": "failed", "error": self.last_error}
        return {"state": "unauthorized"}


class _VaultStorage(TokenStorage):
    """The SDK's `TokenStorage` over one vault record (the tokens, the client, the expiry, the discovered metadata),
    written through: a rotated refresh token or a registration is kept the moment the provider has it."""

    def __init__(self, server: str, vault: TokenVault) -> None:
        self._server, self._vault = server, vault
        self.binding = ""
        """What the record belongs to (set before the first read: see `UpstreamAuth._make_provider`)."""
        self._record: dict[str, Any] | None = None

    async def record(self) -> dict[str, Any] | None:
        if self._record is None:
            stored = await self._vault.load_oauth(self._server)
            self._record = stored if stored is not None and stored.get("binding") == self.binding else {}
        return self._record or None

    async def get_tokens(self) -> OAuthToken | None:
        record = await self.record()
        return OAuthToken.model_validate(record["tokens"]) if record and record.get("tokens") else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self.record()  # loaded first: a token is kept with what the record already holds
        assert self._record is not None
        self._record["tokens"] = tokens.model_dump(mode="json", exclude_none=True)
        self._record["expires_at"] = time.time() + tokens.expires_in if tokens.expires_in is not None else None
        await self._save()

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        record = await self.record()
        return OAuthClientInformationFull.model_validate(record["client"]) if record and record.get("client") else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self.record()
        assert self._record is not None
        self._record["client"] = client_info.model_dump(mode="json", exclude_none=True)
        await self._save()

    async def remember(self, context: Any) -> None:
        """Keep what discovery found (so a refresh after a restart goes to the right token endpoint)."""
        await self.record()
        assert self._record is not None
        record = self._record
        if context.oauth_metadata is not None and context.protected_resource_metadata is not None:
            found = {
                "as_metadata": context.oauth_metadata.model_dump(mode="json", exclude_none=True),
                "prm": context.protected_resource_metadata.model_dump(mode="json", exclude_none=True),
                "auth_server_url": context.auth_server_url,
            }
            if any(record.get(key) != value for key, value in found.items()):
                record.update(found)
                await self._save()

    def forget_unless_held(self, context: Any) -> None:
        """The provider dropped its tokens (a failed refresh): so does the record, in this process at once (a
        cancelled re-authorization must not bring the dead token back), and in the vault at the next save."""
        if context.current_tokens is None and self._record:
            self._record.pop("tokens", None)

    async def _save(self) -> None:
        assert self._record is not None
        self._record["binding"] = self.binding
        await self._vault.save_oauth(self._server, self._record)


def _assertion_provider(oauth: OAuthConfig) -> Callable[[str], Awaitable[str]] | None:
    """A `private_key_jwt` client's assertion provider (each call signs a new JWT for the audience); None for others."""
    if oauth.auth_method != "private_key_jwt":
        return None
    assert oauth.private_key_pem is not None
    client_id = oauth.client_id or ""
    signed = SignedJWTParameters(
        issuer=client_id,
        subject=client_id,
        signing_key=oauth.private_key_pem.get_secret_value(),
        signing_algorithm=oauth.signing_algorithm,
    )
    return signed.create_assertion_provider()


def _provider(
    url: str, oauth: OAuthConfig, storage: TokenStorage, assertion: Callable[[str], Awaitable[str]] | None
) -> OAuthClientProvider:
    scope = " ".join(oauth.scopes) or None
    client_id = oauth.client_id or ""
    with warnings.catch_warnings():
        # Without `issuer` the SDK warns that the MCP server decides where the credentials go: the config says so.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        method = oauth.auth_method
        if method == "private_key_jwt":
            assert assertion is not None
            return PrivateKeyJWTOAuthProvider(url, storage, client_id, assertion, scope=scope, issuer=oauth.issuer)
        assert oauth.client_secret is not None
        return ClientCredentialsOAuthProvider(
            url,
            storage,
            client_id,
            oauth.client_secret.get_secret_value(),
            token_endpoint_auth_method=method,
            scope=scope,
            issuer=oauth.issuer,
        )


def _state_of(url: str) -> str:
    """The `state` an authorization URL carries."""
    return parse_qs(urlsplit(url).query).get("state", [""])[0]
