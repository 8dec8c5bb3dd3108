"""`PluginRegistrar`: the namespaced surface a `SessionPlugin.register` writes into.

Each category is a small object (`reg.tools()`, `reg.tool_calls()`, ...). Categories the runtime acts
on itself are enforced here (conflicts, exclusivity); categories it only stores say in their
docstrings what the host is expected to do with what they hold.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from pydantic import BaseModel

from ._context import PluginSessionContext
from ._errors import ExclusiveRegistrationError
from ._tools import ToolCall, ToolDefinition, ToolProvider, ToolResult
from ._types import JsonObject, JsonValue

BeforeToolCall = Callable[[ToolCall], Awaitable[ToolCall | ToolResult | None]]
"""Runs before the provider: return None to go on, a `ToolCall` to go on with it (rewritten
arguments), or a `ToolResult` to answer without calling the tool (a rejection)."""

AfterToolCall = Callable[[ToolCall, ToolResult], Awaitable[ToolResult | None]]
"""Runs after the provider with the result; return None to keep it, or a replacement."""

ToolResultProjector = Callable[[ToolCall, ToolResult], Awaitable[ToolResult]]
"""The last step of every call: shapes the result for the model (budgets, redaction)."""

PromptContribution = Callable[[PluginSessionContext], Awaitable[str | None]]
ActionHandler = Callable[[JsonValue], Awaitable[JsonValue]]
SessionHook = Callable[[PluginSessionContext], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class TurnContext:
    """One model turn, as turn hooks see it."""

    session_id: str
    turn_id: str
    turn_index: int


TurnHook = Callable[[TurnContext], Awaitable[None]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Owned(Generic[T]):
    """A registration and the plugin that made it, for error messages and introspection."""

    owner: str
    item: T


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """A typed operation a host invokes without a tool call (`await session.invoke_action(name, args)`)."""

    name: str
    description: str
    handler: ActionHandler
    input_schema: JsonObject
    input_model: type[BaseModel] | None = None


@dataclass(slots=True)
class Registrations:
    """Everything one session's plugins registered, in registration order."""

    providers: list[Owned[ToolProvider]] = field(default_factory=list)
    prompt: list[Owned[PromptContribution]] = field(default_factory=list)
    hidden: list[Owned[Callable[[ToolDefinition], bool]]] = field(default_factory=list)
    before: list[Owned[BeforeToolCall]] = field(default_factory=list)
    after: list[Owned[AfterToolCall]] = field(default_factory=list)
    projector: Owned[ToolResultProjector] | None = None
    actions: dict[str, Owned[ActionSpec]] = field(default_factory=dict)
    turn_start: list[Owned[TurnHook]] = field(default_factory=list)
    turn_end: list[Owned[TurnHook]] = field(default_factory=list)
    session_ready: list[Owned[SessionHook]] = field(default_factory=list)
    session_close: list[Owned[SessionHook]] = field(default_factory=list)
    stored: dict[str, list[Owned[object]]] = field(default_factory=dict)


class _Category:
    __slots__ = ("_reg",)

    def __init__(self, reg: PluginRegistrar) -> None:
        self._reg = reg

    @property
    def _owner(self) -> str:
        return self._reg.owner

    @property
    def _into(self) -> Registrations:
        return self._reg.registrations


class ToolsRegistry(_Category):
    def provider(self, provider: ToolProvider) -> None:
        """Offer a provider's tools in this session. Two providers offering one name is an error
        raised when the session first reads its surface."""
        self._into.providers.append(Owned(self._owner, provider))


class PromptRegistry(_Category):
    def contribution(self, fn: PromptContribution) -> None:
        """Add text to the system prompt; `session.prompt_contributions()` collects them in order."""
        self._into.prompt.append(Owned(self._owner, fn))


class SurfaceRegistry(_Category):
    """Which tools this session sees and may call. Hidden tools cannot be called either."""

    def hide(self, *patterns: str) -> None:
        """Hide tools whose names match any glob pattern (`mcp__docs__*`)."""
        self.hide_if(lambda d: any(fnmatch.fnmatchcase(d.name, p) for p in patterns))

    def only(self, *patterns: str) -> None:
        """Hide every tool whose name matches none of the glob patterns."""
        self.hide_if(lambda d: not any(fnmatch.fnmatchcase(d.name, p) for p in patterns))

    def hide_if(self, predicate: Callable[[ToolDefinition], bool]) -> None:
        self._into.hidden.append(Owned(self._owner, predicate))


class ToolCallsRegistry(_Category):
    def before(self, hook: BeforeToolCall) -> None:
        self._into.before.append(Owned(self._owner, hook))

    def after(self, hook: AfterToolCall) -> None:
        self._into.after.append(Owned(self._owner, hook))


class ToolResultsRegistry(_Category):
    def projector(self, projector: ToolResultProjector) -> None:
        """Install the session's result projector. Exclusive: a second one is an error."""
        current = self._into.projector
        if current is not None:
            raise ExclusiveRegistrationError("tool_results().projector", current.owner, self._owner)
        self._into.projector = Owned(self._owner, projector)


class ActionsRegistry(_Category):
    def register(
        self,
        name: str,
        handler: ActionHandler,
        *,
        description: str = "",
        input_schema: JsonObject | None = None,
        input_model: type[BaseModel] | None = None,
    ) -> None:
        """Register a named operation. With `input_model`, arguments are validated into that model
        before the handler sees them; otherwise the handler receives the arguments as given."""
        current = self._into.actions.get(name)
        if current is not None:
            raise ExclusiveRegistrationError(f"action {name!r}", current.owner, self._owner)
        schema = _model_schema(input_model) if input_model else dict(input_schema or {"type": "object"})
        spec = ActionSpec(name, description, handler, schema, input_model)
        self._into.actions[name] = Owned(self._owner, spec)


class TurnRegistry(_Category):
    """Hooks the host fires around each model turn (`session.start_turn()` / `session.end_turn()`)."""

    def on_start(self, hook: TurnHook) -> None:
        self._into.turn_start.append(Owned(self._owner, hook))

    def on_end(self, hook: TurnHook) -> None:
        self._into.turn_end.append(Owned(self._owner, hook))


class SessionRegistry(_Category):
    """Hooks fired when the host opens (`ready`) and closes (`aclose`) the session."""

    def on_ready(self, hook: SessionHook) -> None:
        self._into.session_ready.append(Owned(self._owner, hook))

    def on_close(self, hook: SessionHook) -> None:
        self._into.session_close.append(Owned(self._owner, hook))


class StoredRegistry(_Category):
    """A category the runtime stores without acting on it; the host reads it back with
    `session.registered(category)` and applies it. Which category and what the host does is in the
    docstring of the `PluginRegistrar` method that returns it."""

    __slots__ = ("_category",)

    def __init__(self, reg: PluginRegistrar, category: str) -> None:
        super().__init__(reg)
        self._category = category

    def add(self, item: object) -> None:
        self._into.stored.setdefault(self._category, []).append(Owned(self._owner, item))


@functools.cache
def _model_schema(model: type[BaseModel]) -> JsonObject:
    """Schemas are built once per model, not once per session (`register` runs for every session)."""
    return model.model_json_schema()


class PluginRegistrar:
    """What `SessionPlugin.register` receives. Registrations are recorded with the registering
    plugin's id, so conflicts name both sides."""

    __slots__ = ("owner", "registrations")

    def __init__(self) -> None:
        self.registrations = Registrations()
        self.owner = "host"

    def tools(self) -> ToolsRegistry:
        return ToolsRegistry(self)

    def prompt(self) -> PromptRegistry:
        return PromptRegistry(self)

    def surface(self) -> SurfaceRegistry:
        return SurfaceRegistry(self)

    def tool_calls(self) -> ToolCallsRegistry:
        return ToolCallsRegistry(self)

    def tool_results(self) -> ToolResultsRegistry:
        return ToolResultsRegistry(self)

    def actions(self) -> ActionsRegistry:
        return ActionsRegistry(self)

    def turn(self) -> TurnRegistry:
        return TurnRegistry(self)

    def session(self) -> SessionRegistry:
        return SessionRegistry(self)

    def discovery(self) -> StoredRegistry:
        """Stored: sources of tools the host may load on demand (deferred tool search). The host lists
        them with `session.registered("discovery")` and turns a chosen one into a provider."""
        return StoredRegistry(self, "discovery")

    def output(self) -> StoredRegistry:
        """Stored: renderers for the host's output stream (what a UI shows while a turn runs)."""
        return StoredRegistry(self, "output")

    def monitors(self) -> StoredRegistry:
        """Stored: background watchers the host starts in its own task group and stops with the session."""
        return StoredRegistry(self, "monitors")

    def history(self) -> StoredRegistry:
        """Stored: transforms the host applies to the conversation history (compaction, redaction)."""
        return StoredRegistry(self, "history")

    def mode(self) -> StoredRegistry:
        """Stored: named session modes (plan, execute...) the host offers and switches between."""
        return StoredRegistry(self, "mode")


def stored_categories() -> Sequence[str]:
    """The categories `session.registered()` accepts."""
    return ("discovery", "output", "monitors", "history", "mode")
