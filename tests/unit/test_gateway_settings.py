"""The `gateway` section of a config file: defaults, and bad values refused with the field named."""

from __future__ import annotations

from typing import Any

import pytest

from lash_gateway import ConfigError, load_gateway_config


def test_a_config_without_a_gateway_section_gets_the_defaults() -> None:
    settings = load_gateway_config({}).settings
    assert settings.host == "127.0.0.1"
    assert settings.export.session_idle_timeout == 1800


@pytest.mark.parametrize(
    ("section", "message"),
    [
        pytest.param(
            {"export": {"session_idle_timeout": 0}},
            "field 'gateway.export.session_idle_timeout': Input should be greater than 0",
            id="idle-timeout-zero",
        ),
        pytest.param(
            {"export": {"session_idle_timeout": float("inf")}},
            "field 'gateway.export.session_idle_timeout': Input should be a finite number",
            id="idle-timeout-infinite",
        ),
        pytest.param(
            {"export": {"session_idle_timeout": "soon"}},
            "field 'gateway.export.session_idle_timeout': Input should be a valid number",
            id="idle-timeout-text",
        ),
        pytest.param({"exprot": {}}, "field 'gateway.exprot': Extra inputs are not permitted", id="unknown-key"),
        pytest.param(  # an unset variable in a templated config must not switch authentication off
            {"auth_token": ""},
            "field 'gateway.auth_token': Value error, is empty: leave it out to serve without a token, or give one",
            id="auth-token-empty",
        ),
        pytest.param(
            {"admin": {"token": ""}},
            "field 'gateway.admin.token': Value error, is empty: leave it out to have one generated, or give one",
            id="admin-token-empty",
        ),
    ],
)
def test_a_bad_gateway_value_names_its_field(section: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_gateway_config({"gateway": section})
    assert message in str(caught.value)
