"""What a client declared it takes of each kind of question, the rules both sides follow:

- a question is held against it: a server must not send a client a URL to open unless it declared URLs, nor tools to
  sample with unless its sampling takes tools. The export's callers refuse such a question
  (`export._asking.caller_of`), and a 2026-07-28 upstream's round is refused whole before any of its questions is
  asked (`upstream._asks.answer_input_requests`);
- a 2026-07-28 upstream hears it with each request (`declared_as`), and its missing-capability error is the client's
  to hear only when it names what the client declared (`lacks_what_it_declared`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, get_args

from lash_core import Caller, CallerRequest, CallerUnsupported

__all__ = ["ASKABLE", "MISSING_CAPABILITY", "declared_as", "lacks_what_it_declared", "undeclared", "unwelcome"]

ASKABLE: Final[tuple[CallerRequest, ...]] = get_args(CallerRequest)
"""Every kind of question a client may declare it takes (each named as its client capability is)."""

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


def declared_as(caller: Caller, capability: str, connection: Any) -> Any:
    """What to tell a 2026-07-28 server of the client's `capability`, which the connection declares as `connection`
    for every client: for a kind of question, what the caller declared of it, when it takes that kind (None: it does
    not, and the server hears nothing of it); anything else as the connection declares it."""
    if capability not in ASKABLE:
        return connection
    return caller.declared.get(capability, connection) if caller.supports(capability) else None


def lacks_what_it_declared(data: Any) -> bool:
    """Whether a 2026-07-28 server's missing-capability error (-32021, its `data`) is about the request's client:
    it names only kinds of question, which the server heard as that client declared them (`declared_as`). Anything
    else it judged by what the gateway's connection declares, which the client cannot change."""
    required = data.get("requiredCapabilities") if isinstance(data, Mapping) else None
    return isinstance(required, Mapping) and bool(required) and required.keys() <= set(ASKABLE)


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
