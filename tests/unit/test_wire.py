"""Mapping raw `tools/call` results from an upstream to lash results, and the gateway's answer built
from them: whatever an upstream sends, the answer passes the SDK's strict result check."""

from __future__ import annotations

from typing import Any

import pytest
from mcp_types import methods

from lash_core import FailureClass, ImagePart, ResourcePart, TextPart
from lash_gateway.export._wire import result_to_wire
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
