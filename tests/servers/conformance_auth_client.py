"""The gateway as a client of the official MCP conformance suite's authorization scenarios
(`conformance client --suite auth --command "python -m tests.servers.conformance_auth_client"`).

The suite starts a scenario's MCP server and authorization server on loopback and runs this with the server's URL as
the last argument (and `MCP_CONFORMANCE_SCENARIO`, and `MCP_CONFORMANCE_CONTEXT` with credentials for the scenarios
that hand some out). This starts a gateway in this process (its state in a temporary directory), attaches the URL
with the `oauth` config the scenario calls for, plays the operator's browser when the gateway announces an
authorization URL (the scenarios' authorization servers approve at once, and redirect to the gateway's own
`/oauth/callback`), then lists the tools through the gateway and calls the first one. Exit 0 when that call was
answered, 1 otherwise: the suite grades what the gateway sent upstream.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Final

import anyio
import httpx2

from lash_gateway import GatewayConfig, McpServerConfig, StateStore
from lash_gateway.admin._state import oauth_key
from tests.integration._gateway import connect, run_gateway_in_process

NAME: Final = "scenario"
WAIT: Final = 20.0


def oauth_config(scenario: str, context: dict[str, Any]) -> dict[str, Any]:
    """The `oauth` key a scenario calls for: the credentials it hands out, in the grant they are for."""
    if scenario == "auth/client-credentials-basic":
        return {
            "grant": "client_credentials",
            "client_id": context["client_id"],
            "client_secret": context["client_secret"],
        }
    if scenario == "auth/client-credentials-jwt":
        return {
            "grant": "client_credentials",
            "client_id": context["client_id"],
            "private_key_pem": context["private_key_pem"],
            "signing_algorithm": context.get("signing_algorithm", "ES256"),
        }
    if "client_id" in context:  # a pre-registered client
        return {key: context[key] for key in ("client_id", "client_secret") if key in context}
    if scenario == "auth/basic-cimd":  # the document URL the scenario's authorization server expects
        return {"client_metadata_url": "https://conformance-test.local/client-metadata.json"}
    return {}


async def run(url: str) -> int:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT", "{}"))
    config = McpServerConfig.parse({"url": url, "oauth": oauth_config(scenario, context)}, name=NAME)
    with tempfile.TemporaryDirectory(prefix="lash-conformance-auth-") as state:
        store = StateStore(Path(state) / "state.sqlite3", oauth_key(Path(state)))
        async with run_gateway_in_process(GatewayConfig(), store=store) as served, anyio.create_task_group() as tg:
            pool = served.gateway.factory.pool
            attached = anyio.Event()

            async def attach() -> None:
                try:
                    await pool.attach(NAME, config, fail_fast=True)
                finally:
                    attached.set()

            async def browse() -> None:
                """Approve every authorization the gateway announces (a step-up asks again during a call)."""
                async with httpx2.AsyncClient(follow_redirects=True, timeout=WAIT) as browser:
                    while True:
                        await pool.authorizations.announced(NAME).wait()
                        authorization_url = pool.authorizations.url_of(NAME)
                        if authorization_url is not None:
                            await browser.get(authorization_url)

            tg.start_soon(attach)
            tg.start_soon(browse)
            with anyio.fail_after(WAIT):
                await attached.wait()
                async with connect(served.base_url, "http-legacy") as handle:
                    tools = await handle.list_tools()
                    if tools:
                        await handle.client.call_tool(tools[0].name, {})
            tg.cancel_scope.cancel()
    return 0


def main() -> None:
    try:
        code = anyio.run(run, sys.argv[-1])
    except Exception as exc:  # the suite reads the exit code; say why on stderr
        print(f"conformance_auth_client: {type(exc).__name__}: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
