"""Keep an HTTP upstream out of denied networks, at connect time.

A check when a server is attached is not enough: its host may resolve elsewhere a second later (DNS
rebinding), or to several addresses of which the client picks another. `NetworkGuard` resolves the
host itself, refuses when any address reaches into a denied network (in any spelling, see
`_addresses`), and connects to the addresses it checked, so the address connected to is one that
passed. Servers attached through the admin API get a guard; servers of the config file do not.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterable
from ipaddress import ip_address

import anyio
import httpcore2
import httpx2

from .._addresses import IPAddress, IPNetwork, denied_by

__all__ = ["NetworkGuard", "NetworkRefused", "guarded_transport"]


class NetworkRefused(httpcore2.ConnectError):
    """A connection the deny-list refuses; a connect error to httpx2, so transports handle it as one."""


class NetworkGuard:
    """The networks an upstream must not reach (`gateway.admin.deny_networks`)."""

    def __init__(self, deny: Iterable[IPNetwork]) -> None:
        self.deny: tuple[IPNetwork, ...] = tuple(deny)

    def refusal(self, host: str, address: IPAddress) -> str | None:
        """Why connecting to `address` (which `host` resolved to) is refused, or None when it is not."""
        network = denied_by(address, self.deny)
        if network is None:
            return None
        shown = f"the host {host!r} resolves to {address}" if str(address) != host else f"the address {address}"
        return (
            f"{shown}, inside the denied network {network} (cloud metadata and link-local addresses are denied by "
            "default); change gateway.admin.deny_networks to allow it"
        )

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, once each, in resolver order.

        Raises:
            NetworkRefused: any of them reaches into a denied network.
            OSError: `host` does not resolve.
        """
        infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        found = list(dict.fromkeys(ip_address(str(info[4][0]).split("%")[0]) for info in infos))
        for address in found:
            if (reason := self.refusal(host, address)) is not None:
                raise NetworkRefused(f"refused to connect: {reason}")
        return found


class _GuardedBackend(httpcore2.AsyncNetworkBackend):
    """anyio's network backend, connecting only to addresses the guard let through."""

    def __init__(self, guard: NetworkGuard) -> None:
        self._guard = guard
        self._inner = httpcore2.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        error: Exception = httpcore2.ConnectError(f"no address for {host!r}")
        try:
            with anyio.fail_after(timeout):  # resolving and every attempt together, as one connect
                for address in await self._guard.addresses(host, port):
                    try:
                        return await self._inner.connect_tcp(str(address), port, None, local_address, socket_options)
                    except httpcore2.ConnectError as exc:
                        error = exc
        except OSError as exc:
            raise httpcore2.ConnectError(f"cannot resolve {host!r}: {exc}") from exc
        except TimeoutError as exc:
            raise httpcore2.ConnectTimeout(f"connecting to {host!r} timed out") from exc
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore2's interface)
        socket_options: Iterable[httpcore2.SOCKET_OPTION] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        raise NetworkRefused("unix sockets are not allowed for guarded upstreams")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _GuardedTransport(httpx2.AsyncHTTPTransport):
    """httpx2's transport on a connection pool with the guarded backend.

    httpx2 takes no network backend, but the httpcore2 pool it wraps does (public httpcore2 API): the pool
    is swapped for one built alike with the backend. `_pool` is httpx2's one private name used here; the
    SSRF tests fail if an httpx2 upgrade renames it, since connections would then go unchecked.
    """

    def __init__(self, guard: NetworkGuard, ssl_context: ssl.SSLContext) -> None:
        super().__init__(verify=ssl_context)
        self._pool = httpcore2.AsyncConnectionPool(ssl_context=ssl_context, network_backend=_GuardedBackend(guard))


def guarded_transport(guard: NetworkGuard) -> httpx2.AsyncBaseTransport:
    """An httpx2 transport whose every connection passes `guard`. Environment proxies are not used: the guard
    must see the address actually connected to."""
    return _GuardedTransport(guard, httpx2.create_ssl_context())
