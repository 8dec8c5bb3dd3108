"""The audit log's writer against the real SQLite store: nothing is lost when a write fails or when the log is left
while a batch is being written, and what is kept of a record is what the operator asked for."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import anyio
import pytest

from lash_gateway import StateStore, StoreError
from lash_gateway.admin._audit import AuditLog, AuditQuery, AuditSettings
from lash_gateway.export._export import CallRecord

pytestmark = pytest.mark.anyio


def record(n: int, **arguments: object) -> CallRecord:
    return CallRecord(f"tool{n}", "mcp__s__t", "session", "t1", arguments, "ok", time.time(), 0.001, wire={"x": n})


ROUTE = ("s", "t")
"""The (server, upstream tool) the recorded calls went to."""


async def test_records_wait_out_a_store_that_cannot_be_written(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.mkdir()  # not a database: every write fails
    store = StateStore(path)
    audit = AuditLog(store, AuditSettings())
    for n in range(5):
        audit.add(None, record(n), ROUTE)
    with pytest.raises(StoreError):
        await audit.flush()
    shutil.rmtree(path)
    await audit.flush()
    stored = await store.read_audit(AuditQuery(limit=100))
    assert sorted(entry.tool for entry in stored) == [f"tool{n}" for n in range(5)]
    assert audit.dropped == 0


async def test_leaving_the_log_writes_every_record(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite3")
    async with AuditLog(store, AuditSettings()) as audit:
        for n in range(5000):  # past a batch: the writer is woken, and what it has not written at the exit is
            audit.add("v", record(n), ROUTE)
        await anyio.lowlevel.checkpoint()
    assert len(await store.read_audit(AuditQuery(limit=10_000))) == 5000


async def test_arguments_are_kept_only_when_asked_and_redacted_by_word(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.sqlite3")
    kept = AuditLog(store, AuditSettings(arguments=True))
    kept.add(None, record(1, query="q", GitHub_Token="ghp", auth={"Bearer": "b"}, items=[{"private_key": "k"}]), ROUTE)
    await kept.flush()
    dropped = AuditLog(store, AuditSettings())
    dropped.add(None, record(2, query="q"), ROUTE)
    await dropped.flush()
    first, second = sorted(await store.read_audit(AuditQuery()), key=lambda entry: entry.tool)
    assert first.public()["arguments"] == {
        "query": "q",
        "GitHub_Token": "[redacted]",
        "auth": "[redacted]",
        "items": [{"private_key": "[redacted]"}],
    }
    assert "arguments" not in second.public() and second.argument_bytes == len('{"query":"q"}')
