"""Start and watch the test servers of `tests.servers.upstream` and `lash-gateway serve` as real processes, and find
what tests left behind.

`UpstreamProcess` runs one HTTP server (streamable HTTP or SSE) with `subprocess.Popen` and a stderr-draining
thread, so it works from sync and async tests alike; `stdio_command` / `stdio_params` describe a stdio server for an
MCP client to spawn. `GatewayProcess` runs `lash-gateway serve` the same way, for the tests and for `bench/`.
`OutputDrain` and `terminate` are the pieces every one of these processes is read and stopped with.
`leaked_processes` and `leaked_listening_sockets` read /proc (Linux only) for the session check in
`tests/conftest.py`.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from types import TracebackType
from typing import IO, Final, Literal, Protocol, Self, final

import httpx2
from mcp import StdioServerParameters

from tests.servers.upstream import LISTENING_PREFIX, MCP_PATH, SSE_PATH

PROJECT_ROOT: Final = Path(__file__).resolve().parents[2]
"""The directory holding the `tests` package; servers run with it as cwd so `-m tests.servers.upstream` resolves."""
SERVER_MODULE: Final = "tests.servers.upstream"
STARTUP_TIMEOUT: Final = 15.0
STOP_TIMEOUT: Final = 5.0
STDERR_TAIL_LINES: Final = 200

CONSOLE_SCRIPT: Final = Path(sys.executable).parent / "lash-gateway"
"""The `lash-gateway` console script of this virtualenv, as an MCP client config names it."""
GATEWAY_COMMAND: Final = (
    [sys.executable, "-m", "lash_gateway"] if find_spec("lash_gateway.__main__") else [str(CONSOLE_SCRIPT)]
)
"""How `GatewayProcess` runs the CLI: `python -m lash_gateway`, or the console script if that module is missing."""
GATEWAY_ENV_PREFIX: Final = "LASH_GATEWAY_"
BANNER_PREFIX: Final = "lash gateway listening on "
"""The first line `lash-gateway serve` prints to stdout, followed by the base URL."""
GATEWAY_STARTUP_TIMEOUT: Final = 30.0
"""Seconds for the gateway to print its banner, or for its configured servers to connect."""
GATEWAY_STOP_TIMEOUT: Final = 20.0
"""Seconds SIGTERM may take before the gateway is killed."""
GATEWAY_OUTPUT_LINES: Final = 500
"""Lines of the gateway's output kept by default (the last ones), for failure messages."""
ADMIN_TOKEN_FILE: Final = "admin-token"
"""Where `serve` writes the admin token it generated, in its state directory."""

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


def child_env(overrides: Mapping[str, str] | None = None, *, home: Path | None = None) -> dict[str, str]:
    """This process's environment without any LASH_GATEWAY_* variable, plus `overrides`.

    With `home`, the per-user state directory (the last fallback of `--state-dir`) is isolated under it.
    """
    env = {key: value for key, value in os.environ.items() if not key.startswith(GATEWAY_ENV_PREFIX)}
    if home is not None:
        env["XDG_STATE_HOME"] = str(home / "xdg-state")
    env.update(overrides or {})
    return env


class GatewayStartError(RuntimeError):
    """The gateway exited or stayed silent before printing its banner."""


@final
class GatewayProcess:
    """One running `lash-gateway [global_args] serve --port 0 [--state-dir D] [--config F] [args...]`, cwd the project
    root, in `env` (default: `child_env()`).

    The constructor blocks until the banner is printed (call it through `anyio.to_thread.run_sync` from async code);
    the gateway then accepts connections, though its servers may still be connecting (`wait_connected`). Only the
    last `keep` lines of each output stream are kept (None: all of them).

    Raises:
        GatewayStartError: from the constructor, with the process's output in the message.
    """

    def __init__(
        self,
        config: Path | None = None,
        *,
        state_dir: Path | None,
        args: Sequence[str] = (),
        global_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        keep: int | None = GATEWAY_OUTPUT_LINES,
        startup_timeout: float = GATEWAY_STARTUP_TIMEOUT,
    ) -> None:
        # Without either, the gateway would keep its token and store in the user's own state directory.
        assert state_dir is not None or env is not None, "say where the state goes: state_dir, or env"
        self.state_dir = state_dir
        self.command = [*GATEWAY_COMMAND, *global_args, "serve", "--port", "0"]
        if state_dir is not None:
            self.command += ["--state-dir", str(state_dir)]
        if config is not None:
            self.command += ["--config", str(config)]
        self.command += list(args)
        self.process = subprocess.Popen(
            self.command,
            cwd=PROJECT_ROOT,
            env=dict(env) if env is not None else child_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
        )
        assert self.process.stdout is not None and self.process.stderr is not None  # PIPE guarantees both
        self._stdout = OutputDrain(self.process.stdout, f"gateway-stdout-{self.process.pid}", keep=keep)
        self._stderr = OutputDrain(self.process.stderr, f"gateway-stderr-{self.process.pid}", keep=keep)
        banner = self._stdout.wait_for_match(startup_timeout)
        if banner is None or not banner.startswith(BANNER_PREFIX):
            self.stop()
            raise GatewayStartError(
                f"{' '.join(self.command)} printed no banner within {startup_timeout:g}s "
                f"(exit code {self.process.returncode}, first line {banner!r}); stderr:\n{self.stderr_text()}"
            )
        self.base_url = banner[len(BANNER_PREFIX) :].strip()

    @property
    def mcp_url(self) -> str:
        return f"{self.base_url}/mcp"

    @property
    def sse_url(self) -> str:
        return f"{self.base_url}/sse"

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1])

    @property
    def local_url(self) -> str:
        """The base URL on 127.0.0.1 (the banner shows the listening host, which may be 0.0.0.0)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def token(self) -> str:
        """The admin token the gateway generated in its state directory."""
        assert self.state_dir is not None, "started without --state-dir"
        return (self.state_dir / ADMIN_TOKEN_FILE).read_text(encoding="utf-8").strip()

    def wait_connected(self, servers: Sequence[str], timeout: float = GATEWAY_STARTUP_TIMEOUT) -> None:
        """Poll `/readyz` (bounded) until it answers 200 with each of `servers` connected; for sync callers.

        Raises:
            TimeoutError: not ready in time, with the last answer and the gateway's log in the message.
            GatewayStartError: the process exited meanwhile.
        """
        deadline = time.monotonic() + timeout
        with httpx2.Client(timeout=5.0) as http:
            while True:
                if not self.alive:
                    raise GatewayStartError(f"exited with {self.process.returncode}; stderr:\n{self.stderr_text()}")
                try:
                    reply = http.get(f"{self.base_url}/readyz")
                except httpx2.TransportError as exc:  # busy starting its servers: ask again
                    answer = f"{type(exc).__name__}: {exc}"
                else:
                    known = reply.json().get("servers", {}) if reply.status_code == 200 else {}
                    if reply.status_code == 200 and all(known.get(name, {}).get("connected") for name in servers):
                        return
                    answer = f"{reply.status_code} {reply.text}"
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.base_url}/readyz: {answer}; stderr:\n{self.stderr_text()}")
                time.sleep(0.05)

    def stdout_text(self) -> str:
        """What the process printed on stdout so far."""
        return self._stdout.text()

    def stderr_text(self) -> str:
        """What the process logged on stderr so far; complete once `stop()` returned."""
        return self._stderr.text()

    def stop(self, timeout: float = GATEWAY_STOP_TIMEOUT) -> int:
        """SIGTERM, up to `timeout` seconds for a clean shutdown, then SIGKILL; waits for the output to end and
        returns the exit code. Idempotent."""
        code = terminate(self.process, timeout)
        self._stdout.close(GATEWAY_STOP_TIMEOUT)
        self._stderr.close(GATEWAY_STOP_TIMEOUT)
        return code

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<GatewayProcess {getattr(self, 'base_url', '-')} pid={self.process.pid} alive={self.alive}>"


def write_config(path: Path, servers: Mapping[str, object], gateway: Mapping[str, object] | None = None) -> Path:
    """Write `{"mcpServers": servers, "gateway": gateway}` to `path` and return it."""
    document: dict[str, object] = {"mcpServers": dict(servers)}
    if gateway is not None:
        document["gateway"] = dict(gateway)
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    return path


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
        module: str = SERVER_MODULE,
    ) -> None:
        """`module` is the server to run: `tests.servers.upstream`, or another with its command line and banner
        (`tests.servers.conformance`)."""
        self.module = module
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
            self.module,
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
