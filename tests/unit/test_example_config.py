"""`examples/gateway.json`, which the README's quick start points at, parses and does what the README says."""

from __future__ import annotations

from pathlib import Path

import pytest

from lash_gateway import McpServerConfig, StdioServerConfig, load_gateway_config
from lash_gateway.admin._policy import AdminPolicy

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.json"


def test_the_example_config_attaches_the_time_server_on_loopback() -> None:
    config = load_gateway_config(EXAMPLE)
    assert config.settings.host == "127.0.0.1"
    time_server = config.servers["time"]
    assert isinstance(time_server, StdioServerConfig)
    assert time_server.args[:2] == ["-m", "mcp_server_time"]


@pytest.mark.anyio
async def test_the_example_config_lets_the_admin_api_start_the_time_server() -> None:
    policy = AdminPolicy(load_gateway_config(EXAMPLE).settings.admin)
    for python in ("python3", "python"):
        to_run, guard = await policy.admit(McpServerConfig.stdio(python, ["-m", "mcp_server_time"]))
        assert isinstance(to_run, StdioServerConfig) and Path(to_run.command).is_absolute() and guard is None
