"""Which `Host` and `Origin` values the gateway answers (DNS rebinding protection), parsed, not prefix-matched.

A pattern is `name:port` or `name:*` for hosts, `scheme://name:port` or `scheme://name:*` for origins; a
name is a DNS name, an IPv4 address or a bracketed IPv6 address. A header is parsed the same way and
matched part by part, so `http://localhost:1@evil.example` is not an origin of `http://localhost:*`
(a prefix match took it for one), and the `null` origin of sandboxed pages matches nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["HostRules", "parse_host_pattern", "parse_origin_pattern"]

_NAME: Final = r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
_HOST: Final = re.compile(rf"{_NAME}(?::(\d{{1,5}}|\*))?")
_ORIGIN: Final = re.compile(rf"((?i:https?))://{_NAME}(?::(\d{{1,5}}|\*))?")
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}


@dataclass(frozen=True, slots=True)
class _Pattern:
    scheme: str | None
    name: str
    port: str | None
    """A port number, `*` for any, or None for the scheme's default (80 for a bare host)."""

    def matches(self, scheme: str | None, name: str, port: str | None) -> bool:
        return (
            self.scheme == scheme
            and self.name == name
            and (self.port == "*" or self.port == port or (self.port is None and port is None))
        )


def parse_host_pattern(pattern: str) -> _Pattern:
    """A `Host` pattern (`name:port` or `name:*`).

    Raises:
        ValueError: not of that shape.
    """
    match = _HOST.fullmatch(pattern)
    if match is None:
        raise ValueError(f"{pattern!r} is not a host pattern: write name:port or name:*")
    return _Pattern(None, match.group(1).lower(), match.group(2))


def parse_origin_pattern(pattern: str) -> _Pattern:
    """An `Origin` pattern (`http://name:port` or `https://name:*`).

    Raises:
        ValueError: not of that shape.
    """
    match = _ORIGIN.fullmatch(pattern)
    if match is None:
        raise ValueError(f"{pattern!r} is not an origin pattern: write http://name:port or http://name:*")
    scheme = match.group(1).lower()
    port = match.group(3)
    return _Pattern(scheme, match.group(2).lower(), _DEFAULT_PORTS[scheme] if port is None else port)


class HostRules:
    """The `Host` and `Origin` values a request may carry."""

    def __init__(self, hosts: Iterable[str], origins: Iterable[str]) -> None:
        """Raises `ValueError` for a malformed pattern."""
        self._hosts = tuple(parse_host_pattern(host) for host in hosts)
        self._origins = tuple(parse_origin_pattern(origin) for origin in origins)

    def host_allowed(self, host: str | None) -> bool:
        """A request must name its host, and it must be one of ours."""
        if not host:
            return False
        match = _HOST.fullmatch(host)
        if match is None or match.group(2) == "*":
            return False
        name, port = match.group(1).lower(), match.group(2)
        return any(pattern.matches(None, name, port) for pattern in self._hosts)

    def origin_allowed(self, origin: str | None) -> bool:
        """No `Origin` is fine (not a browser, or same-origin); one that is there must be ours."""
        if origin is None:
            return True
        match = _ORIGIN.fullmatch(origin)
        if match is None or match.group(3) == "*":
            return False
        scheme = match.group(1).lower()
        port = match.group(3) or _DEFAULT_PORTS[scheme]
        return any(pattern.matches(scheme, match.group(2).lower(), port) for pattern in self._origins)
