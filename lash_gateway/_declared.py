"""What a client declared it takes of a kind of question, held against a question of that kind: a server must not
send a client a URL to open unless it declared URLs, nor tools to sample with unless its sampling takes tools. One
rule for both sides: the export's callers refuse such a question (`export._asking.caller_of`), and a 2026-07-28
upstream's round is refused whole before any of its questions is asked (`upstream._asks.answer_input_requests`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from lash_core import Caller, CallerRequest, CallerUnsupported

__all__ = ["MISSING_CAPABILITY", "undeclared", "unwelcome"]

MISSING_CAPABILITY: Final = "missing_client_capability"
"""The `ToolFailure.code` of a call refused because the request's client lacks a capability the call needs (MCP's
-32021, its data in `ToolFailure.data`): the export answers the client with that error. The pool gives it to a
2026-07-28 server's refusal that names only kinds of question (which that server heard as the client declared
them); any provider's failure with this code is answered so."""
_MODES: Final = ("form", "url")


def undeclared(kind: CallerRequest, params: Mapping[str, Any], declared: Mapping[str, Any]) -> str | None:
    """Why a client that `declared` this of `kind` (its capability object; `{}` for elicitation is forms, as before
    modes) must not be sent this question, or None. A mode this does not know is left to the question's own
    validation: it is malformed, not undeclared."""
    missing = _beyond(kind, params, declared)
    return None if missing is None else f"the client does not take {missing} (it did not declare it)"


def unwelcome(caller: Caller, kind: CallerRequest, params: Mapping[str, Any]) -> str | None:
    """Why `caller` would refuse this question without asking (it does not take the kind, or not all of it), or None.
    A caller that says nothing of a kind it takes (`declared`) takes all of it."""
    if not caller.supports(kind):
        return str(CallerUnsupported(kind))
    declared = caller.declared.get(kind)
    return undeclared(kind, params, declared) if declared is not None else None


def _beyond(kind: CallerRequest, params: Mapping[str, Any], declared: Mapping[str, Any]) -> str | None:
    if kind == "elicitation":
        # As the SDK parses it: a question with a URL and no mode is a URL question.
        mode = params.get("mode") or ("url" if "url" in params else "form")
        if mode not in _MODES:
            return None
        modes = {name for name in _MODES if name in declared} or {"form"}
        return None if mode in modes else f"elicitation in {mode!r} mode"
    if kind == "sampling":
        if (params.get("tools") or params.get("toolChoice")) and "tools" not in declared:
            return "sampling with tools"
        if (params.get("includeContext") or "none") != "none" and "context" not in declared:
            return "sampling that includes context"
    return None
