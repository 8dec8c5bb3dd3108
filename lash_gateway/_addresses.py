"""IP addresses as a connection treats them, for deny-list checks.

One IPv4 destination has many spellings: `::ffff:169.254.169.254` (IPv4-mapped), `::169.254.169.254`
(IPv4-compatible), `64:ff9b::a9fe:a9fe` (NAT64), `2002:a9fe:a9fe::` (6to4), and `0.0.0.0` or `::`
reach this machine itself. A deny-list that compares only the literal address misses all of them, so
`reached_addresses` lists every address a connection may end up at, and a destination is denied when
any of them is.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import Final, TypeAlias

__all__ = ["IPAddress", "IPNetwork", "canonical_network", "denied_by", "reached_addresses"]

IPAddress: TypeAlias = IPv4Address | IPv6Address
IPNetwork: TypeAlias = IPv4Network | IPv6Network

_IPV4_MAPPED: Final = IPv6Network("::ffff:0:0/96")
_IPV4_COMPATIBLE: Final = ip_network("::/96")
_NAT64_WELL_KNOWN: Final = ip_network("64:ff9b::/96")
"""RFC 6052: the IPv4 address in the last 32 bits."""
_NAT64_LOCAL: Final = ip_network("64:ff9b:1::/48")
"""RFC 8215: local-use NAT64, with a prefix length the operator picks; both common layouts are read."""
_THIS_HOST_V4: Final = ip_network("0.0.0.0/8")
_LOOPBACKS: Final = (ip_address("127.0.0.1"), ip_address("::1"))


def reached_addresses(address: IPAddress) -> tuple[IPAddress, ...]:
    """`address` and every address a connection to it may reach: the IPv4 address embedded in an IPv4-mapped,
    IPv4-compatible, NAT64, 6to4 or Teredo address, and loopback for `0.0.0.0/8` and `::`."""
    reached: list[IPAddress] = [address]
    if isinstance(address, IPv6Address):
        reached += _embedded_ipv4(address)
        if address.is_unspecified:
            reached += _LOOPBACKS
    for candidate in list(reached):
        if isinstance(candidate, IPv4Address) and candidate in _THIS_HOST_V4:
            reached += _LOOPBACKS
    return tuple(dict.fromkeys(reached))


def denied_by(address: IPAddress, deny: Iterable[IPNetwork]) -> IPNetwork | None:
    """The first network of `deny` that `address` reaches into (see `reached_addresses`), or None."""
    reached = reached_addresses(address)
    for network in deny:
        network = canonical_network(network)
        if any(candidate.version == network.version and candidate in network for candidate in reached):
            return network
    return None


def canonical_network(network: IPNetwork) -> IPNetwork:
    """An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) as the IPv4 network it stands for."""
    if isinstance(network, IPv6Network) and network.prefixlen >= 96 and network.subnet_of(_IPV4_MAPPED):
        first = network.network_address.ipv4_mapped
        assert first is not None  # inside ::ffff:0:0/96
        return ip_network(f"{first}/{network.prefixlen - 96}")
    return network


def _embedded_ipv4(address: IPv6Address) -> Sequence[IPAddress]:
    found: list[IPAddress] = []
    if address in _IPV4_MAPPED:
        assert address.ipv4_mapped is not None
        found.append(address.ipv4_mapped)
    elif address in _IPV4_COMPATIBLE and int(address) > 1:  # `::` and `::1` are not IPv4 addresses
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _NAT64_WELL_KNOWN or address in _NAT64_LOCAL:
        found.append(IPv4Address(int(address) & 0xFFFFFFFF))
    if address in _NAT64_LOCAL:
        bits = int(address)
        # RFC 6052 /48 layout: octets 1-2 in bits 48-63, bits 64-71 reserved, octets 3-4 in bits 72-87.
        found.append(IPv4Address(((bits >> 64) & 0xFFFF) << 16 | ((bits >> 40) & 0xFFFF)))
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found += address.teredo
    return found
