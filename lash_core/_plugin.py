"""The two contracts a plugin implements: a process-wide `PluginFactory` and a per-session `SessionPlugin`."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ._context import PluginSessionContext
from ._types import JsonValue

if TYPE_CHECKING:
    from ._registrar import PluginRegistrar


@dataclass(frozen=True, slots=True)
class ExtensionContribution:
    """Something a factory offers the host beyond sessions (a config section, a CLI command...).

    `kind` names the extension point; the host decides which kinds it reads.
    """

    kind: str
    name: str
    data: JsonValue = None


class SessionPlugin(ABC):
    """One plugin's presence in one session: registers hooks, tools and actions, and owns the
    session's plugin state (which `snapshot` / `restore` carry across resume)."""

    def id(self) -> str:
        """A name for messages; defaults to the class name in snake_case."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", type(self).__name__).lower()

    @abstractmethod
    def register(self, reg: PluginRegistrar) -> None:
        """Declare everything this plugin contributes to the session. Runs once, synchronously."""

    def snapshot(self) -> JsonValue:
        """JSON-able state to persist; None means "nothing to keep"."""
        return None

    def restore(self, state: JsonValue) -> None:
        """Take back what `snapshot` returned; called before `register` on a resumed session."""
        return None

    async def session_ready(self, ctx: PluginSessionContext) -> None:
        """Called once when the host opens the session (`async with session` or `await session.ready()`)."""
        return None


class PluginFactory(ABC):
    """One per process: owns expensive shared state (pools, compiled schemas) and builds a
    `SessionPlugin` for every session, subagent, fork and compaction child.

    `build` runs for each of those, so it must be cheap and synchronous: no I/O, no compilation.
    """

    @abstractmethod
    def id(self) -> str:
        """Unique within a `PluginStack`."""

    @abstractmethod
    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        """A fresh session plugin; share expensive state by reference."""

    def extension_contributions(self) -> Sequence[ExtensionContribution]:
        return ()
