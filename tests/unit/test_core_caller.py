"""A provider asks its caller during a call (`Caller`): the host's handlers answer, a missing one says so."""

from __future__ import annotations

from typing import Any

import pytest

from lash_core import NO_CALLER, Caller, CallerUnsupported, LashCore, ToolCall, ToolDefinition, ToolProvider, ToolResult

pytestmark = pytest.mark.anyio


class AskingProvider(ToolProvider):
    """One tool, `ask`, that elicits and answers with what it was told (or why it could not ask)."""

    def __init__(self) -> None:
        self._definitions = (ToolDefinition("ask", "Ask the caller.", {"type": "object"}),)

    def definitions(self) -> tuple[ToolDefinition, ...]:
        return self._definitions

    async def execute(self, call: ToolCall) -> ToolResult:
        try:
            answer = await call.context.caller.elicit({"message": "name?", "requestedSchema": {"type": "object"}})
        except CallerUnsupported as exc:
            return ToolResult.err(str(exc))
        return ToolResult.ok(answer)


def _core() -> LashCore:
    return LashCore.builder().tools(AskingProvider()).build()


def _answering(name: str) -> Caller:
    async def elicit(params: Any) -> dict[str, Any]:
        return {"action": "accept", "content": {"name": name}}

    return Caller(on_elicitation=elicit)


async def test_without_a_handler_the_provider_hears_not_supported() -> None:
    result = await _core().session().call_tool("ask")
    assert result.is_error
    assert "does not support elicitation" in (result.message or "")
    assert not NO_CALLER.supports("elicitation")


async def test_the_sessions_caller_answers_and_a_calls_own_caller_wins() -> None:
    session = _core().session(caller=_answering("session"))
    assert (await session.call_tool("ask")).value == {"action": "accept", "content": {"name": "session"}}
    own = await session.call_tool("ask", caller=_answering("call"))
    assert own.value == {"action": "accept", "content": {"name": "call"}}


async def test_child_sessions_ask_the_same_host() -> None:
    child = _core().session(caller=_answering("root")).child("subagent")
    assert (await child.call_tool("ask")).value == {"action": "accept", "content": {"name": "root"}}


async def test_each_kind_has_its_own_handler() -> None:
    async def roots(params: Any) -> dict[str, Any]:
        return {"roots": [{"uri": "file:///w"}]}

    caller = Caller(on_roots=roots)
    assert await caller.roots() == {"roots": [{"uri": "file:///w"}]}
    with pytest.raises(CallerUnsupported, match="sampling"):
        await caller.sample({"messages": []})
