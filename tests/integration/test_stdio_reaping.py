"""Stopping a stdio server stops the processes it started too, and a stop that has begun finishes even when its
caller is cancelled.

Regressions:
- A server that exits once its stdin closes, as a well-behaved one does, left its own children running after a
  detach, a shutdown or a crash: the gateway signalled the child's process group only when the child itself
  outstayed its grace. The servers here start as `bash -c "<grandchild> & exec <server>"`, the grandchild named by a
  marker unique to the test (it inherits no environment marker, so the session's leak check would miss it).
- A detach or a replace cancelled while its calls were being ended left the server connected and its child
  running, with nothing in the pool to reach them by.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import uuid
from collections.abc import Iterator
from typing import Final, Literal

import anyio
import pytest

from lash_core import ToolResult
from lash_gateway import McpPluginFactory, McpServerConfig, UpstreamUnavailable
from tests.integration._helpers import (
    ATTACH_TIMEOUT,
    call_in_background,
    session_of,
    stdio_server_pids,
    wait_until,
)
from tests.servers.launch import PROJECT_ROOT, stdio_command

pytestmark = [pytest.mark.anyio, pytest.mark.usefixtures("collect_garbage")]

WAIT: Final = 10.0
"""Bound on a detach or a shutdown (the calls' grace and the child's stop are a few seconds at worst)."""


def marked_pids(marker: str) -> set[int]:
    """Pids of the live processes whose argv[0] is `marker` (an exited one has no command line left)."""
    found = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/cmdline", "rb") as cmdline:
                argv0 = cmdline.read().split(b"\0", 1)[0]
        except OSError:  # gone since the listing
            continue
        if argv0 == marker.encode():
            found.add(int(name))
    return found


@pytest.fixture
def marker() -> Iterator[str]:
    """A name for the grandchildren a test starts; any still running at teardown (the test failed) are killed."""
    name = f"lash-grandchild-{uuid.uuid4().hex[:12]}"
    yield name
    for pid in marked_pids(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def with_grandchild(marker: str) -> McpServerConfig:
    """The test server, started by a shell that first starts a long `sleep` named `marker` in the background."""
    command, args = stdio_command()
    server = shlex.join([command, *args])
    script = f"exec -a {marker} sleep 300 </dev/null >/dev/null 2>&1 & exec {server}"
    return McpServerConfig.stdio("/bin/bash", ["-c", script], cwd=str(PROJECT_ROOT), call_timeout=30)


async def attach_with_grandchild(factory: McpPluginFactory, name: str, marker: str) -> int:
    """Attach the server as `name`; return its grandchild's pid, checked to be in the server's own process group."""
    before = stdio_server_pids()
    with anyio.fail_after(ATTACH_TIMEOUT):
        await factory.attach_server(name, with_grandchild(marker))
    await wait_until(lambda: len(marked_pids(marker)) == 1)  # the shell may still be starting it
    (grandchild,) = marked_pids(marker)
    (child,) = stdio_server_pids() - before
    # The premise: the child leads a group of its own, which stopping it may signal without touching the gateway.
    assert os.getpgid(child) == child != os.getpgrp()
    assert os.getpgid(grandchild) == child
    return grandchild


@pytest.mark.parametrize("stop", ["detach", "shutdown"])
async def test_stopping_a_stdio_server_stops_the_processes_it_started(
    stop: Literal["detach", "shutdown"], marker: str
) -> None:
    with anyio.fail_after(ATTACH_TIMEOUT + WAIT):
        async with McpPluginFactory() as factory:
            await attach_with_grandchild(factory, "gc", marker)
            if stop == "detach":
                await factory.detach_server("gc")
                assert marked_pids(marker) == set()  # before detach returned
    assert marked_pids(marker) == set()  # before the factory's exit returned


async def test_a_crashed_stdio_servers_processes_are_stopped_with_its_connection(marker: str) -> None:
    async with McpPluginFactory() as factory:
        grandchild = await attach_with_grandchild(factory, "gc", marker)
        with anyio.fail_after(WAIT), pytest.raises(UpstreamUnavailable):
            await factory.pool.call_tool("mcp__gc__crash", {})
        await wait_until(lambda: grandchild not in marked_pids(marker), timeout=WAIT)
    # The pool connected again meanwhile (a new shell, a new grandchild); shutting it down stopped those.
    assert marked_pids(marker) == set()


@pytest.mark.parametrize("change", ["detach", "replace"])
async def test_a_cancelled_detach_or_replace_still_stops_the_old_server_and_reaps_its_child(
    change: Literal["detach", "replace"],
) -> None:
    command, args = stdio_command()
    config = McpServerConfig.stdio(command, args, cwd=str(PROJECT_ROOT), call_timeout=30)
    unrelated = stdio_server_pids()
    async with McpPluginFactory() as factory:
        pool = factory.pool
        with anyio.fail_after(ATTACH_TIMEOUT):
            await pool.attach("up", config)
        (old,) = stdio_server_pids() - unrelated
        session = session_of(factory)
        results: list[ToolResult] = []
        with anyio.fail_after(WAIT):
            async with anyio.create_task_group() as tg:
                tg.start_soon(call_in_background, session, "mcp__up__wait_for_release", {"key": "k"}, results)
                await wait_until(lambda: pool.status("up").calls_in_flight == 1)
                with anyio.CancelScope() as caller:
                    if change == "detach":
                        caller.cancel()  # the caller gave up at once (say, a timeout around an admin request)
                        await pool.detach("up")
                    else:

                        def give_up() -> bool:
                            # Asked right before the swap: the caller gives up while the old server is being stopped.
                            caller.cancel()
                            return True

                        await pool.attach("up", config, wanted=give_up)
                assert caller.cancelled_caught  # the cancellation reached the caller, once the stop was done
                # Gone before the cancelled call returned: no child, not even a zombie.
                assert old not in stdio_server_pids()
        (result,) = results
        assert result.code == "server_detached", result
        if change == "detach":
            assert pool.server_statuses() == []
        else:
            (status,) = pool.server_statuses()
            assert status.connected
            (new,) = stdio_server_pids() - unrelated
            assert new != old


SUBREAPER: Final = """
import ctypes, logging, os, shlex, sys, anyio
from lash_gateway import McpPluginFactory, McpServerConfig
from tests.integration._helpers import wait_until

def zombies() -> list[int]:
    found = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{name}/stat", "rb").read().rpartition(b")")[2].split()
        except OSError:
            continue
        if fields[0] == b"Z" and int(fields[1]) == os.getpid():
            found.append(int(name))
    return found

async def main() -> None:
    # As the gateway is as PID 1 of a container: the server's orphans become its children.
    assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    logging.basicConfig(level=logging.INFO, stream=sys.stdout)
    script = f"(true &); exec {shlex.join(sys.argv[1:])}"  # an orphan that exits at once
    async with McpPluginFactory() as factory:
        with anyio.fail_after(30):
            await factory.attach_server("z", McpServerConfig.stdio("/bin/bash", ["-c", script], cwd=os.getcwd()))
            await wait_until(lambda: len(zombies()) == 1)
            await factory.detach_server("z")
    print("zombies left:", zombies())

anyio.run(main)
"""
"""A gateway that the processes a server leaves behind are handed to (PID 1 of a container, a subreaper)."""


async def test_a_server_whose_leftovers_exited_stops_at_once_and_they_are_reaped() -> None:
    """Regression: an orphan that had exited (a zombie of the gateway's, as PID 1) counted as a process still
    running: every stop waited out the 2 s grace, saying processes outlived the server, and the zombies stayed."""
    command, args = stdio_command()
    with anyio.fail_after(ATTACH_TIMEOUT + WAIT):
        done = await anyio.run_process([command, "-c", SUBREAPER, command, *args], cwd=PROJECT_ROOT, check=False)
    output = done.stdout.decode()
    assert done.returncode == 0, output + done.stderr.decode()
    assert "zombies left: []" in output
    assert "outlived" not in output
