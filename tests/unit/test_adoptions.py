"""Sessions taken over from a gone replica wait to be opened again (`export._adopt.Adoptions`) for the sessions'
idle timeout, no longer: a client that never comes back leaves nothing behind for ever (the claim would be gone on
the old replica too by then)."""

from __future__ import annotations

import anyio
import pytest

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
