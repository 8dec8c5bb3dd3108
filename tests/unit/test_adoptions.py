"""Sessions taken over from a gone replica wait to be opened again (`export._adopt.Adoptions`) for the sessions'
idle timeout, no longer: a client that never comes back leaves nothing behind for ever (the claim would be gone on
the old replica too by then)."""

from __future__ import annotations

import anyio
import pytest
from starlette.types import Receive, Scope, Send

from lash_gateway.export._adopt import Adoptions

pytestmark = pytest.mark.anyio


async def test_a_claim_nobody_comes_back_for_expires_with_the_idle_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(anyio, "current_time", lambda: now[0])
    adoptions = Adoptions(expire_after=60.0)
    adoptions.expect("gone-1", b"{}")
    now[0] += 59.0
    assert adoptions.pending("gone-1")
    adoptions.expect("gone-2", b"{}")
    now[0] += 2.0
    assert not adoptions.pending("gone-1")  # claimed 61 s ago
    assert adoptions.pending("gone-2")
    adoptions.expect("gone-1", b"{}")  # claimed again (its new holder went too): a new 60 s
    now[0] += 59.0
    assert adoptions.pending("gone-1") and not adoptions.pending("gone-2")
    assert not adoptions.opening("gone-1")


async def test_a_claim_that_expires_while_its_session_is_opened_again_ends_no_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The claim's time runs out while the session is being opened again: another request that looks meanwhile still
    finds it pending (so it waits, rather than reaching the half-open session), and the opening goes on and ends it
    (it used to fail on a claim another request had dropped)."""
    now = [1000.0]
    monkeypatch.setattr(anyio, "current_time", lambda: now[0])
    adoptions = Adoptions(expire_after=60.0)
    adoptions.expect("gone-1", b'{"jsonrpc":"2.0","id":1,"method":"initialize"}')
    posted: list[bytes] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        message = await receive()
        posted.append(message["body"])
        if len(posted) == 1:  # the initialize: time passes, and another request looks at the claim
            now[0] += 61.0
            assert adoptions.pending("gone-1") and adoptions.opening("gone-1")
            body = b'{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-11-25"}}'
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})
        else:
            await send({"type": "http.response.start", "status": 202, "headers": []})
            await send({"type": "http.response.body", "body": b""})

    scope: Scope = {"type": "http", "method": "POST", "path": "/mcp", "headers": [(b"host", b"127.0.0.1")]}
    await adoptions.adopt("gone-1", app, scope, lambda: False)
    assert len(posted) == 2 and not adoptions.pending("gone-1")
