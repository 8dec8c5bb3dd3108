"""The names of the questions in a 2026-07-28 client's input-required rounds: a 2026-07-28 server's own names when the
call can keep them (`lash_core.ASKED_AS`, set by `answer_input_requests`), `qN` otherwise; answers a client sends
ahead of any round are taken for a question of that name only.

The calls here ask as the gateway's upstream side does for a 2026-07-28 server (`answer_input_requests`), and
directly, as a handshake-era server's request reaches the caller (no name).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import mcp_types as types
import pytest

from lash_core import Caller
from lash_gateway.export._asking import Declared
from lash_gateway.export._bridge import MAX_NAME, Bridges
from lash_gateway.upstream._asks import answer_input_requests

EVERY_KIND: Final[Declared] = {"sampling": {}, "elicitation": {}, "roots": {}}
"""A client that takes every kind of question, declared as plainly as can be."""

pytestmark = pytest.mark.anyio

TTL: Final = 5.0
QUESTION: Final = {"message": "?", "requestedSchema": {"type": "object"}}
ELICIT: Final = {"method": "elicitation/create", "params": QUESTION}
ACCEPT: Final = {"action": "accept", "content": {"name": "ann"}}
LONG: Final = "n" * (MAX_NAME + 1)


class Round:
    """The client's latest request, as a `Round` (nothing here reports progress or logs)."""

    async def progress(self, progress: float, total: float | None = None, message: str | None = None) -> None:
        """Nothing reports progress here."""

    async def log(self, level: str, data: Any, logger: str | None = None) -> None:
        """Nothing logs here."""


@asynccontextmanager
async def bridges(key: bytes | None = None) -> AsyncIterator[Bridges]:
    async with anyio.create_task_group() as tg:
        yield Bridges(tg.start_soon, key, ttl=TTL)
        tg.cancel_scope.cancel()


async def serve(bridges: Bridges, params: types.CallToolRequestParams, run: Any) -> dict[str, Any]:
    with anyio.fail_after(TTL):
        return await bridges.serve("tools/call", EVERY_KIND, params, run, Round())


def retry(params: types.CallToolRequestParams, round_: Mapping[str, Any], **answers: Any) -> Any:
    return params.model_copy(update={"request_state": round_["requestState"], "input_responses": answers})


async def asks_twice(caller: Caller, current: Any) -> dict[str, Any]:
    """A 2026-07-28 server's two rounds: a name and one too long to keep, then the first name again."""
    first = await answer_input_requests("up", caller, {"user_name": ELICIT, LONG: ELICIT})
    second = await answer_input_requests("up", caller, {"user_name": ELICIT})
    return {"content": [], "answers": [sorted(first), sorted(second)]}


async def test_a_servers_names_are_kept_unless_used_already_or_too_long() -> None:
    params = types.CallToolRequestParams(name="t", arguments={})
    async with bridges() as held:
        first = await serve(held, params, asks_twice)
        assert sorted(first["inputRequests"]) == ["q0", "user_name"]
        second = await serve(held, retry(params, first, user_name=ACCEPT, q0=ACCEPT), asks_twice)
        assert sorted(second["inputRequests"]) == ["q1"]  # "user_name" answered already in this call
        done = await serve(held, retry(params, second, q1=ACCEPT), asks_twice)
    assert done["answers"] == [sorted(["user_name", LONG]), ["user_name"]]  # the server gets its own names back


async def test_a_call_run_again_elsewhere_gives_its_questions_the_same_names() -> None:
    """A retry that reaches another process (the same signing key, no call held) runs the call again: the answers its
    state carries answer the same questions, so only the question not answered yet goes out, under its name."""
    params = types.CallToolRequestParams(name="t", arguments={})
    async with bridges() as here:
        first = await serve(here, params, asks_twice)
        second = await serve(here, retry(params, first, user_name=ACCEPT, q0=ACCEPT), asks_twice)
        key = here.key
    async with bridges(key) as elsewhere:
        done = await serve(elsewhere, retry(params, second, q1=ACCEPT), asks_twice)
    assert done["answers"] == [sorted(["user_name", LONG]), ["user_name"]]


async def test_answers_sent_ahead_answer_only_questions_of_their_name() -> None:
    """A first request's `inputResponses` answer a named question at once; a question without a name (a handshake-era
    server's) is asked, though an answer came for `q0`: a blind answer must not go to whatever is asked first."""
    seen: list[str] = []

    async def named_then_unnamed(caller: Caller, current: Any) -> dict[str, Any]:
        seen.extend(await answer_input_requests("up", caller, {"user_name": ELICIT}))
        await caller.ask("elicitation", QUESTION)
        return {"content": []}

    ahead = {"user_name": ACCEPT, "q0": ACCEPT}
    params = types.CallToolRequestParams.model_validate({"name": "t", "arguments": {}, "inputResponses": ahead})
    async with bridges() as held:
        round_ = await serve(held, params, named_then_unnamed)
    assert seen == ["user_name"]
    assert list(round_["inputRequests"]) == ["q0"]


async def test_a_call_run_again_takes_answers_only_for_the_round_its_state_names() -> None:
    """A retry that runs the call again elsewhere brings answers for the round its state names, each for a question
    of the kind that round asked; an answer under another key (a question the client never saw) answers nothing."""
    asked_later: list[str] = []

    async def unnamed_twice(caller: Caller, current: Any) -> dict[str, Any]:
        await caller.ask("elicitation", QUESTION)
        asked_later.append(str(await caller.ask("sampling", {"messages": [], "maxTokens": 1})))
        return {"content": []}

    params = types.CallToolRequestParams(name="t", arguments={})
    async with bridges() as here:
        first = await serve(here, params, unnamed_twice)
        assert list(first["inputRequests"]) == ["q0"]
        key = here.key
    blind = {"role": "assistant", "content": {"type": "text", "text": "blind"}, "model": "m"}
    async with bridges(key) as elsewhere:
        second = await serve(elsewhere, retry(params, first, q0=ACCEPT, q1=blind), unnamed_twice)
    assert list(second["inputRequests"]) == ["q1"]  # asked, not answered with what the client sent unasked
    assert second["inputRequests"]["q1"]["method"] == "sampling/createMessage"
    assert asked_later == []


async def test_answers_sent_ahead_do_not_outlive_the_first_round() -> None:
    """A server would have seen answers sent ahead on the first request only: a question of that name asked after
    the first round is asked."""

    async def one_then_another(caller: Caller, current: Any) -> dict[str, Any]:
        await answer_input_requests("up", caller, {"first": ELICIT})
        await answer_input_requests("up", caller, {"second": ELICIT})
        return {"content": []}

    ahead = {"second": ACCEPT}
    params = types.CallToolRequestParams.model_validate({"name": "t", "arguments": {}, "inputResponses": ahead})
    async with bridges() as held:
        first = await serve(held, params, one_then_another)
        assert list(first["inputRequests"]) == ["first"]
        second = await serve(held, retry(params, first, first=ACCEPT), one_then_another)
    assert list(second["inputRequests"]) == ["second"]
