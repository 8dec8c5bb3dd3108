"""Matching a URI against an RFC 6570 URI template: which server's resource template a read belongs to.

Expansion is what RFC 6570 defines; matching is its inverse, which the RFC leaves open. The rule here, for
templates from servers and URIs from clients (neither trusted):

- literal text matches itself;
- `{var}` matches one or more characters other than `/ ? # &`, `{+var}` and `{#var}` any characters (the `#`
  itself for `#`), `{/var}` and `{.var}` that prefix and a value, repeated, and `{?a,b}`, `{&a}` and `{;a}` the
  rest of the query (or nothing);
- a value never contains the text that follows its expression in the template, so every URI is read one way
  only and matching costs time linear in the URI's length (a backtracking pattern would let one crafted URI
  stall the gateway);
- two expressions with nothing between them can only be told apart by an operator (`{+path}{?q}`); a template
  with two such that cannot (`{a}{b}`) matches nothing, and so does one that cannot be parsed, or a URI longer
  than `MAX_URI_LENGTH`.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = ["MAX_URI_LENGTH", "matches"]

MAX_URI_LENGTH: Final = 8192
_EXPRESSION: Final = re.compile(r"\{([^{}]*)\}")
_OPERATORS: Final = "+#./;?&"
_QUERY: Final = frozenset("?&;")


def matches(template: str, uri: str) -> bool:
    """Whether `uri` is one of the URIs `template` expands to (under the rule in the module docstring)."""
    if len(uri) > MAX_URI_LENGTH:
        return False
    pattern = _compiled(template)
    return pattern is not None and pattern.fullmatch(uri) is not None


@lru_cache(maxsize=1024)
def _compiled(template: str) -> re.Pattern[str] | None:
    pieces: list[tuple[str, str | None]] = []  # (literal text, or "" with the expression's operator)
    position = 0
    for expression in _EXPRESSION.finditer(template):
        if expression.start() > position:
            pieces.append((template[position : expression.start()], None))
        body = expression.group(1)
        if not body:
            return None
        pieces.append(("", body[0] if body[0] in _OPERATORS else ""))
        position = expression.end()
    rest = template[position:]
    if "{" in rest or "}" in rest:
        return None
    if rest:
        pieces.append((rest, None))
    parts: list[str] = []
    for index, (literal, operator) in enumerate(pieces):
        if operator is None:
            parts.append(re.escape(literal))
            continue
        following = pieces[index + 1] if index + 1 < len(pieces) else None
        if following is None:
            stop = ""
        elif following[1] is None:
            stop = following[0]
        elif following[1] and following[1] not in "+":
            stop = following[1]  # the next expression's operator starts it
        else:
            return None  # `{a}{b}`: no way to tell where one ends
        value = _value(operator, stop)
        parts.append(value)
    return re.compile("".join(parts), re.DOTALL)


def _value(operator: str, stop: str) -> str:
    """The pattern of one expression's expansion, whose value never contains `stop` (the text after it)."""
    guard = f"(?!{re.escape(stop)})" if stop else ""
    if operator in ("+", "#"):
        prefix = "#" if operator == "#" else ""
        return f"{prefix}(?:{guard}.)*"
    if operator in ("/", "."):
        return f"(?:{re.escape(operator)}(?:{guard}[^/?#&{re.escape(operator)}])+)*"
    if operator in _QUERY:
        return f"(?:[{re.escape(operator)}](?:{guard}[^#])*)?"
    return f"(?:{guard}[^/?#&])+"
