"""What the command prints when something goes wrong, as a new user meets it: one line that says what and why.

Regressions: `lash-gateway -v inspect` with a bad command printed `upstream connection failed` (no server, no
reason) and then `server attached`; a port in use gave a traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path
from typing import Final

from tests.servers.launch import GATEWAY_COMMAND, PROJECT_ROOT, child_env, write_config

TIMEOUT: Final = 60.0


def run(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*GATEWAY_COMMAND, *args],
        cwd=PROJECT_ROOT,
        env=child_env(home=home),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def bad_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "bad.json", {"bad": {"command": "no-such-command-here", "startup_timeout": 5}})


def test_a_server_that_cannot_start_is_said_with_its_name_and_why(tmp_path: Path) -> None:
    result = run("-v", "inspect", "--config", str(bad_config(tmp_path)), home=tmp_path)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.splitlines()
    assert any("upstream bad: connection failed" in line and "command not found" in line for line in lines), lines
    assert any("server bad attached (stdio) but not connected: command not found" in line for line in lines), lines
    assert not any(line.endswith("server attached") for line in lines)


def test_json_logs_carry_the_facts_as_fields(tmp_path: Path) -> None:
    result = run("--log-format", "json", "inspect", "--config", str(bad_config(tmp_path)), home=tmp_path)
    records = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    failures = [record for record in records if "connection failed" in record["message"]]
    assert failures and failures[0]["server"] == "bad" and failures[0]["transport"] == "stdio"
    assert "command not found" in failures[0]["reason"]
    assert {"time", "level", "logger", "message"} <= set(failures[0])


def test_a_port_in_use_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run("serve", "--port", str(port), "--state-dir", str(tmp_path / "state"), home=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()], result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "Traceback" not in result.stderr
