"""`lash-gateway serve` warns an operator who exposes the MCP endpoints beyond loopback without a token."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from lash_gateway import GatewaySettings
from lash_gateway.admin._cli import exposure_warning


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "gateway.internal"])
def test_listening_beyond_loopback_without_a_token_is_warned_about(host: str) -> None:
    warning = exposure_warning(host, GatewaySettings())
    assert warning is not None
    assert host in warning and "gateway.auth_token" in warning


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_is_not_warned_about(host: str) -> None:
    assert exposure_warning(host, GatewaySettings()) is None


def test_a_token_silences_the_warning() -> None:
    assert exposure_warning("0.0.0.0", GatewaySettings(auth_token=SecretStr("t"))) is None
