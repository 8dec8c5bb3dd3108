"""The admin HTTP API of the real `lash-gateway serve` process: attach, replace, detach and reconnect servers over
HTTP while an MCP client is connected; the bearer token; the stdio allow-list and the URL deny-list; malformed
bodies; secrets; and the store that brings runtime changes back after a restart.

Most tests share one gateway for the module (`gateway`), each with its own server names. Tests that restart a
gateway, read its whole log, or start it with other options run their own process (`serving`).
"""

from __future__ import annotations

import shlex
import socket
import stat
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2
import pytest

from lash_gateway import Gateway, GatewayConfig, StateStore
from lash_gateway.admin._state import STORE_FILE, oauth_key
from tests.integration._gateway import (
    GatewayClient,
    admin_client,
    connect,
    poll,
    text_of,
    wait_servers_connected,
    write_config,
)
from tests.servers.launch import (
    ADMIN_TOKEN_FILE,
    PROJECT_ROOT,
    SERVER_MODULE,
    GatewayProcess,
    UpstreamProcess,
    child_env,
    stdio_command,
)

URL_FILE: Final = "admin-url"
ADMIN_TIMEOUT: Final = httpx2.Timeout(30.0)
"""An attach answers once the server is connected: a stdio child needs a few seconds on a loaded machine."""
STDIO_STARTUP: Final = 30.0
"""`startup_timeout` of the stdio servers these tests attach: a Python child can take over the default 10 s to
start on a loaded 2-core machine."""

STDIO_ALLOW: Final = [shlex.join([sys.executable, "-m", SERVER_MODULE]) + " *"]
"""The operator allow-list of these tests: the upstream test server run as `python -m tests.servers.upstream ...`."""
STDIO_CWD_ALLOW: Final = [str(PROJECT_ROOT)]
"""The test server is a module of this project: `python -m` finds it from the project root only."""
STDIO_ENV_ALLOW: Final = ["TOKEN"]
CONFIG_SERVER: Final = "cfg"
"""The config-file server of the shared gateway."""
HEADER_SECRET: Final = "s3cr3t-h"
ENV_SECRET: Final = "s3cr3t-e"

JsonObject = dict[str, Any]


# --- the gateway process ------------------------------------------------------------------------------------------


@asynccontextmanager
async def serving(
    state_dir: Path | None,
    config: Path | None = None,
    *,
    args: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
    verbose: bool = False,
) -> AsyncIterator[GatewayProcess]:
    """`lash-gateway [-v] serve` for the duration of the block, all its output kept; stopped (and that output
    complete) on exit."""

    def start() -> GatewayProcess:
        global_args = ["-v"] if verbose else []
        return GatewayProcess(config, state_dir=state_dir, args=args, global_args=global_args, env=env, keep=None)

    process = await anyio.to_thread.run_sync(start)
    try:
        yield process
    finally:
        await anyio.to_thread.run_sync(process.stop)


def write_gateway_config(path: Path, servers: Mapping[str, JsonObject] | None = None, **admin: Any) -> Path:
    """A config file whose `gateway.admin` allows the upstream test server (plus `admin` settings)."""
    policy = {"stdio_allow": STDIO_ALLOW, "stdio_cwd_allow": STDIO_CWD_ALLOW, "stdio_env_allow": STDIO_ENV_ALLOW}
    return write_config(path, dict(servers or {}), {"admin": {**policy, **admin}})


def unlisted_stdio_entry() -> JsonObject:
    """An `mcpServers` entry for the upstream test server that the allow-list does not match (`python -u -m ...`)."""
    command, args = stdio_command()
    return {"command": command, "args": ["-u", *args], "cwd": str(PROJECT_ROOT), "startup_timeout": STDIO_STARTUP}


def stdio_body(**extra: Any) -> JsonObject:
    """A PUT body for the upstream test server over stdio (allowed by `STDIO_ALLOW`)."""
    command, args = stdio_command()
    return {"command": command, "args": args, "cwd": str(PROJECT_ROOT), "startup_timeout": STDIO_STARTUP, **extra}


def refused_port() -> socket.socket:
    """A bound TCP socket that does not listen: connecting to its port is refused while it stays open."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


# --- admin requests -----------------------------------------------------------------------------------------------


def error_of(reply: httpx2.Response) -> str:
    """The `error` of a JSON error answer (fails the test if the answer is not one)."""
    assert reply.headers.get("content-type", "").startswith("application/json"), (reply.status_code, reply.text)
    body = reply.json()
    assert isinstance(body, dict) and set(body) == {"error"}, body
    message = body["error"]
    assert isinstance(message, str) and message
    return message


async def servers_view(admin: httpx2.AsyncClient) -> list[tuple[str, JsonObject]]:
    """`(name, redacted config)` of every server, as `GET /admin/servers` shows them."""
    reply = await admin.get("/admin/servers")
    assert reply.status_code == 200, reply.text
    return [(s["name"], s["config"]) for s in reply.json()["servers"]]


async def stored(state_dir: Path) -> dict[str, bool]:
    """The gateway's store: server name -> True for a stored attach, False for a stored detach."""
    store = StateStore(state_dir / STORE_FILE, oauth_key(state_dir))  # its key: stored configs are encrypted with it
    return {change.name: change.config is not None for change in await store.load()}


async def status_of(admin: httpx2.AsyncClient, name: str) -> JsonObject:
    reply = await admin.get(f"/admin/servers/{name}")
    assert reply.status_code == 200, reply.text
    body: JsonObject = reply.json()
    return body


# --- the shared gateway -------------------------------------------------------------------------------------------


class SharedGateway:
    def __init__(self, process: GatewayProcess, state_dir: Path) -> None:
        self.process = process
        self.state_dir = state_dir
        self.base_url = process.base_url
        self.token = process.token()

    def admin(self) -> AbstractAsyncContextManager[httpx2.AsyncClient]:
        return admin_client(self.base_url, self.token, ADMIN_TIMEOUT)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedGateway]:
    """`lash-gateway serve` with a generated token, the allow-list, and one config-file stdio server (`cfg`, run as
    `python -u -m ...`, a command line the allow-list does not match); yielded once `cfg` is connected."""
    root = tmp_path_factory.mktemp("admin-api")
    state_dir = root / "state"
    state_dir.mkdir(mode=0o755)
    state_dir.chmod(0o755)  # the gateway must tighten an existing directory
    config = write_gateway_config(root / "config.json", {CONFIG_SERVER: unlisted_stdio_entry()})
    process = GatewayProcess(config, state_dir=state_dir, keep=None)
    try:
        process.wait_connected([CONFIG_SERVER])
        yield SharedGateway(process, state_dir)
    finally:
        process.stop()


# --- token and state directory ------------------------------------------------------------------------------------


def test_generated_token_and_state_files_are_owner_only(gateway: SharedGateway) -> None:
    state_dir = gateway.state_dir
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    for name in (ADMIN_TOKEN_FILE, URL_FILE, STORE_FILE):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
    assert len(gateway.token) >= 32
    assert gateway.token.startswith("lgw_")  # also: never "-", which a CLI flag value cannot start with
    assert (state_dir / URL_FILE).read_text(encoding="utf-8").strip() == gateway.base_url
    banner = gateway.process.stdout_text()
    assert str(state_dir / ADMIN_TOKEN_FILE) in banner  # the banner says where the token is...
    assert gateway.token not in banner  # ...and never shows it


def test_existing_state_files_that_others_can_read_are_made_owner_only(tmp_path: Path) -> None:
    """Regression: an `admin-token` or `state.sqlite3` that already existed with mode 0644 stayed 0644."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    token = state_dir / ADMIN_TOKEN_FILE
    token.write_text("lgw_an-existing-token-of-enough-length-000000\n")
    (state_dir / STORE_FILE).touch()
    for name in (ADMIN_TOKEN_FILE, STORE_FILE):
        (state_dir / name).chmod(0o644)
    with GatewayProcess(None, state_dir=state_dir, keep=None) as process:
        process.wait_connected([])
        assert process.token() == "lgw_an-existing-token-of-enough-length-000000"
    for name in (ADMIN_TOKEN_FILE, STORE_FILE):
        assert stat.S_IMODE((state_dir / name).stat().st_mode) == 0o600, name
        assert f"{state_dir / name} was readable by other users (mode 644)" in process.stderr_text()


ENDPOINTS: Final = [
    ("GET", "/admin/servers"),
    ("GET", f"/admin/servers/{CONFIG_SERVER}"),
    ("PUT", "/admin/servers/authx"),
    ("DELETE", f"/admin/servers/{CONFIG_SERVER}"),
    ("POST", f"/admin/servers/{CONFIG_SERVER}/reconnect"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
@pytest.mark.parametrize("credentials", ["none", "wrong", "truncated", "basic"])
async def test_missing_or_wrong_token_is_401_and_changes_nothing(
    gateway: SharedGateway, method: str, path: str, credentials: str
) -> None:
    authorization = {
        "none": None,
        "wrong": "Bearer not-the-token",
        "truncated": f"Bearer {gateway.token[:-1]}",
        "basic": f"Basic {gateway.token}",
    }[credentials]
    headers = {"Authorization": authorization} if authorization is not None else {}
    async with gateway.admin() as admin:
        before = await servers_view(admin)
        connected_since = (await status_of(admin, CONFIG_SERVER))["connected_since"]
        async with httpx2.AsyncClient(base_url=gateway.base_url, timeout=ADMIN_TIMEOUT) as anonymous:
            reply = await anonymous.request(method, path, json=stdio_body(), headers=headers)
        assert reply.status_code == 401, reply.text
        assert "token" in error_of(reply)
        assert gateway.token not in reply.text
        assert await servers_view(admin) == before
        assert (await status_of(admin, CONFIG_SERVER))["connected_since"] == connected_since  # not reconnected
    assert "authx" not in await stored(gateway.state_dir)


# --- attach, replace, detach, reconnect ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_attach_over_http_reaches_a_connected_client(
    gateway: SharedGateway, module_http_upstream: UpstreamProcess
) -> None:
    async with connect(gateway.base_url, "http-legacy") as client, gateway.admin() as admin:
        seen = client.tools_changed
        reply = await admin.put("/admin/servers/apistdio", json=stdio_body())
        assert reply.status_code == 201, reply.text
        status = reply.json()
        assert (status["name"], status["transport"], status["connected"]) == ("apistdio", "stdio", True)
        assert status["tool_count"] > 0
        assert (await stored(gateway.state_dir)).get("apistdio") is True  # written before the answer

        reply = await admin.put("/admin/servers/apiurl", json={"type": "http", "url": module_http_upstream.url})
        assert reply.status_code == 201, reply.text  # a loopback URL is allowed
        assert (await stored(gateway.state_dir)).get("apiurl") is True

        with anyio.fail_after(10):
            await client.wait_tools_changed(seen)
            await poll(lambda: _has_tools(client, {"apistdio__echo", "apiurl__add"}))
        result = await client.client.call_tool("apistdio__echo", {"text": "via the admin API"})
        assert not result.is_error and text_of(result) == "via the admin API"
        result = await client.client.call_tool("apiurl__add", {"a": 2, "b": 3})
        assert not result.is_error and result.structured_content == {"sum": 5}

        one = await status_of(admin, "apistdio")
        tools = {tool["upstream_name"]: tool["name"] for tool in one["tools"]}
        assert tools["echo"] == "mcp__apistdio__echo" and len(tools) == one["tool_count"]
        assert {"apistdio", "apiurl"} <= {name for name, _ in await servers_view(admin)}


async def _has_tools(client: GatewayClient, names: set[str]) -> bool | None:
    return True if names <= await client.tool_names() else None


@pytest.mark.anyio
async def test_put_on_an_attached_name_replaces_it_with_200(
    gateway: SharedGateway, module_http_upstream: UpstreamProcess
) -> None:
    async with gateway.admin() as admin:
        first = await admin.put("/admin/servers/repl", json={"url": module_http_upstream.url})
        assert first.status_code == 201, first.text
        second = await admin.put(
            "/admin/servers/repl", json={"url": module_http_upstream.url, "tools": {"allow": ["echo"]}}
        )
        assert second.status_code == 200, second.text
        assert second.json()["tool_count"] == 1
        one = await status_of(admin, "repl")
        assert [tool["upstream_name"] for tool in one["tools"]] == ["echo"]
        assert one["config"]["tools"]["allow"] == ["echo"]
        assert [name for name, _ in await servers_view(admin)].count("repl") == 1


@pytest.mark.anyio
async def test_detach_removes_tools_and_ends_the_in_flight_call(gateway: SharedGateway) -> None:
    async with gateway.admin() as admin:
        reply = await admin.put("/admin/servers/inflight", json=stdio_body())
        assert reply.status_code == 201, reply.text
        async with connect(gateway.base_url, "http-legacy") as client:
            assert "inflight__slow" in await client.tool_names()
            results: list[Any] = []

            async def slow_call() -> None:
                results.append(await client.client.call_tool("inflight__slow", {"seconds": 600}))

            with anyio.fail_after(30):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(slow_call)

                    async def in_flight() -> bool | None:
                        return True if (await status_of(admin, "inflight"))["calls_in_flight"] == 1 else None

                    await poll(in_flight)
                    seen = client.tools_changed
                    reply = await admin.delete("/admin/servers/inflight")
                    assert reply.status_code == 200, reply.text
                    assert reply.json() == {"detached": "inflight"}
                [result] = results
                assert result.is_error
                assert "detached" in text_of(result) and "inflight" in text_of(result)

                await client.wait_tools_changed(seen)
            assert not any(name.startswith("inflight__") for name in await client.tool_names())
            after = await client.client.call_tool("inflight__echo", {"text": "gone?"})
            assert after.is_error and "unknown tool" in text_of(after)
        assert (await admin.get("/admin/servers/inflight")).status_code == 404
        assert (await stored(gateway.state_dir)).get("inflight") is False  # a tombstone


@pytest.mark.anyio
async def test_reconnect_is_202_and_the_server_connects_again(
    gateway: SharedGateway, module_http_upstream: UpstreamProcess
) -> None:
    async with gateway.admin() as admin:
        assert (await admin.put("/admin/servers/recon", json={"url": module_http_upstream.url})).status_code == 201
        before = (await status_of(admin, "recon"))["connected_since"]
        reply = await admin.post("/admin/servers/recon/reconnect")
        assert reply.status_code == 202, reply.text
        assert reply.json() == {"reconnecting": "recon"}

        async def reconnected() -> bool | None:
            status = await status_of(admin, "recon")
            return True if status["connected"] and status["connected_since"] != before else None

        await poll(reconnected, 15)


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/servers/nosuch"),
        ("DELETE", "/admin/servers/nosuch"),
        ("POST", "/admin/servers/nosuch/reconnect"),
    ],
)
async def test_unknown_server_is_404(gateway: SharedGateway, method: str, path: str) -> None:
    async with gateway.admin() as admin:
        reply = await admin.request(method, path)
        assert reply.status_code == 404, reply.text
        assert error_of(reply) == "server 'nosuch' is not attached"
    assert "nosuch" not in await stored(gateway.state_dir)  # no tombstone for a failed detach


@pytest.mark.anyio
async def test_attach_that_cannot_connect_is_502_and_keeps_the_attached_server(
    gateway: SharedGateway, module_http_upstream: UpstreamProcess
) -> None:
    with refused_port() as sock:
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        async with gateway.admin() as admin:
            assert (await admin.put("/admin/servers/keep", json={"url": module_http_upstream.url})).status_code == 201
            before, store_before = await servers_view(admin), await stored(gateway.state_dir)
            for name in ("keep", "neverup"):
                reply = await admin.put(f"/admin/servers/{name}", json={"url": down, "startup_timeout": 5})
                assert reply.status_code == 502, reply.text
                assert "cannot connect" in error_of(reply)
            assert await servers_view(admin) == before
            assert await stored(gateway.state_dir) == store_before
            assert (await status_of(admin, "keep"))["connected"]


# --- policy: stdio allow-list, URL deny-list ----------------------------------------------------------------------


@pytest.mark.anyio
async def test_stdio_command_outside_the_allow_list_is_403_with_the_fix(gateway: SharedGateway) -> None:
    async with gateway.admin() as admin:
        before, store_before = await servers_view(admin), await stored(gateway.state_dir)
        # The config-file server runs this very command line: config-file servers are not subject to the list.
        assert (await status_of(admin, CONFIG_SERVER))["connected"]
        for name, body in [("unlisted", unlisted_stdio_entry()), ("shell", {"command": "sh", "args": ["-c", "id"]})]:
            reply = await admin.put(f"/admin/servers/{name}", json=body)
            assert reply.status_code == 403, reply.text
            message = error_of(reply)
            assert "gateway.admin.stdio_allow" in message and "add a pattern" in message
            assert shlex.join([body["command"], *body["args"]]) in message
        assert await servers_view(admin) == before
        assert await stored(gateway.state_dir) == store_before


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("https://169.254.169.254:8443/mcp", "169.254.169.254"),
        ("http://100.100.100.200/mcp", "100.100.100.200"),
        ("http://[fd00:ec2::254]/mcp", "fd00:ec2::254"),
    ],
)
async def test_url_resolving_into_a_denied_network_is_403(gateway: SharedGateway, url: str, address: str) -> None:
    async with gateway.admin() as admin:
        before, store_before = await servers_view(admin), await stored(gateway.state_dir)
        reply = await admin.put("/admin/servers/metadata", json={"url": url})
        assert reply.status_code == 403, reply.text
        message = error_of(reply)
        assert address in message and "gateway.admin.deny_networks" in message
        assert await servers_view(admin) == before
        assert await stored(gateway.state_dir) == store_before


# --- malformed requests -------------------------------------------------------------------------------------------

UPSTREAM_URL: Final = "http://127.0.0.1:9/mcp"
"""Never connected to: every body using it is refused before the attach."""

MALFORMED_BODIES: Final = [
    pytest.param(b'{"url": ', "not valid JSON", id="truncated-json"),
    pytest.param(b"", "not valid JSON", id="empty"),
    pytest.param(b'{"url": "http://127.0.0.1:9/\xff"}', "JSON", id="not-utf8"),
    pytest.param(b'[{"url": "http://127.0.0.1:9/mcp"}]', "JSON object", id="array"),
    pytest.param(b'"http://127.0.0.1:9/mcp"', "JSON object", id="string"),
    pytest.param(b"null", "JSON object", id="null"),
    pytest.param(b'{"url": "http://127.0.0.1:9/mcp", "bogus": 1}', "field 'bogus': unknown key", id="unknown-key"),
    pytest.param(b'{"url": "ftp://127.0.0.1/mcp"}', "must be http or https", id="ftp-scheme"),
    pytest.param(b'{"url": "file:///etc/passwd"}', "must be http or https", id="file-scheme"),
    pytest.param(b"{}", "needs 'command' (stdio) or 'url' (HTTP)", id="no-command-or-url"),
    pytest.param(b'{"command": "python", "args": "-m x"}', "field 'args'", id="args-not-a-list"),
    pytest.param(b'{"transport": "websocket", "url": "http://127.0.0.1:9/mcp"}', "transport", id="bad-transport"),
    pytest.param(b'{"url": "http://127.0.0.1:9/mcp", "startup_timeout": -1}', "startup_timeout", id="bad-timeout"),
]


@pytest.mark.anyio
@pytest.mark.parametrize("target", ["new", "existing"])
@pytest.mark.parametrize(("body", "hint"), MALFORMED_BODIES)
async def test_malformed_body_is_422_with_a_useful_message_and_changes_nothing(
    gateway: SharedGateway, target: str, body: bytes, hint: str
) -> None:
    name = "malformed" if target == "new" else CONFIG_SERVER
    async with gateway.admin() as admin:
        before, store_before = await servers_view(admin), await stored(gateway.state_dir)
        connected_since = (await status_of(admin, CONFIG_SERVER))["connected_since"]
        reply = await admin.put(f"/admin/servers/{name}", content=body, headers={"Content-Type": "application/json"})
        assert reply.status_code == 422, reply.text
        assert hint in error_of(reply)
        assert await servers_view(admin) == before
        assert await stored(gateway.state_dir) == store_before
        assert (await status_of(admin, CONFIG_SERVER))["connected_since"] == connected_since  # not replaced


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("name", "hint"),
    [("trailing%20", "must not start or end with whitespace"), ("x" * 65, "the limit is 64")],
    ids=["whitespace", "too-long"],
)
async def test_invalid_server_name_is_422(gateway: SharedGateway, name: str, hint: str) -> None:
    async with gateway.admin() as admin:
        before = await servers_view(admin)
        reply = await admin.put(f"/admin/servers/{name}", json={"url": UPSTREAM_URL})
        assert reply.status_code == 422, reply.text
        assert hint in error_of(reply)
        assert await servers_view(admin) == before


# --- secrets ------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_header_and_env_values_never_reach_answers_or_logs(
    tmp_path: Path, module_http_upstream: UpstreamProcess
) -> None:
    """Every admin path that sees a header or env value: answers of each kind, and the debug log (`-v`)."""
    secret_header = {"Authorization": f"Bearer {HEADER_SECRET}"}
    secret_env = {"TOKEN": ENV_SECRET}
    config = write_gateway_config(tmp_path / "config.json")
    answers: list[str] = []
    with refused_port() as sock:
        down = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
        async with serving(tmp_path / "state", config, verbose=True) as process:
            async with admin_client(process.base_url, process.token(), ADMIN_TIMEOUT) as admin:

                async def call(method: str, path: str, expected: int, body: Any = None) -> JsonObject:
                    reply = await admin.request(method, path, json=body)
                    answers.append(reply.text)
                    assert reply.status_code == expected, reply.text
                    result: JsonObject = reply.json()
                    return result

                url_body = {"url": module_http_upstream.url, "headers": secret_header}
                attached = await call("PUT", "/admin/servers/sechttp", 201, url_body)
                assert attached["config"]["headers"] == {"Authorization": "***"}
                attached = await call("PUT", "/admin/servers/secstdio", 201, stdio_body(env=secret_env))
                assert attached["config"]["env"] == {"TOKEN": "***"}
                await call("GET", "/admin/servers", 200)
                await call("GET", "/admin/servers/sechttp", 200)
                await call("GET", "/admin/servers/secstdio", 200)
                await call("PUT", "/admin/servers/sechttp", 200, {**url_body, "type": "http"})
                await call("POST", "/admin/servers/sechttp/reconnect", 202)
                await call("PUT", "/admin/servers/secbad", 422, {**url_body, "bogus": 1})
                await call("PUT", "/admin/servers/secbad", 422, {**url_body, "headers": {"Bad Name": HEADER_SECRET}})
                await call("PUT", "/admin/servers/secbad", 422, {"url": down, "headers": {"X": f"{HEADER_SECRET}\n"}})
                await call("PUT", "/admin/servers/secbad", 422, stdio_body(env={"TOKEN": f"{ENV_SECRET}\0"}))
                await call("PUT", "/admin/servers/secdeny", 403, {"command": "sh", "env": secret_env})
                await call(
                    "PUT", "/admin/servers/secdeny", 403, {"url": "http://169.254.169.254/", "headers": secret_header}
                )
                await call("PUT", "/admin/servers/secdown", 502, {"url": down, "headers": secret_header})
                await call("DELETE", "/admin/servers/sechttp", 200)
                await call("DELETE", "/admin/servers/secstdio", 200)
    log = process.stderr_text()
    assert " DEBUG " in log and "sechttp attached through the admin API" in log  # captured, at debug level
    for text in [*answers, log, process.stdout_text()]:
        assert HEADER_SECRET not in text and ENV_SECRET not in text


# --- restart ------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(120)  # two gateway processes, each starting three servers
async def test_restart_restores_runtime_attaches_and_detaches(
    tmp_path: Path, module_http_upstream: UpstreamProcess
) -> None:
    """A config token (never written down), runtime attaches of both kinds, a replaced and a detached config-file
    server: a new process on the same state directory comes back with exactly the runtime state."""
    state_dir = tmp_path / "state"
    token = "configured-admin-token"
    config = write_gateway_config(
        tmp_path / "config.json",
        {"cfgkeep": unlisted_stdio_entry(), "cfgdrop": unlisted_stdio_entry()},
        token=token,
    )
    async with serving(state_dir, config) as first:
        await wait_servers_connected(first.base_url, ["cfgkeep", "cfgdrop"])
        async with admin_client(first.base_url, token, ADMIN_TIMEOUT) as admin:
            url_body = {"url": module_http_upstream.url, "headers": {"Authorization": f"Bearer {HEADER_SECRET}"}}
            assert (await admin.put("/admin/servers/rtstdio", json=stdio_body())).status_code == 201
            assert (await admin.put("/admin/servers/rturl", json=url_body)).status_code == 201
            # Replacing a config-file server through the API is an API attach: its command must be allowed.
            assert (await admin.put("/admin/servers/cfgkeep", json=unlisted_stdio_entry())).status_code == 403
            replaced = stdio_body(tools={"allow": ["echo"]})
            assert (await admin.put("/admin/servers/cfgkeep", json=replaced)).status_code == 200
            assert (await admin.delete("/admin/servers/cfgdrop")).status_code == 200
    assert not (state_dir / ADMIN_TOKEN_FILE).exists()  # a configured token is never written down

    async with serving(state_dir, config) as second:
        await wait_servers_connected(second.base_url, ["cfgkeep", "rtstdio", "rturl"])
        async with admin_client(second.base_url, token, ADMIN_TIMEOUT) as admin:
            view = dict(await servers_view(admin))
            assert set(view) == {"cfgkeep", "rtstdio", "rturl"}  # cfgdrop stays detached
            assert view["rturl"]["headers"] == {"Authorization": "***"}
            assert (await status_of(admin, "cfgkeep"))["tool_count"] == 1  # the stored replacement won
        async with connect(second.base_url, "http-legacy") as client:
            names = await client.tool_names()
            assert {"rtstdio__echo", "rturl__echo", "cfgkeep__echo"} <= names
            assert not any(name.startswith("cfgdrop__") for name in names)
            result = await client.client.call_tool("rturl__echo", {"text": "back"})
            assert not result.is_error and text_of(result) == "back"
    for process in (first, second):
        assert HEADER_SECRET not in process.stderr_text()


# --- token sources, loopback, store failures ----------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize("winner", ["flag", "env"])
async def test_admin_token_from_flag_or_env_is_used_and_not_written(tmp_path: Path, winner: str) -> None:
    """Precedence: `--admin-token`, then LASH_GATEWAY_ADMIN_TOKEN, then `gateway.admin.token`; the state directory
    comes from LASH_GATEWAY_STATE_DIR (no `--state-dir`)."""
    state_dir = tmp_path / "state"
    config = write_gateway_config(tmp_path / "config.json", token="config-token")
    env = child_env({"LASH_GATEWAY_ADMIN_TOKEN": "env-token", "LASH_GATEWAY_STATE_DIR": str(state_dir)})
    args = ["--admin-token", "flag-token"] if winner == "flag" else []
    async with serving(None, config, args=args, env=env) as process:
        assert (state_dir / URL_FILE).read_text(encoding="utf-8").strip() == process.base_url
        assert not (state_dir / ADMIN_TOKEN_FILE).exists()
        for candidate in ("flag-token", "env-token", "config-token"):
            async with admin_client(process.base_url, candidate, ADMIN_TIMEOUT) as admin:
                reply = await admin.get("/admin/servers")
                assert reply.status_code == (200 if candidate == f"{winner}-token" else 401), candidate
        assert "flag-token" not in process.stdout_text() and "env-token" not in process.stdout_text()


@pytest.mark.anyio
async def test_admin_api_answers_only_loopback_clients(tmp_path: Path) -> None:
    """In process, with the client address set by the ASGI transport: no test sends traffic beyond loopback."""
    gateway = Gateway(GatewayConfig(), store=StateStore(tmp_path / "state.sqlite3"), admin_token="t0ken")
    app = gateway.http_app()
    headers = {"Authorization": "Bearer t0ken"}

    async def get_from(client: str) -> httpx2.Response:
        transport = httpx2.ASGITransport(app=app, client=(client, 40000))
        async with httpx2.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
            return await http.get("/admin/servers", headers=headers)

    remote = await get_from("192.0.2.2")
    assert remote.status_code == 403, remote.text
    assert "gateway.admin.allow_remote" in error_of(remote)
    assert (await get_from("127.0.0.1")).status_code == 200
    assert (await get_from("::1")).status_code == 200


@pytest.mark.anyio
async def test_attach_whose_store_write_fails_is_a_json_error_and_not_left_attached(
    tmp_path: Path, module_http_upstream: UpstreamProcess
) -> None:
    """Bug: the admin API does not catch `StoreError`; the attach stays in effect unrecorded, and the answer is
    Starlette's plain-text 500 instead of a JSON error."""
    state_dir = tmp_path / "state"
    config = write_gateway_config(tmp_path / "config.json")
    async with serving(state_dir, config) as process:
        await wait_servers_connected(process.base_url, [])
        store = state_dir / STORE_FILE
        store.unlink()
        store.mkdir()  # SQLite cannot open a directory: every write now fails
        async with admin_client(process.base_url, process.token(), ADMIN_TIMEOUT) as admin:
            reply = await admin.put("/admin/servers/unstored", json={"url": module_http_upstream.url})
            assert reply.status_code == 500
            assert str(store) in error_of(reply)
            assert (await admin.get("/admin/servers/unstored")).status_code == 404
