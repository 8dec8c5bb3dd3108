"""One line an operator can act on, from whatever the SDK, a transport or the gateway raised while talking to
an upstream: no exception group, no traceback, and no secret (URLs are redacted, remembered secret values
scrubbed, and of an authorization server's answer only its error code is kept)."""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final

import anyio
import httpx2
from mcp import MCPError
from mcp.client.auth import OAuthFlowError

from .._errors import UpstreamError
from .._redact import redact

__all__ = ["describe_error", "is_expected", "log_failure", "oauth_reason"]


def describe_error(exc: BaseException) -> str:
    """One line an operator can act on, from whatever the SDK or transport raised; URLs in it are redacted."""
    return redact(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(dict.fromkeys(_describe(leaf) for leaf in _leaves(exc)))
    if isinstance(exc, UpstreamError):
        return str(exc).split(": ", 1)[-1]
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {exc.filename or exc}"
    if isinstance(exc, PermissionError):
        return f"command not executable: {exc.filename or exc}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code} from {_without_secrets(exc.request.url)}"
    if isinstance(exc, httpx2.ConnectError):
        reason = f": {exc}" if str(exc) else ""  # the socket's reason, or the deny-list's (never the URL)
        return f"cannot connect to {_without_secrets(exc.request.url)}{reason}"
    if isinstance(exc, httpx2.SSEError):  # the stream's own words (an event over the size limit, a wrong type)
        return f"bad SSE stream: {exc}"
    if isinstance(exc, httpx2.HTTPError):
        return f"{type(exc).__name__}: HTTP transport error"
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    if isinstance(exc, OAuthFlowError):
        return f"authorization failed: {oauth_reason(exc)}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


_QUOTED_ANSWER: Final = re.compile(
    r"(?P<head>(?:Token exchange failed \(\d+\)|Registration failed: \d+)(?: \(redirected to \S+; not followed\))?)"
    r"(?::| ) ?(?P<body>.*)",
    re.DOTALL,
)
"""The SDK's messages that quote an authorization server's answer whole (which may echo the request's form)."""
_QUOTED_PARSE_ERROR: Final = re.compile(r"(?P<head>Invalid (?:token|registration) response):")
"""The SDK's messages that quote a token or registration response that failed validation (tokens, a secret)."""
_ERROR_CODE: Final = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_QUOTED_SECRET: Final = re.compile(
    r"\b(?:access|refresh|id)[_ ]token\b|\b(?:client[_ ]secret|code[_ ]verifier|client[_ ]assertion|code)\b\W{0,3}[=:]",
    re.IGNORECASE,
)
"""What a message quoting a request or a response shows of a secret: a token field of any kind, or a value given
to a secret's name (`code=`, `"client_secret": `); not the names alone (`client_secret_post`, `issued no code`)."""


def oauth_reason(exc: BaseException) -> str:
    """Why an OAuth flow failed, for the status and the log: of an authorization server's answer the SDK quotes,
    only its `error` code is kept (the answer may echo the form: a code, a verifier, a refresh token); URLs in it
    are redacted."""
    return redact(_oauth_reason(str(exc), type(exc).__name__))


def _oauth_reason(message: str, kind: str) -> str:
    if match := _QUOTED_ANSWER.fullmatch(message):
        try:
            code = json.loads(match["body"]).get("error")
        except (ValueError, AttributeError):
            code = None
        valid = isinstance(code, str) and _ERROR_CODE.fullmatch(code)
        return f"{match['head']}: {code}" if valid else str(match["head"])
    if match := _QUOTED_PARSE_ERROR.match(message):
        return str(match["head"])
    if _QUOTED_SECRET.search(message):  # a message this does not know that quotes a request or a response
        return f"{kind}: the authorization server's answer is not shown"
    return message[:300]


def _without_secrets(url: httpx2.URL) -> str:
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


_EXPECTED: Final = (
    UpstreamError,
    MCPError,
    OSError,
    TimeoutError,
    ValueError,
    httpx2.HTTPError,
    OAuthFlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
"""What talking to an upstream can raise without anything being wrong here: it is down, slow or speaks nonsense."""


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf for exc in group.exceptions for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


def is_expected(exc: BaseException) -> bool:
    """Whether `exc` says the upstream is down, slow or wrong, rather than that something is wrong here."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_expected(leaf) for leaf in exc.exceptions)
    return isinstance(exc, _EXPECTED)


def log_failure(
    log: logging.Logger, server: str, what: str, exc: BaseException, last_unexpected: str | None = None, **facts: Any
) -> str | None:
    """Say that `what` failed on `server`, and why. A failure nothing expects (a bug, here or in the SDK) is an
    error with its traceback, unless it is the same as `last_unexpected`, the one said just before; returns the
    description to pass as `last_unexpected` next time (None after an expected failure)."""
    reason = describe_error(exc)
    facts = {"server": server, "reason": reason, **facts}
    if is_expected(exc):
        log.warning("upstream %s: %s: %s", server, what, reason, extra=facts)
        return None
    trace = exc if reason != last_unexpected else None
    log.error("upstream %s: %s, unexpectedly: %s", server, what, reason, exc_info=trace, extra=facts)
    return reason
