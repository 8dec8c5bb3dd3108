"""The 2026-07-28 direct `tools/call` path lets an upstream ask a client exactly the kinds of question the SDK itself
would find it declares, each as the SDK reads its declaration (`_modern_path._Call.askable`, `Declarations`, whose
kept readings are checked too): however its `_meta` capabilities are shaped, the gateway asks no client what the
SDK's path would not, refuses no question the SDK's path would ask, and tells a 2026-07-28 upstream of each kind what
the SDK read. Checked against the installed SDK's own reading of the envelope (`Connection.from_envelope`), so an SDK
upgrade that reads capabilities otherwise fails here.
"""

from __future__ import annotations

from typing import Any, Final

import mcp_types as types
from hypothesis import given
from hypothesis import strategies as st
from mcp.server.connection import Connection

from lash_gateway._declared import ASKABLE
from lash_gateway.export._modern_path import Declarations, _Call

MODERN: Final = "2026-07-28"
ASKED: Final = {
    "sampling": types.ClientCapabilities(sampling=types.SamplingCapability()),
    "elicitation": types.ClientCapabilities(elicitation=types.ElicitationCapability()),
    "roots": types.ClientCapabilities(roots=types.RootsCapability()),
}
PARAMS: Final = types.CallToolRequestParams(name="echo", arguments={})

values = st.recursive(
    st.none() | st.booleans() | st.integers(-2, 2) | st.sampled_from(["", "form", "url"]),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["form", "url", "listChanged", "tools", "context", "x"]), inner, max_size=3)
    ),
    max_leaves=6,
)
capabilities = st.one_of(
    values,
    st.dictionaries(st.sampled_from([*ASKABLE, "experimental", "extensions", "tasks", "Sampling"]), values, max_size=4),
)


KEPT: Final = Declarations()
"""Shared by every example: a reading kept from one must be right for the next that sends the same."""


def askable(raw: Any, params: types.CallToolRequestParams = PARAMS) -> Any:
    first = _Call({}, 1, MODERN, params, raw).askable(KEPT)
    again = _Call({}, 2, MODERN, params, raw).askable(KEPT)
    assert again == first and _Call({}, 3, MODERN, params, raw).askable(Declarations()) == first, raw
    return first


@given(capabilities)
def test_a_call_may_ask_exactly_what_the_sdk_finds_declared(raw: Any) -> None:
    connection = Connection.from_envelope(MODERN, {"name": "client", "version": "1"}, raw)
    declared = {kind for kind, capability in ASKED.items() if connection.check_capability(capability)}
    can_ask = askable(raw)
    if can_ask is None:  # no bridge at all
        assert not declared, raw
    else:
        assert set(can_ask) == declared, raw
        read = connection.client_capabilities
        for kind, value in can_ask.items():  # each as the SDK reads it: what a 2026-07-28 upstream hears of it
            assert value == getattr(read, kind).model_dump(by_alias=True, exclude_none=True, mode="json"), raw


def test_a_call_needs_no_bridge_unless_its_client_takes_questions_or_it_is_a_retry() -> None:
    for kind in ASKABLE:
        assert askable({kind: {}}) == {kind: {}}
    retry = askable({}, types.CallToolRequestParams(name="echo", arguments={}, request_state="s"))
    assert retry == {}  # a bridge, with nothing to ask
    assert askable({}) is None
    assert askable(None) is None


def test_a_kept_reading_is_only_ever_the_same_declarations() -> None:
    """A reading is kept by the whole declaration, not by its kinds alone, and each request gets a copy of its own."""
    kept = Declarations()
    assert kept({"elicitation": {}}) == {"elicitation": {}}
    assert kept({"elicitation": {}, "experimental": "not an object"}) == {}  # mis-shaped: the SDK reads nothing
    first = kept({"elicitation": {}})
    first["elicitation"]["url"] = {}  # a plugin that changes its caller's `declared`
    assert kept({"elicitation": {}}) == {"elicitation": {}}


def test_what_a_client_declares_keeps_no_more_than_a_few_small_readings() -> None:
    """A client decides what it sends as capabilities: a hostile one that sends a large declaration, or a new one with
    every request, grows nothing past the bound, and every reading stays right."""
    kept = Declarations()
    large = {"elicitation": {}, "experimental": {"padding": {"x": "y" * 4096}}}
    assert kept(large) == {"elicitation": {}}
    assert kept._kept == {}  # larger than a reading worth keeping
    for n in range(100):
        assert kept({"sampling": {}, "experimental": {"n": {"v": n}}}) == {"sampling": {}}
    assert len(kept._kept) == 64
    assert kept({"sampling": {}, "experimental": {"n": {"v": 0}}}) == {"sampling": {}}  # evicted: read again
