"""`rate_limited_as_429`: the SDK's answer to a 2026-07-28 request that a limit refused becomes HTTP 429 with
`Retry-After`, as the gateway's own answers are; every other answer goes out as the SDK sent it, and at once."""

from __future__ import annotations

import json
from typing import Any

import pytest
from starlette.responses import Response
from starlette.types import Message

from lash_gateway.export._limits import RATE_LIMITED
from lash_gateway.export._reply import rate_limited_as_429

pytestmark = pytest.mark.anyio

_SCOPE: dict[str, Any] = {"type": "http", "method": "POST", "headers": []}


def error(code: int, data: object = None) -> dict[str, Any]:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "rate limited"}}
    if data is not None:
        body["error"]["data"] = data
    return body


async def sent_through(response: Response, *, wrapped: bool = True) -> list[Message]:
    """What goes out when the SDK sends `response` through the wrapper (or without it)."""
    out: list[Message] = []

    async def send(message: Message) -> None:
        out.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await response(_SCOPE, receive, rate_limited_as_429(send) if wrapped else send)
    return out


def status_and_retry(messages: list[Message]) -> tuple[int, bytes | None]:
    start = messages[0]
    return start["status"], dict(start["headers"]).get(b"retry-after")


def sdk_json(body: object, status: int = 200) -> Response:
    """A JSON answer as the SDK writes one (compact separators)."""
    return Response(json.dumps(body, separators=(",", ":")), status_code=status, media_type="application/json")


async def test_a_limits_refusal_becomes_429_with_retry_after_and_keeps_its_body() -> None:
    body = error(RATE_LIMITED, {"limit": "calls_per_minute", "scope": "tool", "allowed": 1, "retryAfter": 42})
    messages = await sent_through(sdk_json(body))
    assert status_and_retry(messages) == (429, b"42")
    assert json.loads(messages[1]["body"]) == body


@pytest.mark.parametrize("retry_after", ["1\r\nSet-Cookie: a=b", "∞", None, [1, 2], -5, True, 2.5])
async def test_a_retry_after_that_is_not_whole_seconds_says_one(retry_after: object) -> None:
    """A made-up error (a user's handler may raise one) never puts its own text in a header."""
    messages = await sent_through(sdk_json(error(RATE_LIMITED, {"retryAfter": retry_after})))
    assert status_and_retry(messages) == (429, b"1")


ANSWERED_AS_SENT = {
    "a result whose text names the code": sdk_json(
        {"jsonrpc": "2.0", "id": 1, "result": {"content": [{"type": "text", "text": '{"code":-32029}'}]}}
    ),
    "another error": sdk_json(error(-32602, {"retryAfter": 3}), 400),
    "the code without data": sdk_json(error(RATE_LIMITED)),
    "a body that is no JSON object": sdk_json([{"code": RATE_LIMITED}]),
    "a notification's 202": Response(status_code=202),
}


@pytest.mark.parametrize("label", ANSWERED_AS_SENT)
async def test_other_answers_go_out_as_the_sdk_sent_them(label: str) -> None:
    response = ANSWERED_AS_SENT[label]
    assert await sent_through(response) == await sent_through(response, wrapped=False)


async def test_a_stream_s_head_goes_out_before_its_first_event() -> None:
    """Only a JSON answer's head waits for its body (they come together): a stream's is sent at once."""
    out: list[Message] = []

    async def send(message: Message) -> None:
        out.append(message)

    wrapped = rate_limited_as_429(send)
    await wrapped({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    assert [message["type"] for message in out] == ["http.response.start"]
    await wrapped({"type": "http.response.body", "body": b'data: {"error":{"code":-32029}}\n\n', "more_body": True})
    assert out[0]["status"] == 200 and len(out) == 2
