"""How a failure of an upstream is said: why, in one line, and with a traceback only for what nothing expects.

Regression: a caught unexpected exception in a supervisor was turned into an endless quiet reconnect loop.
"""

from __future__ import annotations

import logging

import httpx2
import pytest
from mcp.client.auth import OAuthFlowError

from lash_gateway.upstream._describe import describe_error, log_failure, oauth_reason

log = logging.getLogger("lash_gateway.test")


def test_an_unexpected_error_is_an_error_with_its_traceback_once_in_a_row(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        last = log_failure(log, "up", "connection failed", RuntimeError("a bug"))
        again = log_failure(log, "up", "connection failed", RuntimeError("a bug"), last)
        after = log_failure(log, "up", "connection failed", RuntimeError("a bug"), None)
    first, second, third = caplog.records
    assert first.levelno == logging.ERROR and first.exc_info is not None
    assert "upstream up: connection failed, unexpectedly: RuntimeError: a bug" in first.getMessage()
    assert second.exc_info is None and last == again == "RuntimeError: a bug"
    assert third.exc_info is not None and after == "RuntimeError: a bug"


def test_an_expected_failure_is_a_warning_with_why_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    request = httpx2.Request("GET", "http://user:pw@127.0.0.1:9/mcp?key=v")
    with caplog.at_level(logging.WARNING):
        last = log_failure(log, "up", "connection failed", httpx2.ConnectError("refused", request=request), server_x=1)
    [record] = caplog.records
    assert last is None and record.levelno == logging.WARNING and record.exc_info is None
    assert record.getMessage() == "upstream up: connection failed: cannot connect to http://127.0.0.1:9/mcp: refused"
    assert record.__dict__["server"] == "up" and record.__dict__["server_x"] == 1


def test_descriptions_of_exception_groups_name_each_distinct_leaf() -> None:
    group = ExceptionGroup("x", [OSError("a"), ExceptionGroup("y", [OSError("a"), ValueError("b")])])
    assert describe_error(group) == "OSError: a; ValueError: b"


HIDDEN = "OAuthFlowError: the authorization server's answer is not shown"
METHOD = "unsupported token_endpoint_auth_method 'client_secret_jwt'"
NO_SECRET = "registered for 'client_secret_post' but issued no client_secret"


@pytest.mark.parametrize(
    ("message", "shown"),
    [
        (
            'Token exchange failed (400): {"error": "invalid_grant", "code": "c0de"}',
            "Token exchange failed (400): invalid_grant",
        ),
        ("Token exchange failed (400): Bad Request: code=c0de&code_verifier=v", "Token exchange failed (400)"),
        ("refresh token: rt_s3cret was refused", HIDDEN),
        ("Code: c0de-s3cret", HIDDEN),
        (METHOD, METHOD),  # names of methods and fields alone say what went wrong and hold no secret
        (NO_SECRET, NO_SECRET),
    ],
)
def test_an_oauth_failure_shows_why_and_no_code_token_or_secret(message: str, shown: str) -> None:
    assert oauth_reason(OAuthFlowError(message)) == shown
