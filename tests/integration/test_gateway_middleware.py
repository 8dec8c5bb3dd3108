"""`McpExport.server.middleware` is the one extension point every inbound message passes, on every downstream
transport and era: a user's middleware sees `tools/call` on the fast path's transport too (the fast path steps
aside for it), and can rewrite what the client gets.

Regression: a middleware appended to `McpExport.server` ran on stdio, SSE and 2026-07-28 requests but silently
not on `tools/call` over handshake-era streamable HTTP, which the fast path answered itself.
"""

from __future__ import annotations

from typing import Any, Final

import anyio
import pytest
from mcp.server import ServerRequestContext

from tests.integration._gateway import CLIENT_MODES, ClientMode, connect, run_gateway_in_process, text_of

pytestmark = pytest.mark.anyio

WAIT: Final = 15.0
STATUS_TOOL: Final = "lash_gateway_status"


@pytest.mark.parametrize("mode", CLIENT_MODES)
async def test_a_user_middleware_sees_and_rewrites_every_tools_call(mode: ClientMode) -> None:
    seen: list[str] = []

    async def observe(ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        seen.append(ctx.method)
        result = await call_next(ctx)
        if ctx.method == "tools/call":
            result["content"] = [{"type": "text", "text": "rewritten by middleware"}]
        return result

    async with run_gateway_in_process() as served:
        served.gateway.export.server.middleware.append(observe)
        async with connect(served.base_url, mode) as client:
            with anyio.fail_after(WAIT):
                result = await client.client.call_tool(STATUS_TOOL, {})
    assert "tools/call" in seen
    assert text_of(result) == "rewritten by middleware"
