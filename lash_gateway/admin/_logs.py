"""How the CLI logs: one handler on stderr, text for people or JSON for log shippers, secrets redacted.

Library code never configures logging; `configure_logging` is for the `lash-gateway` command. Lines
carry their facts in the message (`upstream time: connect failed: ...`); the JSON form also has them
as fields, from the `extra=` of each call. Every URL in a line (ours, the SDK's, httpx2's, a
traceback's) loses its userinfo and query values first, and every secret value of a config the
process knows (header and env values, URL credentials and query values) is replaced wherever it
appears. The per-request lines of httpx2 and httpcore2 are off unless `-v`: a busy gateway would
write one per upstream call.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Final, Literal, TypeAlias

from .._redact import redact

__all__ = ["LOG_FORMATS", "LogFormat", "configure_logging"]

LogFormat: TypeAlias = Literal["text", "json"]
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
_PER_REQUEST_LOGGERS: Final = ("httpx2", "httpcore2")
_RECORD_FIELDS: Final = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
"""Attributes every record has; anything else on a record came from `extra=`."""


class _TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        # Each string before encoding: JSON escapes quotes and backslashes, and an escaped secret is not found.
        return json.dumps(_redacted(line), ensure_ascii=False)


def _redacted(value: Any) -> Any:
    """`value` (a line's fields) with `redact` applied to every string in it; what JSON lacks, as text."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(str(key)): _redacted(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int | float):  # a number can be a known secret too (a PIN)
        scrubbed = redact(text := str(value))
        return value if scrubbed == text else scrubbed
    return redact(str(value))


def configure_logging(level: int, log_format: LogFormat = "text") -> None:
    """Send every log line to stderr at `level` and above, as text or JSON, URLs redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if log_format == "json" else _TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in _PER_REQUEST_LOGGERS:
        logging.getLogger(name).setLevel(level if level <= logging.DEBUG else logging.WARNING)
