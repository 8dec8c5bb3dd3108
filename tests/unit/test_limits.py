"""Call limits (`export._limits`): calls per minute refill evenly, a refused call takes nothing, concurrent calls are
given back when they end, and every refusal says which limit and when to retry."""

from __future__ import annotations

import pytest

from lash_gateway.export._limits import Limit, Limiter, LimitExceeded, Limits


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_calls_per_minute_allow_a_burst_then_refill_evenly() -> None:
    clock = Clock()
    limiter = Limiter(Limits(server=Limit(calls_per_minute=60)), "virtual server v", clock=clock)
    for _ in range(60):
        limiter.acquire("t1", "a")()
    with pytest.raises(LimitExceeded) as refused:
        limiter.acquire("t1", "a")
    assert refused.value.retry_after == 1 and refused.value.kind == "calls_per_minute"
    assert "virtual server v allows 60 calls per minute; retry in 1 s" in str(refused.value)
    clock.now += 1.0  # one call's worth refilled
    limiter.acquire("t1", "a")()
    with pytest.raises(LimitExceeded):
        limiter.acquire("t1", "a")


def test_a_refused_call_takes_nothing_from_the_other_limits() -> None:
    clock = Clock()
    limits = Limits(server=Limit(calls_per_minute=3), tools={"slow": Limit(calls_per_minute=1)})
    limiter = Limiter(limits, "virtual server v", clock=clock)
    limiter.acquire(None, "slow")()
    for _ in range(5):  # refused by the tool's limit: the server's budget stays
        with pytest.raises(LimitExceeded) as refused:
            limiter.acquire(None, "slow")
        assert refused.value.scope == "tool" and refused.value.retry_after == 60
    limiter.acquire(None, "fast")()
    limiter.acquire(None, "fast")()
    with pytest.raises(LimitExceeded) as refused:
        limiter.acquire(None, "fast")
    assert refused.value.scope == "virtual_server"


def test_concurrent_calls_are_counted_per_token_and_given_back() -> None:
    refusals: list[LimitExceeded] = []
    limiter = Limiter(Limits(per_token=Limit(concurrent_calls=2)), "virtual server v", refusals.append)
    ends = [limiter.acquire("t1", "a"), limiter.acquire("t1", "b")]
    limiter.acquire("t2", "a")()  # another token has its own two
    with pytest.raises(LimitExceeded) as refused:
        limiter.acquire("t1", "c")
    assert refused.value.data == {"limit": "concurrent_calls", "scope": "token", "allowed": 2, "retryAfter": 1}
    assert refusals == [refused.value]
    ends.pop()()
    ends.append(limiter.acquire("t1", "c"))


def test_changed_limits_apply_to_the_next_call() -> None:
    clock = Clock()
    limiter = Limiter(Limits(server=Limit(calls_per_minute=1)), "virtual server v", clock=clock)
    limiter.acquire(None, "a")()
    with pytest.raises(LimitExceeded):
        limiter.acquire(None, "a")
    limiter.limits = Limits(server=Limit(calls_per_minute=100))
    limiter.acquire(None, "a")()
    limiter.limits = Limits()
    for _ in range(1000):
        limiter.acquire(None, "a")()
