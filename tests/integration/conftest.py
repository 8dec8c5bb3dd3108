"""Fixtures for the gateway service tests: the real `lash-gateway serve` process, and the gateway in-process;
and `collect_garbage`, for the pool tests that want a leaked resource to fail the test that leaked it.

Helpers live in `tests.integration._gateway`; this file only wires them into pytest.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Iterator, Sequence
from functools import partial
from pathlib import Path

import anyio
import pytest

from tests.integration._gateway import (
    AUTH_TOKEN,
    EXTRA_ALLOWED_HOST,
    EXTRA_ALLOWED_ORIGIN,
    HTTP_SERVER,
    STDIO_SERVER,
    GatewayProcess,
    GatewayStarter,
    InProcessGateway,
    ServiceGateway,
    http_upstream,
    run_gateway_in_process,
    stdio_upstream,
    wait_servers_connected,
    write_config,
)
from tests.servers.launch import UpstreamProcess


@pytest.fixture(scope="module")
def module_http_upstream() -> Iterator[UpstreamProcess]:
    """One streamable-HTTP `tests.servers.upstream` for a whole module (the `upstream` factory is per test)."""
    with UpstreamProcess("streamable_http") as server:
        yield server


@pytest.fixture(scope="module")
async def service_gateway(
    tmp_path_factory: pytest.TempPathFactory, module_http_upstream: UpstreamProcess
) -> AsyncIterator[ServiceGateway]:
    """`lash-gateway serve --port 0` with a stdio upstream (`local`) and a streamable-HTTP one (`remote`),
    shared by a module; yielded once `/readyz` shows both connected."""
    config = write_config(
        tmp_path_factory.mktemp("service-gateway") / "config.json",
        {STDIO_SERVER: stdio_upstream(), HTTP_SERVER: http_upstream(module_http_upstream.url)},
    )
    state_dir = tmp_path_factory.mktemp("service-gateway-state")
    process = await anyio.to_thread.run_sync(partial(GatewayProcess, config, state_dir=state_dir))
    try:
        await wait_servers_connected(process.base_url, [STDIO_SERVER, HTTP_SERVER])
        yield ServiceGateway(process, module_http_upstream)
    finally:
        await anyio.to_thread.run_sync(process.stop)


@pytest.fixture(scope="module")
async def secured_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GatewayProcess]:
    """`lash-gateway serve` without upstreams whose config sets `auth_token` (`AUTH_TOKEN`) and one extra allowed
    host and origin; only its plugin tool is offered."""
    config = write_config(
        tmp_path_factory.mktemp("secured-gateway") / "config.json",
        {},
        {
            "auth_token": AUTH_TOKEN,
            "allowed_hosts": [f"{EXTRA_ALLOWED_HOST}:*"],
            "allowed_origins": [f"{EXTRA_ALLOWED_ORIGIN}:*"],
        },
    )
    state_dir = tmp_path_factory.mktemp("secured-gateway-state")
    process = await anyio.to_thread.run_sync(partial(GatewayProcess, config, state_dir=state_dir))
    try:
        await wait_servers_connected(process.base_url, [])
        yield process
    finally:
        await anyio.to_thread.run_sync(process.stop)


@pytest.fixture
def gateway_process(tmp_path: Path) -> Iterator[GatewayStarter]:
    """Factory: ``start(config_path=None, *, global_args=()) -> GatewayProcess`` (blocks until the banner; its
    state directory is under `tmp_path`); every process started is stopped with SIGTERM and reaped at teardown."""
    started: list[GatewayProcess] = []

    def start(config: Path | None = None, *, global_args: Sequence[str] = ()) -> GatewayProcess:
        state_dir = tmp_path / f"gateway-state-{len(started)}"
        process = GatewayProcess(config, state_dir=state_dir, global_args=global_args)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


@pytest.fixture
async def inprocess_gateway() -> AsyncIterator[InProcessGateway]:
    """A `Gateway` with no configured servers, its HTTP app served by uvicorn in this process."""
    async with run_gateway_in_process() as served:
        yield served


@pytest.fixture
def collect_garbage() -> Iterator[None]:
    """Collect at teardown, so a resource the test leaked (ResourceWarning: unclosed stream) fails this test.

    Used with ``pytestmark = pytest.mark.usefixtures("collect_garbage")``, which sets it up before the test's own
    fixtures and so tears it down after them, as an autouse fixture would.
    """
    yield
    gc.collect()
