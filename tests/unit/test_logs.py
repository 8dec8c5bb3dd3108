"""The CLI's log lines, text and JSON: a known secret is scrubbed from every line, whatever characters it holds."""

from __future__ import annotations

import json
import logging
import sys
from typing import Final

import pytest

from lash_gateway import _redact
from lash_gateway._redact import remember_secrets
from lash_gateway.admin._logs import LOG_FORMATS, LogFormat, _JsonFormatter, _TextFormatter

SECRET: Final = 'pa"ss\\word\tSECRET-in-a-log'
"""Quotes, backslashes and tabs are common in generated passwords and legal in header values: JSON escapes them."""


def written(log_format: LogFormat, record: logging.LogRecord) -> str:
    formatter = _JsonFormatter() if log_format == "json" else _TextFormatter()
    return formatter.format(record)


@pytest.fixture(autouse=True)
def known_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets this module remembers are forgotten after each test (the set is process-wide)."""
    monkeypatch.setattr(_redact, "_known", set())


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_a_secret_is_scrubbed_from_the_message_fields_and_traceback(log_format: LogFormat) -> None:
    remember_secrets([SECRET])
    try:
        raise RuntimeError(f"upstream refused key {SECRET}")
    except RuntimeError:
        exc_info = sys.exc_info()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "upstream said: %s", (f"bad key {SECRET}",), exc_info)
    record.detail = {"key": SECRET, "tries": [SECRET, 2]}  # as `extra=` sets it

    line = written(log_format, record)

    assert "SECRET-in-a-log" not in line
    assert line.count("***") == (4 if log_format == "json" else 2)
    if log_format == "json":
        fields = json.loads(line)
        assert fields["message"] == "upstream said: bad key ***"
        assert fields["detail"] == {"key": "***", "tries": ["***", 2]}


@pytest.mark.parametrize("log_format", LOG_FORMATS)
def test_a_secret_quoted_inside_a_repr_is_scrubbed(log_format: LogFormat) -> None:
    """A dict or a tuple in a line is written with repr, which escapes quotes and backslashes as JSON does."""
    remember_secrets([SECRET])
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "upstream sent %r", ({"token": SECRET},), None)

    assert "SECRET-in-a-log" not in written(log_format, record)


def test_a_number_that_is_a_known_secret_is_scrubbed_from_json_fields() -> None:
    remember_secrets(["12345678"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "upstream sent %s", ("{'pin': 12345678}",), None)
    record.data = {"pin": 12345678, "tries": 3}

    fields = json.loads(written("json", record))

    assert fields["data"] == {"pin": "***", "tries": 3}
    assert "12345678" not in fields["message"]
