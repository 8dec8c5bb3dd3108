"""Tool names as LLM providers accept them, and the way back.

Anthropic (Messages API `tools[].name`) and OpenAI (Chat Completions `function.name`, Responses `name`) both
document the same rule: `^[a-zA-Z0-9_-]{1,64}$`. A lash name that fits is passed through unchanged. Any other
name becomes `<sanitised prefix>_<8 hex of sha256(name)>`: characters outside the set folded to `_`, the prefix
cut so the whole stays within 64. A name's model form depends on that name alone, so it stays stable while other
tools come and go; only a clash (a tool literally named like another's mapped form) lengthens the digest, decided
in sorted order so the outcome does not depend on surface order. Every map is checked to be one-to-one.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import final

from lash_core import Session, unique_name

__all__ = ["MAX_NAME_LENGTH", "NameMap", "fits", "map_names", "session_names"]

MAX_NAME_LENGTH = 64
"""The longest tool name Anthropic and OpenAI accept."""

_FITS = re.compile(r"[A-Za-z0-9_-]{1,64}")
_DISALLOWED = re.compile(r"[^A-Za-z0-9_-]")


@final
@dataclass(frozen=True, slots=True)
class NameMap:
    """A one-to-one map between a session's lash tool names and the names a model sees."""

    to_model: Mapping[str, str]
    """lash name -> model name, for every tool of the surface."""
    to_lash: Mapping[str, str]
    """model name -> lash name; the exact inverse of `to_model`."""

    def model_name(self, lash_name: str) -> str:
        """The name the model sees for `lash_name`.

        Raises:
            KeyError: `lash_name` is not in the surface this map was built for.
        """
        return self.to_model[lash_name]

    def lash_name(self, model_name: str) -> str | None:
        """The lash tool a model's call names, or None for a name the model was never given."""
        return self.to_lash.get(model_name)


def fits(name: str) -> bool:
    """Whether providers accept `name` as it is."""
    return _FITS.fullmatch(name) is not None


def map_names(names: Iterable[str]) -> NameMap:
    """The map for a surface with these (distinct) lash names. Results are cached per tuple of names.

    Raises:
        ValueError: a name occurs twice (a lash session never offers that).
    """
    return _map_names(tuple(names))


def session_names(session: Session) -> NameMap:
    """The map for `session`'s current tool surface.

    Raises:
        lash_core.ToolConflictError: two providers of the session offer one name.
    """
    return _map_names(tuple(definition.name for definition in session.tools()))


@functools.lru_cache(maxsize=256)
def _map_names(names: tuple[str, ...]) -> NameMap:
    if len(set(names)) != len(names):
        raise ValueError(f"tool names must be distinct: {sorted(n for n in set(names) if names.count(n) > 1)}")
    to_model = {name: name for name in names if fits(name)}
    taken = set(to_model)
    for name in sorted(n for n in names if n not in to_model):
        mapped = _shortened(name, taken)
        to_model[name] = mapped
        taken.add(mapped)
    to_lash = {model: lash for lash, model in to_model.items()}
    if len(to_lash) != len(to_model):  # an invariant of the loop above; checked because a clash misroutes calls
        raise RuntimeError(f"bug in adapters name mapping: not one-to-one for {names!r}")
    ordered = {name: to_model[name] for name in names}
    return NameMap(MappingProxyType(ordered), MappingProxyType(to_lash))


def _shortened(name: str, taken: set[str]) -> str:
    return unique_name(_DISALLOWED.sub("_", name), name, taken, limit=MAX_NAME_LENGTH)
