"""Which of the things each server lists (tool names, URIs, templates, prompts) came in its first listing, when it
connected, and which it added later.

Naming and routing decide the first by each server's place (`_naming`, `_merged`), so which server happens to
connect first changes nothing. What a server adds later takes nothing another holds: an upstream must not take
another's tool name, reads or prompts at runtime by listing them too.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Generic, TypeVar

from ._upstream import Upstream

__all__ = ["Arrivals"]

K = TypeVar("K", bound=Hashable)


class Arrivals(Generic[K]):
    """The first listings of the attached upstreams, kept across rebuilds (one per kind of listing)."""

    def __init__(self, has_listed: Callable[[Upstream], bool]) -> None:
        """`has_listed`: whether an upstream's listing of this kind came in once (its first is then taken)."""
        self._has_listed = has_listed
        self._first: set[tuple[str, K]] = set()
        self._taken: set[Upstream] = set()

    def later(self, listed: Mapping[Upstream, Iterable[K]]) -> set[tuple[str, K]]:
        """Of what the attached upstreams list now (`listed`), the `(server, key)` pairs a server added after its
        first listing. An upstream not seen listing before (just connected, or a replacement) lists firsts."""
        now = {upstream: {(upstream.name, key) for key in keys} for upstream, keys in listed.items()}
        for upstream, pairs in now.items():
            if upstream not in self._taken:
                self._first = {pair for pair in self._first if pair[0] != upstream.name} | pairs
        current = set().union(*now.values()) if now else set()
        self._first &= current
        self._taken = {upstream for upstream in listed if self._has_listed(upstream)}
        return current - self._first
