"""Shared fixtures: the anyio backend, real upstream MCP server processes, and the end-of-session leak check.

Helpers live in `tests.servers.launch`; this file only wires them into pytest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.servers.launch import (
    HttpTransport,
    UpstreamFactory,
    UpstreamProcess,
    describe_leaks,
    wait_until_clean,
)

SESSION_MARKER_ENV = "LASH_TEST_SESSION"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def upstream() -> Iterator[UpstreamFactory]:
    """Factory: ``upstream(*extra_args, transport="streamable_http"|"sse", port=0) -> UpstreamProcess``.

    Each call starts ``python -m tests.servers.upstream`` and returns once it listens (at most 15 s); every server
    started is stopped and reaped at teardown.
    """
    started: list[UpstreamProcess] = []

    def start(*extra_args: str, transport: HttpTransport = "streamable_http", port: int = 0) -> UpstreamProcess:
        server = UpstreamProcess(transport, extra_args, port=port)
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


@pytest.fixture(scope="session", autouse=True)
def _no_leaked_processes_or_ports() -> Iterator[None]:
    """Fail the run if child processes or listening sockets of this pytest process outlive the session.

    Children are found through the /proc parent chain, and (for orphans re-parented after their parent died) by an
    environment marker that every child started with an inherited environment carries.
    """
    marker = f"{SESSION_MARKER_ENV}={os.getpid()}-{uuid.uuid4().hex}"
    name, _, value = marker.partition("=")
    os.environ[name] = value
    yield
    processes, sockets = wait_until_clean(os.getpid(), marker)
    if processes or sockets:
        pytest.fail(f"the test session left these behind:\n{describe_leaks(processes, sockets)}", pytrace=False)
