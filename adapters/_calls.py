"""Reading a model's tool calls from dicts or SDK objects, and running them through a session concurrently.

Input problems of one call (unknown name, arguments that are not a JSON object) become that call's failure
result, so the model reads what went wrong; only a malformed response shape (no call id) raises. Results
come back in the order of the calls, whatever order they finish in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import anyio

from lash_core import FailureClass, Session, ToolResult

from ._names import NameMap, session_names

__all__ = ["PendingCall", "entries", "execute_all", "field", "required_str"]


@dataclass(frozen=True, slots=True)
class PendingCall:
    """One tool call as a model wrote it."""

    call_id: str
    name: str
    """The name the model used (a model-side name, see `_names`)."""
    args: Mapping[str, object] | None
    """The arguments, or None when `problem` says why they are unusable."""
    problem: str | None = None


def field(item: object, key: str) -> object:
    """`item[key]` for mappings, `item.key` for SDK objects (pydantic models), None when absent."""
    if isinstance(item, Mapping):
        return item.get(key)
    return getattr(item, key, None)


def required_str(item: object, key: str, what: str) -> str:
    """A string field that the provider always sends.

    Raises:
        ValueError: the field is missing or not a string: the input is not a provider response.
    """
    value = field(item, key)
    if not isinstance(value, str):
        raise ValueError(f"{what} has no string {key!r} (got {type(value).__name__}); pass the provider's response")
    return value


def entries(source: object, key: str) -> list[object]:
    """The items of a response container: `source[key]` / `source.key` for a message or response (dict or SDK
    object), or `source` itself when it is already the list. None and string content (no tool calls) give [].

    Raises:
        TypeError: `source` is neither.
    """
    inner: object
    if isinstance(source, Mapping):
        inner = source.get(key)
    elif isinstance(source, str | bytes):
        raise TypeError(f"expected a response or a list of its {key!r} items, got {type(source).__name__}")
    elif not isinstance(source, Sequence) and hasattr(source, key):
        inner = getattr(source, key)
    else:
        inner = source
    if inner is None or isinstance(inner, str):
        return []
    if not isinstance(inner, Iterable):
        raise TypeError(f"expected a response or a list of its {key!r} items, got {type(source).__name__}")
    return list(inner)


async def execute_all(session: Session, calls: Sequence[PendingCall]) -> list[ToolResult]:
    """Run `calls` through `session` concurrently (one task each, in one task group); results in call order.

    Raises:
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    names = session_names(session)
    results = [ToolResult()] * len(calls)

    async def run(index: int, call: PendingCall) -> None:
        results[index] = await _execute(session, names, call)

    if len(calls) == 1:
        await run(0, calls[0])
        return results
    try:
        async with anyio.create_task_group() as tg:
            for index, call in enumerate(calls):
                tg.start_soon(run, index, call, name=f"lash-tool-call:{call.name}")
    except BaseExceptionGroup as group:
        # `call_tool` reports failures as results; what escapes is a session misuse (a tool conflict that
        # appeared mid-turn) or a bug. Unwrapped when alone, so callers catch the error they know.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from group
        raise
    return results


async def _execute(session: Session, names: NameMap, call: PendingCall) -> ToolResult:
    lash_name = names.lash_name(call.name)
    if lash_name is None:
        return ToolResult.err(
            f"unknown tool {call.name!r}: it is not among the tools this session offered",
            failure_class=FailureClass.INVALID_INPUT,
            code="unknown_tool",
        )
    if call.args is None:
        return ToolResult.err(
            f"invalid arguments for {call.name!r}: {call.problem}",
            failure_class=FailureClass.INVALID_INPUT,
            code="invalid_arguments",
        )
    return await session.call_tool(lash_name, call.args, call_id=call.call_id)
