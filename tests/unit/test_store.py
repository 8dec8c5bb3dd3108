"""The state store: runtime attaches (secrets included) and detaches survive in SQLite, one transaction per change,
in an owner-only file; `apply_changes` puts them on top of the config file's servers."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Awaitable, Callable, Iterator
from contextlib import closing
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from lash_gateway import (
    HttpServerConfig,
    McpServerConfig,
    StateStore,
    StdioServerConfig,
    StoredChange,
    StoreError,
    ToolFilter,
)
from lash_gateway.admin._store import apply_changes

STDIO = McpServerConfig.stdio("uvx", ["mcp-server-time"], env={"TOKEN": "s3cr3t-e"}, cwd="/srv", call_timeout=5)
HTTP = McpServerConfig.streamable_http(
    "https://example.com/mcp", headers={"Authorization": "Bearer s3cr3t-h"}, tools=ToolFilter(allow=["get_*"])
)
SSE = McpServerConfig.sse("http://127.0.0.1:8000/sse")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.sqlite3")


@pytest.fixture
def open_umask() -> Iterator[None]:
    """umask 0 for the test: a file left to default permissions would come out world-readable."""
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


@pytest.mark.anyio
async def test_attach_round_trips_with_secret_values(store: StateStore) -> None:
    await store.record_attach("time", STDIO)
    await store.record_attach("remote", HTTP)
    await store.record_attach("legacy", SSE)
    changes = await store.load()
    assert changes == [StoredChange("time", STDIO), StoredChange("remote", HTTP), StoredChange("legacy", SSE)]
    by_name = {change.name: change.config for change in changes}
    time_config, remote_config = by_name["time"], by_name["remote"]
    assert time_config is not None and time_config.transport == "stdio"
    assert time_config.env["TOKEN"].get_secret_value() == "s3cr3t-e"
    assert remote_config is not None and remote_config.transport == "streamable_http"
    assert remote_config.headers["Authorization"].get_secret_value() == "Bearer s3cr3t-h"


@pytest.mark.anyio
async def test_a_new_store_object_reads_what_another_wrote(store: StateStore) -> None:
    """What a restarted gateway sees: a second `StateStore` on the same file."""
    await store.record_attach("remote", HTTP)
    assert await StateStore(store.path).load() == [StoredChange("remote", HTTP)]


@pytest.mark.anyio
async def test_empty_store_loads_nothing(store: StateStore) -> None:
    assert await store.load() == []


@pytest.mark.anyio
async def test_detach_leaves_a_tombstone_even_for_a_never_attached_name(store: StateStore) -> None:
    await store.record_attach("remote", HTTP)
    await store.record_detach("remote")
    await store.record_detach("from-config-file")  # only ever in the config file
    assert await store.load() == [StoredChange("remote", None), StoredChange("from-config-file", None)]


@pytest.mark.anyio
async def test_one_row_per_name_holding_its_last_change_oldest_first(store: StateStore) -> None:
    await store.record_attach("a", STDIO)
    await store.record_attach("b", HTTP)
    await store.record_detach("a")
    await store.record_attach("c", SSE)
    await store.record_attach("b", SSE)
    assert await store.load() == [StoredChange("a", None), StoredChange("c", SSE), StoredChange("b", SSE)]


@pytest.mark.anyio
async def test_store_file_is_created_owner_only(store: StateStore, open_umask: None) -> None:
    assert not store.path.exists()
    await store.record_attach("remote", HTTP)
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600


@pytest.mark.anyio
async def test_failed_write_raises_store_error_and_keeps_the_previous_row(store: StateStore) -> None:
    """A write that fails after the row was already rewritten (a trigger aborts it) must leave the previous row:
    the change is one transaction, never half applied."""
    await store.record_attach("remote", HTTP)
    with closing(sqlite3.connect(store.path)) as db, db:
        for event in ("INSERT", "UPDATE"):  # a delete-then-insert outside one transaction would lose the row
            db.execute(
                f"CREATE TRIGGER fail_after_{event.lower()} AFTER {event} ON servers "
                "BEGIN SELECT RAISE(ABORT, 'simulated failure after the row was written'); END"
            )
    writes: list[Callable[[], Awaitable[None]]] = [
        lambda: store.record_attach("remote", SSE),
        lambda: store.record_detach("remote"),
        lambda: store.record_attach("new", SSE),
    ]
    for write in writes:
        with pytest.raises(StoreError) as caught:
            await write()
        assert str(store.path) in str(caught.value)
    assert await store.load() == [StoredChange("remote", HTTP)]

    with closing(sqlite3.connect(store.path)) as db, db:
        for event in ("insert", "update"):
            db.execute(f"DROP TRIGGER fail_after_{event}")
    await store.record_attach("remote", SSE)  # the store is usable again
    assert await store.load() == [StoredChange("remote", SSE)]


@pytest.mark.anyio
async def test_unwritable_location_raises_store_error_naming_the_file(tmp_path: Path) -> None:
    """Bug: `StateStore._connect` catches only `sqlite3.Error`; creating the file in a missing directory raises
    `FileNotFoundError` out of the store instead of `StoreError`."""
    store = StateStore(tmp_path / "missing" / "state.sqlite3")
    with pytest.raises(StoreError) as caught:
        await store.record_attach("remote", HTTP)
    assert str(store.path) in str(caught.value)


def test_stored_attach_replaces_and_stored_detach_removes_config_servers() -> None:
    config: dict[str, StdioServerConfig | HttpServerConfig] = {"a": STDIO, "b": HTTP, "c": SSE}
    replacement = McpServerConfig.streamable_http("http://127.0.0.1:9/mcp")
    changes = [
        StoredChange("b", replacement),
        StoredChange("c", None),
        StoredChange("d", STDIO),
        StoredChange("never-configured", None),
    ]
    result = apply_changes(config, changes)
    assert list(result) == ["a", "b", "d"]  # config-file order, runtime attaches after
    assert result == {"a": STDIO, "b": replacement, "d": STDIO}
    assert config == {"a": STDIO, "b": HTTP, "c": SSE}  # the config itself is not modified


def test_later_changes_win() -> None:
    """Changes are applied oldest first: a detach after an attach of the same name removes it, and vice versa."""
    assert apply_changes({}, [StoredChange("x", STDIO), StoredChange("x", None)]) == {}
    assert apply_changes({"x": HTTP}, [StoredChange("x", None), StoredChange("x", SSE)]) == {"x": SSE}


@pytest.mark.anyio
async def test_a_row_that_cannot_be_read_is_left_out_and_said(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Bug: one corrupt row (a hand edit, a config format that moved on) stopped the whole gateway at start."""
    store = StateStore(tmp_path / "state.sqlite3")
    await store.record_attach("good", STDIO)
    await store.record_attach("bad", HTTP)
    with sqlite3.connect(store.path) as connection:
        connection.execute("UPDATE servers SET config = '{not json' WHERE name = 'bad'")
    connection.close()
    assert [change.name for change in await store.load()] == ["good"]
    assert "server bad cannot be read" in caplog.text


@pytest.mark.anyio
async def test_with_a_key_stored_configs_are_encrypted_and_old_plain_ones_still_read(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    await StateStore(path).record_attach("old", STDIO)  # written before configs were sealed
    keyed = StateStore(path, Fernet.generate_key())
    await keyed.record_attach("remote", HTTP)
    assert b"s3cr3t-h" not in path.read_bytes()  # the header value, sealed
    assert await keyed.load() == [StoredChange("old", STDIO), StoredChange("remote", HTTP)]
    # Another key reads the plain row and leaves the sealed one out (said in the log), rather than failing.
    assert await StateStore(path, Fernet.generate_key()).load() == [StoredChange("old", STDIO)]
