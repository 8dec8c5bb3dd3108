"""The gateway's state directory: where it keeps its store, its admin token and the address the
CLI finds it at. Everything here is written owner-only (0600 files in a 0700 directory): the store
holds server configs with their secrets.

Resolution order: `--state-dir`, then `LASH_GATEWAY_STATE_DIR`, then the per-user state directory
of the platform (`~/.local/state/lash-gateway` on Linux, `~/Library/Application Support/lash-gateway`
on macOS, `%LOCALAPPDATA%\\lash-gateway` on Windows).
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
from pathlib import Path

import platformdirs

from .._errors import StateError

log = logging.getLogger("lash_gateway.state")

STATE_DIR_ENV = "LASH_GATEWAY_STATE_DIR"
ADMIN_TOKEN_ENV = "LASH_GATEWAY_ADMIN_TOKEN"
ADMIN_URL_ENV = "LASH_GATEWAY_ADMIN_URL"
TOKEN_FILE = "admin-token"
URL_FILE = "admin-url"
STORE_FILE = "state.sqlite3"
REQUEST_STATE_KEY_FILE = "request-state.key"
OAUTH_KEY_FILE = "oauth.key"
OAUTH_KEY_ENV = "LASH_GATEWAY_OAUTH_KEY"


def state_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The state directory (not created)."""
    if explicit:
        return Path(explicit).expanduser()
    if env := os.environ.get(STATE_DIR_ENV):
        return Path(env).expanduser()
    return Path(platformdirs.user_state_dir("lash-gateway", appauthor=False))


def ensure_state_dir(path: Path) -> Path:
    """Create the directory owner-only if missing; tighten it if it exists."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, never briefly world-readable."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    os.chmod(path, 0o600)


def ensure_private(path: Path) -> None:
    """Make an existing file owner-only (0600) if others may read it, and say so in the log.

    Raises:
        StateError: the mode cannot be changed (the file belongs to another user).
    """
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            os.chmod(path, 0o600)
            log.warning(
                "%s was readable by other users (mode %03o); it is owner-only (0600) now",
                path,
                mode,
                extra={"path": str(path), "mode": f"{mode:03o}"},
            )
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateError(
            f"{path} is readable by other users and its mode cannot be changed ({exc.strerror}); it holds secrets: "
            f"make it owner-only (chmod 600 {path}) as its owner, or remove it"
        ) from None


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except FileNotFoundError:
        return None


GENERATED_TOKEN_PREFIX = "lgw_"


def admin_token(directory: Path, configured: str | None) -> tuple[str, Path | None]:
    """The admin token and, when it was generated or read from the state directory, its file.

    A configured token (flag, env, config file) wins and is never written down. Otherwise the
    token stored in the state directory is used, or a new one is generated and stored there.
    """
    if configured:
        return configured, None
    path = directory / TOKEN_FILE
    ensure_private(path)
    token = read_text(path)
    if token is None:
        # The prefix names the token in secret scanners, and a token never starts with "-", which
        # argparse would take for an option (`--admin-token -x...`).
        token = GENERATED_TOKEN_PREFIX + secrets.token_urlsafe(32)
        write_private(path, token + "\n")
    return token, path


def request_state_key(directory: Path) -> bytes:
    """The key that signs the `requestState` of input-required rounds (see `export._bridge`), made on first use.
    Every gateway process of one state directory shares it, so a state one of them handed out is checked by any."""
    path = directory / REQUEST_STATE_KEY_FILE
    ensure_private(path)
    stored = read_text(path)
    if stored is not None:
        try:
            return bytes.fromhex(stored)
        except ValueError:
            log.warning("%s is not a hex key; a new one replaces it", path, extra={"path": str(path)})
    key = secrets.token_bytes(32)
    write_private(path, key.hex() + "\n")
    return key


def oauth_key(directory: Path) -> bytes:
    """The key that encrypts OAuth tokens in the store (a Fernet key): `LASH_GATEWAY_OAUTH_KEY` for deployments that
    keep secrets out of the state directory, else `oauth.key` there, made on first use."""
    if configured := os.environ.get(OAUTH_KEY_ENV):
        return configured.strip().encode()
    path = directory / OAUTH_KEY_FILE
    ensure_private(path)
    stored = read_text(path)
    if stored is not None:
        return stored.encode()
    key = base64.urlsafe_b64encode(secrets.token_bytes(32))
    write_private(path, key.decode() + "\n")
    return key
