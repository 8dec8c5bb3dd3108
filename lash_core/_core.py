"""`LashCore`: a frozen plugin stack plus host providers; it builds every session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._caller import NO_CALLER, Caller
from ._context import PluginSessionContext, SessionKind, new_id
from ._plugin import PluginFactory, SessionPlugin
from ._registrar import PluginRegistrar
from ._session import Session, SessionSnapshot, SurfaceCache
from ._stack import PluginStack
from ._tools import ToolProvider


class LashCore:
    """Builds sessions from a fixed list of factories. Use `LashCore.builder()` to make one."""

    __slots__ = ("_factories", "_providers", "surfaces")

    def __init__(self, stack: PluginStack, providers: Sequence[ToolProvider] = ()) -> None:
        self._factories: tuple[PluginFactory, ...] = tuple(stack)
        self._providers = tuple(providers)
        self.surfaces = SurfaceCache()

    @staticmethod
    def builder() -> LashCoreBuilder:
        return LashCoreBuilder()

    @property
    def plugins(self) -> PluginStack:
        """A copy of the stack this core builds from."""
        return PluginStack(self._factories)

    def session(
        self, *, snapshot: SessionSnapshot | None = None, caller: Caller = NO_CALLER, stateless: bool = False
    ) -> Session:
        """A new root session, or the session a snapshot was taken of, with its plugin state restored. `caller`
        answers providers' questions during its calls (sampling, elicitation, roots; see `Caller`); `stateless`
        says it serves one request only (see `PluginSessionContext.stateless`)."""
        if snapshot is None:
            context = PluginSessionContext(new_id(), SessionKind.ROOT, stateless=stateless)
            return self.session_for(context, caller=caller)
        context = PluginSessionContext(snapshot.session_id, snapshot.kind, snapshot.parent_id)
        return self.session_for(context, snapshot, caller=caller)

    def session_for(
        self, context: PluginSessionContext, snapshot: SessionSnapshot | None = None, *, caller: Caller = NO_CALLER
    ) -> Session:
        """Build a session for an explicit context (hosts that manage session ids themselves)."""
        reg = PluginRegistrar()
        for provider in self._providers:
            reg.tools().provider(provider)
        plugins: list[tuple[str, SessionPlugin]] = []
        states = snapshot.plugins if snapshot is not None else {}
        for factory in self._factories:
            plugin_id = factory.id()
            plugin = factory.build(context)
            if plugin_id in states:
                plugin.restore(states[plugin_id])
            reg.owner = plugin_id
            plugin.register(reg)
            plugins.append((plugin_id, plugin))
        return Session(self, context, plugins, reg.registrations, caller)


class LashCoreBuilder:
    """Starts from `PluginStack.runtime()`; every method returns the builder."""

    __slots__ = ("_providers", "_stack")

    def __init__(self) -> None:
        self._stack = PluginStack.runtime()
        self._providers: list[ToolProvider] = []

    def plugin(self, factory: PluginFactory) -> LashCoreBuilder:
        """Append a factory (a duplicate id raises `DuplicatePluginError`)."""
        self._stack.push(factory)
        return self

    def plugins(self, stack: PluginStack) -> LashCoreBuilder:
        """Replace the whole stack, the runtime defaults included."""
        self._stack = stack.copy()
        return self

    def configure_plugins(self, fn: Callable[[PluginStack], Any]) -> LashCoreBuilder:
        """Mutate the stack in place (`push`, `replace`, `remove`)."""
        fn(self._stack)
        return self

    def tools(self, provider: ToolProvider) -> LashCoreBuilder:
        """Add a provider to every session without writing a plugin; its tools come first."""
        self._providers.append(provider)
        return self

    def build(self) -> LashCore:
        return LashCore(self._stack, self._providers)
