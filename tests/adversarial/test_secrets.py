"""Secrets in a server's URL (userinfo, query values), headers and env never reach any output of the gateway:
admin answers of every kind, MCP answers, /metrics, /readyz, stdout, and the log at info and at debug level, as
text and as JSON.

Regression: the HTTP client logged every upstream request at INFO with the full URL
(`http://user:password@host/mcp?api_key=...`), and an attach error quoted the full URL in its 502 body.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Final

import httpx2
import pytest

from tests.integration._gateway import connect
from tests.servers.launch import GatewayProcess, UpstreamProcess, write_config

pytestmark = pytest.mark.anyio

USER_SECRET: Final = "us3r-s3cret"
PASSWORD_SECRET: Final = "pa55'-s3cret"
QUERY_SECRET: Final = "qu3ry'-s3cret"
"""Quotes are legal in userinfo and query values, and httpx2 prints them as they are."""
HEADER_SECRET: Final = "h3ader-s3cret"
SECRETS: Final = (USER_SECRET, PASSWORD_SECRET, QUERY_SECRET, HEADER_SECRET)
CALLS: Final = 20


def with_secrets(url: str, path: str | None = None) -> str:
    scheme, _, rest = url.partition("://")
    host, _, original_path = rest.partition("/")
    return f"{scheme}://{USER_SECRET}:{PASSWORD_SECRET}@{host}/{path or original_path}?api_key={QUERY_SECRET}&x=1"


@pytest.mark.parametrize("verbose", [False, True], ids=["info", "debug"])
@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_url_header_and_env_secrets_reach_no_output(tmp_path: Path, verbose: bool, log_format: str) -> None:
    outputs: list[str] = []
    with UpstreamProcess("streamable_http") as upstream, socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{closed.getsockname()[1]}/mcp"
        config = write_config(tmp_path / "config.json", {}, {"log_format": log_format})
        global_args = ["-v"] if verbose else []
        with GatewayProcess(config, state_dir=tmp_path / "state", global_args=global_args, keep=None) as gateway:
            auth = {"Authorization": f"Bearer {gateway.token()}"}
            async with httpx2.AsyncClient(base_url=gateway.base_url, headers=auth, timeout=30.0) as admin:

                async def request(method: str, path: str, expected: int, body: Any = None) -> None:
                    reply = await admin.request(method, path, json=body)
                    outputs.append(reply.text)
                    assert reply.status_code == expected, reply.text

                headers = {"X-Api-Key": HEADER_SECRET}
                await request(
                    "PUT", "/admin/servers/good", 201, {"url": with_secrets(upstream.url), "headers": headers}
                )
                await request("PUT", "/admin/servers/nothere", 502, {"url": with_secrets(upstream.url, "nothere")})
                await request("PUT", "/admin/servers/down", 502, {"url": with_secrets(refused), "headers": headers})
                sse = {"url": with_secrets(upstream.url), "type": "sse", "headers": headers, "startup_timeout": 3}
                await request("PUT", "/admin/servers/wrongkind", 502, sse)
                await request("GET", "/admin/servers", 200)
                await request("GET", "/admin/servers/good", 200)
                async with connect(gateway.base_url, "http-legacy") as client:
                    for index in range(CALLS):
                        result = await client.client.call_tool("good__echo", {"text": f"call {index}"})
                        outputs.append(result.model_dump_json())
                await request("POST", "/admin/servers/good/reconnect", 202)
                outputs.append((await admin.get("/metrics")).text)
                outputs.append((await admin.get("/readyz")).text)
                await request("DELETE", "/admin/servers/good", 200)
            gateway.stop()
            log = gateway.stderr_text()
            outputs += [log, gateway.stdout_text()]
    assert "good" in log and (("DEBUG" in log) == verbose)
    for output in outputs:
        for secret in SECRETS:
            assert secret not in output, f"{secret} leaked in: {output[:2000]}"
