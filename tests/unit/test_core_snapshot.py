"""Snapshots: plugin state carried across resume, through JSON, for roots and children."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lash_core import (
    LashCore,
    PluginFactory,
    PluginRegistrar,
    PluginSessionContext,
    PluginStack,
    SessionKind,
    SessionPlugin,
    SessionSnapshot,
    ToolCall,
    ToolDefinition,
    ToolResult,
)
from lash_core.testing import CallbackPluginFactory, StaticToolProvider, simple_tool


class CounterPlugin(SessionPlugin):
    """Counts `bump` calls per session; the count survives resume. Sessions that resumed with 3 or
    more bumps also get a `reset` tool, which proves `restore` runs before `register`."""

    def __init__(self, log: list[str]) -> None:
        self.count = 0
        self._log = log

    def register(self, reg: PluginRegistrar) -> None:
        self._log.append(f"register at {self.count}")

        async def bump(call: ToolCall) -> ToolResult:
            self.count += 1
            return ToolResult.ok(self.count)

        tools = [simple_tool("bump")] + ([simple_tool("reset")] if self.count >= 3 else [])
        reg.tools().provider(StaticToolProvider(tools, bump, name="counter"))

    def snapshot(self) -> Any:
        return {"count": self.count} if self.count else None

    def restore(self, state: Any) -> None:
        self._log.append(f"restore {state}")
        self.count = state["count"]


class CounterFactory(PluginFactory):
    def __init__(self) -> None:
        self.log: list[str] = []

    def id(self) -> str:
        return "counter"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return CounterPlugin(self.log)


def names(tools: tuple[ToolDefinition, ...]) -> list[str]:
    return [t.name for t in tools]


def through_json(snapshot: SessionSnapshot) -> SessionSnapshot:
    return SessionSnapshot.from_dict(json.loads(json.dumps(snapshot.to_dict())))


@pytest.mark.anyio
async def test_a_resumed_session_keeps_its_id_and_its_plugins_state() -> None:
    core = LashCore.builder().plugin(CounterFactory()).build()
    session = core.session()
    for _ in range(3):
        await session.call_tool("bump")

    resumed = core.session(snapshot=through_json(session.snapshot()))

    assert resumed.id == session.id
    assert resumed.kind is SessionKind.ROOT and resumed.context.parent_id is None
    assert (await resumed.call_tool("bump")).value == 4


def test_restore_runs_before_register() -> None:
    factory = CounterFactory()
    core = LashCore.builder().plugin(factory).build()
    snapshot = SessionSnapshot("s1", SessionKind.ROOT, None, {"counter": {"count": 3}})

    resumed = core.session(snapshot=snapshot)

    assert factory.log == ["restore {'count': 3}", "register at 3"]
    assert names(resumed.tools()) == ["bump", "reset"]


def test_plugins_with_nothing_to_keep_are_absent_from_the_snapshot() -> None:
    snapshot = LashCore.builder().plugin(CounterFactory()).build().session().snapshot()

    assert snapshot.plugins == {}  # neither the budget plugin nor an unused counter keeps anything


def test_a_plugin_without_saved_state_is_not_restored() -> None:
    factory = CounterFactory()
    core = LashCore.builder().plugin(factory).build()

    core.session(snapshot=SessionSnapshot("s1", SessionKind.ROOT, None, {}))

    assert factory.log == ["register at 0"]


def test_state_of_a_plugin_no_longer_in_the_stack_is_ignored() -> None:
    core = LashCore.builder().build()

    resumed = core.session(snapshot=SessionSnapshot("s1", SessionKind.ROOT, None, {"gone": {"x": 1}}))

    assert resumed.id == "s1"
    assert resumed.snapshot().plugins == {}


@pytest.mark.anyio
async def test_a_childs_snapshot_keeps_its_kind_and_parent() -> None:
    core = LashCore.builder().plugin(CounterFactory()).build()
    root = core.session()
    child = root.child("compaction")
    await child.call_tool("bump")

    snapshot = through_json(child.snapshot())
    resumed = core.session(snapshot=snapshot)

    assert snapshot == SessionSnapshot(child.id, SessionKind.COMPACTION, root.id, {"counter": {"count": 1}})
    assert (resumed.id, resumed.kind, resumed.context.parent_id) == (child.id, SessionKind.COMPACTION, root.id)
    assert (await resumed.call_tool("bump")).value == 2


def test_snapshot_dict_round_trip_is_exact_and_json_able() -> None:
    snapshot = SessionSnapshot("s1", SessionKind.FORK, "p1", {"counter": {"count": 2}, "notes": ["a", "b"]})

    as_dict = snapshot.to_dict()

    assert as_dict == {
        "session_id": "s1",
        "kind": "fork",
        "parent_id": "p1",
        "plugins": {"counter": {"count": 2}, "notes": ["a", "b"]},
    }
    assert json.loads(json.dumps(as_dict)) == as_dict
    assert SessionSnapshot.from_dict(as_dict) == snapshot
    assert SessionSnapshot.from_dict(as_dict).kind is SessionKind.FORK


def test_snapshots_key_plugin_state_by_factory_id() -> None:
    class Keeps(SessionPlugin):
        def id(self) -> str:
            return "a_different_session_plugin_id"

        def register(self, reg: PluginRegistrar) -> None:
            pass

        def snapshot(self) -> Any:
            return "kept"

    class KeepsFactory(PluginFactory):
        def id(self) -> str:
            return "keeper"

        def build(self, ctx: PluginSessionContext) -> SessionPlugin:
            return Keeps()

    session = LashCore.builder().plugins(PluginStack([KeepsFactory()])).build().session()

    assert session.snapshot().plugins == {"keeper": "kept"}


def test_a_snapshot_restores_into_a_core_with_other_plugins_around_it() -> None:
    factory = CounterFactory()
    saved = SessionSnapshot("s1", SessionKind.ROOT, None, {"counter": {"count": 5}})
    noop = CallbackPluginFactory("noop", lambda reg, ctx: None)

    resumed = LashCore.builder().plugin(noop).plugin(factory).build().session(snapshot=saved)

    assert resumed.snapshot() == saved
