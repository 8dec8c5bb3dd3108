"""Hooks: tool_calls before/after, the exclusive tool_results projector, prompt, turn and session hooks."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from lash_core import (
    ExclusiveRegistrationError,
    FailureClass,
    LashCore,
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    PluginStack,
    PluginUsageError,
    SessionPlugin,
    TextPart,
    ToolCall,
    ToolResult,
    TurnContext,
)
from lash_core.testing import CallbackPluginFactory, RegisterFunction, StaticToolProvider, simple_tool

pytestmark = pytest.mark.anyio


def core_with(provider: StaticToolProvider, *plugins: tuple[str, RegisterFunction]) -> LashCore:
    """A core without the runtime stack, so results reach the test unprojected."""
    builder = LashCore.builder().plugins(PluginStack()).tools(provider)
    for plugin_id, register in plugins:
        builder.plugin(CallbackPluginFactory(plugin_id, register))
    return builder.build()


# -- tool_calls: before hooks ----------------------------------------------------------------------


async def test_before_hook_rejecting_answers_without_calling_the_tool() -> None:
    async def deny_delete(call: ToolCall) -> ToolResult | None:
        if call.name == "delete":
            return ToolResult.err("deleting is off", failure_class=FailureClass.REJECTED, code="policy")
        return None

    provider = StaticToolProvider([simple_tool("delete"), simple_tool("read")])
    session = core_with(provider, ("policy", lambda reg, ctx: reg.tool_calls().before(deny_delete))).session()

    rejected = await session.call_tool("delete", {})
    allowed = await session.call_tool("read", {})

    assert rejected.failure_class is FailureClass.REJECTED
    assert rejected.code == "policy" and rejected.message == "deleting is off"
    assert not allowed.is_error
    assert [c.name for c in provider.calls] == ["read"]


async def test_before_hook_rewriting_arguments_changes_what_the_provider_receives() -> None:
    async def default_limit(call: ToolCall) -> ToolCall:
        return call.with_args({**call.args, "limit": 5})

    provider = StaticToolProvider([simple_tool("search", q="string")])
    session = core_with(provider, ("defaults", lambda reg, ctx: reg.tool_calls().before(default_limit))).session()

    result = await session.call_tool("search", {"q": "x"})

    assert provider.calls[0].args == {"q": "x", "limit": 5}
    assert result.structured == {"q": "x", "limit": 5}


async def test_before_hooks_run_in_stack_order_each_seeing_the_previous_rewrite() -> None:
    async def first(call: ToolCall) -> ToolCall:
        return call.with_args({"trail": [*call.args["trail"], "first"]})

    async def second(call: ToolCall) -> ToolCall:
        return call.with_args({"trail": [*call.args["trail"], "second"]})

    provider = StaticToolProvider([simple_tool("t", trail="array")])
    session = core_with(
        provider,
        ("one", lambda reg, ctx: reg.tool_calls().before(first)),
        ("two", lambda reg, ctx: reg.tool_calls().before(second)),
    ).session()

    await session.call_tool("t", {"trail": []})

    assert provider.calls[0].args == {"trail": ["first", "second"]}


async def test_before_hook_returning_none_leaves_the_call_unchanged() -> None:
    seen: list[ToolCall] = []

    async def observe(call: ToolCall) -> None:
        seen.append(call)

    provider = StaticToolProvider([simple_tool("t", n="integer")])
    session = core_with(provider, ("observe", lambda reg, ctx: reg.tool_calls().before(observe))).session()

    await session.call_tool("t", {"n": 1}, call_id="c1")

    assert seen[0].args == {"n": 1} and seen[0].context.call_id == "c1"
    assert provider.calls == seen


async def test_arguments_rewritten_by_a_before_hook_are_checked_against_the_schema() -> None:
    async def breaks_args(call: ToolCall) -> ToolCall:
        return call.with_args({"n": "not a number"})

    provider = StaticToolProvider([simple_tool("t", n="integer")])
    session = core_with(provider, ("bad", lambda reg, ctx: reg.tool_calls().before(breaks_args))).session()

    result = await session.call_tool("t", {"n": 1})

    assert result.code == "invalid_arguments"
    assert provider.calls == []


async def test_a_rejection_stops_later_before_hooks() -> None:
    later: list[str] = []

    async def reject(call: ToolCall) -> ToolResult:
        return ToolResult.err("no", failure_class=FailureClass.REJECTED, code="rejected")

    async def record(call: ToolCall) -> None:
        later.append(call.name)

    provider = StaticToolProvider([simple_tool("t")])
    session = core_with(
        provider,
        ("reject", lambda reg, ctx: reg.tool_calls().before(reject)),
        ("record", lambda reg, ctx: reg.tool_calls().before(record)),
    ).session()

    result = await session.call_tool("t", {})

    assert result.code == "rejected"
    assert later == []


async def test_before_hook_raising_is_an_internal_failure_naming_its_plugin() -> None:
    async def broken(call: ToolCall) -> None:
        raise RuntimeError("hook bug")

    provider = StaticToolProvider([simple_tool("t")])
    session = core_with(provider, ("flaky", lambda reg, ctx: reg.tool_calls().before(broken))).session()

    result = await session.call_tool("t", {})

    assert result.failure_class is FailureClass.INTERNAL
    assert result.message == "internal error in before-hook of plugin 'flaky' while calling 't': RuntimeError: hook bug"
    assert provider.calls == []


# -- tool_calls: after hooks -----------------------------------------------------------------------


async def test_after_hook_sees_the_call_and_the_providers_result() -> None:
    seen: list[tuple[ToolCall, ToolResult]] = []

    async def audit(call: ToolCall, result: ToolResult) -> None:
        seen.append((call, result))

    provider = StaticToolProvider([simple_tool("t", n="integer")])
    session = core_with(provider, ("audit", lambda reg, ctx: reg.tool_calls().after(audit))).session()

    result = await session.call_tool("t", {"n": 2})

    ((call, after_result),) = seen
    assert call.args == {"n": 2}
    assert after_result.structured == {"n": 2}
    assert result is after_result


async def test_after_hook_sees_failures_too() -> None:
    seen: list[ToolResult] = []

    async def audit(call: ToolCall, result: ToolResult) -> None:
        seen.append(result)

    async def fails(call: ToolCall) -> ToolResult:
        return ToolResult.err("nope")

    session = core_with(
        StaticToolProvider([simple_tool("t")], fails), ("audit", lambda reg, ctx: reg.tool_calls().after(audit))
    ).session()

    await session.call_tool("t", {})

    assert [r.message for r in seen] == ["nope"]


async def test_after_hooks_replace_the_result_in_stack_order() -> None:
    async def redact(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult.ok(result.text().replace("secret", "[redacted]"))

    async def sign(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult.ok(result.text() + " (checked)")

    async def answer(call: ToolCall) -> ToolResult:
        return ToolResult.ok("the secret is 42")

    session = core_with(
        StaticToolProvider([simple_tool("t")], answer),
        ("redact", lambda reg, ctx: reg.tool_calls().after(redact)),
        ("sign", lambda reg, ctx: reg.tool_calls().after(sign)),
    ).session()

    result = await session.call_tool("t", {})

    assert result.text() == "the [redacted] is 42 (checked)"


async def test_after_hook_raising_is_an_internal_failure_naming_its_plugin() -> None:
    async def broken(call: ToolCall, result: ToolResult) -> None:
        raise ValueError("after bug")

    provider = StaticToolProvider([simple_tool("t")])
    session = core_with(provider, ("post", lambda reg, ctx: reg.tool_calls().after(broken))).session()

    result = await session.call_tool("t", {})

    assert result.failure_class is FailureClass.INTERNAL
    assert result.message == "internal error in after-hook of plugin 'post' while calling 't': ValueError: after bug"
    assert len(provider.calls) == 1


# -- tool_results: the exclusive projector ---------------------------------------------------------


async def test_projector_runs_last_on_what_the_after_hooks_returned() -> None:
    async def after(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult.ok("from after-hook")

    async def project(call: ToolCall, result: ToolResult) -> ToolResult:
        return ToolResult.from_parts([TextPart(f"projected: {result.text()}")])

    session = core_with(
        StaticToolProvider([simple_tool("t")]),
        ("project", lambda reg, ctx: reg.tool_results().projector(project)),
        ("after", lambda reg, ctx: reg.tool_calls().after(after)),
    ).session()

    result = await session.call_tool("t", {})

    assert result.text() == "projected: from after-hook"


async def test_projector_shapes_rejections_from_before_hooks_too() -> None:
    async def reject(call: ToolCall) -> ToolResult:
        return ToolResult.err("no", failure_class=FailureClass.REJECTED, code="rejected")

    projected: list[str | None] = []

    async def project(call: ToolCall, result: ToolResult) -> ToolResult:
        projected.append(result.code)
        return result

    session = core_with(
        StaticToolProvider([simple_tool("t")]),
        ("reject", lambda reg, ctx: reg.tool_calls().before(reject)),
        ("project", lambda reg, ctx: reg.tool_results().projector(project)),
    ).session()

    await session.call_tool("t", {})

    assert projected == ["rejected"]


async def test_projector_raising_is_an_internal_failure_naming_its_plugin() -> None:
    async def broken(call: ToolCall, result: ToolResult) -> ToolResult:
        raise TypeError("projector bug")

    session = core_with(
        StaticToolProvider([simple_tool("t")]), ("shape", lambda reg, ctx: reg.tool_results().projector(broken))
    ).session()

    result = await session.call_tool("t", {})

    assert result.message == (
        "internal error in result projector of plugin 'shape' while calling 't': TypeError: projector bug"
    )


async def _identity(call: ToolCall, result: ToolResult) -> ToolResult:
    return result


def test_a_second_projector_in_one_session_is_an_error_naming_both_plugins() -> None:
    core = core_with(
        StaticToolProvider(),
        ("first", lambda reg, ctx: reg.tool_results().projector(_identity)),
        ("second", lambda reg, ctx: reg.tool_results().projector(_identity)),
    )

    with pytest.raises(ExclusiveRegistrationError) as caught:
        core.session()

    assert isinstance(caught.value, PluginUsageError)
    assert (caught.value.category, caught.value.first, caught.value.second) == (
        "tool_results().projector",
        "first",
        "second",
    )
    assert "first registered first, second tried again" in str(caught.value)


def test_a_plugin_projector_conflicts_with_the_runtime_budget() -> None:
    core = LashCore.builder().plugin(CallbackPluginFactory("mine", lambda r, c: r.tool_results().projector(_identity)))

    with pytest.raises(ExclusiveRegistrationError, match="tool_output_budget registered first, mine tried again"):
        core.build().session()


def test_projector_exclusivity_is_per_session() -> None:
    def root_only(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        if ctx.is_root_session():
            reg.tool_results().projector(_identity)

    def children_only(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        if not ctx.is_root_session():
            reg.tool_results().projector(_identity)

    core = core_with(StaticToolProvider(), ("root_only", root_only), ("children_only", children_only))

    root = core.session()
    child = root.child("subagent")

    assert root.kind == "root" and child.kind == "subagent"


# -- prompt ----------------------------------------------------------------------------------------


async def test_prompt_contributions_are_awaited_and_collected_in_stack_order() -> None:
    order: list[str] = []

    def contributes(text: str | None) -> RegisterFunction:
        async def contribution(ctx: PluginSessionContext) -> str | None:
            await anyio.lowlevel.checkpoint()
            order.append(str(text))
            return text

        return lambda reg, ctx: reg.prompt().contribution(contribution)

    session = core_with(
        StaticToolProvider(),
        ("a", contributes("You may read files.")),
        ("b", contributes(None)),
        ("c", contributes("")),
        ("d", contributes("Answer briefly.")),
    ).session()

    texts = await session.prompt_contributions()

    assert texts == ["You may read files.", "Answer briefly."]
    assert order == ["You may read files.", "None", "", "Answer briefly."]


async def test_prompt_contribution_receives_the_sessions_context() -> None:
    async def describe(ctx: PluginSessionContext) -> str:
        return f"{ctx.kind} session {ctx.session_id}"

    root = core_with(StaticToolProvider(), ("who", lambda reg, ctx: reg.prompt().contribution(describe))).session()
    fork = root.child("fork")

    assert await root.prompt_contributions() == [f"root session {root.id}"]
    assert await fork.prompt_contributions() == [f"fork session {fork.id}"]


# -- turn hooks ------------------------------------------------------------------------------------


async def test_turn_hooks_fire_on_start_and_end_with_an_increasing_index() -> None:
    events: list[tuple[str, str, int]] = []

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        async def start(turn: TurnContext) -> None:
            events.append(("start", turn.turn_id, turn.turn_index))

        async def end(turn: TurnContext) -> None:
            events.append(("end", turn.turn_id, turn.turn_index))

        reg.turn().on_start(start)
        reg.turn().on_end(end)

    session = core_with(StaticToolProvider(), ("turns", register)).session()

    first = await session.start_turn()
    await session.end_turn(first)
    second = await session.start_turn()
    await session.end_turn(second)

    assert (first.session_id, first.turn_index, second.turn_index) == (session.id, 0, 1)
    assert first.turn_id != second.turn_id
    assert events == [
        ("start", first.turn_id, 0),
        ("end", first.turn_id, 0),
        ("start", second.turn_id, 1),
        ("end", second.turn_id, 1),
    ]


# -- session hooks ---------------------------------------------------------------------------------


class ReadyPlugin(SessionPlugin):
    def __init__(self, events: list[str]) -> None:
        self.events = events

    def register(self, reg: PluginRegistrar) -> None:
        async def on_ready(ctx: PluginSessionContext) -> None:
            self.events.append(f"on_ready hook ({ctx.kind})")

        reg.session().on_ready(on_ready)

    async def session_ready(self, ctx: PluginSessionContext) -> None:
        self.events.append(f"session_ready method ({ctx.kind})")


class ReadyPluginFactory(PluginFactory):
    def __init__(self) -> None:
        self.events: list[str] = []

    def id(self) -> str:
        return "ready"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return ReadyPlugin(self.events)


def closes(events: list[str], name: str) -> RegisterFunction:
    async def on_close(ctx: PluginSessionContext) -> None:
        await anyio.lowlevel.checkpoint()  # a close hook that awaits must survive a cancelled host
        events.append(f"close {name}")

    return lambda reg, ctx: reg.session().on_close(on_close)


async def test_ready_runs_session_ready_methods_then_on_ready_hooks() -> None:
    factory = ReadyPluginFactory()
    session = LashCore.builder().plugin(factory).build().session()

    await session.ready()

    assert factory.events == ["session_ready method (root)", "on_ready hook (root)"]


async def test_async_with_opens_the_session_and_closes_it_in_reverse_registration_order() -> None:
    factory = ReadyPluginFactory()
    events = factory.events
    core = (
        LashCore.builder()
        .plugin(factory)
        .plugin(CallbackPluginFactory("one", closes(events, "one")))
        .plugin(CallbackPluginFactory("two", closes(events, "two")))
        .build()
    )
    child = core.session().child("fork")

    async with child as entered:
        assert entered is child
        events.append(f"body ({entered.kind})")

    assert events == [
        "session_ready method (fork)",
        "on_ready hook (fork)",
        "body (fork)",
        "close two",
        "close one",
    ]


def test_a_session_says_whether_closing_it_runs_hooks() -> None:
    """Hosts skip the timeout they bound closing with when no hook would run (the gateway, per stateless request)."""
    plain = LashCore.builder().plugin(ReadyPluginFactory()).build()
    hooked = LashCore.builder().plugin(CallbackPluginFactory("one", closes([], "one"))).build()

    assert plain.session().closes_with_hooks is False
    assert hooked.session().closes_with_hooks is True


async def test_aclose_fires_close_hooks_without_opening_again() -> None:
    factory = ReadyPluginFactory()
    core = LashCore.builder().plugin(factory).plugin(CallbackPluginFactory("c", closes(factory.events, "c"))).build()

    await core.session().aclose()

    assert factory.events == ["close c"]


async def test_close_hooks_run_to_completion_when_the_host_is_cancelled() -> None:
    events: list[str] = []
    session = core_with(StaticToolProvider(), ("c", closes(events, "c"))).session()

    with anyio.CancelScope() as scope:
        async with session:
            scope.cancel()
            await anyio.lowlevel.checkpoint()
            events.append("not reached")

    assert scope.cancelled_caught
    assert events == ["close c"]
