"""`Session.call_tool`: what reaches the provider, failures returned as results, and cancellation."""

from __future__ import annotations

import logging

import anyio
import pytest

from lash_core import (
    Cancellation,
    FailureClass,
    LashCore,
    Session,
    ToolCall,
    ToolConflictError,
    ToolResult,
)
from lash_core.testing import StaticToolProvider, simple_tool

pytestmark = pytest.mark.anyio


def session_with(provider: StaticToolProvider) -> Session:
    return LashCore.builder().tools(provider).build().session()


async def test_provider_receives_the_call_with_the_sessions_context() -> None:
    provider = StaticToolProvider([simple_tool("add", a="number", b="number")])
    session = session_with(provider)

    result = await session.call_tool("add", {"a": 1, "b": 2.5}, call_id="call-7")

    (call,) = provider.calls
    assert call.name == "add"
    assert call.args == {"a": 1, "b": 2.5}
    assert call.context.session_id == session.id
    assert call.context.call_id == "call-7"
    assert result.structured == {"a": 1, "b": 2.5}


async def test_arguments_that_are_not_an_object_are_a_failure_result_not_a_crash() -> None:
    provider = StaticToolProvider([simple_tool("t")])
    session = session_with(provider)

    result = await session.call_tool("t", ["not", "an", "object"])  # type: ignore[arg-type]

    assert result.failure_class is FailureClass.INVALID_INPUT
    assert result.code == "invalid_arguments"
    assert "list" in (result.message or "")
    assert provider.calls == []


async def test_each_call_without_an_id_gets_a_fresh_one() -> None:
    provider = StaticToolProvider([simple_tool("t")])
    session = session_with(provider)

    await session.call_tool("t")
    await session.call_tool("t")

    first, second = (c.context.call_id for c in provider.calls)
    assert first and second and first != second
    assert provider.calls[0].args == {}


async def test_provider_reports_progress_to_the_callers_reporter() -> None:
    async def slow(call: ToolCall) -> ToolResult:
        await call.context.progress(1, 2, "half")
        await call.context.progress(2, 2)
        return ToolResult.ok("done")

    reports: list[tuple[float, float | None, str | None]] = []

    async def reporter(progress: float, total: float | None = None, message: str | None = None) -> None:
        reports.append((progress, total, message))

    session = session_with(StaticToolProvider([simple_tool("slow")], slow))

    result = await session.call_tool("slow", {}, progress=reporter)

    assert result.text() == "done"
    assert reports == [(1, 2, "half"), (2, 2, None)]


async def test_progress_without_a_reporter_is_ignored() -> None:
    async def chatty(call: ToolCall) -> ToolResult:
        await call.context.progress(1)
        return ToolResult.ok("fine")

    result = await session_with(StaticToolProvider([simple_tool("chatty")], chatty)).call_tool("chatty")

    assert result.text() == "fine"


async def test_unknown_tool_is_an_invalid_input_failure_naming_it() -> None:
    provider = StaticToolProvider([simple_tool("known")])

    result = await session_with(provider).call_tool("nope", {})

    assert result.failure_class is FailureClass.INVALID_INPUT
    assert result.code == "unknown_tool"
    assert "'nope'" in (result.message or "")
    assert result.text() == result.message


async def test_missing_required_argument_is_a_failure_and_the_provider_is_not_called() -> None:
    provider = StaticToolProvider([simple_tool("add", a="number", b="number")])

    result = await session_with(provider).call_tool("add", {"a": 1})

    assert result.failure_class is FailureClass.INVALID_INPUT
    assert result.code == "invalid_arguments"
    assert result.message == "invalid arguments for 'add': missing required argument(s): b"
    assert provider.calls == []


@pytest.mark.parametrize(
    ("json_type", "value", "got"),
    [
        ("string", 3, "number"),
        ("integer", 1.5, "number"),
        ("integer", True, "boolean"),
        ("number", "1", "string"),
        ("number", float("nan"), "number"),
        ("boolean", 0, "number"),
        ("object", [], "array"),
        ("array", {}, "object"),
        ("null", "x", "string"),
    ],
)
async def test_argument_of_the_wrong_json_type_is_a_failure(json_type: str, value: object, got: str) -> None:
    provider = StaticToolProvider([simple_tool("t", x=json_type)])

    result = await session_with(provider).call_tool("t", {"x": value})

    assert result.code == "invalid_arguments"
    assert result.message == f"invalid arguments for 't': argument 'x' must be {json_type}, got {got}"
    assert provider.calls == []


@pytest.mark.parametrize(
    ("json_type", "value"),
    [
        ("string", "s"),
        ("integer", 3),
        ("integer", 3.0),
        ("number", 2),
        ("number", 2.5),
        ("boolean", False),
        ("object", {"k": 1}),
        ("array", [1]),
        ("null", None),
    ],
)
async def test_argument_of_the_right_json_type_reaches_the_provider(json_type: str, value: object) -> None:
    provider = StaticToolProvider([simple_tool("t", x=json_type)])

    result = await session_with(provider).call_tool("t", {"x": value})

    assert not result.is_error
    assert provider.calls[0].args == {"x": value}


async def test_an_integer_too_large_for_a_float_is_checked_without_raising() -> None:
    """Regression: the `number` check converted ints to float, so 10**400 raised OverflowError out of
    call_tool instead of reaching the tool."""
    provider = StaticToolProvider([simple_tool("t", x="number")])

    result = await session_with(provider).call_tool("t", {"x": 10**400})

    assert not result.is_error
    assert provider.calls[0].args == {"x": 10**400}


async def test_provider_raising_is_an_internal_failure_naming_provider_plugin_and_exception(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(call: ToolCall) -> ToolResult:
        raise KeyError("missing-key")

    provider = StaticToolProvider([simple_tool("t")], broken, name="BrokenProvider")

    with caplog.at_level(logging.ERROR, logger="lash_core"):
        result = await session_with(provider).call_tool("t", {})

    assert result.failure_class is FailureClass.INTERNAL
    assert result.code == "internal_error"
    assert result.message == (
        "internal error in BrokenProvider (plugin 'host') while calling 't': KeyError: 'missing-key'"
    )
    (record,) = caplog.records
    assert record.exc_info is not None and isinstance(record.exc_info[1], KeyError)


async def test_provider_reporting_an_error_result_passes_it_through() -> None:
    async def refuses(call: ToolCall) -> ToolResult:
        return ToolResult.err("quota exceeded", failure_class=FailureClass.UNAVAILABLE, code="quota")

    result = await session_with(StaticToolProvider([simple_tool("t")], refuses)).call_tool("t", {})

    assert result.failure_class is FailureClass.UNAVAILABLE
    assert result.code == "quota"
    assert result.message == "quota exceeded"


async def blocks_until_cancelled(started: anyio.Event, finished: list[str]) -> StaticToolProvider:
    async def handler(call: ToolCall) -> ToolResult:
        started.set()
        try:
            await anyio.Event().wait()  # never set: only cancellation ends this call
        finally:
            finished.append(call.name)
        return ToolResult.ok("not reached")

    return StaticToolProvider([simple_tool("wait")], handler)


async def test_cancellation_token_cancels_a_running_call() -> None:
    started, finished = anyio.Event(), list[str]()
    session = session_with(await blocks_until_cancelled(started, finished))
    token = Cancellation()
    results: list[ToolResult] = []

    async def call() -> None:
        results.append(await session.call_tool("wait", {}, cancellation=token))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            token.cancel("the user pressed stop")

    (result,) = results
    assert result.failure_class is FailureClass.CANCELLED
    assert result.code == "cancelled"
    assert result.message == "call to 'wait' cancelled: the user pressed stop"
    assert finished == ["wait"]
    assert token.cancelled and token.reason == "the user pressed stop"


async def test_running_tool_sees_the_callers_cancellation_token() -> None:
    seen: list[Cancellation] = []

    async def handler(call: ToolCall) -> ToolResult:
        seen.append(call.context.cancellation)
        return ToolResult.ok("ok")

    token = Cancellation()

    result = await session_with(StaticToolProvider([simple_tool("t")], handler)).call_tool("t", cancellation=token)

    assert result.text() == "ok"
    assert seen == [token]
    assert not token.cancelled


async def test_a_token_cancelled_before_the_call_never_reaches_the_provider() -> None:
    provider = StaticToolProvider([simple_tool("t")])
    token = Cancellation()
    token.cancel()

    result = await session_with(provider).call_tool("t", {}, cancellation=token)

    assert result.code == "cancelled"
    assert result.message == "call to 't' cancelled: cancelled by the caller"
    assert provider.calls == []


async def test_cancelling_twice_keeps_the_first_reason() -> None:
    token = Cancellation()
    token.cancel("first")
    token.cancel("second")

    assert token.reason == "first"


async def test_cancelling_the_calling_task_propagates_instead_of_returning_a_result() -> None:
    started, finished = anyio.Event(), list[str]()
    session = session_with(await blocks_until_cancelled(started, finished))
    results: list[ToolResult] = []

    async def call() -> None:
        results.append(await session.call_tool("wait", {}))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            tg.start_soon(call)
            await started.wait()
            tg.cancel_scope.cancel()

    assert results == []
    assert finished == ["wait"]


async def test_a_conflict_with_a_cancellation_token_raises_the_plain_error() -> None:
    """Regression: with a token the call ran in a task group, so errors escaped as an ExceptionGroup."""
    a, b = StaticToolProvider([simple_tool("t")], name="A"), StaticToolProvider([simple_tool("t")], name="B")
    session = LashCore.builder().tools(a).tools(b).build().session()

    with pytest.raises(ToolConflictError):
        await session.call_tool("t", {}, cancellation=Cancellation())


async def test_a_result_from_a_call_with_a_token_is_returned_unchanged() -> None:
    provider = StaticToolProvider([simple_tool("t", n="integer")])
    session = session_with(provider)

    result = await session.call_tool("t", {"n": 4}, cancellation=Cancellation())

    assert result.structured == {"n": 4}
