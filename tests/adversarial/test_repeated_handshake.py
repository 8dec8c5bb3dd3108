"""A client that repeats its handshake inside one session: `initialize` and `notifications/initialized` again and
again on the same streamable-HTTP session (the SDK answers both). The gateway registers the session once, so what it
keeps does not grow with the repeats, and the session still works afterwards.

Regression: each `notifications/initialized` left two callbacks on the session and each `initialize` one, about
1.6 KB a request held until the session ended: a client could grow the gateway by 0.8 MB a second per session.
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Final

import pytest

from lash_gateway import GatewayConfig, GatewaySettings
from tests.integration._gateway import initialize_body, raw_session, reply_to, run_gateway_in_process

pytestmark = pytest.mark.anyio

REPEATS: Final = 600
KEPT_PER_REPEAT: Final = 200
"""Bytes a repeat may leave behind on average: a tenth of what one did before, well over allocator noise."""


async def test_a_repeated_handshake_grows_nothing() -> None:
    async with (
        run_gateway_in_process(GatewayConfig(GatewaySettings(request_timeout=10))) as served,
        raw_session(served.mcp_url) as session,
    ):
        for _ in range(20):  # warm up: first-use allocations (caches, pools) are not growth
            await session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
            reply_to(await session.post(initialize_body()), 1)
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.take_snapshot()
            for _ in range(REPEATS):
                initialized = await session.post({"jsonrpc": "2.0", "method": "notifications/initialized"})
                assert initialized.status_code == 202, initialized.text
                reply_to(await session.post(initialize_body()), 1)
            gc.collect()
            after = tracemalloc.take_snapshot()
        finally:
            tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        assert grown < REPEATS * KEPT_PER_REPEAT, f"{grown} bytes kept after {REPEATS} repeated handshakes"
        listed = reply_to(await session.post({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}), 2)
        assert [tool["name"] for tool in listed["result"]["tools"]] == ["lash_gateway_status"]
