"""`build()` is cheap by contract: building sessions and children does no file, process or network I/O.

Proved with an audit hook (PEP 578), which sees I/O that mocks would miss (C-level `open`, sockets,
`os.*` calls). Audit hooks cannot be removed, so the hook is installed once and only records while
the module-level flag `_recording` is on.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from lash_core import LashCore, PluginStack, SessionKind

WATCHED_EVENTS = frozenset({"open", "subprocess.Popen", "urllib.Request", "import"})
WATCHED_PREFIXES = ("os.", "socket.", "shutil.", "http.", "ftplib.", "smtplib.", "sqlite3.", "ctypes.", "glob.")

_recording = False
_installed = False
_events: list[tuple[str, tuple[object, ...]]] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    if _recording and (event in WATCHED_EVENTS or event.startswith(WATCHED_PREFIXES)):
        _events.append((event, args))


@contextmanager
def recorded_io() -> Iterator[list[tuple[str, tuple[object, ...]]]]:
    """Yield the list of watched audit events raised inside the block."""
    global _recording, _installed
    if not _installed:
        sys.addaudithook(_audit)
        _installed = True
    _events.clear()
    _recording = True
    try:
        yield _events
    finally:
        _recording = False


def test_the_probe_sees_file_socket_and_os_io() -> None:
    """Without this, a broken probe would make the real test pass vacuously."""
    with recorded_io() as events:
        with open(os.devnull, "rb"):
            pass
        socket.socket().close()
        os.listdir(".")

    seen = {event for event, _ in events}
    assert {"open", "socket.__new__", "os.listdir"} <= seen


def test_building_sessions_and_children_with_the_runtime_stack_does_no_io() -> None:
    with recorded_io() as events:
        core = LashCore.builder().plugins(PluginStack.runtime()).build()
        for _ in range(250):
            root = core.session()
            root.child("subagent")
            root.child(SessionKind.FORK)
            root.child("compaction").snapshot()

    assert events == []
