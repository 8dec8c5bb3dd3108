"""Errors raised by lash_core.

PluginError
├── PluginUsageError               a plugin or host used the API wrongly; fix the code, never retried
│   ├── DuplicatePluginError       two factories with one id in a stack
│   ├── ToolConflictError          two providers offer one tool name in a session
│   └── ExclusiveRegistrationError a second registration where only one is allowed
├── UnknownPluginError(LookupError)  replace/remove of an id the stack does not hold
├── UnknownActionError(LookupError)  invoke_action of a name no plugin registered
└── ActionArgumentsError(ValueError) action arguments that fail the action's schema

A failing tool is not an exception: it is a `ToolResult` failure (see `_tools.py`).
"""

from __future__ import annotations

from collections.abc import Sequence


class PluginError(Exception):
    """Base of every error lash_core raises."""


class PluginUsageError(PluginError):
    """The plugin API was used wrongly; the message says what to change."""


class DuplicatePluginError(PluginUsageError):
    def __init__(self, plugin_id: str) -> None:
        super().__init__(
            f"plugin id {plugin_id!r} is already in the stack; use replace({plugin_id!r}) to swap it "
            "or give the new factory another id"
        )
        self.plugin_id = plugin_id


class ToolConflictError(PluginUsageError):
    def __init__(self, tool: str, first: str, second: str) -> None:
        super().__init__(
            f"tool {tool!r} is offered by two providers: {first} and {second}; rename one or hide it with surface()"
        )
        self.tool, self.first, self.second = tool, first, second


class ExclusiveRegistrationError(PluginUsageError):
    def __init__(self, category: str, first: str, second: str) -> None:
        super().__init__(
            f"{category} allows one registration per session: {first} registered first, {second} tried again; "
            f"remove or replace one of the plugins"
        )
        self.category, self.first, self.second = category, first, second


class UnknownPluginError(PluginError, LookupError):
    def __init__(self, plugin_id: str, known: Sequence[str]) -> None:
        super().__init__(f"no plugin with id {plugin_id!r} in the stack (ids: {', '.join(known) or 'none'})")
        self.plugin_id = plugin_id


class UnknownActionError(PluginError, LookupError):
    def __init__(self, name: str, known: Sequence[str]) -> None:
        super().__init__(f"no action named {name!r} (actions: {', '.join(known) or 'none'})")
        self.name = name


class ActionArgumentsError(PluginError, ValueError):
    def __init__(self, name: str, problem: str) -> None:
        super().__init__(f"action {name!r}: {problem}")
        self.name = name
