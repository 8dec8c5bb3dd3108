"""`Authorization: Bearer <token>` checks, in constant time: the MCP endpoints' `auth_token` and the admin API's
token are compared the same way, from the first `Authorization` header of a request."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

__all__ = ["Bearer"]


class Bearer:
    """One expected token."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}".encode()

    def matches(self, headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Whether the first `Authorization` header of ASGI `headers` carries the token."""
        given = next((value for name, value in headers if name == b"authorization"), b"")
        return hmac.compare_digest(given, self._expected)
