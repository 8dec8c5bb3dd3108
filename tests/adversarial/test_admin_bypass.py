"""Attempts to get code run or internal addresses reached through the real admin API of `lash-gateway serve`.

The gateway allows the README's pattern `python3 -m mcp_server_* *` and, as a careless operator might, broad
globs of environment variable names (`*PATH`, `*WARNINGS`, ...). Each attempt below ran code before the allow-list
decided over the environment and the working directory: it must now be refused with 403, and the code it carries
must not have run (its marker file stays absent). URL attaches try every spelling of a denied address.
"""

from __future__ import annotations

import shlex
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest

from tests.servers.launch import GatewayProcess, UpstreamProcess, write_config

README_PATTERN: Final = "python3 -m mcp_server_* *"
CARELESS_ENV: Final = ["*PATH", "*WARNINGS", "*BROWSER", "*PRELOAD", "*_ENV", "*STARTUP", "*OPTIONS", "*HOME"]
DENIED_LOOPBACK: Final = ["127.0.0.0/8", "::1/128", "169.254.0.0/16"]
TIMEOUT: Final = httpx2.Timeout(30.0)


class Attacker:
    """What an attacker with the admin token sends, and where their payload leaves its mark."""

    def __init__(self, gateway: GatewayProcess, workdir: Path) -> None:
        self.gateway = gateway
        self.workdir = workdir
        self.marker = workdir / "pwned"

    def put(self, name: str, body: dict[str, Any]) -> httpx2.Response:
        with httpx2.Client(base_url=self.gateway.base_url, timeout=TIMEOUT) as http:
            return http.put(
                f"/admin/servers/{name}", json=body, headers={"Authorization": f"Bearer {self.gateway.token()}"}
            )

    def payload(self) -> str:
        """Python that leaves the marker."""
        return f"open({str(self.marker)!r}, 'w').write('ran')\n"

    def shell_payload(self) -> str:
        return f"touch {shlex.quote(str(self.marker))}"

    def refused(self, reply: httpx2.Response, *words: str) -> None:
        assert reply.status_code == 403, reply.text
        message = reply.json()["error"]
        assert all(word in message for word in words), message
        assert not self.marker.exists(), "the attacker's code ran"


@pytest.fixture(scope="module")
def attacker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attacker]:
    root = tmp_path_factory.mktemp("bypass")
    workdir = root / "attacker"
    workdir.mkdir()
    allow = [README_PATTERN, f"{sys.executable} -m mcp_server_time *", f"{workdir}/bin/* *"]
    admin = {"stdio_allow": allow, "stdio_env_allow": [*CARELESS_ENV, "TZ"], "deny_networks": DENIED_LOOPBACK}
    config = write_config(root / "config.json", {}, {"admin": admin})
    with GatewayProcess(config, state_dir=root / "state") as gateway:
        gateway.wait_connected([])
        yield Attacker(gateway, workdir)


@pytest.fixture
def fresh(attacker: Attacker) -> Iterator[Attacker]:
    attacker.marker.unlink(missing_ok=True)
    yield attacker
    attacker.marker.unlink(missing_ok=True)


def time_server(**extra: Any) -> dict[str, Any]:
    """An attach the command-line pattern matches."""
    return {"command": "python3", "args": ["-m", "mcp_server_time"], "startup_timeout": 10, **extra}


def test_pythonpath_with_a_sitecustomize_is_refused(fresh: Attacker) -> None:
    (fresh.workdir / "sitecustomize.py").write_text(fresh.payload())
    fresh.refused(fresh.put("pp", time_server(env={"PYTHONPATH": str(fresh.workdir)})), "'PYTHONPATH'", "exact name")


def test_a_path_leading_to_another_python3_is_refused(fresh: Attacker) -> None:
    fake = fresh.workdir / "python3"
    fake.write_text(f"#!/bin/sh\n{fresh.shell_payload()}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    fresh.refused(fresh.put("path", time_server(env={"PATH": str(fresh.workdir)})), "'PATH'")


def test_pythonwarnings_with_a_browser_is_refused(fresh: Attacker) -> None:
    """`PYTHONWARNINGS` naming a category in `antigravity` imports it at start-up, which runs `$BROWSER`."""
    env = {"PYTHONWARNINGS": "ignore::antigravity.Foo", "BROWSER": fresh.shell_payload()}
    fresh.refused(fresh.put("warn", time_server(env=env)), "changes what the process runs")


@pytest.mark.parametrize("name", ["LD_PRELOAD", "BASH_ENV", "PYTHONSTARTUP", "NODE_OPTIONS", "PYTHONHOME", "HOME"])
def test_other_variables_that_change_what_runs_are_refused(fresh: Attacker, name: str) -> None:
    (fresh.workdir / "evil.py").write_text(fresh.payload())
    fresh.refused(fresh.put("var", time_server(env={name: str(fresh.workdir / "evil.py")})), repr(name))


def test_a_cwd_holding_a_matching_module_is_refused(fresh: Attacker) -> None:
    (fresh.workdir / "mcp_server_evil.py").write_text(fresh.payload())
    body = {"command": "python3", "args": ["-m", "mcp_server_evil"], "cwd": str(fresh.workdir)}
    fresh.refused(fresh.put("cwd", body), "stdio_cwd_allow")


def test_a_relative_command_is_refused(fresh: Attacker) -> None:
    fake = fresh.workdir / "python3"
    fake.write_text(f"#!/bin/sh\n{fresh.shell_payload()}\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    body = {"command": "./python3", "args": ["-m", "mcp_server_time"], "cwd": str(fresh.workdir)}
    fresh.refused(fresh.put("rel", body))


def test_an_allowed_attach_runs(fresh: Attacker) -> None:
    reply = fresh.put("ok", time_server(command=sys.executable, env={"TZ": "UTC"}))
    assert reply.status_code == 201, reply.text
    assert reply.json()["config"]["command"] == sys.executable


def test_a_command_climbing_out_of_an_allowed_directory_is_refused(fresh: Attacker) -> None:
    """Regression: with `<dir>/bin/* *` allowed, `<dir>/bin/../../../bin/sh -c ...` ran /bin/sh."""
    (fresh.workdir / "bin").mkdir(exist_ok=True)
    climbing = str(fresh.workdir / "bin") + "/.." * 12 + "/bin/sh"
    fresh.refused(fresh.put("climb", {"command": climbing, "args": ["-c", fresh.shell_payload()]}), "'..'")


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:169.254.169.254]",
        "[::ffff:a9fe:a9fe]",
        "[::169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "169.254.169.254",
        "[::ffff:127.0.0.1]",
        "0.0.0.0",
        "0",
        "127.1",
        "2130706433",
        "localhost",
    ],
)
def test_every_spelling_of_a_denied_address_is_refused(attacker: Attacker, host: str) -> None:
    reply = attacker.put("ssrf", {"url": f"http://{host}:{attacker.gateway.port}/mcp", "startup_timeout": 5})
    attacker.refused(reply, "denied network", "gateway.admin.deny_networks")


def test_a_url_server_stored_when_allowed_is_not_connected_once_its_network_is_denied(tmp_path: Path) -> None:
    """The deny-list holds on every connection, not only at attach: a restart with a stricter list does not
    reconnect a server the admin API attached before."""
    with UpstreamProcess("streamable_http") as upstream:
        state = tmp_path / "state"
        lenient = write_config(tmp_path / "lenient.json", {}, {"admin": {"deny_networks": []}})
        with GatewayProcess(lenient, state_dir=state) as gateway:
            with httpx2.Client(base_url=gateway.base_url, timeout=TIMEOUT) as http:
                auth = {"Authorization": f"Bearer {gateway.token()}"}
                reply = http.put("/admin/servers/local", json={"url": upstream.url}, headers=auth)
                assert reply.status_code == 201, reply.text
        strict = write_config(tmp_path / "strict.json", {}, {"admin": {"deny_networks": DENIED_LOOPBACK}})
        with GatewayProcess(strict, state_dir=state, keep=None) as gateway:
            gateway.wait_connected([])
            with httpx2.Client(base_url=gateway.base_url, timeout=TIMEOUT) as http:
                servers = http.get("/readyz").json()["servers"]
            gateway.stop()
            assert "local" not in servers or not servers["local"]["connected"], servers
            assert "is not restored" in gateway.stderr_text() and "denied network" in gateway.stderr_text()
