"""Upstreams that require OAuth (client credentials): the gateway finds the authorization server from the 401,
gets a token with the configured client authentication, keeps it encrypted in its store across a restart, gets a new
one when the server stops taking it, and never shows a token or secret.

The upstream and its authorization server are `tests.servers.oauth`, served on loopback in this process.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from lash_gateway import GatewayConfig, HttpServerConfig, McpServerConfig, StateStore
from lash_gateway.admin._state import oauth_key
from lash_gateway.upstream._plugin import status_dict
from tests.integration._gateway import (
    InProcessGateway,
    connect,
    metrics,
    poll,
    run_gateway_in_process,
    serve_app,
    text_of,
)
from tests.servers.oauth import Client, ProtectedServer

pytestmark = pytest.mark.anyio

WAIT: Final = 10.0
CLIENT_ID: Final = "gateway-client"
SECRET: Final = "s3cret-of-the-client/:&"
ADMIN_TOKEN: Final = "admin-token-of-this-test"


@asynccontextmanager
async def protected(**clients: Client) -> AsyncIterator[ProtectedServer]:
    server = ProtectedServer(clients=dict(clients))
    async with serve_app(server.app) as base_url:
        server.base = base_url
        yield server


@asynccontextmanager
async def gateway(
    tmp_path: Path, server: ProtectedServer, oauth: Mapping[str, Any], path: str = "/mcp"
) -> AsyncIterator[InProcessGateway]:
    entry = {"url": server.base + path, "oauth": {"issuer": server.issuer, **oauth}}
    if path == "/sse":
        entry["transport"] = "sse"
    config = GatewayConfig(servers={"prot": McpServerConfig.parse(entry, name="prot")})
    store = StateStore(tmp_path / "state.sqlite3", oauth_key(tmp_path))
    async with run_gateway_in_process(config, store=store) as served:
        pool = served.gateway.factory.pool

        async def settled() -> bool | None:
            if not pool.server_statuses():
                return None  # not attached yet
            status = pool.status("prot")
            return True if status.connected or (status.authorization or {}).get("state") == "failed" else None

        await poll(settled, WAIT)
        yield served


def private_key() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("client_secret_basic", "/mcp"),
        ("client_secret_post", "/mcp"),
        ("private_key_jwt", "/mcp"),
        ("client_secret_basic", "/sse"),
    ],
)
async def test_client_credentials_reach_a_protected_server(tmp_path: Path, method: str, path: str) -> None:
    pem, public = private_key()
    client = Client(public_key_pem=public) if method == "private_key_jwt" else Client(secret=SECRET)
    oauth: dict[str, Any] = {
        "grant": "client_credentials",
        "client_id": CLIENT_ID,
        "token_endpoint_auth_method": method,
    }
    oauth.update({"private_key_pem": pem} if method == "private_key_jwt" else {"client_secret": SECRET})
    async with protected(**{CLIENT_ID: client}) as server, gateway(tmp_path, server, oauth, path) as served:
        status = served.gateway.factory.pool.status("prot")
        assert status.connected, status
        assert status.authorization is not None and status.authorization["state"] == "authorized"
        assert 3500 <= status.authorization["expires_in"] <= 3600
        async with connect(served.base_url, "http-legacy") as handle:
            with anyio.fail_after(WAIT):
                assert text_of(await handle.client.call_tool("prot__whoami", {})) == CLIENT_ID
        (asked,) = server.requests
        assert asked == {
            "grant": "client_credentials",
            "method": method,
            "client_id": CLIENT_ID,
            "resource": server.base + path,
            "scope": "mcp:read",
        }
        shown = str(status_dict(status))
        assert SECRET not in shown and "BEGIN PRIVATE KEY" not in shown


async def test_a_token_outlives_a_restart_encrypted_and_a_refused_one_is_replaced(tmp_path: Path) -> None:
    oauth = {"grant": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
    async with protected(**{CLIENT_ID: Client(secret=SECRET)}) as server:
        async with gateway(tmp_path, server, oauth):
            assert len(server.requests) == 1
        token = next(iter(server._tokens))
        assert token.encode() not in (tmp_path / "state.sqlite3").read_bytes()  # encrypted at rest

        async with gateway(tmp_path, server, oauth) as served:
            assert len(server.requests) == 1  # the stored token was good: no new one was asked for
            server.revoke()
            async with connect(served.base_url, "http-auto") as handle:
                with anyio.fail_after(WAIT):
                    echoed = await handle.client.call_tool("prot__echo", {"text": "again"})
            assert text_of(echoed) == "again"  # the 401 got a new token, and the call went through
            assert len(server.requests) == 2


async def test_wrong_credentials_leave_the_server_unauthorized_and_say_why_without_the_secret(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with protected(**{CLIENT_ID: Client(secret="another")}) as server:
        oauth = {"grant": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
        async with gateway(tmp_path, server, oauth) as served:
            status = served.gateway.factory.pool.status("prot")
            assert not status.connected
            assert status.authorization is not None and status.authorization["state"] == "failed"
            assert SECRET not in str(status_dict(status)) and SECRET not in caplog.text


async def test_the_admin_api_attaches_an_oauth_server_and_shows_no_secret(tmp_path: Path) -> None:
    async with protected(**{CLIENT_ID: Client(secret=SECRET)}) as server:
        store = StateStore(tmp_path / "state.sqlite3", oauth_key(tmp_path))
        async with (
            run_gateway_in_process(GatewayConfig(), store=store, admin_token=ADMIN_TOKEN) as served,
            httpx2.AsyncClient(base_url=served.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http,
        ):
            oauth = {"grant": "client_credentials", "client_id": CLIENT_ID, "client_secret": SECRET}
            body = {"url": server.base + "/mcp", "oauth": oauth}
            attached = await http.put("/admin/servers/prot", json=body, timeout=WAIT)
            assert attached.status_code == 201, attached.text
            shown = (await http.get("/admin/servers/prot")).json()
            assert shown["authorization"]["state"] == "authorized" and shown["tool_count"] == 2
            assert (
                shown["config"]["oauth"]["client_secret"] == "***"
                and shown["config"]["oauth"]["client_id"] == CLIENT_ID
            )
            token = next(iter(server._tokens))
            assert SECRET not in str(shown) and token not in str(shown)
            bad = {"grant": "client_credentials", "client_id": CLIENT_ID}
            refused = await http.put("/admin/servers/bad", json={**body, "oauth": bad})
            assert refused.status_code == 422 and "needs client_secret" in refused.text
        assert SECRET.encode() not in (tmp_path / "state.sqlite3").read_bytes()  # the stored attach is encrypted
        (restored,) = await StateStore(tmp_path / "state.sqlite3", oauth_key(tmp_path)).load()
        assert isinstance(restored.config, HttpServerConfig) and restored.config.oauth is not None


# --- authorization code: an operator approves in a browser -------------------------------------------------------


@asynccontextmanager
async def admin_gateway(tmp_path: Path, port: int = 0) -> AsyncIterator[tuple[InProcessGateway, httpx2.AsyncClient]]:
    """A gateway with its admin API and a store in `tmp_path` (the same one across restarts), on `port` (a restart
    keeps its address: the client it registered names its callback)."""
    store = StateStore(tmp_path / "state.sqlite3", oauth_key(tmp_path))
    async with (
        run_gateway_in_process(GatewayConfig(), store=store, admin_token=ADMIN_TOKEN, port=port) as served,
        httpx2.AsyncClient(
            base_url=served.base_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=WAIT
        ) as http,
    ):
        yield served, http


async def approve(url: str) -> httpx2.Response:
    """The operator's browser: open the authorization URL, and follow the authorization server back to the gateway.
    Its own HTTP logging is off meanwhile: the code in its redirect is the browser's to see, not a gateway leak."""
    quiet = [logging.getLogger(name) for name in ("httpx2", "httpcore2")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.WARNING)
    try:
        async with httpx2.AsyncClient(follow_redirects=True, timeout=WAIT) as browser:
            return await browser.get(url)
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


async def connected(http: httpx2.AsyncClient, name: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        reply = await http.get(f"/admin/servers/{name}")
        return reply.json() if reply.status_code == 200 and reply.json()["connected"] else None

    return await poll(probe, WAIT)


async def test_an_operator_approves_in_a_browser_and_the_authorization_outlives_a_restart(tmp_path: Path) -> None:
    async with protected() as server:
        async with admin_gateway(tmp_path) as (served, http):
            attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
            assert attached.status_code == 202, attached.text
            url = attached.json()["authorization_url"]
            assert url.startswith(server.issuer + "/authorize?")

            back = await approve(url)
            assert back.status_code == 200 and "web is authorized" in back.text
            status = await connected(http, "web")
            assert status["authorization"]["state"] == "authorized" and status["tool_count"] == 2
            async with connect(served.base_url, "http-legacy") as handle:
                with anyio.fail_after(WAIT):
                    assert text_of(await handle.client.call_tool("web__whoami", {})).startswith("dcr-")

            again = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
            assert again.status_code == 200, again.text  # its token is good: no operator, no 202
            (registration,) = server.registrations
            callback = served.base_url + "/oauth/callback"
            assert registration["redirect_uris"] == [callback]
            (asked,) = server.authorizations
            assert asked["code_challenge_method"] == "S256" and asked["resource"] == server.base + "/mcp"
            assert asked["redirect_uri"] == callback and "offline_access" in asked["scope"].split()
            (token,) = server.requests
            assert (token["grant"], token["resource"]) == ("authorization_code", server.base + "/mcp")
            assert not [secret for secret in server._tokens if secret in str(status)]

        port = int(served.base_url.rsplit(":", 1)[1])
        async with admin_gateway(tmp_path, port) as (served, http):  # the attach and its tokens come back
            status = await connected(http, "web")
            assert status["authorization"]["state"] == "authorized"
            assert len(server.authorizations) == 1 and len(server.requests) == 1  # no new approval, no new token


async def test_a_token_is_refreshed_before_it_expires_without_the_operator(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        server.reported_lifetime = 2  # refreshed in the second half of its life (a short-lived token)
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
        await approve(attached.json()["authorization_url"])
        await connected(http, "web")
        async with connect(served.base_url, "http-auto") as handle:
            server.hold_refresh = anyio.Event()  # the status says so while a refresh is under way
            await anyio.sleep(1.2)  # into the token's second second: a deadline, not a wait for an event
            async with anyio.create_task_group() as tg:
                tg.start_soon(handle.client.call_tool, "web__echo", {"text": "held"})

                async def refreshing() -> bool | None:
                    shown = (await http.get("/admin/servers/web")).json()["authorization"]
                    return True if shown["state"] == "refreshing" else None

                await poll(refreshing, WAIT)
                server.hold_refresh.set()
            with anyio.fail_after(WAIT):
                assert text_of(await handle.client.call_tool("web__echo", {"text": "still"})) == "still"
        grants = [asked["grant"] for asked in server.requests]
        assert grants[0] == "authorization_code" and "refresh_token" in grants[1:]
        assert all(asked["resource"] == server.base + "/mcp" for asked in server.requests)
        assert len(server.authorizations) == 1


async def test_detaching_a_server_revokes_its_tokens(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
        await approve(attached.json()["authorization_url"])
        await connected(http, "web")
        assert server._tokens and server._refresh
        assert (await http.delete("/admin/servers/web")).status_code == 200
        assert [(asked["hint"], asked["known"]) for asked in server.revoked] == [
            ("refresh_token", True),
            ("access_token", True),
        ]
        assert not server._tokens and not server._refresh  # nothing the gateway held still works


async def test_detaching_a_private_key_jwt_server_revokes_its_token_with_a_client_assertion(tmp_path: Path) -> None:
    """Regression: the revocation request of a `private_key_jwt` client carried no client assertion, the
    authorization server refused it, and the token stayed good after the detach."""
    pem, public = private_key()
    async with protected(**{CLIENT_ID: Client(public_key_pem=public)}) as server, admin_gateway(tmp_path) as (_, http):
        oauth = {"grant": "client_credentials", "client_id": CLIENT_ID, "private_key_pem": pem, "issuer": server.issuer}
        attached = await http.put("/admin/servers/jwt", json={"url": server.base + "/mcp", "oauth": oauth})
        assert attached.status_code == 201, attached.text
        assert server._tokens
        assert (await http.delete("/admin/servers/jwt")).status_code == 200
        assert [(asked["hint"], asked["method"], asked["known"]) for asked in server.revoked] == [
            ("access_token", "private_key_jwt", True)
        ]
        assert not server._tokens


async def test_a_pre_registered_client_is_used_as_configured(tmp_path: Path) -> None:
    client = Client(secret=SECRET)
    async with protected(**{CLIENT_ID: client}) as server, admin_gateway(tmp_path) as (served, http):
        client.redirect_uris = [served.base_url + "/oauth/callback"]
        oauth = {"client_id": CLIENT_ID, "client_secret": SECRET}
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": oauth})
        await approve(attached.json()["authorization_url"])
        status = await connected(http, "web")
        assert server.registrations == []  # no registration: the configured client
        assert server.requests[0]["method"] == "client_secret_basic" and server.requests[0]["client_id"] == CLIENT_ID
        assert SECRET not in str(status)


@pytest.mark.parametrize("grant", ["authorization_code", "client_credentials"])
async def test_a_rotated_client_secret_is_used_at_once_and_the_tokens_are_kept(tmp_path: Path, grant: str) -> None:
    """Regression: a pre-registered client's first secret stayed in the stored record, and every refresh (and code
    exchange) after a rotation was refused as `invalid_client` until the server was deleted and attached again."""
    client = Client(secret=SECRET)
    async with protected(**{CLIENT_ID: client}) as server, admin_gateway(tmp_path) as (served, http):
        client.redirect_uris = [served.base_url + "/oauth/callback"]
        oauth = {"grant": grant, "client_id": CLIENT_ID, "client_secret": SECRET}
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": oauth})
        if grant == "authorization_code":
            await approve(attached.json()["authorization_url"])
        await connected(http, "web")

        client.secret = "the-rotated-secret/:&"  # at the authorization server, then in the gateway's config
        oauth["client_secret"] = client.secret
        again = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": oauth})
        assert again.status_code == 200, again.text  # the tokens are the client's: no new approval
        server.revoke()  # the next call is refused: the gateway refreshes (or gets a new token) with the new secret
        async with connect(served.base_url, "http-legacy") as handle:
            with anyio.fail_after(WAIT):
                echoed = await handle.client.call_tool("web__echo", {"text": "rotated"})
        assert text_of(echoed) == "rotated"
        (*_, last) = server.requests
        expected = "refresh_token" if grant == "authorization_code" else grant
        assert (last["grant"], last["client_id"]) == (expected, CLIENT_ID)  # client_id None: the secret was refused
        assert len(server.authorizations) == (1 if grant == "authorization_code" else 0)


async def test_a_refused_authorization_ends_the_attach_and_says_so(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        server.deny = True
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
        back = await approve(attached.json()["authorization_url"])
        assert back.status_code == 400 and "refused" in back.text

        async def failed() -> str | None:  # said until the name is attached again or deleted
            reply = await http.get("/admin/servers/web")
            return reply.json()["error"] if reply.status_code == 502 else None

        assert "refused" in await poll(failed, WAIT)
        assert not [status for status in served.gateway.factory.pool.server_statuses() if status.name == "web"]
        stale = await approve(attached.json()["authorization_url"])  # its state is spent
        assert stale.status_code == 400
        assert served.gateway.factory.pool.authorizations.url_of("web") is None
        assert (await http.delete("/admin/servers/web")).status_code == 200
        assert (await http.get("/admin/servers/web")).status_code == 404


async def test_the_operator_has_the_approval_timeout_not_the_startup_timeout(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        body = {"url": server.base + "/mcp", "oauth": {}, "startup_timeout": 1}
        attached = await http.put("/admin/servers/web", json=body)
        pending = (await http.get("/admin/servers/web")).json()
        assert pending["authorization"]["authorization_url"] == attached.json()["authorization_url"]
        await anyio.sleep(1.5)  # past the startup timeout: a deadline, not a wait for an event
        assert (await approve(attached.json()["authorization_url"])).status_code == 200
        assert (await connected(http, "web"))["tool_count"] == 2


async def test_a_refused_token_is_refreshed_and_a_dead_refresh_token_asks_the_operator_again(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
        await approve(attached.json()["authorization_url"])
        await connected(http, "web")
        async with connect(served.base_url, "http-legacy") as handle:
            server.revoke()  # every access token refused: the refresh token still works
            with anyio.fail_after(WAIT):
                assert text_of(await handle.client.call_tool("web__echo", {"text": "a"})) == "a"
            assert [asked["grant"] for asked in server.requests] == ["authorization_code", "refresh_token"]
            assert len(server.authorizations) == 1

            server.revoke()
            server._refresh.clear()  # the refresh token is dead too: only the operator can help now
            with anyio.fail_after(WAIT):
                failed = await handle.client.call_tool("web__echo", {"text": "b"})

                async def reauthorizing() -> dict[str, Any] | None:
                    shown = (await http.get("/admin/servers/web")).json()["authorization"]
                    return shown if shown["state"] == "needs_authorization" else None

                pending = await poll(reauthorizing, WAIT)
                seen_by_clients = await handle.client.call_tool("lash_gateway_status", {})
            assert failed.is_error
            url = pending["authorization_url"]
            assert url not in text_of(failed) and url not in text_of(seen_by_clients)  # the operator's, not theirs
            assert "needs_authorization" in text_of(seen_by_clients)
            assert (await approve(url)).status_code == 200
            with anyio.fail_after(WAIT):

                async def answered() -> str | None:
                    result = await handle.client.call_tool("web__echo", {"text": "c"})
                    return None if result.is_error else text_of(result)

                assert await poll(answered, WAIT) == "c"
        shown = (await http.get("/admin/servers/web")).text + str(await metrics(served.base_url))
        assert len(server.handed_out) >= 8  # codes, tokens, refresh tokens, a registration's secret
        leaked = [secret for secret in server.handed_out if secret in caplog.text or secret in shown]
        lines = [line for line in caplog.text.splitlines() if any(secret in line for secret in leaked)]
        assert leaked == [], lines[:3]


async def test_what_an_authorization_server_quotes_of_a_request_is_never_shown(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Regression: the SDK's "Token exchange failed (400): <body>" went whole into the admin API, MCP clients'
    status and the log, and an authorization server (or a proxy) that echoes the form put the authorization code,
    the PKCE verifier or the refresh token there."""
    caplog.set_level(logging.DEBUG)
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        server.echo_token_form = True
        body = {"url": server.base + "/mcp", "oauth": {}}
        refused = await http.put("/admin/servers/first", json=body)
        await approve(refused.json()["authorization_url"])  # its code exchange is refused, quoting the form

        async def failed() -> str | None:
            reply = await http.get("/admin/servers/first")
            return reply.text if reply.status_code == 502 else None

        shown = [await poll(failed, WAIT)]
        assert "Token exchange failed (400)" in shown[0]

        server.echo_token_form = False
        attached = await http.put("/admin/servers/web", json=body)
        await approve(attached.json()["authorization_url"])
        await connected(http, "web")
        async with connect(served.base_url, "http-legacy") as handle:
            server.echo_token_form = True  # the refresh (with the refresh token) and the next code exchange
            server.revoke()
            with anyio.fail_after(WAIT):
                assert (await handle.client.call_tool("web__echo", {"text": "a"})).is_error

            async def reauthorizing() -> str | None:
                authorization = (await http.get("/admin/servers/web")).json()["authorization"]
                return (
                    authorization.get("authorization_url") if authorization["state"] == "needs_authorization" else None
                )

            await approve(await poll(reauthorizing, WAIT))

            async def refused_again() -> str | None:
                reply = (await http.get("/admin/servers/web")).text
                return reply if "Token exchange failed (400)" in reply else None

            shown.append(await poll(refused_again, WAIT))
            with anyio.fail_after(WAIT):
                seen_by_clients = text_of(await handle.client.call_tool("lash_gateway_status", {}))
            assert "Token exchange failed (400)" in seen_by_clients
            shown.append(seen_by_clients)
        quoted = [secret for secret in server.handed_out if any(secret in text for text in [*shown, caplog.text])]
        lines = [line for line in caplog.text.splitlines() if any(secret in line for secret in quoted)]
        assert quoted == [], lines[:3]
        assert not [text for text in [*shown, caplog.text] if "code_verifier" in text]


async def test_deleting_a_server_that_waits_for_its_approval_withdraws_it(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        attached = await http.put("/admin/servers/web", json={"url": server.base + "/mcp", "oauth": {}})
        assert (await http.delete("/admin/servers/web")).status_code == 200
        assert (await approve(attached.json()["authorization_url"])).status_code == 400

        async def gone() -> bool | None:
            return True if (await http.get("/admin/servers/web")).status_code == 404 else None

        await poll(gone, WAIT)


async def test_a_later_put_or_delete_supersedes_an_attach_waiting_for_its_approval(tmp_path: Path) -> None:
    async with protected() as server, admin_gateway(tmp_path) as (served, http):
        body = {"url": server.base + "/mcp", "oauth": {}}
        first = (await http.put("/admin/servers/web", json=body)).json()["authorization_url"]
        second = (await http.put("/admin/servers/web", json=body)).json()["authorization_url"]
        assert first != second
        assert (await approve(first)).status_code == 400  # withdrawn by the second PUT
        assert (await approve(second)).status_code == 200
        status = await connected(http, "web")
        assert "replacement" not in status

        # A replacement waiting for its approval (another scope: another authorization), then a DELETE.
        rescoped = {"url": server.base + "/mcp", "oauth": {"scopes": ["mcp:read"]}}
        pending = await http.put("/admin/servers/web", json=rescoped)
        assert pending.status_code == 202
        shown = (await http.get("/admin/servers/web")).json()
        assert shown["connected"] and shown["replacement"]["state"] == "needs_authorization"
        assert (await http.delete("/admin/servers/web")).status_code == 200
        assert (await approve(pending.json()["authorization_url"])).status_code == 400
        assert (await http.get("/admin/servers/web")).status_code == 404
        assert served.gateway.factory.pool.server_statuses() == []
