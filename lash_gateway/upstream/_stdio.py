"""The stdio transport: an upstream's child process, newline-delimited JSON-RPC both ways, and a
lane for the gateway's own calls that skips the SDK session.

Taken over from the SDK's `stdio_client` for speed. There, every message crosses two memory streams,
a writer task, strict model validation and the session's dispatcher: about 400 µs of CPU per call,
more than the rest of a gateway hop. Here the reader parses each line once. Answers to the lane's
requests, their progress and log messages are queued for the calls they belong to (a log message only while one
call is in flight: stdio does not tie it to a request) and delivered by
those calls' own tasks, in the order they arrived: a log line a tool wrote before its result reaches
the caller before the result, and a caller that reads slowly holds up nobody else. Every other
message is validated and handed to the SDK session as before (handshake, tools/list, list_changed,
ping, requests from the server). Lines are split without rescanning what was already scanned, so a
16 MiB result costs one pass. A line longer than `MAX_MESSAGE_BYTES` drops the connection (`StdioLane.dropped`
says why): the gateway holds no more of one message than that. So does a request from the server while more than
`MAX_UNWRITTEN` messages wait for it to read its stdin: each request is answered from a task of its own, and a
server that asks without reading the answers would pile those tasks up without end.

The child is spawned and stopped with the SDK's own helpers (its own process group or job object;
close stdin, wait, then kill the tree), private names reached through `_sdk`. Once the child has exited, what is
left of its process group (the processes it started) gets SIGTERM, then SIGKILL: the SDK kills the tree only
when the child outstays its grace, and a server that exits on EOF, as it should, would leave them running.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final, get_args

import anyio
import anyio.lowlevel
import mcp_types as types
import pydantic_core
from anyio.abc import ByteSendStream, Process
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import MCPError
from mcp.client.stdio import get_default_environment
from mcp.shared.message import SessionMessage

from .._config import StdioServerConfig
from .._sdk import create_process, executable_command, pipe_writer, stop_process, terminate_process_group
from ._limits import MAX_MESSAGE_BYTES, MAX_MESSAGE_MIB
from ._relay import CallRelay

log = logging.getLogger("lash_gateway.stdio")

_WRITER_FLUSH_TIMEOUT: Final = 0.5
"""Seconds the SDK's queued messages get to reach the child before its stdin closes."""
_CANCEL_NOTICE_TIMEOUT: Final = 1.0
"""Seconds a cancelled call waits to tell the server (a child that stopped reading must not hang it)."""
_GROUP_KILL_GRACE: Final = 2.0
"""Seconds the processes a stopped server left behind get between SIGTERM and SIGKILL (the SDK's figure for its own)."""
_LOG_LEVELS: Final = frozenset(get_args(types.LoggingLevel))
MAX_UNWRITTEN: Final = 1024
"""Messages of the SDK session's (answers to the server's requests above all) that may wait for the server to read its
stdin when it sends another request; past it the connection is dropped. They wait only while the pipe and its buffer
(about 128 KiB) are full: for a server that reads, however slowly, no more than the gateway's own calls at once."""


class _Pending:
    """One request of the lane: where its messages wait (`relay`) and its outcome."""

    __slots__ = ("relay", "done", "result", "error")

    def __init__(self, relay: CallRelay) -> None:
        self.relay = relay
        self.done = False
        self.result: dict[str, Any] | None = None
        self.error: MCPError | None = None

    def settle(self, result: dict[str, Any] | None, error: MCPError | None) -> None:
        self.result, self.error, self.done = result, error, True
        self.relay.wake()


class StdioLane:
    """Requests written straight to the child and answered straight from its stdout. Ids are strings
    (`lash-N`), so they never collide with the SDK session's integer ids on the same pipe.

    The reader only queues: progress and log messages are delivered by the task that made the call,
    before its result, so a client that reads slowly holds up its own call and nobody else's."""

    def __init__(self, stdin: ByteSendStream) -> None:
        self._stdin = stdin
        self._pipe = pipe_writer(stdin)
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._closed = False
        self.dropped: str | None = None
        """Why the gateway dropped the connection itself (the server broke a limit); None if it did not."""

    async def request(self, method: str, params: Mapping[str, Any], relay: CallRelay) -> dict[str, Any]:
        """Send one request and wait for its answer; its progress and log messages go through `relay`, delivered
        by this task before the answer. Cancelling the caller tells the server. The server's log messages reach
        it while it is the only request in flight (MCP ties them to the connection, not to a request).

        Raises:
            mcp.MCPError: an error response, a malformed answer, or `CONNECTION_CLOSED`.
        """
        if self._closed:
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed")
        request_id = f"lash-{next(self._ids)}"
        body = dict(params)
        if relay.on_progress is not None:
            body["_meta"] = {**body.get("_meta", {}), "progressToken": request_id}
        pending = self._pending[request_id] = _Pending(relay)
        try:
            await self.write({"jsonrpc": "2.0", "id": request_id, "method": method, "params": body})
            while True:
                await relay.wait_for_more()
                if pending.done and not relay.waiting:
                    break  # the common case: the answer, nothing before it
                await relay.deliver()  # no checkpoint between its last look at the queue and the check below
                if pending.done:
                    break
        except anyio.get_cancelled_exc_class():
            if not pending.done:
                await self._notify_cancelled(request_id)
            raise
        finally:
            del self._pending[request_id]
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    async def write(self, message: Mapping[str, Any]) -> None:
        await self.write_line(pydantic_core.to_json(message) + b"\n")

    async def write_line(self, line: bytes) -> None:
        # One write per message: the pipe's buffer never interleaves two of them.
        pipe = self._pipe
        try:
            if pipe is None:
                await self._stdin.send(line)
                return
            await anyio.lowlevel.checkpoint_if_cancelled()  # a call past its deadline sends nothing (no loop turn)
            if pipe.is_closing():  # closed by us (the stop) or by the child
                raise BrokenPipeError
            pipe.write(line)
            await pipe.drain()  # returns at once, without a loop turn, unless the child stopped reading
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError, RuntimeError):
            # RuntimeError: uvloop's write() to a pipe that closed under it
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None

    async def _notify_cancelled(self, request_id: str) -> None:
        notice = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
        with anyio.CancelScope(shield=True), anyio.move_on_after(_CANCEL_NOTICE_TIMEOUT):
            try:
                await self.write(notice)
            except MCPError:
                pass  # the connection is gone, and the call with it

    def take(self, message: dict[str, Any]) -> bool:
        """Queue `message` for the request it concerns: an answer, progress for it, or a log message while it
        is the only request in flight and takes logs. False: it is the SDK session's."""
        method = message.get("method")
        params = message.get("params")
        if method is None:
            request_id = message.get("id")
            pending = self._pending.get(request_id) if isinstance(request_id, str) else None
            if pending is None:
                return False
            pending.settle(*_outcome(message))
            return True
        if not isinstance(params, dict):
            return False
        if method == "notifications/progress":
            token = params.get("progressToken")
            pending = self._pending.get(token) if isinstance(token, str) else None
            if pending is None:
                return False
            progress = params.get("progress")
            if isinstance(progress, int | float):
                pending.relay.progress(progress, params.get("total"), params.get("message"))
            return True
        if method == "notifications/message":
            # A log line belongs to a call only when it is the one in flight: stdio does not say which.
            only = next(iter(self._pending.values())) if len(self._pending) == 1 else None
            level, logger = params.get("level"), params.get("logger")
            if (
                only is None
                or only.relay.on_log is None
                or not isinstance(level, str)
                or level not in _LOG_LEVELS
                or not isinstance(logger, str | None)
            ):
                return False  # the SDK session's: it logs what is malformed, and the gateway what has no call
            only.relay.log(level, params.get("data"), logger)
            return True
        return False

    def close(self) -> None:
        """Fail every request still waiting: the connection is gone."""
        self._closed = True
        for pending in self._pending.values():
            if not pending.done:
                pending.settle(None, MCPError(types.CONNECTION_CLOSED, "Connection closed"))


def _outcome(message: Mapping[str, Any]) -> tuple[dict[str, Any] | None, MCPError | None]:
    result, error = message.get("result"), message.get("error")
    if isinstance(result, dict):
        return result, None
    if isinstance(error, dict) and isinstance(error.get("code"), int) and isinstance(error.get("message"), str):
        return None, MCPError(error["code"], error["message"], error.get("data"))
    return None, MCPError(types.INTERNAL_ERROR, "malformed response: no result object and no valid error")


@asynccontextmanager
async def open_stdio(
    config: StdioServerConfig,
    server: str,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage], StdioLane]
]:
    """Spawn the server (named `server` in the log) and yield the SDK session's stream pair and the lane; leaving
    the context stops the child and every process left in its group, and fails calls still waiting.

    Raises:
        OSError: the command could not be started.
    """
    command = await executable_command(config.command)
    env = {key: value.get_secret_value() for key, value in config.env.items()}
    process = await create_process(
        command, list(config.args), env=get_default_environment() | env, errlog=sys.stderr, cwd=config.cwd
    )
    # No awaits from here until the task group is entered: a cancellation in the gap would leak the child.
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    lane = StdioLane(stdin)
    to_session, read = anyio.create_memory_object_stream[SessionMessage | Exception](0)
    write, from_session = anyio.create_memory_object_stream[SessionMessage](0)
    writer_done = anyio.Event()

    async def deliver(line: bytes) -> None:
        try:
            message = pydantic_core.from_json(line)
        except ValueError as exc:
            await to_session.send(exc)
            return
        if isinstance(message, dict) and lane.take(message):
            return
        if isinstance(message, dict) and "method" in message and "id" in message:  # a request: its answer will wait
            waiting = write.statistics().tasks_waiting_send
            if waiting >= MAX_UNWRITTEN:
                lane.dropped = f"stopped reading its input ({waiting} messages wait to be written to it)"
                return
        try:
            parsed = types.jsonrpc_message_adapter.validate_python(message, by_name=False)
        except ValueError as exc:
            await to_session.send(exc)
            return
        await to_session.send(SessionMessage(parsed))

    async def read_stdout() -> None:
        buffer = bytearray()
        session_open = True
        try:
            async for chunk in stdout:
                scan_from = len(buffer)
                buffer += chunk
                while (end := buffer.find(b"\n", scan_from)) != -1:
                    if end > MAX_MESSAGE_BYTES:
                        break
                    line = bytes(buffer[:end])
                    del buffer[: end + 1]
                    scan_from = 0
                    if session_open and line.strip():
                        try:
                            await deliver(line)
                        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                            session_open = False  # the session is gone: keep draining so the child can exit
                        if lane.dropped is not None:
                            return  # as below
                if len(buffer) > MAX_MESSAGE_BYTES:
                    # Ending the read ends the session: the supervisor reconnects, as after a crash.
                    lane.dropped = f"sent a message over {MAX_MESSAGE_MIB} MiB without a newline"
                    return
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass  # shutdown closed the pipe under the read
        finally:
            lane.close()
            await to_session.aclose()

    async def write_session_messages() -> None:
        try:
            async with from_session:
                async for message in from_session:
                    line = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await lane.write_line(line.encode() + b"\n")
        except MCPError:
            await to_session.aclose()  # the child stopped reading: end the session rather than hang a request
        finally:
            writer_done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(write_session_messages)
        try:
            yield read, write, lane
        finally:
            # Stopping must finish even when the caller is cancelled, or the child would leak; every wait is bounded.
            with anyio.CancelScope(shield=True):
                lane.close()
                write.close()
                with anyio.move_on_after(_WRITER_FLUSH_TIMEOUT):
                    await writer_done.wait()
                await stop_process(process)
                await _stop_process_group(process, server)
                for stream in (read, write, to_session, from_session):
                    await stream.aclose()
            tg.cancel_scope.cancel()


async def _stop_process_group(process: object, server: str) -> None:
    """Once the child has exited (or been killed), SIGTERM what is left of its process group, and SIGKILL what is left
    of that after `_GROUP_KILL_GRACE`; return once the group is gone. A connection torn down after a crash comes here
    too."""
    if sys.platform == "win32" or not isinstance(process, Process):
        return  # on Windows, `stop_process` closed the child's job object, which ends every process in it
    pgid = process.pid  # `create_process` starts the child in a session of its own: its pid names its group
    if pgid == os.getpgrp():
        return  # never the gateway's own group (only a change to how the child is started could get here)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return  # the group went with the child: the usual case
    except PermissionError:
        pass  # some member is not ours to signal, or a zombie: the SDK's helper waits and escalates all the same
    if not _runs_in_group(pgid):
        return  # zombies only: nothing to stop (and waiting for them to go would take the whole grace)
    log.info(
        "upstream %s: processes its server started outlived it; terminating them (process group %d)",
        server,
        pgid,
        extra={"server": server, "pgid": pgid},
    )
    await terminate_process_group(process, _GROUP_KILL_GRACE)


def _runs_in_group(pgid: int) -> bool:
    """Whether a process of group `pgid` still runs, from `/proc` (True where there is none). A member that exited
    and was handed to the gateway (the gateway is PID 1 of a container, or a subreaper) is reaped here: nothing
    else waits for it, and it would count as a member for as long as the gateway runs."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return True
    runs = False
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as stat:
                fields = stat.read().rpartition(b")")[2].split()  # after the command name, which may hold anything
        except OSError:
            continue  # gone since the listing
        state, parent, group = fields[0], int(fields[1]), int(fields[2])
        if group != pgid:
            continue
        if state != b"Z":
            runs = True
        elif parent == os.getpid() and pid != pgid:  # the leader is the event loop's to wait for
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
    return runs
