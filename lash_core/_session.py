"""`Session`: one conversation's plugins, tool surface and call pipeline.

A call runs: surface lookup -> before-hooks -> argument check -> provider -> after-hooks -> projector.
Every failure on that path is a `ToolResult` failure naming its cause; only cancellation of the
caller's own task propagates.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Self

import anyio
from pydantic import ValidationError

from ._caller import NO_CALLER, Caller
from ._context import PluginSessionContext, SessionKind, new_id
from ._errors import ActionArgumentsError, PluginUsageError, ToolConflictError, UnknownActionError
from ._registrar import ActionSpec, Owned, Registrations, TurnContext, stored_categories
from ._tools import (
    Cancellation,
    FailureClass,
    LogReporter,
    ProgressReporter,
    ToolCall,
    ToolCallContext,
    ToolDefinition,
    ToolProvider,
    ToolResult,
    ignore_log,
    ignore_progress,
    validate_args,
)
from ._types import JsonObject, JsonValue

if TYPE_CHECKING:
    from ._core import LashCore
    from ._plugin import SessionPlugin

log = logging.getLogger("lash_core")


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """What `Session.snapshot()` returns and `core.session(snapshot=...)` restores: JSON-able."""

    session_id: str
    kind: SessionKind
    parent_id: str | None
    plugins: Mapping[str, JsonValue] = field(default_factory=dict)
    """Each plugin's `snapshot()`, keyed by factory id; plugins with nothing to keep are absent."""

    def to_dict(self) -> dict[str, JsonValue]:
        return {
            "session_id": self.session_id,
            "kind": str(self.kind),
            "parent_id": self.parent_id,
            "plugins": dict(self.plugins),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, JsonValue]) -> SessionSnapshot:
        return cls(str(data["session_id"]), SessionKind(data["kind"]), data.get("parent_id"), dict(data["plugins"]))


@dataclass(frozen=True, slots=True)
class _Surface:
    """The tool surface for one combination of providers and their definition sequences."""

    providers: tuple[tuple[str, ToolProvider], ...]
    key: tuple[Sequence[ToolDefinition], ...]
    visible: tuple[ToolDefinition, ...]
    index: Mapping[str, tuple[ToolDefinition, Owned[ToolProvider]]]

    def serves(self, providers: Sequence[Owned[ToolProvider]], key: Sequence[Sequence[ToolDefinition]]) -> bool:
        return (
            len(providers) == len(self.providers)
            and all(o.item is p and o.owner == owner for o, (owner, p) in zip(providers, self.providers, strict=True))
            and all(a is b for a, b in zip(key, self.key, strict=True))
        )


class SurfaceCache:
    """Surfaces shared by sessions that register the same provider objects and hide nothing.

    A gateway builds a session per client (per request, for stateless clients); with thousands of
    tools, building each session's index would cost milliseconds. Small and LRU: a plugin that
    builds a provider per session only ever misses.
    """

    SIZE = 32

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[tuple[int, str], ...], _Surface] = OrderedDict()

    @staticmethod
    def _key(providers: Sequence[Owned[ToolProvider]]) -> tuple[tuple[int, str], ...]:
        # ids are safe as keys: each entry holds its providers, so no id is reused while it is cached.
        return tuple((id(o.item), o.owner) for o in providers)

    def get(self, providers: Sequence[Owned[ToolProvider]], key: Sequence[Sequence[ToolDefinition]]) -> _Surface | None:
        cache_key = self._key(providers)
        surface = self._entries.get(cache_key)
        if surface is None or not surface.serves(providers, key):
            return None
        self._entries.move_to_end(cache_key)
        return surface

    def put(self, providers: Sequence[Owned[ToolProvider]], surface: _Surface) -> None:
        cache_key = self._key(providers)
        self._entries[cache_key] = surface
        self._entries.move_to_end(cache_key)
        while len(self._entries) > self.SIZE:
            self._entries.popitem(last=False)


class Session:
    """Built by `LashCore.session()` or `Session.child()`; cheap to build, so build one per conversation."""

    def __init__(
        self,
        core: LashCore,
        context: PluginSessionContext,
        plugins: Sequence[tuple[str, SessionPlugin]],
        registrations: Registrations,
        caller: Caller = NO_CALLER,
    ) -> None:
        self._core = core
        self.context = context
        self.caller = caller
        """Answers providers' questions (sampling, elicitation, roots) during this session's calls."""
        self._plugins = plugins
        self._reg = registrations
        self._surface: _Surface | None = None
        self._turns = 0

    @property
    def id(self) -> str:
        return self.context.session_id

    @property
    def kind(self) -> SessionKind:
        return self.context.kind

    def __repr__(self) -> str:
        return f"<Session {self.id} kind={self.kind} plugins={[pid for pid, _ in self._plugins]}>"

    # -- tools ---------------------------------------------------------------------------------

    def tools(self) -> tuple[ToolDefinition, ...]:
        """The tools this session sees. Recomputed only when a provider returns a new sequence.

        Raises:
            ToolConflictError: two providers offer one name.
        """
        return self._current_surface().visible

    def _current_surface(self) -> _Surface:
        providers = self._reg.providers
        key = tuple(owned.item.definitions() for owned in providers)
        surface = self._surface
        if surface is not None and all(a is b for a, b in zip(key, surface.key, strict=True)):
            return surface
        hidden = [h.item for h in self._reg.hidden]
        shared = None if hidden else self._core.surfaces.get(providers, key)
        if shared is not None:
            self._surface = shared
            return shared
        index: dict[str, tuple[ToolDefinition, Owned[ToolProvider]]] = {}
        for owned, definitions in zip(self._reg.providers, key, strict=True):
            for definition in definitions:
                # Hidden tools are out of the session, so they cannot conflict: hiding one resolves a conflict.
                if hidden and any(h(definition) for h in hidden):
                    continue
                other = index.get(definition.name)
                if other is not None:
                    raise ToolConflictError(definition.name, _provider_label(other[1]), _provider_label(owned))
                index[definition.name] = (definition, owned)
        owners = tuple((o.owner, o.item) for o in providers)
        self._surface = surface = _Surface(owners, key, tuple(d for d, _ in index.values()), index)
        if not hidden:
            self._core.surfaces.put(providers, surface)
        return surface

    async def call_tool(
        self,
        name: str,
        args: JsonObject | None = None,
        *,
        call_id: str | None = None,
        progress: ProgressReporter | None = None,
        cancellation: Cancellation | None = None,
        log: LogReporter | None = None,
        caller: Caller | None = None,
    ) -> ToolResult:
        """Run one tool call through the session's hooks. Never raises for a failing call: unknown
        tools, bad arguments, hook and provider errors, and a fired `cancellation` all come back as
        failure results. Cancelling the calling task cancels the call and propagates as usual.
        `caller` answers the provider's questions (sampling, elicitation, roots) for this call; by
        default the session's."""
        context = ToolCallContext(
            self.id,
            call_id or new_id(),
            progress or ignore_progress,
            cancellation or Cancellation(),
            log or ignore_log,
            caller or self.caller,
        )
        if args is not None and not isinstance(args, Mapping):
            # Models do send lists and strings; that is a bad call, not a crash.
            return ToolResult.err(
                f"invalid arguments for {name!r}: arguments must be a JSON object, got {type(args).__name__}",
                failure_class=FailureClass.INVALID_INPUT,
                code="invalid_arguments",
            )
        call = ToolCall(name, dict(args) if args is not None else {}, context)
        if cancellation is None:
            return await self._run(call)
        result: ToolResult | None = None
        if not cancellation.cancelled:
            try:
                async with anyio.create_task_group() as tg:

                    async def watch() -> None:
                        await cancellation.wait()
                        tg.cancel_scope.cancel()

                    tg.start_soon(watch)
                    result = await self._run(call)
                    tg.cancel_scope.cancel()
            except BaseExceptionGroup as group:
                # watch() never raises, so the group holds only what _run raised (a ToolConflictError):
                # raise it as it would be raised without a token.
                if len(group.exceptions) == 1:
                    raise group.exceptions[0] from None
                raise
        if result is None:
            reason = cancellation.reason or "cancelled"
            return ToolResult.err(
                f"call to {name!r} cancelled: {reason}", failure_class=FailureClass.CANCELLED, code="cancelled"
            )
        return result

    async def _run(self, call: ToolCall) -> ToolResult:
        entry = self._current_surface().index.get(call.name)
        if entry is None:
            return ToolResult.err(
                f"unknown tool {call.name!r}: it is not in this session's tool list",
                failure_class=FailureClass.INVALID_INPUT,
                code="unknown_tool",
            )
        definition, provider = entry
        result: ToolResult | None = None
        for hook in self._reg.before:
            try:
                outcome = await hook.item(call)
            except Exception as exc:
                return _internal(call, f"before-hook of plugin {hook.owner!r}", exc)
            if isinstance(outcome, ToolResult):
                result = outcome
                break
            if outcome is not None:
                call = call.with_args(outcome.args)
        if result is None:
            problem = validate_args(definition.input_schema, call.args)
            if problem is not None:
                return ToolResult.err(
                    f"invalid arguments for {call.name!r}: {problem}",
                    failure_class=FailureClass.INVALID_INPUT,
                    code="invalid_arguments",
                )
            try:
                result = await provider.item.execute(call)
            except Exception as exc:
                return _internal(call, _provider_label(provider), exc)
        for after in self._reg.after:
            try:
                replaced = await after.item(call, result)
            except Exception as exc:
                return _internal(call, f"after-hook of plugin {after.owner!r}", exc)
            result = replaced or result
        projector = self._reg.projector
        if projector is not None:
            try:
                result = await projector.item(call, result)
            except Exception as exc:
                return _internal(call, f"result projector of plugin {projector.owner!r}", exc)
        return result

    # -- actions, prompt, stored categories ----------------------------------------------------

    def actions(self) -> tuple[ActionSpec, ...]:
        return tuple(owned.item for owned in self._reg.actions.values())

    async def invoke_action(self, name: str, args: JsonValue = None) -> JsonValue:
        """Run a plugin action. The handler's own exceptions propagate unchanged.

        Raises:
            UnknownActionError: no plugin registered `name`.
            ActionArgumentsError: `args` fail the action's input model.
        """
        owned = self._reg.actions.get(name)
        if owned is None:
            raise UnknownActionError(name, sorted(self._reg.actions))
        spec = owned.item
        if spec.input_model is not None:
            try:
                args = spec.input_model.model_validate(args if args is not None else {})
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
                raise ActionArgumentsError(name, problems) from None
        return await spec.handler(args)

    async def prompt_contributions(self) -> list[str]:
        """Each plugin's prompt text, in stack order; empty contributions are left out."""
        texts = [await owned.item(self.context) for owned in self._reg.prompt]
        return [t for t in texts if t]

    def registered(self, category: str) -> list[object]:
        """What plugins stored in a category the runtime does not act on (see `PluginRegistrar`)."""
        if category not in stored_categories():
            raise PluginUsageError(f"unknown stored category {category!r}; one of {', '.join(stored_categories())}")
        return [owned.item for owned in self._reg.stored.get(category, ())]

    # -- lifecycle -----------------------------------------------------------------------------

    def child(self, kind: SessionKind | str) -> Session:
        """A subagent, fork or compaction child, built from the same factories."""
        try:
            kind = SessionKind(kind)
        except ValueError:
            choices = ", ".join(k.value for k in SessionKind if k is not SessionKind.ROOT)
            raise PluginUsageError(f"unknown session kind {kind!r}; one of {choices}") from None
        if kind is SessionKind.ROOT:
            raise PluginUsageError("a child session cannot be a root session; use core.session() for a new root")
        return self._core.session_for(PluginSessionContext(new_id(), kind, self.id), caller=self.caller)

    def snapshot(self) -> SessionSnapshot:
        states = {pid: state for pid, plugin in self._plugins if (state := plugin.snapshot()) is not None}
        return SessionSnapshot(self.id, self.kind, self.context.parent_id, states)

    async def ready(self) -> None:
        """Tell plugins the session is open: `SessionPlugin.session_ready`, then `session().on_ready` hooks."""
        for _, plugin in self._plugins:
            await plugin.session_ready(self.context)
        for hook in self._reg.session_ready:
            await hook.item(self.context)

    @property
    def closes_with_hooks(self) -> bool:
        """Whether `aclose` runs any hook: a host that bounds closing with a timeout skips it when none would run."""
        return bool(self._reg.session_close)

    async def aclose(self) -> None:
        """Fire `session().on_close` hooks, in reverse registration order."""
        for hook in reversed(self._reg.session_close):
            await hook.item(self.context)

    async def __aenter__(self) -> Self:
        await self.ready()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        with anyio.CancelScope(shield=True):
            await self.aclose()

    async def start_turn(self) -> TurnContext:
        """Begin a model turn: fires `turn().on_start` hooks and returns the turn for `end_turn`."""
        turn = TurnContext(self.id, new_id(), self._turns)
        self._turns += 1
        for hook in self._reg.turn_start:
            await hook.item(turn)
        return turn

    async def end_turn(self, turn: TurnContext) -> None:
        for hook in self._reg.turn_end:
            await hook.item(turn)


def _provider_label(owned: Owned[ToolProvider]) -> str:
    return f"{owned.item.describe()} (plugin {owned.owner!r})"


def _internal(call: ToolCall, where: str, exc: Exception) -> ToolResult:
    log.error(
        "tool call failed inside %s", where, exc_info=exc, extra={"tool": call.name, "call_id": call.context.call_id}
    )
    return ToolResult.err(
        f"internal error in {where} while calling {call.name!r}: {type(exc).__name__}: {exc}",
        failure_class=FailureClass.INTERNAL,
        code="internal_error",
    )
