"""How a failure of an upstream is said: why, in one line, and with a traceback only for what nothing expects.

Regression: a caught unexpected exception in a supervisor was turned into an endless quiet reconnect loop.
"""

from __future__ import annotations

import logging

import httpx2
import pytest

from lash_gateway.upstream._describe import describe_error, log_failure

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
