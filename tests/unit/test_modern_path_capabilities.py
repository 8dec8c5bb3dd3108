"""The 2026-07-28 direct `tools/call` path (`_modern_path._asks_nothing`) is taken only for a client the SDK itself
would find declares no kind of question: however its `_meta` capabilities are shaped, the gateway never answers
without a bridge a call whose client the SDK would let an upstream ask. Checked against the installed SDK's own
reading of the envelope (`Connection.from_envelope`), so an SDK upgrade that reads capabilities otherwise fails here.
"""

from __future__ import annotations

from typing import Any, Final

import mcp_types as types
from hypothesis import given
from hypothesis import strategies as st
from mcp.server.connection import Connection

from lash_gateway.export._asking import ASKABLE
from lash_gateway.export._modern_path import _asks_nothing

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


@given(capabilities)
def test_a_call_skips_the_bridge_only_when_the_sdk_finds_no_question_declared(raw: Any) -> None:
    if not _asks_nothing(raw, PARAMS):
        return  # the handler path: the SDK's own reading decides there
    connection = Connection.from_envelope(MODERN, {"name": "client", "version": "1"}, raw)
    assert not any(connection.check_capability(capability) for capability in ASKED.values()), raw


def test_a_declared_question_or_a_retry_takes_the_handler_path() -> None:
    for kind in ASKABLE:
        assert not _asks_nothing({kind: {}}, PARAMS)
    assert not _asks_nothing({}, types.CallToolRequestParams(name="echo", arguments={}, request_state="s"))
    assert _asks_nothing({}, PARAMS)
    assert _asks_nothing(None, PARAMS)
