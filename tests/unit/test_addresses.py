"""Every spelling of a denied address is denied: IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo, and the
unspecified addresses that reach this machine.

Regression: the deny-list compared the literal address only, so `[::ffff:169.254.169.254]` reached the cloud
metadata service and, with loopback denied, `0.0.0.0`, `0` and `[::ffff:127.0.0.1]` reached loopback.
"""

from __future__ import annotations

from ipaddress import ip_address, ip_network

import pytest

from lash_gateway._addresses import denied_by, reached_addresses
from lash_gateway.admin._settings import DEFAULT_DENY_NETWORKS

DEFAULT = [ip_network(network) for network in DEFAULT_DENY_NETWORKS]
LOOPBACK = [ip_network("127.0.0.0/8"), ip_network("::1/128")]


@pytest.mark.parametrize(
    "address",
    [
        "169.254.169.254",
        "::ffff:169.254.169.254",  # IPv4-mapped
        "::ffff:a9fe:a9fe",  # the same, in hex
        "::169.254.169.254",  # IPv4-compatible
        "64:ff9b::a9fe:a9fe",  # NAT64, well-known prefix
        "64:ff9b:1::a9fe:a9fe",  # NAT64, local-use prefix, /96 layout
        "64:ff9b:1:a9fe:a9:fe00::",  # NAT64, local-use prefix, /48 layout
        "2002:a9fe:a9fe::1",  # 6to4
        "fe80::1",
        "100.100.100.200",
        "::ffff:100.100.100.200",
    ],
)
def test_every_spelling_of_a_metadata_address_is_denied_by_default(address: str) -> None:
    assert denied_by(ip_address(address), DEFAULT) is not None


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1", "::127.0.0.1", "0.0.0.0", "0.1.2.3", "::"]
)
def test_every_way_to_reach_loopback_is_denied_when_loopback_is(address: str) -> None:
    assert denied_by(ip_address(address), LOOPBACK) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "2606:2800:220:1::1", "::ffff:93.184.216.34", "10.0.0.1"])
def test_other_addresses_pass(address: str) -> None:
    assert denied_by(ip_address(address), DEFAULT) is None
    assert denied_by(ip_address(address), LOOPBACK) is None


def test_an_ipv4_mapped_deny_network_denies_the_ipv4_addresses_it_stands_for() -> None:
    assert denied_by(ip_address("10.1.2.3"), [ip_network("::ffff:10.0.0.0/104")]) == ip_network("10.0.0.0/8")


def test_reached_addresses_lists_the_address_itself_first_once() -> None:
    assert reached_addresses(ip_address("::ffff:127.0.0.1"))[:2] == (
        ip_address("::ffff:127.0.0.1"),
        ip_address("127.0.0.1"),
    )
    assert reached_addresses(ip_address("8.8.8.8")) == (ip_address("8.8.8.8"),)
