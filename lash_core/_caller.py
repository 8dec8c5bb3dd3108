"""Asking the caller during a call: a model completion (sampling), a question with a schema (elicitation), the
caller's roots.

A provider that needs one of these asks `call.context.caller`; the host that made the call answers through the
handlers it gave (`core.session(caller=...)` or `session.call_tool(..., caller=...)`). A host without a handler
answers "not supported" (`CallerUnsupported`), so a provider can tell "the caller cannot" from "the caller said
no". Questions and answers are JSON objects in the shapes MCP gives them (`sampling/createMessage`,
`elicitation/create`, `roots/list` params and results): the one vocabulary every host and provider already shares,
and lash_core still imports no MCP.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final, Literal, TypeAlias

from ._errors import PluginError
from ._types import JsonObject

__all__ = ["ASKED_AS", "Caller", "CallerRequest", "CallerUnsupported", "NO_CALLER"]

CallerRequest: TypeAlias = Literal["sampling", "elicitation", "roots"]
"""What a provider can ask its caller."""

Handler: TypeAlias = Callable[[JsonObject], Awaitable[JsonObject]]

ASKED_AS: Final[ContextVar[str | None]] = ContextVar("lash_core.asked_as", default=None)
"""The name a question has where it came from, set by a provider around its `ask` when it has one (a 2026-07-28
MCP server names each of its input requests): a caller that relays questions under names of its own (rounds to a
2026-07-28 client) keeps it, so its client sees the name the server gave."""


class CallerUnsupported(PluginError):
    """The caller has no handler for this kind of question; the message says which."""

    def __init__(self, request: CallerRequest, reason: str | None = None) -> None:
        super().__init__(reason or f"the caller does not support {request} (no handler was given for it)")
        self.request = request


@dataclass(frozen=True, slots=True)
class Caller:
    """The handlers of one caller; a missing one means "not supported". Each takes the request's params and
    returns its result (MCP shapes, see the module docstring); raising is refusing, and the provider sees it."""

    on_sampling: Handler | None = None
    on_elicitation: Handler | None = None
    on_roots: Handler | None = None
    declared: Mapping[CallerRequest, JsonObject] = field(default_factory=dict, hash=False)
    """What the caller said it takes of the kinds it answers, in MCP's capability shapes (`{"form": {}}` for an
    elicitation of forms, not URLs): for a provider that tells a server of its own who it asks (an MCP server of
    2026-07-28 hears it with each request). A kind it answers and does not describe here gets the provider's
    default."""

    def supports(self, request: CallerRequest) -> bool:
        return self._handler(request) is not None

    async def ask(self, request: CallerRequest, params: JsonObject) -> JsonObject:
        """Ask the caller and return its answer.

        Raises:
            CallerUnsupported: the caller has no handler for `request`.
        """
        handler = self._handler(request)
        if handler is None:
            raise CallerUnsupported(request)
        return await handler(params)

    async def sample(self, params: JsonObject) -> JsonObject:
        """A model completion (`sampling/createMessage` params in, its result out)."""
        return await self.ask("sampling", params)

    async def elicit(self, params: JsonObject) -> JsonObject:
        """A question for the user (`elicitation/create` params in, `{"action": ..., "content": ...}` out)."""
        return await self.ask("elicitation", params)

    async def roots(self) -> JsonObject:
        """The caller's roots (`{"roots": [{"uri": ..., "name": ...}]}`)."""
        return await self.ask("roots", {})

    def _handler(self, request: CallerRequest) -> Handler | None:
        if request == "sampling":
            return self.on_sampling
        if request == "elicitation":
            return self.on_elicitation
        return self.on_roots


NO_CALLER = Caller()
"""The caller of a call whose host gave no handlers: every question is answered "not supported"."""
