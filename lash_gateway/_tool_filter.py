"""Which of an upstream's tools a server contributes: allow and deny globs on the names the upstream lists."""

from __future__ import annotations

from fnmatch import fnmatchcase

from pydantic import BaseModel, ConfigDict, field_validator

__all__ = ["ToolFilter"]


class ToolFilter(BaseModel):
    """Which upstream tools a server contributes.

    Patterns are shell-style globs (`*`, `?`, `[abc]`), matched case-sensitively against the tool
    names the upstream lists, before they are renamed to `mcp__<server>__<tool>`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, hide_input_in_errors=True)

    allow: list[str] = []
    """A tool must match one of these patterns to be kept; an empty list keeps every tool."""
    deny: list[str] = []
    """A tool matching one of these patterns is dropped, even if `allow` matched it."""

    @field_validator("allow", "deny")
    @classmethod
    def _check_patterns(cls, patterns: list[str]) -> list[str]:
        if any(not pattern for pattern in patterns):
            raise ValueError("patterns must not be empty strings")
        return patterns

    def allows(self, tool: str) -> bool:
        """Whether the upstream tool named `tool` passes this filter."""
        if self.allow and not any(fnmatchcase(tool, pattern) for pattern in self.allow):
            return False
        return not any(fnmatchcase(tool, pattern) for pattern in self.deny)
