"""The tool output budget: keeps oversized tool outputs from flooding a model's context.

Text is cut at the budget with a note saying what was cut; a resource link's text counts too, and a
link that does not fit whole is left out (half a URI points elsewhere), as is any part whose URI or MIME
type is longer than `MAX_FIELD_CHARS`; binary parts over their budget are replaced by a note; structured
content (for programs, not the model) and failures pass untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ._context import PluginSessionContext
from ._plugin import PluginFactory, SessionPlugin
from ._registrar import PluginRegistrar
from ._tools import AudioPart, ContentPart, ImagePart, ResourceLinkPart, ResourcePart, TextPart, ToolCall, ToolResult

DEFAULT_MAX_TEXT_CHARS = 100_000
"""About 25k tokens, the order of what MCP clients allow one tool output by default."""
MAX_FIELD_CHARS = 2_048
"""Characters a part's URI or MIME type may have under a text budget; a part with a longer one is left out, with a
note (such a field is no real one's: an upstream passing text around the budget)."""


@dataclass(frozen=True, slots=True)
class ToolOutputBudget:
    max_text_chars: int | None = DEFAULT_MAX_TEXT_CHARS
    """Characters of text (text parts, text resources and resource links together) a result may carry; None: no
    limit."""
    max_binary_bytes: int | None = None
    """Decoded bytes one image, audio or blob part may carry; None: no limit."""

    def __post_init__(self) -> None:
        for name in ("max_text_chars", "max_binary_bytes"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"ToolOutputBudget.{name} must be >= 0 or None, got {value}")


def apply_budget(result: ToolResult, budget: ToolOutputBudget) -> ToolResult:
    """The result as the model should see it under `budget`."""
    if result.is_error:
        return result
    remaining = budget.max_text_chars
    total_text = cut_text = 0
    parts: list[ContentPart] = []
    for part in result.content:
        if budget.max_text_chars is not None and (field := _oversized_field(part)) is not None:
            parts.append(TextPart(_field_note(part, field)))
            continue
        if isinstance(part, TextPart | ResourcePart) and part.text is not None:
            text = part.text
            total_text += len(text)
            if remaining is not None and len(text) > remaining:
                cut_text += len(text) - remaining
                if remaining:
                    parts.append(_with_text(part, text[:remaining]))
                remaining = 0
                continue
            if remaining is not None:
                remaining -= len(text)
            parts.append(part)
            continue
        if isinstance(part, ResourceLinkPart):
            chars = len(part.uri) + len(part.name) + len(part.description or "") + len(part.mime_type or "")
            total_text += chars
            if remaining is not None and chars > remaining:
                cut_text += chars
                remaining = 0
                continue
            if remaining is not None:
                remaining -= chars
            parts.append(part)
            continue
        size = _binary_size(part)
        if budget.max_binary_bytes is not None and size > budget.max_binary_bytes:
            parts.append(TextPart(_binary_note(part, size, budget.max_binary_bytes)))
            continue
        parts.append(part)
    if cut_text:
        kept = total_text - cut_text
        parts.append(
            TextPart(
                f"[output truncated: kept {kept:,} of {total_text:,} characters, cut {cut_text:,}; "
                f"the budget is {budget.max_text_chars:,} characters]"
            )
        )
    if parts == list(result.content):
        return result
    return replace(result, content=tuple(parts))


def _oversized_field(part: ContentPart) -> str | None:
    """The first of a part's short fields (a URI, a MIME type; a link's name counts as its text) that is longer than
    `MAX_FIELD_CHARS`, if any: no real one is, and a cut one would point elsewhere."""
    for name in ("uri", "mime_type"):
        value = getattr(part, name, None)
        if isinstance(value, str) and len(value) > MAX_FIELD_CHARS:
            return name
    return None


def _field_note(part: ContentPart, field: str) -> str:
    size = len(getattr(part, field))
    return f"[{part.type} omitted: its {field} has {size:,} characters, over the {MAX_FIELD_CHARS:,} allowed]"


def _with_text(part: TextPart | ResourcePart, text: str) -> ContentPart:
    return replace(part, text=text)


def _binary_size(part: ContentPart) -> int:
    data = (
        part.data if isinstance(part, ImagePart | AudioPart) else part.blob if isinstance(part, ResourcePart) else None
    )
    if not data:
        return 0
    # 4 base64 characters carry 3 bytes; trailing "=" pad the last group and carry none
    return len(data) * 3 // 4 - (2 if data.endswith("==") else 1 if data.endswith("=") else 0)


def _binary_note(part: ContentPart, size: int, limit: int) -> str:
    mime = getattr(part, "mime_type", None) or "binary"
    return f"[{part.type} ({mime}, {size:,} bytes) omitted: over the {limit:,}-byte budget for one binary part]"


class ToolOutputBudgetPluginFactory(PluginFactory):
    """Installs the budget as the session's result projector (so it runs last, after every hook)."""

    def __init__(self, budget: ToolOutputBudget | None = None) -> None:
        self.budget = budget or ToolOutputBudget()

    def id(self) -> str:
        return "tool_output_budget"

    def build(self, ctx: PluginSessionContext) -> SessionPlugin:
        return _ToolOutputBudgetPlugin(self.budget)


class _ToolOutputBudgetPlugin(SessionPlugin):
    __slots__ = ("_budget",)

    def __init__(self, budget: ToolOutputBudget) -> None:
        self._budget = budget

    def id(self) -> str:
        return "tool_output_budget"

    def register(self, reg: PluginRegistrar) -> None:
        reg.tool_results().projector(self._project)

    async def _project(self, call: ToolCall, result: ToolResult) -> ToolResult:
        return apply_budget(result, self._budget)
