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
- **A status** (`authorization()`): authorized or not, and for how long; never a token.

The SDK's providers keep what they learned on `context` and restore only the tokens; the expiry and the metadata are
restored here, in `_restore`, the one place that reaches into `OAuthContext`.
"""

from __future__ import annotations

import hashlib
import logging
import time
import warnings
from collections.abc import AsyncGenerator, Mapping
from typing import Any, Protocol

import httpx2
from mcp.client.auth import OAuthClientProvider, OAuthFlowError, TokenStorage
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.shared.auth import OAuthClientInformationFull, OAuthMetadata, OAuthToken, ProtectedResourceMetadata
from mcp.shared.exceptions import MCPDeprecationWarning

from .._config import HttpServerConfig, OAuthConfig

__all__ = ["MemoryVault", "TokenVault", "UpstreamAuth"]

log = logging.getLogger("lash_gateway.oauth")


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

    def __init__(self, server: str, config: HttpServerConfig, oauth: OAuthConfig, vault: TokenVault) -> None:
        self._server = server
        self._storage = _VaultStorage(server, _binding(config, oauth), vault)
        self._provider = _provider(config.url, oauth, self._storage)
        self._restored = False
        self.last_error: str | None = None
        """Why the last token request failed (for the status; never a token or secret)."""

    async def async_auth_flow(self, request: httpx2.Request) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        if not self._restored:
            await self._restore()
        context = self._provider.context
        tokens = context.current_tokens
        if tokens is not None and context.is_token_valid():
            request.headers["Authorization"] = f"Bearer {tokens.access_token}"
            response = yield request
            if response.status_code not in (401, 403):
                return
            await response.aread()
        flow = self._provider.async_auth_flow(request)
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
            self.last_error = str(exc)
            log.warning(
                "server %s: no access token: %s", self._server, exc, extra={"server": self._server, "reason": str(exc)}
            )
            await self._storage.remember(context)
            raise

    async def _restore(self) -> None:
        """Load the stored record into the provider: tokens, their expiry, and where the token endpoint is (without
        the metadata a provider would refresh against the MCP server's own origin, sending it the credentials)."""
        self._restored = True
        context = self._provider.context
        record = await self._storage.record()
        if record is None:
            return
        try:
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

    def authorization(self) -> dict[str, Any]:
        """The status of this server's authorization: `state` (`authorized`, `unauthorized`, `failed`) and, when it
        is known, `expires_in` (seconds)."""
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
    """The SDK's `TokenStorage` over one vault record (the tokens, the client, the expiry, the discovered metadata)."""

    def __init__(self, server: str, binding: str, vault: TokenVault) -> None:
        self._server, self._binding, self._vault = server, binding, vault
        self._record: dict[str, Any] | None = None
        self._saved: dict[str, Any] | None = None

    async def record(self) -> dict[str, Any] | None:
        if self._record is None:
            stored = await self._vault.load_oauth(self._server)
            self._record = stored if stored is not None and stored.get("binding") == self._binding else {}
            self._saved = dict(self._record)
        return self._record or None

    async def get_tokens(self) -> OAuthToken | None:
        record = await self.record()
        return OAuthToken.model_validate(record["tokens"]) if record and record.get("tokens") else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        await self.record()  # loaded first: a token is kept with what the record already holds
        assert self._record is not None
        self._record["tokens"] = tokens.model_dump(mode="json", exclude_none=True)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        record = await self.record()
        return OAuthClientInformationFull.model_validate(record["client"]) if record and record.get("client") else None

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        await self.record()
        assert self._record is not None
        self._record["client"] = client_info.model_dump(mode="json", exclude_none=True)

    async def remember(self, context: Any) -> None:
        """Save the record with what `context` holds now, if that changed (once per token, not per request)."""
        await self.record()
        assert self._record is not None
        record = self._record
        record["binding"] = self._binding
        record["expires_at"] = context.token_expiry_time
        if context.oauth_metadata is not None and context.protected_resource_metadata is not None:
            record["as_metadata"] = context.oauth_metadata.model_dump(mode="json", exclude_none=True)
            record["prm"] = context.protected_resource_metadata.model_dump(mode="json", exclude_none=True)
            record["auth_server_url"] = context.auth_server_url
        if context.current_tokens is None:
            record.pop("tokens", None)
        if record != self._saved:
            await self._vault.save_oauth(self._server, record)
            self._saved = dict(record)


def _binding(config: HttpServerConfig, oauth: OAuthConfig) -> str:
    """What a stored record belongs to: a token is only ever sent to the server (URL) and client it was made for."""
    facts = "\n".join([config.url, oauth.grant, oauth.client_id or "", oauth.issuer or "", " ".join(oauth.scopes)])
    return hashlib.sha256(facts.encode()).hexdigest()


def _provider(url: str, oauth: OAuthConfig, storage: TokenStorage) -> OAuthClientProvider:
    scope = " ".join(oauth.scopes) or None
    client_id = oauth.client_id or ""
    with warnings.catch_warnings():
        # Without `issuer` the SDK warns that the MCP server decides where the credentials go: the config says so.
        warnings.simplefilter("ignore", MCPDeprecationWarning)
        if oauth.auth_method == "private_key_jwt":
            assert oauth.private_key_pem is not None
            signed = SignedJWTParameters(
                issuer=client_id,
                subject=client_id,
                signing_key=oauth.private_key_pem.get_secret_value(),
                signing_algorithm=oauth.signing_algorithm,
            )
            return PrivateKeyJWTOAuthProvider(
                url, storage, client_id, signed.create_assertion_provider(), scope=scope, issuer=oauth.issuer
            )
        assert oauth.client_secret is not None
        return ClientCredentialsOAuthProvider(
            url,
            storage,
            client_id,
            oauth.client_secret.get_secret_value(),
            token_endpoint_auth_method=oauth.auth_method,
            scope=scope,
            issuer=oauth.issuer,
        )
