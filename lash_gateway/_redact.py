"""Secrets out of what the gateway shows: URLs, command lines, and any text that may hold a URL.

URLs are secrets like headers: `http://user:password@host/mcp?api_key=...` carries credentials in its
userinfo and its query values. Everything the gateway prints (status, errors, logs) goes through
these first. Best effort beyond that: a secret inside a URL path (`/mcp/<key>/sse`) cannot be told
from a path; pass it in a header instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Final
from urllib.parse import unquote_plus, urlsplit, urlunsplit

__all__ = ["REDACTED", "config_secrets", "redact", "redact_urls", "redacted_args", "redacted_url", "remember_secrets"]

REDACTED: Final = "***"
"""What is shown in place of a secret."""

# Words that mark a command-line flag as carrying a secret (`--api-key X`, `--token=X`), and a header or an
# environment variable as holding one.
_SECRET_FLAG_WORDS: Final = ("key", "token", "secret", "password", "passwd", "auth", "credential", "cookie")
_KEPT_FLAG_WORDS: Final = ("key", "token", "secret", "password", "passwd", "credential")
"""The flags whose values are also scrubbed from log lines by value: not `auth` (`--auth none`, `--no-auth x`)."""
_HEADER_FLAGS: Final = frozenset(("--header", "--headers"))
"""Flags whose value is an HTTP header line (`--header "Authorization: Bearer X"`, as mcp-remote takes a token):
the header's name is shown, its value hidden."""
_ENV_FLAGS: Final = frozenset(("-e", "--env"))
"""Flags whose value is `NAME=VALUE` (`docker run -e GITHUB_TOKEN=...`): the name is shown, the value hidden."""
_HEADER_LINE: Final = re.compile(r"([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*:")
_HEADER_NAME: Final = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")
_MIN_ARG_SECRET_LENGTH: Final = 8
"""Shorter argument values are hidden but not scrubbed from text: too many are ordinary words."""
_URL_IN_TEXT: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
"""Up to the next whitespace: quotes and backticks are legal in userinfo and query values."""
_MIN_SECRET_LENGTH: Final = 4
"""Shorter values are not scrubbed from text: they would replace ordinary words."""
_known: set[str] = set()
"""Secret values of this process's configs (`remember_secrets`), scrubbed from every log line by value."""


def remember_secrets(values: Iterable[str]) -> None:
    """Have `redact` scrub these values from text from now on, wherever they appear (process-wide), also as JSON
    and Python's repr quote them (escaping quotes, backslashes and control characters: a dict in a log line)."""
    for value in values:
        if len(value) >= _MIN_SECRET_LENGTH:
            quoted = (json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1])
            _known.update((value, *quoted))


def config_secrets(url: str | None = None, values: Iterable[str] = (), args: Sequence[str] = ()) -> list[str]:
    """The secret parts of a server config: `values` (header or env values), the userinfo and query values of
    `url`, and what `redacted_args` hides of `args`."""
    found = list(values)
    found += [secret for _, secret in _args_split(args) if secret]
    if url is not None:
        try:
            parts = urlsplit(url)
        except ValueError:
            return found
        found += [part for part in (parts.username, parts.password) if part]
        found += [secret for _, secret in _query_split(parts.query) if secret]
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
    query = "&".join(shown for shown, _ in _query_split(parts.query))
    fragment = REDACTED if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def _query_split(query: str) -> list[tuple[str, str | None]]:
    """Each `&`-separated part of `query` as shown (`key=***`; a part without `=` is all value: `***`), and the
    secret it hides, decoded as the server reads it (None: none)."""
    split: list[tuple[str, str | None]] = []
    for part in query.split("&") if query else ():
        key, equals, value = part.partition("=")
        if equals:
            split.append((f"{key}={REDACTED}" if value else part, unquote_plus(value) or None))
        else:
            split.append((REDACTED if part else part, unquote_plus(part) or None))
    return split


def redact_urls(text: str) -> str:
    """`text` with every URL in it that has userinfo, a query or a fragment passed through `redacted_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(_redacted_match, text)


def redacted_args(args: Sequence[str]) -> list[str]:
    """Command-line arguments with the values of secret-looking flags (`--api-key X`, `--token=X`) and of header
    flags (`--header "Authorization: Bearer X"`: `Authorization: ***`), and the credentials of URL-shaped
    arguments, replaced by `***`."""
    return [shown for shown, _ in _args_split(args)]


def _args_split(args: Sequence[str]) -> list[tuple[str, str | None]]:
    """Each argument as shown, and the secret to scrub from text by value (None: none)."""
    split: list[tuple[str, str | None]] = []
    flag: str | None = None  # a secret flag whose value is the next argument
    header: str | None = None  # a header flag's name given alone (`--headers Authorization "Bearer X"`)
    for arg in args:
        if header is not None:
            split.append((REDACTED, _kept(arg, _secret_name(header))))
            header = None
        elif flag in _HEADER_FLAGS and _HEADER_NAME.fullmatch(arg):
            split.append((arg, None))  # its value is the next argument
            header, flag = arg, None
        elif flag is not None:
            split.append(_flag_value(flag, arg))
            flag = None
        elif arg.startswith("-") and _is_secret_flag(name := arg.partition("=")[0]):
            if "=" in arg:
                shown, secret = _flag_value(name, arg.partition("=")[2])
                split.append((f"{name}={shown}", secret))
            else:
                split.append((arg, None))
                flag = name
        elif "://" in arg:
            split.append((redact_urls(arg), None))
        else:
            split.append((arg, None))
    return split


def _flag_value(flag: str, value: str) -> tuple[str, str | None]:
    """A secret flag's value as shown, and what of it to scrub by value: a header line and an environment
    assignment keep their names, and are scrubbed when the name is a secret's."""
    if flag in _ENV_FLAGS:
        name, equals, assigned = value.partition("=")
        if not equals:
            return value, None  # `-e NAME`: the value comes from the environment
        return f"{name}={REDACTED}", _kept(assigned, _secret_name(name))
    header = _HEADER_LINE.match(value) if flag in _HEADER_FLAGS else None
    if header is None:
        words = re.split(r"[^a-z0-9]+", flag.lower())  # whole words: not `--tokenizer`, `--keyword`
        return REDACTED, _kept(value, any(word in words for word in _KEPT_FLAG_WORDS))
    return f"{header.group(1)}: {REDACTED}", _kept(value[header.end() :].strip(), _secret_name(header.group(1)))


def _secret_name(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_FLAG_WORDS)


def _kept(value: str, secret: bool) -> str | None:
    return value if secret and len(value) >= _MIN_ARG_SECRET_LENGTH else None


def _redacted_match(match: re.Match[str]) -> str:
    url = match.group(0)
    if "@" not in url and "?" not in url and "#" not in url:
        return url
    return redacted_url(url)


def _is_secret_flag(flag: str) -> bool:
    return flag in _HEADER_FLAGS or flag in _ENV_FLAGS or _secret_name(flag)
