"""The operator's allow-list patterns for processes the admin API may start, parsed and matched (pure rules).

A command-line pattern is shell-quoted words: the first matches the command, each next one matches one
argument, in order, and a last word `*` stands for any further arguments. Within a word, `*` matches
any run of characters and `?` one character, neither of them a `/`, so a word never spans two
arguments or two directory levels:

    python3 -m mcp_server_*          python3 -m mcp_server_time, and nothing after it
    python3 -m mcp_server_* *        ... with any arguments after the module name
    /opt/mcp/bin/* --stdio           /opt/mcp/bin/<one file> --stdio

A command or argument with a `..` path segment matches no pattern: it would leave the directory a
pattern names. An environment-variable pattern is a name, or a glob that keeps at least
`MIN_GLOB_LITERAL` characters of it (`*_API_KEY`), so that no pattern admits names wholesale.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

__all__ = ["MIN_GLOB_LITERAL", "CommandPattern", "climbs", "env_pattern", "parse_command_pattern"]

MIN_GLOB_LITERAL: Final = 4
"""Characters of the name an environment-variable glob keeps, at least."""

_CLIMBS: Final = re.compile(r"(?:^|[/\\])\.\.(?:[/\\]|$)")


@dataclass(frozen=True, slots=True)
class CommandPattern:
    """One parsed pattern of `gateway.admin.stdio_allow`."""

    source: str
    words: tuple[re.Pattern[str], ...]
    more: bool
    """The pattern ends in a `*` word: any further arguments are admitted."""

    def matches(self, commands: Sequence[str], args: Sequence[str]) -> bool:
        """Whether a process started as one of `commands` (spellings of one executable) with `args` is admitted."""
        if any(climbs(word) for word in (*commands, *args)):
            return False
        command, *arguments = self.words
        if len(args) < len(arguments) or (len(args) > len(arguments) and not self.more):
            return False
        if not any(command.fullmatch(spelling) for spelling in commands):
            return False
        return all(word.fullmatch(arg) for word, arg in zip(arguments, args, strict=False))


def parse_command_pattern(pattern: str) -> CommandPattern:
    """Raises `ValueError` for a pattern that is not shell-quoted words, or has no command word."""
    try:
        words = shlex.split(pattern)
    except ValueError as exc:
        raise ValueError(f"{pattern!r} is not shell-quoted words ({exc})") from None
    more = len(words) > 1 and words[-1] == "*"
    if more:
        words.pop()
    if not words:
        raise ValueError(f"{pattern!r} names no command")
    return CommandPattern(pattern, tuple(_word(word) for word in words), more)


def climbs(word: str) -> bool:
    """Whether `word` has a `..` path segment."""
    return _CLIMBS.search(word) is not None


def env_pattern(pattern: str) -> str:
    """`pattern` if it is a valid environment-variable pattern of `stdio_env_allow`.

    Raises:
        ValueError: empty, or a glob that keeps fewer than `MIN_GLOB_LITERAL` characters of the name.
    """
    if not pattern:
        raise ValueError("patterns must not be empty")
    literal = re.sub(r"[*?]|\[[^\]]*\]", "", pattern)
    if literal != pattern and len(literal) < MIN_GLOB_LITERAL:
        raise ValueError(
            f"{pattern!r} admits names too broadly: a glob must keep at least {MIN_GLOB_LITERAL} characters of "
            "the name (such as '*_API_KEY'); list other names exactly"
        )
    return pattern


def _word(glob: str) -> re.Pattern[str]:
    parts = (("[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)) for char in glob)
    return re.compile("".join(parts), re.DOTALL)
