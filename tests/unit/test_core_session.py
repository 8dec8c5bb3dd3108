"""Sessions and their children, the seeds' plugin examples, and the stored registration categories."""

from __future__ import annotations

import pytest

from lash_core import (
    LashCore,
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    PluginUsageError,
    SessionKind,
    SessionPlugin,
    ToolCall,
    ToolDefinition,
    ToolResult,
)
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, simple_tool


def names(tools: tuple[ToolDefinition, ...]) -> list[str]:
    return [t.name for t in tools]


def recording(contexts: list[PluginSessionContext]) -> CallbackPluginFactory:
    return CallbackPluginFactory("recorder", lambda reg, ctx: contexts.append(ctx))


# -- sessions and children -------------------------------------------------------------------------


def test_each_root_session_gets_a_fresh_id_and_root_context() -> None:
    contexts: list[PluginSessionContext] = []
    core = LashCore.builder().plugin(recording(contexts)).build()

    first, second = core.session(), core.session()

    assert first.id != second.id
    assert first.kind is SessionKind.ROOT
    assert [c.session_id for c in contexts] == [first.id, second.id]
    assert contexts[0] == first.context == PluginSessionContext(first.id, SessionKind.ROOT, None)
    assert contexts[0].is_root_session()


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("subagent", SessionKind.SUBAGENT),
        ("fork", SessionKind.FORK),
        ("compaction", SessionKind.COMPACTION),
        (SessionKind.SUBAGENT, SessionKind.SUBAGENT),
        (SessionKind.FORK, SessionKind.FORK),
        (SessionKind.COMPACTION, SessionKind.COMPACTION),
    ],
)
def test_child_is_built_from_the_same_factories_with_its_kind_and_parent(
    kind: str | SessionKind, expected: SessionKind
) -> None:
    contexts: list[PluginSessionContext] = []
    root = LashCore.builder().plugin(recording(contexts)).build().session()

    child = root.child(kind)

    assert child.kind is expected
    assert child.context.parent_id == root.id
    assert child.id != root.id
    assert contexts[-1] == child.context
    assert not child.context.is_root_session()


def test_children_of_children_chain_their_parents() -> None:
    root = LashCore.builder().build().session()

    subagent = root.child("subagent")
    compaction = subagent.child(SessionKind.COMPACTION)

    assert (compaction.context.parent_id, subagent.context.parent_id) == (subagent.id, root.id)


def test_a_child_cannot_be_a_root_session() -> None:
    root = LashCore.builder().build().session()

    with pytest.raises(PluginUsageError, match="core.session"):
        root.child("root")
    with pytest.raises(PluginUsageError):
        root.child(SessionKind.ROOT)


def test_an_unknown_child_kind_is_a_usage_error_naming_it_and_the_choices() -> None:
    with pytest.raises(PluginUsageError, match="'sidecar'.*subagent, fork, compaction"):
        LashCore.builder().build().session().child("sidecar")


def test_session_for_builds_a_session_with_the_hosts_context() -> None:
    contexts: list[PluginSessionContext] = []
    core = LashCore.builder().plugin(recording(contexts)).build()
    context = PluginSessionContext("downstream-42", SessionKind.FORK, "parent-1")

    session = core.session_for(context)

    assert session.id == "downstream-42"
    assert session.context is context
    assert contexts == [context]


def test_session_repr_names_its_id_kind_and_plugins() -> None:
    session = LashCore.builder().build().session()

    assert repr(session) == f"<Session {session.id} kind=root plugins=['tool_output_budget']>"


# -- the seeds' examples ---------------------------------------------------------------------------


class PlanPlugin(SessionPlugin):
    """The seeds' `update_plan`: a planning tool only the root session (the one talking to the user) gets."""

    def __init__(self, ctx: PluginSessionContext, provider: StaticToolProvider) -> None:
        self._ctx = ctx
        self._provider = provider

    def register(self, reg: PluginRegistrar) -> None:
        if self._ctx.is_root_session():
            reg.tools().provider(self._provider)


class PlanPluginFactory(PluginFactory):
    def __init__(self) -> None:
        self.provider = StaticToolProvider([simple_tool("update_plan", plan="array")], name="plan")

    def id(self) -> str:
        return "plan"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return PlanPlugin(ctx, self.provider)


@pytest.mark.anyio
async def test_update_plan_is_offered_to_root_sessions_only() -> None:
    core = LashCore.builder().plugin(PlanPluginFactory()).tools(StaticToolProvider([simple_tool("read")])).build()
    root = core.session()

    root_result = await root.call_tool("update_plan", {"plan": ["read the docs"]})
    assert names(root.tools()) == ["read", "update_plan"]
    assert not root_result.is_error
    for kind in ("subagent", "fork", "compaction"):
        child = root.child(kind)
        assert names(child.tools()) == ["read"], kind
        assert (await child.call_tool("update_plan", {"plan": []})).code == "unknown_tool"


class ExpensiveIndex:
    """Stands for what a factory builds once per process: a pool, a compiled schema set, an index."""

    built = 0

    def __init__(self) -> None:
        ExpensiveIndex.built += 1
        self.lookups: list[str] = []

    def lookup(self, session_id: str, term: str) -> str:
        self.lookups.append(session_id)
        return f"{term}: found"


class IndexPlugin(SessionPlugin):
    def __init__(self, index: ExpensiveIndex, provider: StaticToolProvider) -> None:
        self.index = index
        self._provider = provider

    def register(self, reg: PluginRegistrar) -> None:
        reg.tools().provider(self._provider)


class IndexPluginFactory(PluginFactory):
    """The seeds' shared-state factory: the expensive object is built here, once; `build` only
    hands out references to it."""

    def __init__(self) -> None:
        self.index = ExpensiveIndex()

        async def lookup(call: ToolCall) -> ToolResult:
            return ToolResult.ok(self.index.lookup(call.context.session_id, call.args["term"]))

        self._provider = StaticToolProvider([simple_tool("lookup", term="string")], lookup, name="index")
        self.plugins: list[IndexPlugin] = []

    def id(self) -> str:
        return "index"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        plugin = IndexPlugin(self.index, self._provider)
        self.plugins.append(plugin)
        return plugin


@pytest.mark.anyio
async def test_a_factorys_expensive_state_is_built_once_and_shared_by_every_session() -> None:
    ExpensiveIndex.built = 0
    factory = IndexPluginFactory()
    core = LashCore.builder().plugin(factory).build()

    root = core.session()
    sessions = [root, core.session(), root.child("subagent"), root.child("fork"), root.child("compaction")]
    for session in sessions:
        assert (await session.call_tool("lookup", {"term": "anyio"})).text() == "anyio: found"

    assert ExpensiveIndex.built == 1
    assert len(factory.plugins) == len(sessions)
    assert all(plugin.index is factory.index for plugin in factory.plugins)
    assert factory.index.lookups == [s.id for s in sessions]


# -- stored categories -----------------------------------------------------------------------------

STORED = ("discovery", "output", "monitors", "history", "mode")


@pytest.mark.parametrize("category", STORED)
def test_a_stored_category_keeps_registrations_in_stack_order_for_the_host(category: str) -> None:
    def storing(*items: object) -> CallbackPluginFactory:
        def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
            for item in items:
                getattr(reg, category)().add(item)

        return CallbackPluginFactory(f"stores_{'_'.join(map(str, items))}", register)

    core = LashCore.builder().plugin(storing("a", "b")).plugin(storing("c")).build()
    session = core.session()

    assert session.registered(category) == ["a", "b", "c"]
    for other in STORED:
        if other != category:
            assert session.registered(other) == []


def test_stored_registrations_are_per_session() -> None:
    def register(reg: PluginRegistrar, ctx: PluginSessionContext) -> None:
        reg.mode().add("plan" if ctx.is_root_session() else "execute")

    root = LashCore.builder().plugin(CallbackPluginFactory("modes", register)).build().session()

    assert root.registered("mode") == ["plan"]
    assert root.child("subagent").registered("mode") == ["execute"]


def test_reading_an_unknown_stored_category_is_an_error_listing_the_known_ones() -> None:
    session = LashCore.builder().build().session()

    with pytest.raises(PluginUsageError) as caught:
        session.registered("tools")

    assert str(caught.value) == "unknown stored category 'tools'; one of discovery, output, monitors, history, mode"
