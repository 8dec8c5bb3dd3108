"""What every admin API handler shares: JSON bodies read within a size limit, error answers, and one lock per name
(so that a change to the running gateway and its record in the store go together, one request at a time)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Final

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

__all__ = ["MAX_BODY_BYTES", "BodyError", "NameLocks", "RegistryLocks", "error", "json_body"]

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest admin request body: one server or virtual server config is a few KiB."""


class NameLocks:
    """One lock per name while some request holds or waits for it; none kept for names at rest."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[anyio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(name, (anyio.Lock(), 0))
        self._locks[name] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[name]
            if users == 1:
                del self._locks[name]
            else:
                self._locks[name] = (lock, users - 1)


@dataclass(frozen=True, slots=True)
class RegistryLocks:
    """The names of servers and of virtual servers (two namespaces), held by the admin API and by replication."""

    servers: NameLocks = field(default_factory=NameLocks)
    virtual: NameLocks = field(default_factory=NameLocks)


class BodyError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def json_body(request: Request) -> dict[str, object]:
    """The request body as one JSON object, read within `MAX_BODY_BYTES`; anything else is a `BodyError`."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise BodyError(413, f"the body is over {MAX_BODY_BYTES} bytes; one config is a few KiB")
    try:
        body = json.loads(raw)
    except UnicodeDecodeError:
        raise BodyError(422, "the body is not valid JSON: it is not UTF-8 text") from None
    except RecursionError:
        raise BodyError(422, "the body is not valid JSON for a config: it is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers past Python's digit limit
        raise BodyError(422, f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BodyError(422, "the body must be one config as a JSON object")
    return body


def error(code: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=code)
