"""Fakes for testing code that embeds lash_core (opt-in, like httpx's `MockTransport`).

`StaticToolProvider` offers a fixed tool list and answers every call with one async handler;
`CallbackPluginFactory` turns a register function into a plugin, so a test states in one line what a
plugin registers; `simple_tool` writes the definition of a tool whose input is a flat object.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import final

from ._context import PluginSessionContext
from ._plugin import PluginFactory, SessionPlugin
from ._registrar import PluginRegistrar
from ._tools import ToolCall, ToolDefinition, ToolProvider, ToolResult

__all__ = [
    "CallbackPluginFactory",
    "RegisterFunction",
    "StaticToolProvider",
    "ToolHandler",
    "echo",
    "returns",
    "simple_tool",
]

ToolHandler = Callable[[ToolCall], Awaitable[ToolResult]]
"""Answers one call for a `StaticToolProvider`."""

RegisterFunction = Callable[[PluginRegistrar, PluginSessionContext], None]
"""What a `CallbackPluginFactory` runs in each session's `register`."""


async def echo(call: ToolCall) -> ToolResult:
    """The default handler: succeeds with the call's arguments as structured content."""
    return ToolResult.ok(dict(call.args))


def returns(result: ToolResult | str) -> ToolHandler:
    """A handler that answers every call with `result` (a string means `ToolResult.ok(result)`)."""
    answer = ToolResult.ok(result) if isinstance(result, str) else result

    async def handler(call: ToolCall) -> ToolResult:
        return answer

    return handler


def simple_tool(name: str, **property_types: str) -> ToolDefinition:
    """A definition whose input is an object with these JSON types, every property required.

    ```python
    simple_tool("add", a="number", b="number")
    ```
    """
    schema = {
        "type": "object",
        "properties": {key: {"type": json_type} for key, json_type in property_types.items()},
        "required": list(property_types),
    }
    return ToolDefinition.raw(name, f"test tool {name}", schema)


@final
class StaticToolProvider(ToolProvider):
    """A provider with a fixed tool list and one async handler for every call.

    `definitions()` returns the same tuple until `set_definitions` swaps in a new one, as a real
    provider's cache does. `calls` records every call that reached `execute`, in order, so a test can
    prove a call was (or was not) made and see the arguments the provider received.

    ```python
    async def add(call: ToolCall) -> ToolResult:
        return ToolResult.ok(call.args["a"] + call.args["b"])

    provider = StaticToolProvider([simple_tool("add", a="number", b="number")], add, name="math")
    core = LashCore.builder().tools(provider).build()
    ```
    """

    def __init__(
        self,
        definitions: Iterable[ToolDefinition] = (),
        handler: ToolHandler = echo,
        *,
        name: str = "StaticToolProvider",
    ) -> None:
        """Args:
        name: what `describe()` returns, so error messages (tool conflicts, internal failures) name it.
        """
        self._definitions = tuple(definitions)
        self._handler = handler
        self._name = name
        self.calls: list[ToolCall] = []

    def definitions(self) -> tuple[ToolDefinition, ...]:
        return self._definitions

    def set_definitions(self, definitions: Iterable[ToolDefinition]) -> None:
        """Change the tool list; sessions see the new list on their next surface read."""
        self._definitions = tuple(definitions)

    async def execute(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return await self._handler(call)

    def describe(self) -> str:
        return self._name


@final
class CallbackPluginFactory(PluginFactory):
    """A factory whose session plugins run `register(reg, ctx)` with the session's context.

    ```python
    hide_docs = CallbackPluginFactory("hide_docs", lambda reg, ctx: reg.surface().hide("docs_*"))
    core = LashCore.builder().plugin(hide_docs).build()
    ```
    """

    def __init__(self, plugin_id: str, register: RegisterFunction) -> None:
        self._id = plugin_id
        self._register = register

    def id(self) -> str:
        return self._id

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return _CallbackPlugin(self._id, self._register, ctx)


@final
class _CallbackPlugin(SessionPlugin):
    def __init__(self, plugin_id: str, register: RegisterFunction, ctx: PluginSessionContext) -> None:
        self._id = plugin_id
        self._register = register
        self._ctx = ctx

    def id(self) -> str:
        return self._id

    def register(self, reg: PluginRegistrar) -> None:
        self._register(reg, self._ctx)
