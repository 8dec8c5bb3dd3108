"""A client is sent only the questions it declared it takes, in full (`lash_gateway._declared`): no URL to open for a
client of forms, no tools to sample with for one whose sampling takes none; shapes of params the SDK accepts (a URL
question without its mode, explicit nulls) are read as the SDK reads them; and a 2026-07-28 upstream's round that
asks one thing the client does not take is refused before anything in it is asked."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import pytest

from lash_core import CallerRequest
from lash_gateway import UpstreamCallError
from lash_gateway._declared import undeclared
from lash_gateway.export._asking import caller_of
from lash_gateway.export._export import MAX_ERROR_DATA, ClientLacks
from lash_gateway.upstream._asks import answer_input_requests

pytestmark = pytest.mark.anyio

FORM: Final = {"message": "name?", "requestedSchema": {"type": "object"}}
URL: Final = {"message": "log in", "url": "https://example.invalid/login"}
TOOL: Final = [{"name": "lookup", "inputSchema": {"type": "object"}}]
MESSAGES: Final = {"messages": [], "maxTokens": 10}

CASES: Final[list[tuple[CallerRequest, Mapping[str, Any], Mapping[str, Any], str | None]]] = [
    ("elicitation", FORM, {}, None),
    ("elicitation", {**FORM, "mode": "form"}, {"form": {}}, None),
    ("elicitation", {**FORM, "mode": None}, {}, None),
    ("elicitation", {**URL, "mode": "url"}, {}, "'url' mode"),
    ("elicitation", URL, {"form": {}}, "'url' mode"),  # a URL without its mode is a URL question, as the SDK reads it
    ("elicitation", URL, {"url": {}}, None),
    ("elicitation", {**FORM, "mode": "form"}, {"url": {}}, "'form' mode"),
    ("elicitation", {**FORM, "mode": "wizard"}, {}, None),  # malformed, not undeclared: its validation says so
    ("sampling", {**MESSAGES, "tools": TOOL}, {}, "sampling with tools"),
    ("sampling", {**MESSAGES, "toolChoice": {"mode": "auto"}}, {}, "sampling with tools"),
    ("sampling", {**MESSAGES, "tools": TOOL}, {"tools": {}}, None),
    ("sampling", {**MESSAGES, "tools": []}, {}, None),
    ("sampling", {**MESSAGES, "includeContext": None}, {}, None),
    ("sampling", {**MESSAGES, "includeContext": "none"}, {}, None),
    ("sampling", {**MESSAGES, "includeContext": "thisServer"}, {}, "includes context"),
    ("sampling", {**MESSAGES, "includeContext": "allServers"}, {"context": {}}, None),
    ("roots", {}, {}, None),
]


@pytest.mark.parametrize(("kind", "params", "declared", "refused"), CASES)
def test_a_question_beyond_what_its_client_declared_is_refused_and_says_what(
    kind: CallerRequest, params: Mapping[str, Any], declared: Mapping[str, Any], refused: str | None
) -> None:
    reason = undeclared(kind, params, declared)
    if refused is None:
        assert reason is None, (params, declared)
    else:
        assert reason is not None and refused in reason and "did not declare" in reason, reason


async def test_a_round_with_one_question_its_client_does_not_take_asks_nothing() -> None:
    asked: list[tuple[str, Mapping[str, Any]]] = []

    async def ask(kind: CallerRequest, params: Mapping[str, Any]) -> Mapping[str, Any]:
        asked.append((kind, params))
        return {"action": "accept", "content": {}}

    forms_only = caller_of({"elicitation": {"form": {}}}, ask)
    round_ = {
        "name": {"method": "elicitation/create", "params": FORM},
        "login": {"method": "elicitation/create", "params": URL},
    }
    with pytest.raises(UpstreamCallError, match="'url' mode"):
        await answer_input_requests("up", forms_only, round_)
    assert asked == []  # the form was not shown either: the call fails whole
    assert await answer_input_requests("up", forms_only, {"name": round_["name"]}) == {
        "name": {"action": "accept", "content": {}}
    }
    assert asked == [("elicitation", FORM)]


def test_a_missing_capability_error_carries_what_is_required_only_when_well_formed_and_bounded() -> None:
    """What the client hears of a server's -32021 (`ClientLacks`): its `requiredCapabilities` as the protocol shapes
    them; malformed, not JSON (a plugin's), or past `MAX_ERROR_DATA`, the error goes without them."""
    required: dict[str, Any] = {"requiredCapabilities": {"sampling": {"tools": {}}}}
    assert ClientLacks("needs sampling", required).data == required
    assert ClientLacks("m", {"required_capabilities": {"sampling": {}}}).data is None  # not the wire's name
    assert ClientLacks("m", {"requiredCapabilities": ["sampling"]}).data is None
    assert ClientLacks("m", {"requiredCapabilities": {"experimental": {"x": {"v": object()}}}}).data is None
    huge = {"requiredCapabilities": {"experimental": {"x": {"v": "y" * MAX_ERROR_DATA}}}}
    assert ClientLacks("m", huge).data is None
