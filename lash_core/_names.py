"""One way to make a tool name unique and short: a stem, `_`, and a digest of the name it stands for.

The lash gateway (server parts and tool names that collide, exported names past a length limit) and the adapters
(names the LLM providers refuse) all shorten or tell names apart alike: the digest depends on the original name
alone, so a name stays stable while others come and go, and it grows only when the shorter form is taken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container
from typing import Final

__all__ = ["DIGEST_LENGTHS", "unique_name"]

DIGEST_LENGTHS: Final = (6, 8, 12, 16, 24, 32)
"""Hex digits of the digest suffix, tried in turn from the one asked for; 32 taken needs a sha256 collision."""


def unique_name(
    stem: str, source: str, taken: Container[str] = (), *, limit: int | None = None, digits: int = 8
) -> str:
    """`stem`, `_` and the first `digits` hex digits of sha256(`source`), more digits while that name is in
    `taken`; `stem` is cut so the whole is at most `limit` characters. Same inputs, same name.

    Raises:
        ValueError: `digits` is not one of `DIGEST_LENGTHS`, or `limit` leaves no room for a character of `stem`.
    """
    if digits not in DIGEST_LENGTHS:
        raise ValueError(f"digits must be one of {DIGEST_LENGTHS} (got {digits})")
    # surrogatepass: a name decoded from broken JSON may hold lone surrogates; it still needs a digest.
    digest = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    lengths = [n for n in DIGEST_LENGTHS[DIGEST_LENGTHS.index(digits) :] if limit is None or n + 2 <= limit]
    if not lengths:
        raise ValueError(f"a limit of {limit} leaves no room for a name and a digest of {digits} digits")
    for length in lengths:
        candidate = _joined(stem, digest[:length], limit)
        if candidate not in taken:
            return candidate
    counter = 2  # every digest length is taken: names crafted to collide; still unique and deterministic
    while (candidate := _joined(stem, f"{digest[: lengths[-1] - 1 - len(str(counter))]}_{counter}", limit)) in taken:
        counter += 1
    return candidate


def _joined(stem: str, suffix: str, limit: int | None) -> str:
    return f"{stem if limit is None else stem[: limit - len(suffix) - 1]}_{suffix}"
