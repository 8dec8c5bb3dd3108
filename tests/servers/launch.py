"""Start and watch the test servers of `tests.servers.upstream` as real processes, and find what tests left behind.

`UpstreamProcess` runs one HTTP server (streamable HTTP or SSE) with `subprocess.Popen` and a stderr-draining
thread, so it works from sync and async tests alike; `stdio_command` / `stdio_params` describe a stdio server for an
MCP client to spawn. `OutputDrain` and `terminate` are the pieces every test-run process (the upstream server, the
gateway) is read and stopped with. `leaked_processes` and `leaked_listening_sockets` read /proc (Linux only) for the
session check in `tests/conftest.py`.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal, Protocol, Self, final

from mcp import StdioServerParameters

from tests.servers.upstream import LISTENING_PREFIX, MCP_PATH, SSE_PATH

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
"""The directory holding the `tests` package; servers run with it as cwd so `-m tests.servers.upstream` resolves."""
SERVER_MODULE: Final = "tests.servers.upstream"
STARTUP_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 5.0
STDERR_TAIL_LINES: Final = 200

HttpTransport = Literal["streamable_http", "sse"]
_ENDPOINTS: Final[Mapping[HttpTransport, str]] = {"streamable_http": MCP_PATH, "sse": SSE_PATH}


def stdio_command(*extra_args: str) -> tuple[str, list[str]]:
    """``(command, args)`` that run the upstream server over stdio; run it with cwd=`PROJECT_ROOT`."""
    return sys.executable, ["-m", SERVER_MODULE, "--transport", "stdio", *extra_args]


def stdio_params(*extra_args: str, env: Mapping[str, str] | None = None) -> StdioServerParameters:
    """`StdioServerParameters` for the upstream server over stdio, cwd set to `PROJECT_ROOT`."""
    command, args = stdio_command(*extra_args)
    return StdioServerParameters(
        command=command, args=args, cwd=str(PROJECT_ROOT), env=dict(env) if env is not None else None
    )


class UpstreamStartError(RuntimeError):
    """The server process exited or stayed silent before reporting its address."""


class OutputDrain:
    """Reads a child's output stream to EOF in a daemon thread, keeping its lines and noting the first `match` line.

    `keep` bounds how many of the last lines are kept (None: all of them); `match` picks the line `wait_for_match`
    returns (by default the first line of all).
    """

    def __init__(
        self,
        stream: IO[str],
        name: str,
        *,
        keep: int | None = None,
        match: Callable[[str], bool] = lambda line: True,
    ) -> None:
        self._stream = stream
        self._match = match
        self._lines: collections.deque[str] = collections.deque(maxlen=keep)
        self._lock = threading.Lock()
        self._matched = threading.Event()  # set on the first matching line, or on EOF
        self.matched: str | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self._stream:
                line = raw.rstrip("\n")
                with self._lock:
                    self._lines.append(line)
                if self.matched is None and self._match(line):
                    self.matched = line
                    self._matched.set()
        finally:
            self._matched.set()

    def wait_for_match(self, timeout: float) -> str | None:
        """The first matching line, or None if the stream ended or `timeout` passed first."""
        self._matched.wait(timeout)
        return self.matched

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def text(self) -> str:
        return "\n".join(self.lines())

    def close(self, timeout: float = STOP_TIMEOUT) -> None:
        """Wait (up to `timeout` seconds) for EOF, which comes once the process has exited, and close the pipe."""
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self._stream.close()


def terminate(process: subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> int:
    """SIGTERM `process`, give it `timeout` seconds to exit, then SIGKILL; reaps it and returns its exit code.

    Idempotent: for a process that has already exited it only returns the exit code.
    """
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()


@final
class UpstreamProcess:
    """One running `tests.servers.upstream` HTTP server.

    The constructor returns once the server accepts connections. `restart()` starts a new process on the same port
    (the first process's OS-chosen port when started with port 0), so clients can test reconnection.

    Raises:
        UpstreamStartError: from the constructor and `restart()`, with the server's stderr in the message.
    """

    def __init__(
        self,
        transport: HttpTransport = "streamable_http",
        extra_args: Sequence[str] = (),
        *,
        port: int = 0,
        startup_timeout: float = STARTUP_TIMEOUT,
    ) -> None:
        self.transport: HttpTransport = transport
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.port = port
        self.base_url = ""
        self._start()

    @property
    def url(self) -> str:
        """The MCP endpoint: ``<base_url>/mcp`` or ``<base_url>/sse``."""
        return self.base_url + _ENDPOINTS[self.transport]

    @property
    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--transport",
            self.transport,
            "--port",
            str(self.port),
            *self.extra_args,
        ]

    def _start(self) -> None:
        self.process = subprocess.Popen(
            self.command,
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert self.process.stderr is not None  # Popen(stderr=PIPE) guarantees it
        self._stderr = OutputDrain(
            self.process.stderr,
            f"upstream-stderr-{self.process.pid}",
            keep=STDERR_TAIL_LINES,
            match=lambda line: line.startswith(LISTENING_PREFIX),
        )
        listening = self._stderr.wait_for_match(self.startup_timeout)
        if listening is None:
            self.kill()
            raise UpstreamStartError(
                f"upstream server {' '.join(self.command[2:])} did not report LISTENING within "
                f"{self.startup_timeout:g}s (exit code {self.process.returncode}); stderr:\n{self.stderr_tail()}"
            )
        self.base_url = listening[len(LISTENING_PREFIX) :].strip()
        self.port = int(self.base_url.rsplit(":", 1)[1])

    def stderr_tail(self) -> str:
        """The last lines the server wrote to stderr (for failure messages)."""
        return self._stderr.text()

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (no graceful shutdown) and reap it. Idempotent."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._stderr.close()

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM the server, give it `timeout` seconds to shut down, then SIGKILL. Idempotent."""
        terminate(self.process, timeout)
        self.kill()

    def restart(self, *, graceful: bool = False) -> Self:
        """Kill (or, with `graceful`, stop) the server and start a fresh process on the same port.

        The new process has fresh state: default tools, empty cancel log.
        """
        if graceful:
            self.stop()
        else:
            self.kill()
        self._start()
        return self

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<UpstreamProcess {self.transport} {self.url or '-'} pid={self.process.pid} alive={self.alive}>"


class UpstreamFactory(Protocol):
    """What the `upstream` fixture yields: start a server, stopped at teardown."""

    def __call__(
        self, *extra_args: str, transport: HttpTransport = "streamable_http", port: int = 0
    ) -> UpstreamProcess: ...


# --- leak detection (/proc) ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    pid: int
    ppid: int
    state: str
    cmdline: str

    def __str__(self) -> str:
        zombie = " (zombie: exited, never reaped)" if self.state == "Z" else ""
        return f"pid {self.pid} (parent {self.ppid}){zombie}: {self.cmdline}"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # the process is gone, or belongs to someone else
        return None


def _process_info(pid: int) -> ProcessInfo | None:
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    comm_end = stat.rindex(b")")
    state, ppid = stat[comm_end + 2 :].split()[:2]
    raw_cmdline = _read(f"/proc/{pid}/cmdline") or b""
    cmdline = raw_cmdline.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    comm = stat[stat.index(b"(") + 1 : comm_end].decode(errors="replace")
    return ProcessInfo(pid=pid, ppid=int(ppid), state=state.decode(), cmdline=cmdline or f"[{comm}]")


def _all_processes() -> list[ProcessInfo]:
    infos = (_process_info(int(name)) for name in os.listdir("/proc") if name.isdigit())
    return [info for info in infos if info is not None]


def leaked_processes(root_pid: int, env_marker: str | None = None) -> list[ProcessInfo]:
    """Live descendants of `root_pid`, plus processes whose environment holds `env_marker` (``NAME=value``).

    The marker finds orphans that were re-parented away from `root_pid` after their parent died.
    """
    processes = _all_processes()
    children: dict[int, list[ProcessInfo]] = collections.defaultdict(list)
    for info in processes:
        children[info.ppid].append(info)
    found: dict[int, ProcessInfo] = {}
    stack = [root_pid]
    while stack:
        for child in children.get(stack.pop(), []):
            if child.pid not in found:
                found[child.pid] = child
                stack.append(child.pid)
    if env_marker is not None:
        needle = env_marker.encode()
        for info in processes:
            if info.pid != root_pid and info.pid not in found:
                environ = _read(f"/proc/{info.pid}/environ")
                if environ is not None and needle in environ.split(b"\0"):
                    found[info.pid] = info
    return sorted(found.values(), key=lambda info: info.pid)


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    return inodes


def _decode_address(hex_address: str) -> str:
    host_hex, port_hex = hex_address.split(":")
    port = int(port_hex, 16)
    if len(host_hex) == 8:
        host = ".".join(str(b) for b in reversed(bytes.fromhex(host_hex)))
    else:
        host = f"[{host_hex}]"
    return f"{host}:{port}"


def leaked_listening_sockets(pid: int) -> list[str]:
    """``host:port`` of the TCP sockets process `pid` is listening on."""
    inodes = _socket_inodes(pid)
    found = []
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        raw = _read(table)
        for line in (raw or b"").decode().splitlines()[1:]:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and fields[9] in inodes:  # 0A = TCP_LISTEN
                found.append(_decode_address(fields[1]))
    return found


def wait_until_clean(
    root_pid: int, env_marker: str | None = None, grace: float = 2.0
) -> tuple[list[ProcessInfo], list[str]]:
    """Leaked processes and listening sockets, re-checked for up to `grace` seconds so exiting ones can finish."""
    deadline = time.monotonic() + grace
    while True:
        processes = leaked_processes(root_pid, env_marker)
        sockets = leaked_listening_sockets(root_pid)
        if (not processes and not sockets) or time.monotonic() >= deadline:
            return processes, sockets
        time.sleep(0.05)


def describe_leaks(processes: Iterable[ProcessInfo], sockets: Iterable[str]) -> str:
    lines = [f"  process {info}" for info in processes]
    lines += [f"  listening socket {address}" for address in sockets]
    return "\n".join(lines)
