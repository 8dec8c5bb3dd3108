"""`PluginStack`: the ordered factories a core builds every session from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._budget import ToolOutputBudgetPluginFactory
from ._errors import DuplicatePluginError, UnknownPluginError
from ._plugin import PluginFactory


class PluginStack:
    """Ordered plugin factories with unique ids. Order is registration order in every session, which
    decides hook order and which provider a tool conflict names first."""

    __slots__ = ("_factories",)

    def __init__(self, factories: Iterable[PluginFactory] = ()) -> None:
        self._factories: list[PluginFactory] = []
        for factory in factories:
            self.push(factory)

    @classmethod
    def runtime(cls) -> PluginStack:
        """The default stack: the tool output budget, with its default limits."""
        return cls([ToolOutputBudgetPluginFactory()])

    def push(self, factory: PluginFactory) -> PluginStack:
        """Append a factory.

        Raises:
            DuplicatePluginError: a factory with the same id is already in the stack.
        """
        if factory.id() in self.ids():
            raise DuplicatePluginError(factory.id())
        self._factories.append(factory)
        return self

    def replace(self, factory: PluginFactory) -> PluginStack:
        """Swap the factory with the same id in place, or append it if there is none."""
        ids = self.ids()
        if factory.id() in ids:
            self._factories[ids.index(factory.id())] = factory
        else:
            self._factories.append(factory)
        return self

    def remove(self, plugin_id: str) -> PluginStack:
        """Drop the factory with this id.

        Raises:
            UnknownPluginError: no factory has this id.
        """
        ids = self.ids()
        if plugin_id not in ids:
            raise UnknownPluginError(plugin_id, ids)
        del self._factories[ids.index(plugin_id)]
        return self

    def configure(self, fn: Callable[[PluginStack], Any]) -> PluginStack:
        """Run `fn` on this stack (to push, replace and remove in one expression) and return the stack."""
        fn(self)
        return self

    def get(self, plugin_id: str) -> PluginFactory | None:
        return next((f for f in self._factories if f.id() == plugin_id), None)

    def ids(self) -> list[str]:
        return [f.id() for f in self._factories]

    def copy(self) -> PluginStack:
        return PluginStack(self._factories)

    def __iter__(self) -> Iterator[PluginFactory]:
        return iter(tuple(self._factories))

    def __len__(self) -> int:
        return len(self._factories)

    def __contains__(self, plugin_id: object) -> bool:
        return plugin_id in self.ids()

    def __repr__(self) -> str:
        return f"PluginStack({self.ids()!r})"
