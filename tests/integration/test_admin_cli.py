"""`lash-gateway attach | detach | status` as a subprocess against a real `lash-gateway serve`: attaching a command
or a URL while an MCP client is connected, the status table, detaching, the exit codes a script can rely on, and
where the CLI finds the gateway's address and token (flags, then LASH_GATEWAY_ADMIN_URL / _TOKEN, then the state
directory given by `--state-dir` or LASH_GATEWAY_STATE_DIR).

Every run has a bounded time. Each CLI run imports the whole gateway (about two seconds on a loaded machine), so the
table-driven tests run their cases concurrently and report every case that went wrong.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import anyio
import httpx2
import pytest
from anyio.streams.text import TextReceiveStream

from tests.integration._gateway import CONSOLE_SCRIPT, connect, serve_app, text_of
from tests.integration.test_admin_api import refused_port, write_gateway_config
from tests.servers.launch import SERVER_MODULE, GatewayProcess, UpstreamFactory, UpstreamProcess, child_env
from tests.servers.oauth import ProtectedServer

CLI_TIMEOUT: Final = 60.0
"""Seconds one CLI run may take (an attach waits for the server to connect)."""
TABLE_TIMEOUT: Final = 180
"""pytest-timeout seconds for a test of several CLI runs (the default 60 is tight on a loaded 2-core machine)."""
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNAUTHORIZED = 0, 1, 2, 3, 4
UPSTREAM_COMMAND: Final = [sys.executable, "-m", SERVER_MODULE, "--transport", "stdio"]
"""A command line the gateway's allow-list matches; it resolves because the gateway runs in the project root."""
HEADER_SECRET: Final = "s3cr3t-cli"


@dataclass(frozen=True, slots=True)
class CliGateway:
    process: GatewayProcess
    state_dir: Path
    home: Path
    """Where the per-user state directory of CLI runs points (empty: no fallback gateway there)."""

    @property
    def base_url(self) -> str:
        return self.process.base_url

    @property
    def token(self) -> str:
        return self.process.token()


@pytest.fixture(scope="module")
def cli_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CliGateway]:
    """`lash-gateway serve` with a generated token in its state directory and the test server on its allow-list."""
    root = tmp_path_factory.mktemp("admin-cli")
    state_dir = root / "state"
    process = GatewayProcess(write_gateway_config(root / "config.json"), state_dir=state_dir)
    try:
        process.wait_connected([])
        yield CliGateway(process, state_dir, root / "home")
    finally:
        process.stop()


@dataclass(frozen=True, slots=True)
class CliRun:
    args: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def __str__(self) -> str:
        return f"lash-gateway {' '.join(self.args)} -> {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


async def run_cli(gw: CliGateway, *args: str, env: Mapping[str, str] | None = None) -> CliRun:
    """`lash-gateway ARGS` with LASH_GATEWAY_* cleared (then `env` added) and the per-user state dir isolated."""
    with anyio.fail_after(CLI_TIMEOUT):
        done = await anyio.run_process([str(CONSOLE_SCRIPT), *args], env=child_env(env, home=gw.home), check=False)
    return CliRun(args, done.returncode, done.stdout.decode(), done.stderr.decode())


async def server_status(gw: CliGateway, name: str) -> httpx2.Response:
    async with httpx2.AsyncClient(
        base_url=gw.base_url, headers={"Authorization": f"Bearer {gw.token}"}, timeout=10.0
    ) as http:
        return await http.get(f"/admin/servers/{name}")


@dataclass(frozen=True, slots=True)
class Case:
    """One CLI run of a table: the arguments, extra environment, and what must come out."""

    id: str
    args: Sequence[str]
    code: int
    stderr: str = ""
    """A part of the message on stderr."""
    env: Mapping[str, str] = field(default_factory=dict)


async def run_cases(gw: CliGateway, cases: Sequence[Case]) -> None:
    """Run every case concurrently; fail listing each case whose exit code or message was wrong."""
    runs: dict[str, CliRun] = {}

    async def one(case: Case) -> None:
        runs[case.id] = await run_cli(gw, *case.args, env=case.env)

    async with anyio.create_task_group() as tg:
        for case in cases:
            tg.start_soon(one, case)
    wrong = [
        f"[{case.id}] expected exit {case.code} and {case.stderr!r} on stderr; got {runs[case.id]}"
        for case in cases
        if runs[case.id].code != case.code or case.stderr not in runs[case.id].stderr
    ]
    assert not wrong, "\n\n".join(wrong)


# --- attach, status, detach ---------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(TABLE_TIMEOUT)
async def test_attach_command_reaches_a_connected_client_and_detach_removes_it(cli_gateway: CliGateway) -> None:
    state = ["--state-dir", str(cli_gateway.state_dir)]
    async with connect(cli_gateway.base_url, "http-legacy") as client:
        seen = client.tools_changed
        run = await run_cli(cli_gateway, "attach", "clistdio", *state, "--", *UPSTREAM_COMMAND)
        assert run.code == EXIT_OK, run
        match = re.fullmatch(r"attached clistdio: (\d+) tools \(connected\)\n", run.stdout)
        assert match and int(match[1]) > 0, run
        with anyio.fail_after(10):
            await client.wait_tools_changed(seen)
            assert "clistdio__echo" in await client.tool_names()
        result = await client.client.call_tool("clistdio__echo", {"text": "attached by the CLI"})
        assert not result.is_error and text_of(result) == "attached by the CLI"

        run = await run_cli(cli_gateway, "status", *state)
        assert run.code == EXIT_OK, run
        header, *rows = run.stdout.splitlines()
        assert header.split() == ["SERVER", "TRANSPORT", "CONNECTED", "TOOLS", "LAST", "ERROR"]
        assert f"clistdio stdio yes {match[1]}".split() in [row.split() for row in rows], run

        seen = client.tools_changed
        run = await run_cli(cli_gateway, "detach", "clistdio", *state)
        assert (run.code, run.stdout) == (EXIT_OK, "detached clistdio\n"), run
        with anyio.fail_after(10):
            await client.wait_tools_changed(seen)
        assert not any(name.startswith("clistdio__") for name in await client.tool_names())
    assert (await server_status(cli_gateway, "clistdio")).status_code == 404


@pytest.mark.anyio
@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
async def test_attach_url_with_header(
    cli_gateway: CliGateway, upstream: UpstreamFactory, module_http_upstream: UpstreamProcess, transport: str
) -> None:
    server = module_http_upstream if transport == "streamable_http" else upstream(transport="sse")
    name = f"cliurl{transport[:3]}"
    flags = ["--sse"] if transport == "sse" else []
    run = await run_cli(
        cli_gateway,
        *["attach", name, "--url", server.url, *flags, "--header", f"Authorization=Bearer {HEADER_SECRET}"],
        *["--state-dir", str(cli_gateway.state_dir)],
    )
    assert run.code == EXIT_OK, run
    assert re.fullmatch(rf"attached {name}: \d+ tools \(connected\)\n", run.stdout), run
    reply = await server_status(cli_gateway, name)
    assert reply.status_code == 200, reply.text
    status = reply.json()
    assert (status["transport"], status["connected"]) == (transport, True)
    assert status["config"]["headers"] == {"Authorization": "***"}
    assert HEADER_SECRET not in run.stdout + run.stderr + reply.text


# --- exit codes ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.timeout(TABLE_TIMEOUT)
async def test_exit_codes(cli_gateway: CliGateway) -> None:
    """0 done; 1 refused or failed by the gateway; 2 usage; 3 no gateway at the address; 4 token refused."""
    state = ["--state-dir", str(cli_gateway.state_dir)]
    empty_state = ["--state-dir", str(cli_gateway.home / "no-gateway-here")]
    url = cli_gateway.base_url
    with refused_port() as sock:
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
        cases = [
            Case("ok", ["status", *state], EXIT_OK),
            Case("not-allowed", ["attach", "clideny", *state, "--", "sh", "-c", "id"], EXIT_FAILED, "stdio_allow"),
            Case("unknown-server", ["detach", "clinosuch", *state], EXIT_FAILED, "'clinosuch' is not attached"),
            Case(
                "url-and-command",
                ["attach", "cliboth", *state, "--url", f"{url}/mcp", "--", *UPSTREAM_COMMAND],
                EXIT_USAGE,
                "either --url URL or -- COMMAND",
            ),
            Case("neither", ["attach", "clineither", *state], EXIT_USAGE, "either --url URL or -- COMMAND"),
            Case("bad-header", ["attach", "clihdr", *state, "--url", f"{url}/mcp", "--header", "novalue"], EXIT_USAGE),
            Case("unreachable", ["status", "--admin-url", nobody, "--admin-token", "t"], EXIT_UNREACHABLE, nobody),
            Case("no-address", ["status", *empty_state], EXIT_UNREACHABLE, "no gateway address"),
            Case("wrong-token", ["status", *state, "--admin-token", "wrong"], EXIT_UNAUTHORIZED, "admin token"),
            Case("no-token", ["status", *empty_state, "--admin-url", url], EXIT_UNAUTHORIZED, "no admin token"),
        ]
        await run_cases(cli_gateway, cases)
    for name in ("clideny", "cliboth", "clineither", "clihdr"):
        assert (await server_status(cli_gateway, name)).status_code == 404, name


@pytest.mark.anyio
@pytest.mark.timeout(TABLE_TIMEOUT)
async def test_address_and_token_come_from_flags_then_env_then_state_dir(cli_gateway: CliGateway) -> None:
    state_dir = str(cli_gateway.state_dir)
    url, token = cli_gateway.base_url, cli_gateway.token
    empty_state = str(cli_gateway.home / "no-gateway-here")
    with refused_port() as sock:
        nobody = f"http://127.0.0.1:{sock.getsockname()[1]}"
        cases = [
            Case("state-dir-from-env", ["status"], EXIT_OK, env={"LASH_GATEWAY_STATE_DIR": state_dir}),
            Case(
                "url-and-token-from-env",
                ["status", "--state-dir", empty_state],
                EXIT_OK,
                env={"LASH_GATEWAY_ADMIN_URL": url, "LASH_GATEWAY_ADMIN_TOKEN": token},
            ),
            Case(
                "env-token-beats-state-dir",
                ["status", "--state-dir", state_dir],
                EXIT_UNAUTHORIZED,
                env={"LASH_GATEWAY_ADMIN_TOKEN": "wrong"},
            ),
            Case(
                "env-url-beats-state-dir",
                ["status", "--state-dir", state_dir],
                EXIT_UNREACHABLE,
                nobody,
                env={"LASH_GATEWAY_ADMIN_URL": nobody},
            ),
            Case(
                "flags-beat-env",
                ["status", "--admin-url", url, "--admin-token", token],
                EXIT_OK,
                env={"LASH_GATEWAY_ADMIN_URL": nobody, "LASH_GATEWAY_ADMIN_TOKEN": "wrong"},
            ),
        ]
        await run_cases(cli_gateway, cases)


@pytest.mark.anyio
@pytest.mark.timeout(TABLE_TIMEOUT)
async def test_virtual_server_commands_and_the_audit_table(cli_gateway: CliGateway, tmp_path: Path) -> None:
    """`vs put` makes a virtual server and prints its token once; a client with that token calls through it;
    `vs token --replace` rotates; `audit --json` shows the call with the token's id; `vs rm` removes it."""
    state = ["--state-dir", str(cli_gateway.state_dir)]
    config = tmp_path / "vs.json"
    config.write_text('{"servers": ["*"], "tools": {"allow": ["lash_gateway_status"]}}', encoding="utf-8")
    made = await run_cli(cli_gateway, "vs", "put", "clix", str(config), *state)
    assert made.code == EXIT_OK, made
    token = re.search(r"client token \(shown once\): (\S+)", made.stdout)
    assert token is not None, made
    async with connect(cli_gateway.base_url, "http-legacy", headers={"Authorization": f"Bearer {token[1]}"}) as c:
        with anyio.fail_after(CLI_TIMEOUT):
            assert await c.tool_names() == {"lash_gateway_status"}
            await c.client.call_tool("lash_gateway_status", {})
    listed = await run_cli(cli_gateway, "vs", "list", *state)
    assert listed.code == EXIT_OK and re.search(r"^clix\s+full\s+1\s+\*$", listed.stdout, re.M), listed
    audited = await run_cli(cli_gateway, "audit", "--json", "--virtual-server", "clix", *state)
    assert audited.code == EXIT_OK, audited
    (record,) = [json.loads(line) for line in audited.stdout.splitlines()]
    assert (record["tool"], record["outcome"]) == ("lash_gateway_status", "ok") and record["token_id"].startswith("k")
    table = await run_cli(cli_gateway, "audit", "--tool", "lash_gateway_status", *state)
    assert table.code == EXIT_OK and "clix" in table.stdout and token[1] not in table.stdout, table
    rotated = await run_cli(cli_gateway, "vs", "token", "clix", "--replace", *state)
    assert rotated.code == EXIT_OK and re.search(
        r"token k\w+ of virtual server clix \(shown once\): lvs_", rotated.stdout
    )
    async with httpx2.AsyncClient(timeout=10.0) as http:
        old = await http.post(f"{cli_gateway.base_url}/mcp/clix", headers={"Authorization": f"Bearer {token[1]}"})
        assert old.status_code == 401
    bad = await run_cli(cli_gateway, "vs", "put", "clix", str(tmp_path / "missing.json"), *state)
    assert bad.code == EXIT_USAGE and "cannot read" in bad.stderr, bad
    removed = await run_cli(cli_gateway, "vs", "rm", "clix", *state)
    assert removed.code == EXIT_OK, removed
    again = await run_cli(cli_gateway, "vs", "show", "clix", *state)
    assert again.code == EXIT_FAILED and "no virtual server is named 'clix'" in again.stderr, again


@pytest.mark.anyio
@pytest.mark.timeout(TABLE_TIMEOUT)
async def test_attach_oauth_prints_the_url_and_waits_for_the_approval(cli_gateway: CliGateway) -> None:
    """`attach NAME --url URL --oauth`: the authorization URL on a line of its own, then, once a browser approved
    it (played here by an HTTP client that follows the redirects back to the gateway), the tool count."""
    server = ProtectedServer()
    async with serve_app(server.app) as base_url:
        server.base = base_url
        args = ["attach", "webauth", "--url", f"{base_url}/mcp", "--oauth", "--state-dir", str(cli_gateway.state_dir)]
        env = child_env(home=cli_gateway.home)
        async with await anyio.open_process([str(CONSOLE_SCRIPT), *args], env=env) as cli:
            assert cli.stdout is not None
            lines = TextReceiveStream(cli.stdout)
            seen = ""
            with anyio.fail_after(CLI_TIMEOUT):
                async for chunk in lines:
                    seen += chunk
                    found = re.search(r"^(http\S+/as/authorize\?\S+)$", seen, re.M)
                    if found:
                        break
                assert found is not None, seen
                async with httpx2.AsyncClient(follow_redirects=True, timeout=10.0) as browser:
                    approved = await browser.get(found[1])
                assert approved.status_code == 200, approved.text
                async for chunk in lines:
                    seen += chunk
                assert await cli.wait() == EXIT_OK, seen
        assert "webauth needs authorization" in seen and "attached webauth: 2 tools (connected)" in seen
        assert [asked["grant"] for asked in server.requests] == ["authorization_code"]
