"""A call of a request the fast path serves runs in the request's own task, and its first question answers the request
early (`ANSWER_NOW`): the request gets exactly one answer whatever the timing of questions and of the call's end.

The questions here come from tasks of their own, as an upstream's elicitation does (its session's task), and from the
call's task, as a 2026-07-28 upstream's input requests do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

import anyio
import pytest

from lash_core import Caller
from lash_gateway.export._asking import Declared
from lash_gateway.export._bridge import ANSWER_NOW, BATCH_WINDOW, AnsweredEarly, Bridges

EVERY_KIND: Final[Declared] = {"sampling": {}, "elicitation": {}, "roots": {}}
"""A client that takes every kind of question, declared as plainly as can be."""

pytestmark = pytest.mark.anyio

TTL: Final = 5.0
"""Seconds a question waits for its answer; longer than any of these tests take."""
WAIT: Final = 5.0


class Request:
    """One request's answers, as the fast path would send them (the first one only, as HTTP does)."""

    def __init__(self) -> None:
        self.answers: list[dict[str, Any]] = []
        self.answered = anyio.Event()

    async def answer_now(self, result: dict[str, Any]) -> None:
        self.answers.append(result)
        self.answered.set()

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """As a `Round` (no call here reports progress)."""

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """As a `Round` (no call here logs)."""

    async def serve(self, bridges: Bridges, run: Callable[[Caller, Any], Awaitable[dict[str, Any]]]) -> Any:
        """What the request's handler ends with: the call's result, or AnsweredEarly."""
        token = ANSWER_NOW.set(self.answer_now)
        try:
            return await bridges.serve("tools/call", EVERY_KIND, {"name": "t"}, run, self)
        finally:
            ANSWER_NOW.reset(token)


async def test_a_call_that_never_asks_answers_with_its_result_and_holds_nothing() -> None:
    async with anyio.create_task_group() as tg:
        bridges, request = Bridges(tg.start_soon, ttl=TTL), Request()

        async def run(caller: Caller, current: Any) -> dict[str, Any]:
            return {"content": []}

        assert await request.serve(bridges, run) == {"content": []}
        assert request.answers == [] and not bridges.held


async def test_the_first_question_answers_the_request_and_the_call_goes_on_for_the_retry() -> None:
    async with anyio.create_task_group() as tg:
        bridges, request = Bridges(tg.start_soon, ttl=TTL), Request()
        finished = anyio.Event()

        async def run(caller: Caller, current: Any) -> dict[str, Any]:
            with anyio.move_on_after(0.2):  # nobody answers here: the retry would
                await caller.elicit({"message": "name?"})
            finished.set()
            return {"content": []}

        with anyio.fail_after(WAIT), pytest.raises(AnsweredEarly):
            await request.serve(bridges, run)
        assert finished.is_set()
        [round_] = request.answers
        assert round_["resultType"] == "input_required"
        assert [q["method"] for q in round_["inputRequests"].values()] == ["elicitation/create"]
        assert not bridges.held  # the call ended: a retry runs it again


async def test_a_call_that_ends_within_the_batch_window_answers_once_with_its_result() -> None:
    """The question, from another task, is still waiting out the window when the call ends: no round follows the
    result (a second answer to one request)."""
    async with anyio.create_task_group() as tg:
        bridges, request = Bridges(tg.start_soon, ttl=TTL), Request()

        async def run(caller: Caller, current: Any) -> dict[str, Any]:
            tg.start_soon(caller.elicit, {"message": "name?"})
            await anyio.sleep(BATCH_WINDOW / 4)  # asked, but the call ends before the round would go out
            return {"content": []}

        with anyio.fail_after(WAIT):
            assert await request.serve(bridges, run) == {"content": []}
            await anyio.sleep(BATCH_WINDOW * 2)  # past the window: a round, if one were coming, would be out
        assert request.answers == [] and not bridges.held
        tg.cancel_scope.cancel()


async def test_a_question_withdrawn_within_the_window_leaves_the_next_one_to_answer_the_request() -> None:
    async with anyio.create_task_group() as tg:
        bridges, request = Bridges(tg.start_soon, ttl=TTL), Request()

        async def run(caller: Caller, current: Any) -> dict[str, Any]:
            with anyio.move_on_after(BATCH_WINDOW / 4):  # the upstream gives up on its first question
                await caller.elicit({"message": "first"})
            with anyio.move_on_after(0.2):
                await caller.elicit({"message": "second"})
            return {"content": []}

        with anyio.fail_after(WAIT), pytest.raises(AnsweredEarly):
            await request.serve(bridges, run)
        [round_] = request.answers
        assert [q["params"]["message"] for q in round_["inputRequests"].values()] == ["second"]


async def test_a_question_after_the_call_ended_holds_nothing_and_answers_nothing() -> None:
    async with anyio.create_task_group() as tg:
        bridges, request = Bridges(tg.start_soon, ttl=0.2), Request()
        callers: list[Caller] = []

        async def run(caller: Caller, current: Any) -> dict[str, Any]:
            callers.append(caller)
            return {"content": []}

        with anyio.fail_after(WAIT):
            assert await request.serve(bridges, run) == {"content": []}
            with pytest.raises(Exception, match="did not answer"):
                await callers[0].elicit({"message": "late"})
        assert request.answers == [] and not bridges.held
