"""Checking adapter output against the official LLM SDKs' typed request params, and recorded model responses.

Shared by `tests/unit/test_adapters_anthropic.py`, `tests/unit/test_adapters_openai.py` and
`tests/integration/test_adapters_mcp.py`. `assert_valid` validates a value as an SDK TypedDict with pydantic and
compares it back, so an unknown key or a coerced value cannot slip through. The `recorded_*` builders give recorded
API responses as plain dicts; a test feeds them in as is or through the SDK's typed model (`model_validate`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import TypeAdapter

__all__ = [
    "assert_valid",
    "chat_call",
    "function_call",
    "materialised",
    "recorded_completion",
    "recorded_message",
    "recorded_response",
    "tool_use",
]


def materialised(value: object) -> object:
    """Validated TypedDicts hold lazy iterators for `Iterable` fields: consume them (which validates the items)."""
    if isinstance(value, Mapping):
        return {key: materialised(item) for key, item in value.items()}
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        return [materialised(item) for item in value]
    return value


def assert_valid(typed: Any, value: object) -> None:
    """`value` validates as the SDK type `typed`, and validation dropped and coerced nothing."""
    adapter: TypeAdapter[Any] = TypeAdapter(typed)  # kept alive: the lazy iterators validate through it
    validated = adapter.validate_python(value)
    assert materialised(validated) == materialised(value)


# --- Anthropic Messages API -------------------------------------------------------------------------------------------


def tool_use(call_id: str, name: str, args: object) -> dict[str, Any]:
    """A `tool_use` content block of an assistant message."""
    return {"type": "tool_use", "id": call_id, "name": name, "input": args}


def recorded_message(*blocks: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded assistant `Message`: a text block, then `blocks`."""
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5",
        "content": [{"type": "text", "text": "Let me use the tools."}, *blocks],
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": 412, "output_tokens": 96},
    }


# --- OpenAI Chat Completions ------------------------------------------------------------------------------------------


def chat_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A function tool call of an assistant chat message (`arguments` is the JSON text the model wrote)."""
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def recorded_completion(*tool_calls: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded `ChatCompletion` whose one choice's message makes `tool_calls`."""
    return {
        "id": "chatcmpl-B9MHDbslfkBeAs8l4bebGdFOJ6PeG",
        "object": "chat.completion",
        "created": 1741570283,
        "model": "gpt-5-2025-08-07",
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {"role": "assistant", "content": None, "refusal": None, "tool_calls": list(tool_calls)},
            }
        ],
        "usage": {"prompt_tokens": 82, "completion_tokens": 17, "total_tokens": 99},
    }


# --- OpenAI Responses API ---------------------------------------------------------------------------------------------


def function_call(call_id: str, name: str, arguments: str) -> dict[str, Any]:
    """A `function_call` output item (`arguments` is the JSON text the model wrote)."""
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": "completed",
    }


def recorded_response(*items: Mapping[str, Any]) -> dict[str, Any]:
    """A recorded `Response`: a reasoning item, then `items`."""
    return {
        "id": "resp_67ccd3a9da748190baa7f1570fe91ac6",
        "object": "response",
        "created_at": 1741476777,
        "model": "gpt-5-2025-08-07",
        "status": "completed",
        "output": [
            {"type": "reasoning", "id": "rs_1", "summary": []},
            *items,
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
