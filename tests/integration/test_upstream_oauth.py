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

from lash_gateway import GatewayConfig, McpServerConfig, StateStore
from lash_gateway.admin._state import oauth_key
from lash_gateway.upstream._plugin import status_dict
from tests.integration._gateway import InProcessGateway, connect, poll, run_gateway_in_process, serve_app, text_of
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
    oauth: dict[str, Any] = {"client_id": CLIENT_ID, "token_endpoint_auth_method": method}
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
    oauth = {"client_id": CLIENT_ID, "client_secret": SECRET}
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
        async with gateway(tmp_path, server, {"client_id": CLIENT_ID, "client_secret": SECRET}) as served:
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
            body = {"url": server.base + "/mcp", "oauth": {"client_id": CLIENT_ID, "client_secret": SECRET}}
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
            refused = await http.put("/admin/servers/bad", json={**body, "oauth": {"client_id": CLIENT_ID}})
            assert refused.status_code == 422 and "needs client_secret" in refused.text
