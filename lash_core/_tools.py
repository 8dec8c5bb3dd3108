"""Tools: what a provider offers (`ToolDefinition`), what a session asks (`ToolCall`), what comes back
(`ToolResult`), and the `ToolProvider` contract that ties them together.

A provider's `definitions()` is called on every surface read, so it returns a cached sequence; a new
sequence object means "my tools changed" (sessions compare identities, never contents).
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal, Protocol

import anyio
import anyio.lowlevel
from pydantic import BaseModel

from ._caller import NO_CALLER, Caller
from ._types import JsonObject, JsonValue


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """One tool as a model sees it. `annotations` carries MCP tool annotations through unchanged."""

    name: str
    description: str
    input_schema: JsonObject
    output_schema: JsonObject | None = None
    title: str | None = None
    annotations: JsonObject | None = None

    @classmethod
    def raw(
        cls,
        name: str,
        description: str,
        input_schema: JsonObject,
        output_schema: JsonObject | None = None,
    ) -> ToolDefinition:
        """A definition from JSON schemas; an empty output schema (`{}`) means "no output schema"."""
        return cls(name, description, dict(input_schema), dict(output_schema) if output_schema else None)

    @classmethod
    def from_model(
        cls,
        name: str,
        description: str,
        input_model: type[BaseModel],
        output_model: type[BaseModel] | None = None,
    ) -> ToolDefinition:
        """A definition whose schemas come from pydantic models (compiled once, here, not per session)."""
        output_schema = output_model.model_json_schema() if output_model else None
        return cls(name, description, input_model.model_json_schema(), output_schema)


class ProgressReporter(Protocol):
    """Receives progress for one call; `total` is None when the tool cannot say."""

    async def __call__(self, progress: float, total: float | None = None, message: str | None = None) -> None: ...


async def ignore_progress(progress: float, total: float | None = None, message: str | None = None) -> None:
    """The reporter used when the caller asked for no progress."""


class LogReporter(Protocol):
    """Receives log messages a tool emits while it runs (MCP `notifications/message`); `level` is
    a syslog name as MCP uses them ("debug" ... "emergency")."""

    async def __call__(self, level: str, data: JsonValue, logger: str | None = None) -> None: ...


async def ignore_log(level: str, data: JsonValue, logger: str | None = None) -> None:
    """The reporter used when the caller asked for no log messages."""


class Cancellation:
    """Lets a host cancel a call from outside the task that runs it.

    Cancelling the task that awaits `session.call_tool` works too; this token is for hosts whose
    cancel request arrives elsewhere (a downstream `notifications/cancelled`, an admin action).
    """

    __slots__ = ("_cancelled", "_event", "reason")

    def __init__(self) -> None:
        self._cancelled = False
        self._event: anyio.Event | None = None  # made by the first waiter: most tokens are never waited on
        self.reason: str | None = None

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def cancel(self, reason: str = "cancelled by the caller") -> None:
        if not self._cancelled:
            self._cancelled = True
            self.reason = reason
            if self._event is not None:
                self._event.set()

    async def wait(self) -> None:
        if self._cancelled:
            await anyio.lowlevel.checkpoint()
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


@dataclass(frozen=True, slots=True)
class ToolCallContext:
    """Who is calling: the session, this call's id, where progress and log messages go, how to cancel it, and
    how to ask the caller (sampling, elicitation, roots) while it runs."""

    session_id: str
    call_id: str
    progress: ProgressReporter = ignore_progress
    cancellation: Cancellation = field(default_factory=Cancellation)
    log: LogReporter = ignore_log
    caller: Caller = NO_CALLER


@dataclass(frozen=True, slots=True)
class ToolCall:
    name: str
    args: JsonObject
    context: ToolCallContext

    def with_args(self, args: JsonObject) -> ToolCall:
        """The same call with other arguments, for before-hooks that rewrite them."""
        return ToolCall(self.name, dict(args), self.context)


@dataclass(frozen=True, slots=True)
class TextPart:
    text: str
    annotations: JsonObject | None = None
    type: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ImagePart:
    data: str
    """Base64, as MCP carries it."""
    mime_type: str
    annotations: JsonObject | None = None
    type: Literal["image"] = "image"


@dataclass(frozen=True, slots=True)
class AudioPart:
    data: str
    """Base64, as MCP carries it."""
    mime_type: str
    annotations: JsonObject | None = None
    type: Literal["audio"] = "audio"


@dataclass(frozen=True, slots=True)
class ResourcePart:
    """An embedded resource: exactly one of `text` or `blob` (base64) is set."""

    uri: str
    mime_type: str | None = None
    text: str | None = None
    blob: str | None = None
    annotations: JsonObject | None = None
    type: Literal["resource"] = "resource"


@dataclass(frozen=True, slots=True)
class ResourceLinkPart:
    """A link to a resource the client may read later."""

    uri: str
    name: str
    mime_type: str | None = None
    description: str | None = None
    annotations: JsonObject | None = None
    type: Literal["resource_link"] = "resource_link"


ContentPart = TextPart | ImagePart | AudioPart | ResourcePart | ResourceLinkPart


class FailureClass(StrEnum):
    """Why a call failed, in the classes a host reacts to differently."""

    INVALID_INPUT = "invalid_input"
    """The arguments or the tool name were wrong: the model can correct itself."""
    REJECTED = "rejected"
    """A before-hook or policy refused the call."""
    TOOL_ERROR = "tool_error"
    """The tool ran and reported an error."""
    UNAVAILABLE = "unavailable"
    """The tool's backend is unreachable; retrying later may work."""
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    INTERNAL = "internal"
    """A bug in a provider or hook; the message says where."""


@dataclass(frozen=True, slots=True)
class ToolFailure:
    failure_class: FailureClass
    code: str
    """Stable and machine-readable, e.g. `unknown_tool`, `upstream_timeout`."""
    message: str
    data: JsonValue = field(default=None, hash=False)
    """What the failure carries for a host that passes it on (the error data of an MCP server's refusal)."""


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a call returns: content parts for the model, optional structured content for programs,
    and, for failures, a `ToolFailure`.

    `value` is what `ok(value)` was given; for results built from parts it is the structured content
    if any, else the text parts joined.
    """

    content: tuple[ContentPart, ...] = ()
    structured: JsonObject | None = None
    failure: ToolFailure | None = None
    meta: JsonObject | None = None
    value: JsonValue = None

    @classmethod
    def ok(cls, value: JsonValue) -> ToolResult:
        """A success: strings become one text part; other values are sent as JSON text, and objects
        also as structured content."""
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        structured = value if isinstance(value, Mapping) else None
        return cls((TextPart(text),), structured, None, None, value)

    @classmethod
    def err(
        cls,
        message: str,
        *,
        failure_class: FailureClass = FailureClass.TOOL_ERROR,
        code: str = "tool_error",
        content: Sequence[ContentPart] | None = None,
        data: JsonValue = None,
    ) -> ToolResult:
        """A failure; its content defaults to the message as text, so a model reads why. `data`: see
        `ToolFailure.data`."""
        parts = tuple(content) if content is not None else (TextPart(message),)
        return cls(parts, None, ToolFailure(failure_class, code, message, data), None, None)

    @classmethod
    def from_parts(
        cls,
        content: Sequence[ContentPart],
        *,
        structured: JsonObject | None = None,
        failure: ToolFailure | None = None,
        meta: JsonObject | None = None,
    ) -> ToolResult:
        parts = tuple(content)
        value: JsonValue = structured if structured is not None else _joined_text(parts)
        return cls(parts, structured, failure, meta, value)

    @property
    def is_error(self) -> bool:
        return self.failure is not None

    @property
    def message(self) -> str | None:
        return self.failure.message if self.failure else None

    @property
    def failure_class(self) -> FailureClass | None:
        return self.failure.failure_class if self.failure else None

    @property
    def code(self) -> str | None:
        return self.failure.code if self.failure else None

    def text(self) -> str:
        """The text parts joined by newlines: what a text-only model would read."""
        return _joined_text(self.content)


def _joined_text(parts: Sequence[ContentPart]) -> str:
    return "\n".join(p.text for p in parts if isinstance(p, TextPart))


class ToolProvider(ABC):
    """Offers tools to a session. Shared by every session that registers it, so keep per-session
    state out of it or build one provider per session in `SessionPlugin.register`."""

    @abstractmethod
    def definitions(self) -> Sequence[ToolDefinition]:
        """The tools offered now. Called often and synchronously: return a cached sequence, and a new
        sequence object only when the tools changed."""

    @abstractmethod
    async def execute(self, call: ToolCall) -> ToolResult:
        """Run one call. Report failures as `ToolResult.err(...)`; an exception here is a bug and the
        session turns it into an `internal` failure."""

    def describe(self) -> str:
        """How errors name this provider."""
        return type(self).__name__


def validate_args(schema: JsonObject, args: JsonValue) -> str | None:
    """A cheap structural check of arguments against an input schema: an object, required keys
    present, declared primitive types right. Returns the problem, or None.

    Full JSON Schema validation is the tool's business (MCP servers validate their own input); this
    catches the mistakes a model makes most, before a round trip.
    """
    if not isinstance(args, Mapping):
        return f"arguments must be a JSON object, got {type(args).__name__}"
    missing = [key for key in schema.get("required", ()) if key not in args]
    if missing:
        return f"missing required argument(s): {', '.join(map(str, missing))}"
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for key, value in args.items():
            prop = properties.get(key)
            expected = prop.get("type") if isinstance(prop, Mapping) else None
            if isinstance(expected, str) and not _is_json_type(value, expected):
                return f"argument {key!r} must be {expected}, got {_json_type_name(value)}"
    return None


def _is_json_type(value: JsonValue, expected: str) -> bool:
    match expected:
        case "string":
            return isinstance(value, str)
        case "integer":
            return (
                isinstance(value, int)
                and not isinstance(value, bool)
                or (isinstance(value, float) and value.is_integer())
            )
        case "number":
            # ints are finite however large; math.isfinite(int) converts to float and overflows past 1e308
            return not isinstance(value, bool) and (
                isinstance(value, int) or isinstance(value, float) and math.isfinite(value)
            )
        case "boolean":
            return isinstance(value, bool)
        case "object":
            return isinstance(value, Mapping)
        case "array":
            return isinstance(value, list | tuple)
        case "null":
            return value is None
    return True


def _json_type_name(value: JsonValue) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__
