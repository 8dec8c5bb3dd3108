"""A session's tool surface: several providers, host providers beside plugin tools, conflicts, hide/show."""

from __future__ import annotations

import pytest

from lash_core import (
    FailureClass,
    LashCore,
    PluginRegistrar,
    PluginSessionContext,
    PluginUsageError,
    ToolConflictError,
    ToolDefinition,
)
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, simple_tool


def names(tools: tuple[ToolDefinition, ...]) -> list[str]:
    return [t.name for t in tools]


def offering(plugin_id: str, provider: StaticToolProvider) -> CallbackPluginFactory:
    return CallbackPluginFactory(plugin_id, lambda reg, ctx: reg.tools().provider(provider))


def test_session_offers_the_tools_of_every_provider_in_stack_order() -> None:
    files = StaticToolProvider([simple_tool("read"), simple_tool("write")])
    web = StaticToolProvider([simple_tool("fetch")])
    core = LashCore.builder().plugin(offering("files", files)).plugin(offering("web", web)).build()

    assert names(core.session().tools()) == ["read", "write", "fetch"]


def test_one_plugin_may_register_several_providers() -> None:
    first, second = StaticToolProvider([simple_tool("a")]), StaticToolProvider([simple_tool("b")])

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.tools().provider(first)
        reg.tools().provider(second)

    core = LashCore.builder().plugin(CallbackPluginFactory("both", register)).build()

    assert names(core.session().tools()) == ["a", "b"]


@pytest.mark.anyio
async def test_host_tools_come_first_and_both_host_and_plugin_tools_are_callable() -> None:
    host = StaticToolProvider([simple_tool("host_tool")])
    plugin = StaticToolProvider([simple_tool("plugin_tool")])
    core = LashCore.builder().plugin(offering("plug", plugin)).tools(host).build()
    session = core.session()

    host_result = await session.call_tool("host_tool", {"x": 1})
    plugin_result = await session.call_tool("plugin_tool", {"y": 2})

    assert names(session.tools()) == ["host_tool", "plugin_tool"]
    assert host_result.structured == {"x": 1} and plugin_result.structured == {"y": 2}
    assert [c.name for c in host.calls] == ["host_tool"]
    assert [c.name for c in plugin.calls] == ["plugin_tool"]


def test_a_name_offered_by_two_plugin_providers_is_an_error_naming_both() -> None:
    alpha = StaticToolProvider([simple_tool("search")], name="AlphaSearch")
    beta = StaticToolProvider([simple_tool("other"), simple_tool("search")], name="BetaSearch")
    session = LashCore.builder().plugin(offering("alpha", alpha)).plugin(offering("beta", beta)).build().session()

    with pytest.raises(ToolConflictError) as caught:
        session.tools()

    error = caught.value
    assert isinstance(error, PluginUsageError)
    assert error.tool == "search"
    assert error.first == "AlphaSearch (plugin 'alpha')"
    assert error.second == "BetaSearch (plugin 'beta')"
    assert "'search'" in str(error) and "AlphaSearch (plugin 'alpha')" in str(error) and "BetaSearch" in str(error)


def test_a_host_provider_and_a_plugin_offering_one_name_conflict() -> None:
    host = StaticToolProvider([simple_tool("search")], name="HostSearch")
    plugin = StaticToolProvider([simple_tool("search")], name="PluginSearch")
    session = LashCore.builder().tools(host).plugin(offering("plug", plugin)).build().session()

    with pytest.raises(ToolConflictError, match=r"HostSearch \(plugin 'host'\) and PluginSearch \(plugin 'plug'\)"):
        session.tools()


@pytest.mark.anyio
async def test_a_conflict_is_raised_by_call_tool_too() -> None:
    a, b = StaticToolProvider([simple_tool("t")], name="A"), StaticToolProvider([simple_tool("t")], name="B")
    session = LashCore.builder().tools(a).tools(b).build().session()

    with pytest.raises(ToolConflictError):
        await session.call_tool("t", {})


def test_hiding_a_conflicting_name_resolves_the_conflict() -> None:
    """Regression: conflicts were checked before hiding, so the fix the error message suggests
    ("hide it with surface()") did not work."""
    a, b = StaticToolProvider([simple_tool("t"), simple_tool("a_only")]), StaticToolProvider([simple_tool("t")])
    hide = CallbackPluginFactory("hide", lambda reg, ctx: reg.surface().hide("t"))
    core = LashCore.builder().tools(a).tools(b).plugin(hide).build()

    assert names(core.session().tools()) == ["a_only"]


def test_hiding_one_providers_copy_of_a_name_keeps_the_other() -> None:
    a = StaticToolProvider([ToolDefinition.raw("t", "from a", {"type": "object"})])
    b = StaticToolProvider([ToolDefinition.raw("t", "from b", {"type": "object"})])
    hide = CallbackPluginFactory("hide", lambda reg, ctx: reg.surface().hide_if(lambda d: d.description == "from a"))
    core = LashCore.builder().tools(a).tools(b).plugin(hide).build()

    assert [t.description for t in core.session().tools()] == ["from b"]


def test_surface_hide_matches_glob_patterns() -> None:
    provider = StaticToolProvider([simple_tool(n) for n in ("mcp__docs__read", "mcp__docs__write", "mcp__git__log")])
    hide = CallbackPluginFactory("hide", lambda reg, ctx: reg.surface().hide("mcp__docs__*"))
    core = LashCore.builder().tools(provider).plugin(hide).build()

    assert names(core.session().tools()) == ["mcp__git__log"]


def test_surface_only_shows_matching_tools_and_hides_the_rest() -> None:
    provider = StaticToolProvider([simple_tool(n) for n in ("read", "write", "list", "delete")])
    show = CallbackPluginFactory("show", lambda reg, ctx: reg.surface().only("read", "l*"))
    core = LashCore.builder().tools(provider).plugin(show).build()

    assert names(core.session().tools()) == ["read", "list"]


def test_hide_rules_of_several_plugins_add_up() -> None:
    provider = StaticToolProvider([simple_tool(n) for n in ("a", "b", "c")])
    core = (
        LashCore.builder()
        .tools(provider)
        .plugin(CallbackPluginFactory("h1", lambda reg, ctx: reg.surface().hide("a")))
        .plugin(CallbackPluginFactory("h2", lambda reg, ctx: reg.surface().hide("c")))
        .build()
    )

    assert names(core.session().tools()) == ["b"]


def test_surface_is_decided_per_session() -> None:
    provider = StaticToolProvider([simple_tool("read"), simple_tool("delete")])

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        if not ctx.is_root_session():
            reg.surface().hide("delete")

    core = LashCore.builder().tools(provider).plugin(CallbackPluginFactory("readonly_children", register)).build()
    root = core.session()

    assert names(root.tools()) == ["read", "delete"]
    assert names(root.child("subagent").tools()) == ["read"]
    assert names(core.session().tools()) == ["read", "delete"]


@pytest.mark.anyio
async def test_a_hidden_tool_cannot_be_called() -> None:
    provider = StaticToolProvider([simple_tool("secret"), simple_tool("public")])
    hide = CallbackPluginFactory("hide", lambda reg, ctx: reg.surface().hide("secret"))
    session = LashCore.builder().tools(provider).plugin(hide).build().session()

    result = await session.call_tool("secret", {})

    assert result.failure_class is FailureClass.INVALID_INPUT
    assert result.code == "unknown_tool"
    assert provider.calls == []


def test_session_sees_a_providers_new_tool_list() -> None:
    provider = StaticToolProvider([simple_tool("v1")])
    session = LashCore.builder().tools(provider).build().session()
    assert names(session.tools()) == ["v1"]

    provider.set_definitions([simple_tool("v2"), simple_tool("v2b")])

    assert names(session.tools()) == ["v2", "v2b"]


def test_surface_is_not_recomputed_while_providers_return_the_same_sequence() -> None:
    provider = StaticToolProvider([simple_tool("a"), simple_tool("b")])
    checked: list[str] = []

    def never_hide(definition: ToolDefinition) -> bool:
        checked.append(definition.name)
        return False

    spy = CallbackPluginFactory("spy", lambda reg, ctx: reg.surface().hide_if(never_hide))
    session = LashCore.builder().tools(provider).plugin(spy).build().session()

    first = session.tools()
    second = session.tools()

    assert checked == ["a", "b"]
    assert second is first
    provider.set_definitions(provider.definitions() + (simple_tool("c"),))
    session.tools()
    assert checked == ["a", "b", "a", "b", "c"]


def test_sessions_with_the_same_providers_share_one_surface() -> None:
    """A gateway builds a session per client; with thousands of tools, each must not rebuild the index."""
    shared = StaticToolProvider([simple_tool(f"t{i}") for i in range(1000)])
    core = LashCore.builder().plugin(offering("big", shared)).build()

    first, second = core.session(), core.session()

    assert first.tools() is second.tools()
    assert second.child("subagent").tools() is first.tools()


def test_a_shared_surface_follows_the_providers_changes() -> None:
    provider = StaticToolProvider([simple_tool("old")])
    core = LashCore.builder().plugin(offering("p", provider)).build()
    before = core.session()
    assert names(before.tools()) == ["old"]

    provider.set_definitions([simple_tool("new")])

    assert names(core.session().tools()) == ["new"]
    assert names(before.tools()) == ["new"]


def test_a_session_that_hides_tools_does_not_share_or_spoil_the_surface() -> None:
    provider = StaticToolProvider([simple_tool("keep"), simple_tool("secret")])

    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        if not ctx.is_root_session():
            reg.surface().hide("secret")

    core = LashCore.builder().plugin(offering("p", provider)).plugin(CallbackPluginFactory("hide", register)).build()
    root = core.session()
    child = root.child("subagent")

    assert names(child.tools()) == ["keep"]
    assert names(root.tools()) == ["keep", "secret"]
    assert names(core.session().tools()) == ["keep", "secret"]


def test_sessions_with_their_own_providers_get_their_own_surfaces() -> None:
    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.tools().provider(StaticToolProvider([simple_tool(f"for_{ctx.session_id[:6]}")]))

    core = LashCore.builder().plugin(CallbackPluginFactory("own", register)).build()
    first, second = core.session(), core.session()

    assert names(first.tools()) == [f"for_{first.id[:6]}"]
    assert names(second.tools()) == [f"for_{second.id[:6]}"]
