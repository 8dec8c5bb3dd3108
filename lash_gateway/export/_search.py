"""Finding tools by what they do: the search mode of a virtual server, for catalogs too large to list.

A client in search mode sees two tools instead of hundreds: `search_tools` (a query in, the best matches out, each
with its description and input schema) and `call_tool` (a name and its arguments). Ranking is BM25 over each tool's
words, weighted by where they come from (its name counts most, then its argument names, then its description), with
names split as people read them (`get_file_contents`, `createIssue`, `github__search_repos`) and words reduced to
their stem (Snowball's English stemmer), so "files" finds `list_file` and "repositories" finds `get_repository`.
No model and no network: an index is built from a surface once and kept with it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import snowballstemmer

__all__ = ["CALL_TOOL", "SEARCH_TOOLS", "ToolIndex", "words"]

SEARCH_TOOLS: Final[Mapping[str, Any]] = {
    "name": "search_tools",
    "description": (
        "Search this server's tools by what you want to do. Returns the best matches, each with its name, "
        "description and input schema; call one with call_tool."
    ),
    "inputSchema": {
        "type": "object",
        "properties": {
            "query": {"type": "string", "description": "What you want to do, in a few words."},
            "limit": {"type": "integer", "minimum": 1, "maximum": 20, "description": "How many matches (5)."},
        },
        "required": ["query"],
    },
}
CALL_TOOL: Final[Mapping[str, Any]] = {
    "name": "call_tool",
    "description": "Call a tool that search_tools found, by its name, with arguments that match its input schema.",
    "inputSchema": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "description": "The tool's name, as search_tools gave it."},
            "arguments": {"type": "object", "description": "The tool's arguments."},
        },
        "required": ["name"],
    },
}

_NAME_WEIGHT: Final = 3.0
_ARGUMENT_WEIGHT: Final = 1.5
_DESCRIPTION_WEIGHT: Final = 1.0
_K1: Final = 1.2
_B: Final = 0.75
_WORD: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP: Final = frozenset(
    "a an and are as at be by can do does for from how i in into is it its me my of on or our that the their them "
    "this to use using want we what when where which who will with you your".split()
)
_STEMMER: Final = snowballstemmer.stemmer("english")


def words(text: str) -> list[str]:
    """The words of `text` as the index compares them: names split at case changes, digits and punctuation, lower
    case, common English words dropped, each reduced to its stem."""
    return [_stem(word.lower()) for word in _WORD.findall(text) if word.lower() not in _STOP]


@lru_cache(maxsize=16384)
def _stem(word: str) -> str:
    """Snowball's English stem (about 30 µs in pure Python: kept, since catalogs reuse their words)."""
    stem: str = _STEMMER.stemWord(word)
    return stem


@dataclass(frozen=True, slots=True)
class ToolIndex:
    """A BM25 index over a surface's tools (wire-form dicts: `name`, `description`, `inputSchema`)."""

    tools: tuple[Mapping[str, Any], ...]
    _terms: tuple[Mapping[str, float], ...]
    _lengths: tuple[float, ...]
    _frequency: Mapping[str, int]
    """In how many tools each word occurs."""

    @classmethod
    def of(cls, tools: Sequence[Mapping[str, Any]]) -> ToolIndex:
        terms = tuple(_weighted_terms(tool) for tool in tools)
        frequency: Counter[str] = Counter()
        for bag in terms:
            frequency.update(bag.keys())
        return cls(tuple(tools), terms, tuple(sum(bag.values()) for bag in terms), frequency)

    def search(self, query: str, limit: int = 5) -> list[Mapping[str, Any]]:
        """The `limit` tools that best match `query`, best first (none when no word of it occurs)."""
        asked = set(words(query))
        if not asked or not self.tools:
            return []
        count = len(self.tools)
        average = sum(self._lengths) / count or 1.0
        idf = {word: _idf(count, self._frequency.get(word, 0)) for word in asked}
        scored = []
        for position, (bag, length) in enumerate(zip(self._terms, self._lengths, strict=True)):
            score = 0.0
            for word in asked:
                tf = bag.get(word)
                if tf:
                    score += idf[word] * tf * (_K1 + 1) / (tf + _K1 * (1 - _B + _B * length / average))
            if score > 0:
                scored.append((-score, position))
        scored.sort()
        return [self.tools[position] for _, position in scored[:limit]]


def _idf(count: int, containing: int) -> float:
    return math.log(1 + (count - containing + 0.5) / (containing + 0.5))


def _weighted_terms(tool: Mapping[str, Any]) -> Mapping[str, float]:
    bag: dict[str, float] = {}
    for weight, text in _fields(tool):
        for word in words(text):
            bag[word] = bag.get(word, 0.0) + weight
    return bag


def _fields(tool: Mapping[str, Any]) -> Iterator[tuple[float, str]]:
    yield _NAME_WEIGHT, str(tool.get("name", ""))
    if tool.get("title"):
        yield _NAME_WEIGHT, str(tool["title"])
    yield _DESCRIPTION_WEIGHT, str(tool.get("description") or "")
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        for argument, spec in properties.items():
            yield _ARGUMENT_WEIGHT, str(argument)
            if isinstance(spec, Mapping) and isinstance(spec.get("description"), str):
                yield _DESCRIPTION_WEIGHT / 2, spec["description"]
