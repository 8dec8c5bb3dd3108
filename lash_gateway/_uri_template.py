"""Matching a URI against an RFC 6570 URI template: which server's resource template a read belongs to.

Expansion is what RFC 6570 defines; matching is its inverse, which the RFC leaves open. The rule here: literal
text matches itself, `{var}` one or more characters other than `/`, `?`, `#` and `&` (a path segment or a
value), `{+var}` and `{#var}` anything, `{/var}` and `{.var}` that prefix and a segment, and the query forms
`{?a,b}` / `{&a}` the rest of the query. A template that cannot be parsed matches nothing.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

__all__ = ["matches"]

_EXPRESSION: Final = re.compile(r"\{([^{}]*)\}")
_VALUE: Final = r"[^/?#&]+"


def matches(template: str, uri: str) -> bool:
    """Whether `uri` is one of the URIs `template` expands to (under the rule in the module docstring)."""
    pattern = _compiled(template)
    return pattern is not None and pattern.fullmatch(uri) is not None


@lru_cache(maxsize=1024)
def _compiled(template: str) -> re.Pattern[str] | None:
    parts: list[str] = []
    position = 0
    for expression in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[position : expression.start()]))
        body = expression.group(1)
        if not body:
            return None
        operator = body[0] if body[0] in "+#./;?&" else ""
        if operator in ("+", "#"):
            parts.append(re.escape(operator if operator == "#" else "") + ".*")
        elif operator in ("/", "."):
            parts.append(f"(?:{re.escape(operator)}{_VALUE})*")
        elif operator in ("?", "&", ";"):
            parts.append(rf"(?:[{re.escape(operator)}&][^#]*)?")
        else:
            parts.append(_VALUE)
        position = expression.end()
    rest = template[position:]
    if "{" in rest or "}" in rest:
        return None
    parts.append(re.escape(rest))
    return re.compile("".join(parts), re.DOTALL)
