"""The key that signs input-required `requestState`s lives in the state directory, owner-only, made once."""

from __future__ import annotations

import stat
from pathlib import Path

from lash_gateway.admin._state import REQUEST_STATE_KEY_FILE, request_state_key


def test_the_key_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    first = request_state_key(tmp_path)
    path = tmp_path / REQUEST_STATE_KEY_FILE
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert request_state_key(tmp_path) == first  # every process of this directory signs alike


def test_a_damaged_key_is_replaced(tmp_path: Path) -> None:
    (tmp_path / REQUEST_STATE_KEY_FILE).write_text("not hex\n")
    key = request_state_key(tmp_path)
    assert len(key) == 32
    assert request_state_key(tmp_path) == key
