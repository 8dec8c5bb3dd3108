"""Finding tools by what they do: the search mode of a virtual server, for catalogs too large to list.

A client in search mode sees two tools instead of hundreds: `search_tools` (a query in, the best matches out, each
with its description and input schema) and `call_tool` (a name and its arguments). Ranking is BM25 over each tool's
words, weighted by where they come from (its name counts most, then its argument names, then its description), with
names split as people read them (`get_file_contents`, `createIssue`, `github__search_repos`) and words reduced to
their stem (Snowball's English stemmer), so "files" finds `list_file` and "repositories" finds `get_repository`.
A small table of related words (`_RELATED_GROUPS`: "erase" for delete, "ticket" for issue) counts at half weight.
No model and no network: an index is built from a surface once and kept with it. Requests in the tools' own words
are found well, requests in quite other words much less (`bench/bench_search.py` measures both).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import snowballstemmer

__all__ = [
    "CALL_TOOL",
    "MAX_FIELD",
    "MAX_LIMIT",
    "MAX_QUERY_WORDS",
    "SEARCH_TOOLS",
    "ToolIndex",
    "search_result",
    "words",
]

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
MAX_FIELD: Final = 4096
"""Characters of one field (a description, a query) that count: a hostile megabyte costs no more than a long text."""
MAX_QUERY_WORDS: Final = 32
MAX_LIMIT: Final = 50
_LONGEST_WORD: Final = 40
"""Longer runs of letters are no words (base64, hashes): left out, so the stem cache holds short strings only."""
_RUN: Final = re.compile(r"[^\W_]+")
_ASCII_WORD: Final = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
_STOP: Final = frozenset(
    "a an and are as at be by can do does for from how i in into is it its me my of on or our that the their them "
    "this to want we what when where which who will with you your".split()
)
_STEMMER: Final = snowballstemmer.stemmer("english")
_RELATED_WEIGHT: Final = 0.5
"""A word's weight when a query has it through a related word of it (exact words count fully)."""
_RELATED_GROUPS: Final = (
    # What tools do, in the words their names use and the words people ask with.
    "create add new make insert post open write",
    "delete remove erase drop destroy forget purge",
    "get fetch read retrieve show view see look",
    "list enumerate all browse",
    "update edit change modify patch set rename",
    "search find query lookup locate",
    "kill stop terminate abort cancel end halt",
    "run execute start launch trigger invoke",
    "send post message tell notify say",
    "watch alert notify subscribe follow monitor",
    "fail failure error broke broken crash bug",
    "issue ticket bug",
    "chart plot graph diagram draw visualize",
    "schema field structure column type",
    "size big large bytes",
    "distance far apart travel",
    "directory folder",
    "note journal daily",
    "link point reference",
    "review reviewer approve",
    "commit save",
    "block paragraph",
)


def _related() -> Mapping[str, tuple[str, ...]]:
    stems = [tuple(dict.fromkeys(words(group))) for group in _RELATED_GROUPS]
    related: dict[str, list[str]] = {}
    for group in stems:
        for word in group:
            related.setdefault(word, []).extend(other for other in group if other != word)
    return {word: tuple(dict.fromkeys(others)) for word, others in related.items()}


def words(text: str) -> list[str]:
    """The words of `text` (its first `MAX_FIELD` characters) as the index compares them: split at punctuation and,
    in ASCII names, at case changes and digits; lower case; common English words dropped; each reduced to its stem."""
    found = []
    for run in _RUN.findall(text[:MAX_FIELD]):
        for word in _ASCII_WORD.findall(run) if run.isascii() else (run,):
            word = word.lower()
            if word not in _STOP and len(word) <= _LONGEST_WORD:
                found.append(_stem(word))
    return found


@lru_cache(maxsize=16384)
def _stem(word: str) -> str:
    """Snowball's English stem (about 30 µs in pure Python: kept, since catalogs reuse their words)."""
    stem: str = _STEMMER.stemWord(word)
    return stem


@dataclass(frozen=True, slots=True)
class ToolIndex:
    """A BM25 index over a surface's tools (wire-form dicts: `name`, `description`, `inputSchema`): for each word,
    the tools it occurs in and its weight there, so a query costs what its words' tools cost, not the catalog's."""

    tools: tuple[Mapping[str, Any], ...]
    _postings: Mapping[str, tuple[tuple[int, float], ...]]
    _lengths: tuple[float, ...]
    _average: float

    @classmethod
    def of(cls, tools: Sequence[Mapping[str, Any]]) -> ToolIndex:
        postings: dict[str, list[tuple[int, float]]] = {}
        lengths = []
        for position, tool in enumerate(tools):
            bag = _weighted_terms(tool)
            for word, weight in bag.items():
                postings.setdefault(word, []).append((position, weight))
            lengths.append(sum(bag.values()))
        average = (sum(lengths) / len(lengths) or 1.0) if lengths else 1.0
        frozen = {word: tuple(entries) for word, entries in postings.items()}
        return cls(tuple(tools), frozen, tuple(lengths), average)

    def search(self, query: str, limit: int = 5) -> list[Mapping[str, Any]]:
        """The `limit` tools (at most `MAX_LIMIT`) that best match `query`, best first; none when no word of it
        occurs. Only its first `MAX_QUERY_WORDS` distinct words count."""
        asked = list(dict.fromkeys(words(query)))[:MAX_QUERY_WORDS]
        limit = min(limit, MAX_LIMIT)
        if not asked or limit < 1:
            return []
        weights = dict.fromkeys(asked, 1.0)
        for word in asked:  # a query's words count fully, words related to them (`_RELATED_GROUPS`) half
            for other in _RELATED.get(word, ()):
                weights.setdefault(other, _RELATED_WEIGHT)
        count = len(self.tools)
        scores: dict[int, float] = {}
        for word, weight in weights.items():
            entries = self._postings.get(word, ())
            idf = weight * math.log(1 + (count - len(entries) + 0.5) / (len(entries) + 0.5))
            for position, tf in entries:
                norm = _K1 * (1 - _B + _B * self._lengths[position] / self._average)
                scores[position] = scores.get(position, 0.0) + idf * tf * (_K1 + 1) / (tf + norm)
        best = sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:limit]
        return [self.tools[position] for position, _ in best]


_RELATED: Final = _related()


def _weighted_terms(tool: Mapping[str, Any]) -> Mapping[str, float]:
    bag: dict[str, float] = {}
    for weight, text in _fields(tool):
        for word in words(text):
            bag[word] = bag.get(word, 0.0) + weight
    return bag


def _fields(tool: Mapping[str, Any]) -> Iterator[tuple[float, str]]:
    yield _NAME_WEIGHT, str(tool.get("name", ""))
    if tool.get("title"):  # a display name: it says what the description says, in short
        yield _DESCRIPTION_WEIGHT, str(tool["title"])
    yield _DESCRIPTION_WEIGHT, str(tool.get("description") or "")
    schema = tool.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        for argument, spec in properties.items():
            yield _ARGUMENT_WEIGHT, str(argument)
            if isinstance(spec, Mapping) and isinstance(spec.get("description"), str):
                yield _DESCRIPTION_WEIGHT / 2, spec["description"]


_MATCH_KEYS: Final = ("name", "title", "description", "inputSchema", "outputSchema", "annotations")


def search_result(index: ToolIndex, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The `tools/call` result of `search_tools`: the matches (name, description, input schema) as structured content,
    and as JSON text for clients that read text only."""
    query, limit = arguments.get("query"), arguments.get("limit", 5)
    if not isinstance(query, str) or not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= 20:
        return {
            "content": [{"type": "text", "text": "search_tools takes a `query` (a string) and a `limit` (1 to 20)"}],
            "isError": True,
        }
    matches = [
        {
            key: tool[key]
            for key in ("name", "title", "description", "inputSchema", "outputSchema", "annotations")
            if key in tool
        }
        for tool in index.search(query, limit)
    ]
    return {
        "content": [{"type": "text", "text": json.dumps(matches)}],
        "structuredContent": {"tools": matches},
        "isError": False,
    }
