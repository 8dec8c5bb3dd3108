"""The project's whole check, as the README and CI run it: `python -m tests [pytest args]`.

Lint, format and type checks first (they take seconds and fail fast), then the test suite.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHECKS = [
    ["ruff", "check", "."],
    ["ruff", "format", "--check", "."],
    ["mypy"],
]


def main() -> int:
    for check in CHECKS:
        print(f"$ {' '.join(check)}", flush=True)
        if subprocess.call([sys.executable, "-m", *check], cwd=ROOT) != 0:
            return 1
    print("$ pytest", *sys.argv[1:], flush=True)
    return subprocess.call([sys.executable, "-m", "pytest", *sys.argv[1:]], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main())
