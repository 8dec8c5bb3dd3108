"""One line an operator can act on, from whatever the SDK, a transport or the gateway raised while talking to
an upstream: no exception group, no traceback, and no secret (URLs are redacted, remembered secret values
scrubbed)."""

from __future__ import annotations

from typing import Final

import anyio
import httpx2
from mcp import MCPError

from .._errors import UpstreamError
from .._redact import redact

__all__ = ["describe_error", "is_expected"]


def describe_error(exc: BaseException) -> str:
    """One line an operator can act on, from whatever the SDK or transport raised; URLs in it are redacted."""
    return redact(_describe(exc))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_describe(e) for e in exc.exceptions]
        return "; ".join(dict.fromkeys(leaves))
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
    if isinstance(exc, httpx2.HTTPError):
        return f"{type(exc).__name__}: HTTP transport error"
    if isinstance(exc, MCPError):
        return f"MCP error {exc.code}: {exc.message}"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _without_secrets(url: httpx2.URL) -> str:
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


_EXPECTED: Final = (
    UpstreamError,
    MCPError,
    OSError,
    TimeoutError,
    ValueError,
    httpx2.HTTPError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)
"""What talking to an upstream can raise without anything being wrong here: it is down, slow or speaks nonsense."""


def is_expected(exc: BaseException) -> bool:
    """Whether `exc` says the upstream is down, slow or wrong, rather than that something is wrong here."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_expected(leaf) for leaf in exc.exceptions)
    return isinstance(exc, _EXPECTED)
