"""Mapping raw `tools/call` results from an upstream to lash results, and the gateway's answer built
from them: whatever an upstream sends, the answer passes the SDK's strict result check."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp_types import methods

from lash_core import FailureClass, ImagePart, ResourcePart, TextPart
from lash_gateway.export._wire import is_plain_call_result, result_to_wire
from lash_gateway.upstream._wire import result_from_wire

SLOPPY: dict[str, Any] = {
    "content": [
        {"type": "text", "text": "ok", "annotations": {"audience": ["user"], "priority": 0.5, "bogus": 1}},
        {"type": "text", "text": "bad notes", "annotations": {"priority": "high", "audience": ["robot"]}},
        {"type": "image", "data": "aGk=", "mimeType": 7},
        {"type": "resource", "resource": {"uri": "file:///x", "text": 12, "mimeType": None}},
        {"type": "video", "url": "http://example.invalid/v.mp4"},
        "a bare string",
    ],
    "structuredContent": {"n": 1},
    "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "up"}, "trace": "t1"},
}


def test_sloppy_content_keeps_what_is_well_formed_and_drops_the_rest() -> None:
    result = result_from_wire("up", "tool", SLOPPY)

    assert result.content[0] == TextPart("ok", {"audience": ["user"], "priority": 0.5})
    assert result.content[1] == TextPart("bad notes")
    assert result.content[2] == ImagePart("aGk=", "application/octet-stream")
    assert result.content[3] == ResourcePart("file:///x")
    assert isinstance(result.content[4], TextPart) and '"video"' in result.content[4].text
    assert result.content[5] == TextPart('"a bare string"')
    assert result.structured == {"n": 1}
    assert result.meta == {"trace": "t1"}


@pytest.mark.parametrize("version", ["2025-11-25", "2025-06-18"])
def test_the_gateways_answer_from_a_sloppy_upstream_passes_the_sdk_result_check(version: str) -> None:
    wire = result_to_wire(result_from_wire("up", "tool", SLOPPY))
    methods.validate_server_result("tools/call", version, wire)


def test_an_upstream_tool_error_is_a_failure_result_carrying_its_text() -> None:
    result = result_from_wire("up", "tool", {"content": [{"type": "text", "text": "disk full"}], "isError": True})

    assert result.failure_class is FailureClass.TOOL_ERROR
    assert result.code == "upstream_tool_error"
    assert result.message == "disk full"
    assert result_to_wire(result)["isError"] is True


MODERN = "2026-07-28"
_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)
_plain = st.fixed_dictionaries(
    {
        "content": st.lists(st.fixed_dictionaries({"type": st.just("text"), "text": st.text()}), max_size=3),
        "resultType": st.just("complete"),
    },
    optional={"isError": st.booleans(), "structuredContent": st.dictionaries(st.text(max_size=5), _json) | _json},
)
_TWISTS: list[tuple[str, Any]] = [
    ("isError", None),
    ("isError", "no"),
    ("isError", 0),
    ("structuredContent", None),
    ("structuredContent", {"n": float("nan")}),
    ("structuredContent", {"n": float("inf")}),
    ("structuredContent", {"n": (1, 2)}),
    ("structuredContent", {1: "an int key"}),
    ("structuredContent", {"\ud800": "a lone surrogate in a key"}),
    ("structuredContent", {"caf\u00e9": 1}),
    ("structuredContent", {"n": b"bytes"}),
    ("structuredContent", list(range(100))),
    ("_meta", {"trace": "t"}),
    ("bogus", 1),
    ("resultType", "input_required"),
    ("content", [{"type": "text", "text": "x", "annotations": {"priority": 0.5, "bogus": 1}}]),
    ("content", [{"type": "text", "text": 7}]),
    ("content", [{"type": "image", "data": "aGk=", "mimeType": "image/png"}]),
    ("content", ["bare"]),
    ("content", None),
]


def _identical(a: Any, b: Any) -> bool:
    """Equal as JSON a client parses, types included (`==` takes 1 for True and for 1.0); key order aside."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_identical(a[key], b[key]) for key in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_identical(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@pytest.mark.parametrize("twist", [None, *_TWISTS], ids=lambda twist: "plain" if twist is None else repr(twist)[:40])
@settings(max_examples=30)
@given(result=_plain)
def test_a_call_result_sent_without_the_sieve_is_what_the_sieve_would_send(
    twist: tuple[str, Any] | None, result: dict[str, Any]
) -> None:
    """The 2026-07-28 fast path skips the protocol's result sieve for plain results: for every one it skips, the
    sieve (run here, of the installed SDK) gives back the same result. Each twist makes a plain result one that
    is not, or not always."""
    if twist is not None:
        result[twist[0]] = twist[1]
    if is_plain_call_result(result):
        assert _identical(methods.serialize_server_result("tools/call", MODERN, result), result)


@pytest.mark.parametrize(
    ("result", "plain"),
    [
        ({"content": [{"type": "text", "text": "hi"}], "isError": False, "resultType": "complete"}, True),
        ({"content": [], "structuredContent": {"n": [1, 2.5, None]}, "resultType": "complete"}, True),
        ({"content": [{"type": "text", "text": "", "annotations": {"priority": 1}}], "resultType": "complete"}, False),
        ({"content": [{"type": "image", "data": "aGk=", "mimeType": "image/png"}], "resultType": "complete"}, False),
        ({"content": [], "structuredContent": {"n": float("nan")}, "resultType": "complete"}, False),
        ({"content": [], "structuredContent": None, "resultType": "complete"}, False),
        ({"content": [], "_meta": {"trace": "t"}, "resultType": "complete"}, False),
        ({"content": [], "isError": None, "resultType": "complete"}, False),
        ({"content": [], "resultType": "input_required"}, False),
    ],
)
def test_only_plain_call_results_skip_the_sieve(result: dict[str, Any], plain: bool) -> None:
    assert is_plain_call_result(result) is plain


def test_a_large_structured_content_goes_through_the_sieve() -> None:
    """Past a few dozen values the sieve (compiled) is faster than this check (interpreted), and nesting is bounded."""
    deep: Any = "leaf"
    for _ in range(40):
        deep = [deep]
    assert is_plain_call_result({"content": [], "structuredContent": deep, "resultType": "complete"})
    for large in ({"rows": [{"n": n} for n in range(40)]}, [deep, deep]):
        assert not is_plain_call_result({"content": [], "structuredContent": large, "resultType": "complete"})
