"""Search mode for large catalogs: how much smaller `tools/list` gets, and whether a query finds the right tool.

`python -m bench.bench_search` reads `bench/data/tools.json` (real tool definitions, listed from real MCP servers; its
README says which and how) and `bench/data/queries.json` (natural-language requests, each labelled with the one tool
that does it), and prints:

- `tools/list` in bytes of JSON: the whole catalog as the plain endpoint lists it (tools named `<server>__<tool>`,
  as the gateway exports them) against a virtual server in search mode (`search_tools` and `call_tool`);
- top-5 and top-1 retrieval: the share of queries whose tool `search_tools` returns within its first 5 (1), over
  every query and per set ("plain" requests, and "paraphrase"s that hold no word of their tool's name);
- what building the index and answering a query cost.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from bench import _report
from lash_gateway.export._search import CALL_TOOL, SEARCH_TOOLS, ToolIndex

DATA: Final = Path(__file__).resolve().parent / "data"
SMALLER_TARGET: Final = 0.90
"""Search mode's `tools/list` is at least 90% smaller than the whole catalog's."""
TOP5_TARGET: Final = 0.90
"""The right tool is among the first 5 matches for at least 90% of the queries."""
MIN_TOOLS: Final = 300
MIN_QUERIES: Final = 50


def catalog() -> list[dict[str, Any]]:
    """Every tool of the data file, named as the gateway exports it."""
    servers = json.loads((DATA / "tools.json").read_text())["servers"]
    return [{**tool, "name": f"{server['server']}__{tool['name']}"} for server in servers for tool in server["tools"]]


def queries() -> list[tuple[str, str, str]]:
    """(query, labelled tool, set): "plain" requests, or "paraphrase"s that hold no word of their tool's name but
    the product's."""
    return [(entry["query"], entry["tool"], entry["set"]) for entry in json.loads((DATA / "queries.json").read_text())]


def size(tools: Sequence[Mapping[str, Any]]) -> int:
    return len(json.dumps({"tools": list(tools)}, separators=(",", ":")).encode())


def rank_of(index: ToolIndex, query: str, wanted: str, limit: int) -> int | None:
    """The 1-based place of `wanted` among the first `limit` matches of `query`, or None."""
    names = [tool["name"] for tool in index.search(query, limit)]
    return names.index(wanted) + 1 if wanted in names else None


def run() -> tuple[list[tuple[str, str, str, str, str, str]], list[str]]:
    tools, asked = catalog(), queries()
    known = {tool["name"] for tool in tools}
    unknown = [tool for _, tool, _ in asked if tool not in known]
    if unknown or len(tools) < MIN_TOOLS or len(asked) < MIN_QUERIES:
        raise SystemExit(f"bench data: {len(tools)} tools, {len(asked)} queries; labels not in the catalog: {unknown}")
    started = time.perf_counter_ns()
    index = ToolIndex.of(tools)
    built = time.perf_counter_ns() - started
    full, searching = size(tools), size([SEARCH_TOOLS, CALL_TOOL])
    places = [rank_of(index, query, tool, 5) for query, tool, _ in asked]
    timings = []
    for query, _, _ in asked:
        start = time.perf_counter_ns()
        index.search(query, 5)
        timings.append(time.perf_counter_ns() - start)
    smaller = 1 - searching / full
    top5 = sum(place is not None for place in places) / len(asked)
    rows = [
        (
            f"tools/list, {len(tools)} tools: full / search mode",
            f"{full:,} B",
            f"{searching:,} B",
            f"{smaller:.1%} smaller",
            f">= {SMALLER_TARGET:.0%} smaller",
            _report.verdict_of(smaller >= SMALLER_TARGET),
        ),
        (
            f"right tool in the top 5, all {len(asked)} queries",
            f"{top5:.1%}",
            "",
            "",
            f">= {TOP5_TARGET:.0%}",
            _report.verdict_of(top5 >= TOP5_TARGET),
        ),
    ]
    for kind in dict.fromkeys(kind for _, _, kind in asked):
        mine = [place for place, (_, _, set_) in zip(places, asked, strict=True) if set_ == kind]
        in_top5 = sum(place is not None for place in mine) / len(mine)
        first = sum(place == 1 for place in mine) / len(mine)
        rows.append((f"  {kind}: top 5 / first ({len(mine)})", f"{in_top5:.1%}", f"{first:.1%}", "", "-", "info"))
    rows += [
        ("index build (first, stems not cached)", _report.duration(built), "", "", "-", _report.verdict_of(None)),
        ("search, median", _report.duration(statistics.median(timings)), "", "", "-", _report.verdict_of(None)),
    ]
    misses = [f"  {query!r}: wanted {tool}" for (query, tool, _), place in zip(asked, places, strict=True) if not place]
    return rows, misses


def main() -> None:
    rows, misses = run()
    print("lash gateway: search mode over a catalog of real tools")
    print(_report.table(("figure", "value", "search mode / first", "ratio", "target", "verdict"), rows))
    if misses:
        print("queries whose tool is not in the top 5:")
        print("\n".join(misses))


if __name__ == "__main__":
    main()
