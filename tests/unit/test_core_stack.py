"""`PluginStack` (push/replace/remove/configure, unique ids) and `LashCore.builder()`."""

from __future__ import annotations

import pytest

from lash_core import (
    DuplicatePluginError,
    LashCore,
    PluginStack,
    PluginUsageError,
    TextPart,
    ToolDefinition,
    ToolOutputBudget,
    ToolOutputBudgetPluginFactory,
    UnknownPluginError,
)
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, returns, simple_tool


def plugin(plugin_id: str, tool: str | None = None) -> CallbackPluginFactory:
    """A factory whose sessions offer one tool, named after the plugin unless `tool` is given."""
    provider = StaticToolProvider([simple_tool(tool or plugin_id)], name=plugin_id)
    return CallbackPluginFactory(plugin_id, lambda reg, ctx: reg.tools().provider(provider))


def names(tools: tuple[ToolDefinition, ...]) -> list[str]:
    return [t.name for t in tools]


# -- PluginStack -----------------------------------------------------------------------------------


def test_runtime_stack_holds_the_tool_output_budget() -> None:
    stack = PluginStack.runtime()

    assert stack.ids() == ["tool_output_budget"]
    assert isinstance(stack.get("tool_output_budget"), ToolOutputBudgetPluginFactory)


def test_push_appends_in_order() -> None:
    stack = PluginStack().push(plugin("a")).push(plugin("b"))

    assert stack.ids() == ["a", "b"]
    assert len(stack) == 2
    assert "a" in stack and "c" not in stack
    assert [f.id() for f in stack] == ["a", "b"]
    assert repr(stack) == "PluginStack(['a', 'b'])"


def test_push_of_a_duplicate_id_is_an_error_naming_the_id() -> None:
    stack = PluginStack([plugin("a")])

    with pytest.raises(DuplicatePluginError) as caught:
        stack.push(plugin("a"))

    assert isinstance(caught.value, PluginUsageError)
    assert caught.value.plugin_id == "a"
    assert "'a' is already in the stack; use replace('a')" in str(caught.value)
    assert stack.ids() == ["a"]


def test_constructing_a_stack_with_duplicate_ids_is_an_error() -> None:
    with pytest.raises(DuplicatePluginError, match="'a'"):
        PluginStack([plugin("a"), plugin("b"), plugin("a")])


def test_replace_swaps_the_factory_in_place() -> None:
    new_b = plugin("b", tool="b2")
    stack = PluginStack([plugin("a"), plugin("b"), plugin("c")])

    stack.replace(new_b)

    assert stack.ids() == ["a", "b", "c"]
    assert stack.get("b") is new_b


def test_replace_of_an_absent_id_appends() -> None:
    stack = PluginStack([plugin("a")]).replace(plugin("z"))

    assert stack.ids() == ["a", "z"]


def test_remove_drops_the_factory() -> None:
    stack = PluginStack([plugin("a"), plugin("b"), plugin("c")]).remove("b")

    assert stack.ids() == ["a", "c"]
    assert stack.get("b") is None


def test_remove_of_an_unknown_id_is_a_lookup_error_listing_the_ids() -> None:
    stack = PluginStack([plugin("a"), plugin("b")])

    with pytest.raises(UnknownPluginError) as caught:
        stack.remove("zzz")

    assert isinstance(caught.value, LookupError)
    assert caught.value.plugin_id == "zzz"
    assert str(caught.value) == "no plugin with id 'zzz' in the stack (ids: a, b)"
    assert stack.ids() == ["a", "b"]


def test_remove_from_an_empty_stack_says_there_are_no_ids() -> None:
    with pytest.raises(UnknownPluginError, match=r"\(ids: none\)"):
        PluginStack().remove("x")


def test_configure_runs_the_function_on_the_stack_and_returns_it() -> None:
    stack = PluginStack.runtime()

    returned = stack.configure(lambda s: s.push(plugin("a")).push(plugin("b")).remove("tool_output_budget"))

    assert returned is stack
    assert stack.ids() == ["a", "b"]


def test_copy_is_independent_of_the_original() -> None:
    original = PluginStack([plugin("a")])

    copy = original.copy()
    copy.push(plugin("b"))

    assert original.ids() == ["a"]
    assert copy.ids() == ["a", "b"]


def test_iterating_sees_the_stack_as_it_was_when_iteration_began() -> None:
    stack = PluginStack([plugin("a"), plugin("b")])

    seen = []
    for factory in stack:
        seen.append(factory.id())
        stack.push(plugin(factory.id() + "_new"))

    assert seen == ["a", "b"]
    assert stack.ids() == ["a", "b", "a_new", "b_new"]


# -- the runtime stack in a core -------------------------------------------------------------------


@pytest.mark.anyio
async def test_replacing_the_runtime_budget_changes_what_sessions_truncate() -> None:
    provider = StaticToolProvider([simple_tool("t")], returns("x" * 50))
    tight = ToolOutputBudgetPluginFactory(ToolOutputBudget(max_text_chars=10))
    core = LashCore.builder().configure_plugins(lambda stack: stack.replace(tight)).tools(provider).build()

    result = await core.session().call_tool("t", {})

    assert core.plugins.ids() == ["tool_output_budget"]
    assert core.plugins.get("tool_output_budget") is tight
    assert result.content[0] == TextPart("x" * 10)
    assert "cut 40" in result.text()


@pytest.mark.anyio
async def test_removing_the_runtime_budget_leaves_results_untouched() -> None:
    long = "y" * 200_000
    provider = StaticToolProvider([simple_tool("t")], returns(long))
    core = LashCore.builder().configure_plugins(lambda stack: stack.remove("tool_output_budget")).tools(provider)

    result = await core.build().session().call_tool("t", {})

    assert result.text() == long


@pytest.mark.anyio
async def test_the_default_builder_budgets_outputs_at_the_default_limit() -> None:
    provider = StaticToolProvider([simple_tool("t")], returns("z" * 100_001))

    result = await LashCore.builder().tools(provider).build().session().call_tool("t", {})

    assert result.content[0] == TextPart("z" * 100_000)
    assert "cut 1;" in result.text()


# -- LashCore.builder ------------------------------------------------------------------------------


def test_builder_starts_from_the_runtime_stack_and_plugin_appends() -> None:
    core = LashCore.builder().plugin(plugin("a")).plugin(plugin("b")).build()

    assert core.plugins.ids() == ["tool_output_budget", "a", "b"]
    assert names(core.session().tools()) == ["a", "b"]


def test_builder_plugin_with_a_duplicate_id_is_an_error() -> None:
    builder = LashCore.builder().plugin(plugin("a"))

    with pytest.raises(DuplicatePluginError):
        builder.plugin(plugin("a"))


def test_builder_plugins_replaces_the_whole_stack_including_the_runtime_defaults() -> None:
    stack = PluginStack([plugin("x"), plugin("y")])

    builder = LashCore.builder().plugin(plugin("a")).plugins(stack)
    stack.push(plugin("late"))

    assert builder.build().plugins.ids() == ["x", "y"]


def test_builder_configure_plugins_mutates_the_stack_in_place() -> None:
    core = (
        LashCore.builder()
        .plugin(plugin("a"))
        .plugin(plugin("b"))
        .configure_plugins(lambda stack: stack.remove("a").replace(plugin("b", tool="b2")).push(plugin("c")))
        .build()
    )

    assert core.plugins.ids() == ["tool_output_budget", "b", "c"]
    assert names(core.session().tools()) == ["b2", "c"]


def test_builder_tools_adds_host_providers_in_order_before_plugin_tools() -> None:
    first = StaticToolProvider([simple_tool("h1")])
    second = StaticToolProvider([simple_tool("h2")])

    core = LashCore.builder().plugin(plugin("p")).tools(first).tools(second).build()

    assert names(core.session().tools()) == ["h1", "h2", "p"]


def test_a_built_core_does_not_change_when_the_builder_or_its_plugins_copy_does() -> None:
    builder = LashCore.builder().plugin(plugin("a"))
    core = builder.build()

    builder.plugin(plugin("b")).tools(StaticToolProvider([simple_tool("host")]))
    core.plugins.push(plugin("c"))

    assert core.plugins.ids() == ["tool_output_budget", "a"]
    assert names(core.session().tools()) == ["a"]


def test_a_core_can_be_built_directly_from_a_stack_and_providers() -> None:
    core = LashCore(PluginStack([plugin("a")]), [StaticToolProvider([simple_tool("h")])])

    assert names(core.session().tools()) == ["h", "a"]
