"""A round-robin TCP load balancer for replica tests: each new connection goes to the next backend in turn, with no
affinity of any kind (a client that opens a connection per request sends each request to another replica). A backend
that refuses the connection is skipped for the next one, as nginx does (`proxy_next_upstream error`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from itertools import cycle

import anyio
from anyio.abc import ByteStream, SocketStream

__all__ = ["Balancer", "balancing"]


@dataclass
class Balancer:
    url: str
    connections: list[str] = field(default_factory=list)
    """The backend (`host:port`) each connection went to, in order."""


@asynccontextmanager
async def balancing(backends: Sequence[str]) -> AsyncIterator[Balancer]:
    """Listen on a free loopback port and spread connections over `backends` (`http://host:port` URLs)."""
    targets = cycle([backend.removeprefix("http://") for backend in backends])
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    balancer = Balancer(f"http://127.0.0.1:{port}")

    async def handle(client: SocketStream) -> None:
        async with client:
            for _ in backends:
                target = next(targets)
                host, _, backend_port = target.rpartition(":")
                try:
                    server = await anyio.connect_tcp(host, int(backend_port))
                except OSError:
                    continue  # a backend that is down: the next one
                break
            else:
                return  # every backend is down: the client sees its connection closed
            balancer.connections.append(target)
            async with server, anyio.create_task_group() as tg:
                tg.start_soon(_pipe, client, server, tg.cancel_scope)
                tg.start_soon(_pipe, server, client, tg.cancel_scope)

    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, handle)
        yield balancer
        tg.cancel_scope.cancel()


async def _pipe(source: ByteStream, target: ByteStream, scope: anyio.CancelScope) -> None:
    """Copy until either side closes, then end both directions."""
    try:
        async for chunk in source:
            await target.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
        pass
    scope.cancel()
