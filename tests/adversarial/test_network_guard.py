"""The deny-list holds on every connection an upstream makes, not only when the admin API admits it: a pool attach
with a guard (as the admin API and a restart give) never connects into a denied network, whatever the host name
resolves to, on both HTTP transports.

This also pins `_network._GuardedTransport`, which swaps httpx2's connection pool (a private attribute): if an
httpx2 upgrade renamed it, connections would go unchecked and these tests would fail.
"""

from __future__ import annotations

from ipaddress import ip_network
from typing import Final

import anyio
import pytest

from lash_gateway import McpPluginFactory, UpstreamUnavailable
from lash_gateway.upstream._network import NetworkGuard
from tests.integration._helpers import http_config
from tests.servers.launch import HttpTransport, UpstreamFactory

pytestmark = pytest.mark.anyio

WAIT: Final = 20.0
LOOPBACK: Final = NetworkGuard([ip_network("127.0.0.0/8"), ip_network("::1/128")])
ELSEWHERE: Final = NetworkGuard([ip_network("10.0.0.0/8")])


@pytest.mark.parametrize("transport", ["streamable_http", "sse"])
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
async def test_a_guarded_upstream_does_not_connect_into_a_denied_network(
    upstream: UpstreamFactory, transport: HttpTransport, host: str
) -> None:
    server = upstream(transport=transport)
    config = http_config(server, startup_timeout=5).model_copy(update={"url": server.url.replace("127.0.0.1", host)})
    async with McpPluginFactory() as factory:
        with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable) as refused:
            await factory.pool.attach("guarded", config, guard=LOOPBACK)
        assert "denied network 127.0.0.0/8" in str(refused.value) or "denied network ::1/128" in str(refused.value)
        assert "gateway.admin.deny_networks" in str(refused.value)
        with anyio.fail_after(WAIT):
            status = await factory.pool.attach("allowed", config, guard=ELSEWHERE)
        assert status.connected
