"""Secrets out of what the gateway shows: URLs, command lines, and any text that may hold a URL.

URLs are secrets like headers: `http://user:password@host/mcp?api_key=...` carries credentials in its
userinfo and its query values. Everything the gateway prints (status, errors, logs) goes through
these first. Best effort beyond that: a secret inside a URL path (`/mcp/<key>/sse`) cannot be told
from a path; pass it in a header instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["REDACTED", "config_secrets", "redact", "redact_urls", "redacted_args", "redacted_url", "remember_secrets"]

REDACTED: Final = "***"
"""What is shown in place of a secret."""

# Words that mark a command-line flag as carrying a secret (`--api-key X`, `--token=X`).
_SECRET_FLAG_WORDS: Final = ("key", "token", "secret", "password", "passwd", "auth", "credential")
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
"""Up to the next whitespace: quotes and backticks are legal in userinfo and query values."""
_MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not scrubbed from text: they would replace ordinary words."""
_known: set[str] = set()
"""Secret values of this process's configs (`remember_secrets`), scrubbed from every log line by value."""


def remember_secrets(values: Iterable[str]) -> None:
    """Have `redact` scrub these values from text from now on, wherever they appear (process-wide)."""
    _known.update(value for value in values if len(value) >= _MIN_SECRET_LENGTH)


def config_secrets(url: str | None = None, values: Iterable[str] = ()) -> list[str]:
    """The secret parts of a server config: `values` (header or env values), and the userinfo and query values
    of `url`."""
    found = list(values)
    if url is not None:
        try:
            parts = urlsplit(url)
        except ValueError:
            return found
        found += [part for part in (parts.username, parts.password) if part]
        found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True) if value]
    return found


def redact(text: str) -> str:
    """`text` with every remembered secret value replaced, and every URL passed through `redact_urls`."""
    for secret in _known:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return redact_urls(text)


def redacted_url(url: str) -> str:
    """`url` with its userinfo, query values and fragment replaced by `***` (query keys are kept)."""
    try:
        parts = urlsplit(url)
    except ValueError:  # not a URL after all (e.g. an unclosed IPv6 bracket): hide all of it
        return REDACTED
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode([(key, REDACTED if value else "") for key, value in pairs], safe="*")
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def redact_urls(text: str) -> str:
    """`text` with every URL in it that has userinfo, a query or a fragment passed through `redacted_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_redacted_match, text)


def redacted_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments with the values of secret-looking flags (`--api-key X`, `--token=X`) and the
    credentials of URL-shaped arguments replaced by `***`."""
    shown: list[str] = []
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append(REDACTED)
            hide_next = False
        elif arg.startswith("-") and _is_secret_flag(arg.partition("=")[0]):
            if "=" in arg:
                shown.append(f"{arg.partition('=')[0]}={REDACTED}")
            else:
                shown.append(arg)
                hide_next = True
        elif "://" in arg:
            shown.append(redact_urls(arg))
        else:
            shown.append(arg)
    return shown


def _redacted_match(match: re.Match[str]) -> str:
    url = match.group(0)
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    return redacted_url(url)


def _is_secret_flag(flag: str) -> bool:
    lowered = flag.lower()
    return any(word in lowered for word in _SECRET_FLAG_WORDS)
